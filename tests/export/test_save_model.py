"""save_model=1 outside the SageMaker launcher (whose path is tested in tests/integrations/test_sagemaker_launcher.py):
``rlframe-train`` exports into ``<experiment>/model`` when the run completes or stops after its final checkpoint, and
a project's own copy of sagemaker_rl (the notebooks' way) moves the newest checkpoint's ``.onnx`` into
``/opt/ml/model/model.onnx`` and fixes its outputs, leaving a checkpoint that still restores."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from rlframe.cli import train_main
from rlframe.export import export_checkpoint
from rlframe.outputs.checkpoints import STATE_FILE
from rlframe.outputs.csv_logger import csv_file_name

from exported_models import write_preset

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sagemaker"
#: a bound on waiting for a subprocess on a slow machine, not a measurement
TIMEOUT = 180.0


def assert_same_model(model: Path, other: Path) -> None:
    """Two model directories hold the same model (byte for byte) exported from the same checkpoint."""
    for name in ("model.onnx", "policy-symbol.json", "policy-0000.params", "rlframe-model.json"):
        assert (model / name).read_bytes() == (other / name).read_bytes(), name


def test_rlframe_train_exports_the_final_checkpoint_into_the_experiment(tmp_path, capsys):
    preset = write_preset("ppo_continuous", tmp_path, normalise=True)
    experiment = tmp_path / "experiment"
    assert train_main(["-p", str(preset), "-ep", str(experiment), "--seed", "0", "--progress", "lines",
                       "--save_model", "1"]) == 0
    latest = (experiment / "checkpoint" / STATE_FILE).read_text().strip()
    model = experiment / "model"
    assert (f"Model: {model} (save_model=1: model.onnx, policy-symbol.json, rlframe-model.json; checkpoint {latest})"
            in capsys.readouterr().out.splitlines())
    metadata = json.loads((model / "rlframe-model.json").read_text())
    assert metadata["checkpoint"] == {"name": latest, "directory": str(experiment / "checkpoint")}
    assert metadata["preset"]["name"] == "export_ppo_continuous_normalised"
    assert_same_model(model, export_checkpoint(experiment / "checkpoint", tmp_path / "again"))


def test_a_run_stopped_by_sigterm_exports_its_final_checkpoint(tmp_path):
    preset = write_preset("dqn", tmp_path)
    experiment = tmp_path / "experiment"
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "rlframe.cli", "-p", str(preset), "-ep", str(experiment), "--seed", "0",
         "--progress", "lines", "--save_model", "1", "-cp", "improve_steps=EnvironmentSteps(10000000)"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:  # training has begun: the first training episode ended
            if line.startswith("Training>"):
                break
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 143, err
    latest = (experiment / "checkpoint" / STATE_FILE).read_text().strip()
    assert f"Model: {experiment / 'model'} (save_model=1: model.onnx, policy-symbol.json, rlframe-model.json; " \
           f"checkpoint {latest})" in out
    assert_same_model(experiment / "model", export_checkpoint(experiment / "checkpoint", tmp_path / "again"))


def test_a_projects_sagemaker_rl_copy_moves_and_fixes_the_newest_checkpoint_graph(tmp_path):
    """The shipped-launcher fixture's train_main, as the notebooks' sagemaker_rl does it with COACH_BACKEND=mxnet:
    a project shipping its own launcher copy trains under rlframe-local, and its save_model fixes the graph."""
    hyperparameters = tmp_path / "hyperparameters.json"
    hyperparameters.write_text(json.dumps({"save_model": 1}))
    result = subprocess.run(
        [sys.executable, "-m", "rlframe.integrations.sagemaker.local", "--source-dir", str(FIXTURES / "shipped_launcher_src"),
         "--entry-point", "train-coach.py", "--hyperparameters", str(hyperparameters), "--output-path", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, "COACH_BACKEND": "mxnet"})
    assert result.returncode == 0, result.stderr
    tree = tmp_path / "out" / "opt_ml"
    assert (tree / "output" / "intermediate" / csv_file_name("simple_rl_graph")).is_file()
    checkpoints = tree / "output" / "data" / "checkpoint"
    latest = (checkpoints / STATE_FILE).read_text().strip()
    assert f"Saved {latest}.onnx as {tree / 'model' / 'model.onnx'}" in result.stdout
    assert not (checkpoints / f"{latest}.onnx").exists()  # moved, as the notebooks' launcher does
    with tarfile.open(tmp_path / "out" / "model.tar.gz") as tar:
        assert tar.getnames() == ["model.onnx"]
    # The checkpoint it came from still exports (and so restores): the .onnx is no file it needs.
    again = export_checkpoint(checkpoints, tmp_path / "again")
    obs = np.random.default_rng(0).normal(scale=3.0, size=(100, 4)).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    fixed, exported = (ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"observation": obs})
                       for path in (tree / "model" / "model.onnx", again / "model.onnx"))
    assert len(fixed) == 1 and np.abs(fixed[0] - exported[0]).max() <= 1e-6  # DQN: the Q-values, unchanged by the fix


def test_a_policy_that_cannot_be_exported_fails_before_training(write_preset, tmp_path, capsys):
    preset = write_preset("unit_filter", extra="""
        from rlframe.filters.filter import InputFilter, ObservationFilter

        class ClipToUnit(ObservationFilter):
            def filter(self, observation, update):
                return observation.clip(-1, 1)

        agent_params.pre_network_filter = InputFilter()
        agent_params.pre_network_filter.add_observation_filter('observation', 'unit', ClipToUnit())
        """)
    for flag in (["--save_model", "1"], ["-onnx"]):
        experiment = tmp_path / flag[0].strip("-")
        assert train_main(["-p", str(preset), "-ep", str(experiment), "--progress", "lines", *flag]) == 2
        captured = capsys.readouterr()
        assert captured.err.strip() == (
            "error: agent_params.pre_network_filter has observation filter 'unit' of type ClipToUnit, which cannot be "
            "exported (rlframe exports ObservationNormalizationFilter only): remove it from the preset, or apply it to "
            "observations before they reach the exported model.")
        assert "Heatup>" not in captured.out and not (experiment / "checkpoint").exists()
