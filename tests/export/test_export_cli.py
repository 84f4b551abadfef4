"""``rlframe-export CHECKPOINT_DIR -o DIR``: what it writes and prints, and every mistake it refuses in one line
(exit 2, no traceback) without writing anything."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rlframe.export.cli import main
from rlframe.outputs.checkpoints import STATE_FILE

pytestmark = pytest.mark.unit

MODEL_FILES = ["model.onnx", "policy-0000.params", "policy-symbol.json", "rlframe-model.json"]


@pytest.fixture
def checkpoint(trained_runs, tmp_path) -> Path:
    """A copy of the trained DQN run's experiment folder (preset file beside it); returns its checkpoint folder."""
    run = trained_runs["dqn"]
    folder = shutil.copytree(run.checkpoint_dir.parents[1], tmp_path / "run")
    return folder / "experiment" / "checkpoint"


def latest_name(checkpoint: Path) -> str:
    return (checkpoint / STATE_FILE).read_text().strip()


def state_file(checkpoint: Path) -> Path:
    return checkpoint / f"{latest_name(checkpoint)}.state.json"


def test_it_exports_the_newest_checkpoint_and_says_where(checkpoint, tmp_path, capsys):
    assert main([str(checkpoint), "-o", str(tmp_path / "model")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"Exported {latest_name(checkpoint)} of {checkpoint} (DQNAgent, preset export_dqn) to {tmp_path / 'model'}",
        "Outputs of model.onnx and policy-symbol.json: q_values; input 'observation' ['batch', 4], raw observations",
    ]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == MODEL_FILES
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_an_experiment_folder_and_an_empty_output_folder_are_accepted(checkpoint, tmp_path):
    """SageMaker's /opt/ml/model exists (empty, a mount point) before anything is exported into it."""
    (tmp_path / "mount").mkdir()
    assert main([str(checkpoint.parent), "-o", str(tmp_path / "mount")]) == 0
    assert sorted(p.name for p in (tmp_path / "mount").iterdir()) == MODEL_FILES


def test_force_replaces_a_model_and_keeps_its_code_folder(checkpoint, tmp_path, capsys):
    out = tmp_path / "model"
    assert main([str(checkpoint), "-o", str(out)]) == 0
    (out / "code").mkdir()
    (out / "code" / "inference.py").write_text("def model_fn(model_dir): ...\n")
    metadata = (out / "rlframe-model.json").read_text()
    assert main([str(checkpoint), "-o", str(out), "--discount", "0.5"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: Output folder {out} already holds an rlframe model (checkpoint {latest_name(checkpoint)} of "
        f"{checkpoint}): give another output folder (-o), delete it, or pass --force to replace it.")
    assert (out / "rlframe-model.json").read_text() == metadata
    assert main([str(checkpoint), "-o", str(out), "--force", "--discount", "0.5"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["code", *MODEL_FILES]
    assert json.loads((out / "rlframe-model.json").read_text())["preset"]["hyperparameters"] == {"discount": 0.5}


def refuse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run rlframe-export expecting a refusal; returns the one line it printed."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and not captured.out, captured.err
    return lines[0][len("error: "):]


def test_a_missing_or_empty_checkpoint_folder(tmp_path, capsys):
    assert refuse([str(tmp_path / "nowhere"), "-o", str(tmp_path / "model")], capsys) == (
        f"Checkpoint directory '{tmp_path / 'nowhere'}' does not exist. Pass the 'checkpoint' folder of an experiment.")
    (tmp_path / "empty").mkdir()
    assert refuse([str(tmp_path / "empty"), "-o", str(tmp_path / "model")], capsys) == (
        f"'{tmp_path / 'empty'}' has no .coach_checkpoint file, so it holds no complete checkpoint. Pass the "
        "'checkpoint' folder of an experiment that saved at least one checkpoint.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_an_incomplete_checkpoint(checkpoint, tmp_path, capsys):
    name = latest_name(checkpoint)
    (checkpoint / f"{name}.main_level.agent.main.online").unlink()
    assert refuse([str(checkpoint), "-o", str(tmp_path / "model")], capsys).startswith(
        f"Checkpoint {name} in {checkpoint}: {name}.main_level.agent.main.online (network parameters) is missing.")
    state_file(checkpoint).unlink()
    assert refuse([str(checkpoint), "-o", str(tmp_path / "model")], capsys) == (
        f"{checkpoint / STATE_FILE} names checkpoint {name!r}, but {name}.state.json is not in {str(checkpoint)!r}. "
        "The directory is incomplete; restore from a directory whose files were all copied.")
    assert not (tmp_path / "model").exists()


def test_a_checkpoint_whose_preset_is_unknown_or_gone_needs_p(checkpoint, tmp_path, capsys):
    name = latest_name(checkpoint)
    state = json.loads(state_file(checkpoint).read_text())
    preset = Path(state["preset"]["file"])
    state["preset"]["file"] = str(tmp_path / "gone" / preset.name)
    state_file(checkpoint).write_text(json.dumps(state))
    assert refuse([str(checkpoint), "-o", str(tmp_path / "model")], capsys) == (
        f"Checkpoint {name} in {checkpoint} was written by preset {tmp_path / 'gone' / preset.name}, which is not "
        "there any more: pass -p PRESET (its name or file).")
    del state["preset"]
    state_file(checkpoint).write_text(json.dumps(state))
    assert refuse([str(checkpoint), "-o", str(tmp_path / "model")], capsys) == (
        f"Checkpoint {name} in {checkpoint} does not record the preset that wrote it: pass -p PRESET, the preset it "
        "was trained with.")
    assert not (tmp_path / "model").exists()
    assert main([str(checkpoint), "-o", str(tmp_path / "model"), "-p", str(preset)]) == 0


def test_a_preset_that_builds_another_network(checkpoint, tmp_path, capsys):
    message = refuse([str(checkpoint), "-o", str(tmp_path / "model"),
                      "--rl.agent_params.network_wrappers.main.middleware_parameters.scheme", "[Dense(8)]"], capsys)
    assert message.startswith(f"Checkpoint {latest_name(checkpoint)} in '{checkpoint}' ")
    assert message.endswith("Restore it with the preset that wrote it.")
    assert not (tmp_path / "model").exists()


def test_an_unknown_hyperparameter(checkpoint, tmp_path, capsys):
    assert refuse([str(checkpoint), "-o", str(tmp_path / "model"), "--dicount", "0.9"], capsys).startswith(
        "Unknown hyperparameter 'dicount'. Did you mean 'discount'?")


def test_an_output_folder_that_holds_something_else(checkpoint, tmp_path, capsys):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.txt").write_text("mine")
    assert refuse([str(checkpoint), "-o", str(tmp_path / "results"), "--force"], capsys) == (
        f"Output folder {tmp_path / 'results'} already holds files that are not an rlframe model (notes.txt): give "
        "another output folder (-o), or delete them.")
    (tmp_path / "file").write_text("")
    assert refuse([str(checkpoint), "-o", str(tmp_path / "file")], capsys) == (
        f"Output folder {tmp_path / 'file'} is a file: give another output folder (-o).")
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["notes.txt"]
