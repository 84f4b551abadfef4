"""Preset golden tests (Coach's): each preset reaches its validation threshold within its episode limit."""
import pytest

from rlframe.cli import validate_main


@pytest.mark.golden
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("preset", ["CartPole_DQN", "preset-cartpole-dqn"])
def test_preset_reaches_its_validation_threshold(preset, seed, tmp_path, capsys):
    code = validate_main(["-p", preset, "--seed", str(seed), "-ep", str(tmp_path / "exp")])
    out = capsys.readouterr().out
    assert code == 0, out.splitlines()[-1]
    assert f"PASSED: {preset} (seed {seed})" in out
