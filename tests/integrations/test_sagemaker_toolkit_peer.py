"""Peer test: SageMaker's own training toolkit (the ``sagemaker-training`` package's ``train`` command, as a
generic framework image whose requirements name rlframe runs it) and rlframe agree.

- On the same ``/opt/ml`` tree, a script sees the same arguments and the same ``SM_*`` variables from the
  toolkit and from ``rlframe-sagemaker train``.
- The toolkit runs the CartPole fixture's ``train-coach.py`` (``import sagemaker_rl`` answered by rlframe, installed
  in this virtual environment) and its outputs match what ``rlframe-local`` produces for the same folder: the same
  files, CSV columns and checkpoint names.

The test makes ``model/`` and ``output/data/`` as the platform does. Offline, the toolkit needs one thing more: before running the script it resolves every host of resourceconfig.json
(``algo-1`` here, which no DNS answers), retrying for up to 15 minutes. ``SM_STUDIO_LOCAL_MODE=true`` skips that
check. Nothing else reaches the network: without ``sagemaker_s3_output`` it syncs no intermediate output to S3.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sagemaker_training  # noqa: F401  (a test dependency: fail here, not with a missing command below)

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sagemaker"
TOOLKIT_TRAIN = str(Path(sys.executable).parent / "train")
ENTRYPOINT = [sys.executable, "-m", "rlframe.integrations.sagemaker.entrypoint", "train"]
LOCAL = [sys.executable, "-m", "rlframe.integrations.sagemaker.local"]
HYPERPARAMETERS = {"RLCOACH_PRESET": "preset-cartpole-dqn", "improve_steps": 300, "rl.evaluation_steps:EnvironmentEpisodes": 1}
#: compared property by property: the toolkit's holds more properties than rlframe's
COMPARED_BY_PROPERTY = {"SM_TRAINING_ENV"}

DUMP_SCRIPT = """\
import json, os, sys
seen = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": {k: v for k, v in os.environ.items() if k.startswith("SM_")}}
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as handle:
    json.dump(seen, handle)
"""


def _lay_out(base: Path, source: Path, entry_point: str, hyperparameters: dict, channels: tuple[str, ...] = ()) -> None:
    """An /opt/ml tree as SageMaker writes it for an SDK estimator (values JSON-encoded)."""
    (base / "input" / "config").mkdir(parents=True)
    shutil.copytree(source, base / "code", ignore=shutil.ignore_patterns("__pycache__"))
    encoded = {k: json.dumps(v) for k, v in hyperparameters.items()} | {"sagemaker_program": json.dumps(entry_point)}
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(encoded))
    (base / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    (base / "input" / "config" / "inputdataconfig.json").write_text(
        json.dumps({name: {"TrainingInputMode": "File"} for name in channels}))
    for name in channels:
        (base / "input" / "data" / name).mkdir(parents=True)
    # Made by the platform, not by the toolkit, which cannot even write its failure file without output/ (and
    # then exits 0 after a failed script).
    (base / "model").mkdir()
    (base / "output" / "data").mkdir(parents=True)


def _toolkit(base: Path) -> subprocess.Popen:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "SM_STUDIO_LOCAL_MODE": "true"}
    return subprocess.Popen([TOOLKIT_TRAIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    """The stdout of ``process`` once it has succeeded."""
    try:
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0, err
    return out


def test_a_script_sees_the_same_arguments_and_variables_from_the_toolkit_and_from_rlframe(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "dump.py").write_text(DUMP_SCRIPT)
    hyperparameters = {"RLCOACH_PRESET": "preset-cartpole-dqn", "discount": 0.9, "save_model": 1, "flag": True,
                       "learning-rate": 1e-4, "name": "ppo", "layers": [32, 32], "tie": {"b": 2, "a": "x"}, "n": None,
                       "rl.evaluation_steps:EnvironmentEpisodes": 8, "sagemaker_estimator": "RLEstimator"}
    base = tmp_path / "opt_ml"
    _lay_out(base, source, "dump.py", hyperparameters, channels=("training", "checkpoint"))

    _finish(_toolkit(base))
    by_toolkit = json.loads((base / "output" / "data" / "seen.json").read_text())
    shutil.rmtree(base / "output")
    ours = subprocess.run(ENTRYPOINT, env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)}, capture_output=True,
                          text=True, timeout=120)
    assert ours.returncode == 0, ours.stderr
    by_rlframe = json.loads((base / "output" / "data" / "seen.json").read_text())

    assert by_rlframe["argv"] == by_toolkit["argv"]
    assert by_rlframe["cwd"] == by_toolkit["cwd"] == str(base / "code")
    exported = set(by_rlframe["env"]) - COMPARED_BY_PROPERTY
    assert {"SM_HPS", "SM_HP_LEARNING-RATE", "SM_HP_RL.EVALUATION_STEPS:ENVIRONMENTEPISODES", "SM_CHANNELS",
            "SM_CHANNEL_CHECKPOINT", "SM_USER_ARGS", "SM_FRAMEWORK_PARAMS", "SM_HOSTS", "SM_NUM_GPUS"} <= exported
    assert {k: by_rlframe["env"][k] for k in exported} == {k: by_toolkit["env"].get(k) for k in exported}
    ours_env, toolkit_env = (json.loads(seen["env"]["SM_TRAINING_ENV"]) for seen in (by_rlframe, by_toolkit))
    assert ours_env == {k: toolkit_env.get(k) for k in ours_env}


def _outputs(tree: Path) -> set[str]:
    """The output files: GIFs as one entry (which evaluation episodes get one depends on their rewards), and of
    the checkpoints only the
    marker and the final one, its id left out (a checkpoint every 10 s of wall time may add periodic ones first
    on a slow machine)."""
    final = (tree / "output" / "data" / "checkpoint" / ".coach_checkpoint").read_text().strip()
    assert final.endswith("_Step-300.ckpt")
    names = set()
    for path in (tree / "output").rglob("*"):
        relative = path.relative_to(tree / "output").as_posix()
        if path.suffix == ".gif":
            relative = f"{path.parent.relative_to(tree / 'output').as_posix()}/<episode>.gif"
        elif path.parent.name == "checkpoint" and path.name != ".coach_checkpoint":
            if not path.name.startswith(final + "."):
                continue
            relative = relative.replace(final, "<final>")
        names.add(relative)
    return names


def test_the_toolkit_runs_a_train_coach_script_with_rlframe_and_the_outputs_match_rlframe_local(tmp_path):
    toolkit_tree = tmp_path / "toolkit" / "opt_ml"
    _lay_out(toolkit_tree, FIXTURES / "cartpole_src", "train-coach.py", HYPERPARAMETERS)
    (tmp_path / "hyperparameters.json").write_text(json.dumps(HYPERPARAMETERS))
    # Both jobs at once: each trains on one core.
    toolkit = _toolkit(toolkit_tree)
    local = subprocess.Popen(LOCAL + ["--source-dir", str(FIXTURES / "cartpole_src"), "--entry-point", "train-coach.py",
                                      "--hyperparameters", str(tmp_path / "hyperparameters.json"),
                                      "--output-path", str(tmp_path / "local")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "Training> Name=main_level/agent" in _finish(toolkit)
    _finish(local)
    local_tree = tmp_path / "local" / "opt_ml"

    local_outputs = _outputs(local_tree)
    # rlframe's entrypoint also copies intermediate/ into data/ for output.tar.gz (the toolkit syncs it to S3 instead).
    copied = {name for name in local_outputs if name.startswith("data/intermediate")}
    assert {name.replace("data/", "", 1) for name in copied if name != "data/intermediate"} == \
        {name for name in local_outputs if name.startswith("intermediate/")} - {"intermediate/.rlframe.lock"}
    assert _outputs(toolkit_tree) == local_outputs - copied
    assert (toolkit_tree / "output" / "success").exists() and not list((toolkit_tree / "model").iterdir())
    csv = "output/intermediate/worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
    assert list(pd.read_csv(toolkit_tree / csv).columns) == list(pd.read_csv(local_tree / csv).columns)
