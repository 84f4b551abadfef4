"""Preset golden tests (Coach's): each preset reaches its validation threshold within its episode limit."""
import pandas as pd
import pytest

from rlframe.cli import train_main, validate_main

CSV_NAME = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"


@pytest.mark.golden
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("preset", [
    "CartPole_DQN", "preset-cartpole-dqn", "CartPole_ClippedPPO",
    "preset-mountain-car-continuous-clipped-ppo-tuned", "preset-mountain-car-discrete-clipped-ppo",
    "CartPole_DDQN_BatchRL", "CartPole_DDQN_BCQ_BatchRL",
])
def test_preset_reaches_its_validation_threshold(preset, seed, tmp_path, capsys):
    code = validate_main(["-p", preset, "--seed", str(seed), "-ep", str(tmp_path / "exp")])
    out = capsys.readouterr().out
    assert code == 0, out.splitlines()[-1]
    assert f"PASSED: {preset} (seed {seed})" in out


@pytest.mark.golden
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clipped_ppo_cartpole_goes_on_to_solve_it(seed, tmp_path):
    experiment = tmp_path / "exp"
    assert train_main(["-p", "CartPole_ClippedPPO", "--seed", str(seed), "-ep", str(experiment),
                       "-cp", "improve_steps=TrainingSteps(40000)"]) == 0
    evaluation = pd.read_csv(experiment / CSV_NAME)["Evaluation Reward"].dropna()
    assert evaluation.max() >= 195
