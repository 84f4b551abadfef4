"""``rlframe-local``: SageMaker source folders run as training jobs without Docker or AWS.

The fixture folders of tests/fixtures/sagemaker (in the style of the SageMaker RL notebooks) run through the same
entrypoint code as the image: a training job writes the CSV and GIFs to ``output/intermediate``, checkpoints,
``success`` and both tarballs laid out as SageMaker's local mode lays them out; an evaluation job restores the
training job's checkpoint from its ``checkpoint`` channel; a failing script leaves ``failure`` and a non-zero
status. Every job is a few hundred CartPole steps.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from rlframe.integrations.sagemaker.local import main as local_main
from rlframe.integrations.sagemaker.local import read_hyperparameters

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sagemaker"
LOCAL = [sys.executable, "-m", "rlframe.integrations.sagemaker.local"]
CSV_NAME = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
TRAINING_HYPERPARAMETERS = {"RLCOACH_PRESET": "preset-cartpole-dqn", "improve_steps": 300,
                            "rl.evaluation_steps:EnvironmentEpisodes": 1}


def run_local(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(LOCAL + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def tar_names(archive: Path) -> set[str]:
    with tarfile.open(archive) as tar:
        return set(tar.getnames())


def checkpoint_names(folder: Path) -> list[str]:
    return sorted(p.name[:-len(".state.json")] for p in folder.glob("*.state.json"))


@pytest.fixture(scope="module")
def training_job(tmp_path_factory):
    """The CartPole fixture's train-coach.py (a SageMakerCoachPresetLauncher subclass) trained as a job."""
    root = tmp_path_factory.mktemp("training")
    hyperparameters = write_json(root / "hyperparameters.json", TRAINING_HYPERPARAMETERS)
    result = run_local("--source-dir", FIXTURES / "cartpole_src", "--entry-point", "train-coach.py",
                       "--hyperparameters", hyperparameters, "--output-path", root / "out")
    return root / "out", result


def test_a_training_job_writes_what_sagemaker_collects(training_job):
    out, result = training_job
    assert result.returncode == 0, result.stderr
    tree = out / "opt_ml"
    assert json.loads((tree / "input/config/hyperparameters.json").read_text()) | {"sagemaker_job_name": "x"} == {
        "RLCOACH_PRESET": '"preset-cartpole-dqn"', "improve_steps": "300", "rl.evaluation_steps:EnvironmentEpisodes": "1",
        "sagemaker_program": '"train-coach.py"', "sagemaker_container_log_level": "20", "sagemaker_job_name": "x",
        "sagemaker_submit_directory": json.dumps(f"file://{FIXTURES / 'cartpole_src'}"),
    }
    assert json.loads((tree / "input/config/resourceconfig.json").read_text()) == {
        "current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}
    assert json.loads((tree / "input/config/inputdataconfig.json").read_text()) == {}
    assert sorted(p.name for p in (tree / "code").iterdir()) == sorted(p.name for p in (FIXTURES / "cartpole_src").iterdir()
                                                                       if p.name != "__pycache__")

    intermediate = tree / "output" / "intermediate"
    frame = pd.read_csv(intermediate / CSV_NAME)
    assert list(frame.columns[:2]) == ["Episode #", "Training Iter"] and frame["Training Reward"].notna().any()
    assert list((intermediate / "gifs").glob("*_episode-*_score-*.gif")), "the preset dumps GIFs of evaluation episodes"
    assert "Training> Name=main_level/agent, Worker=0, Episode=" in result.stdout  # what metric regexes read

    checkpoint = tree / "output" / "data" / "checkpoint"
    latest = (checkpoint / ".coach_checkpoint").read_text().strip()
    assert latest.endswith("_Step-300.ckpt") and (tree / "output" / "success").read_text() == ""
    assert tar_names(out / "model.tar.gz") == set()  # nothing exported without save_model
    names = tar_names(out / "output.tar.gz")
    assert {"success", "data/checkpoint/.coach_checkpoint", f"data/checkpoint/{latest}.state.json"} <= names
    assert not [n for n in names if n.startswith("intermediate")]
    # SageMaker uploads only model/ and output/data/: the CSV and GIFs travel in a copy there.
    csv = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
    assert {f"data/intermediate/{csv}", "data/intermediate/log.txt"} <= names
    assert any(n.startswith("data/intermediate/gifs/") for n in names)
    assert not [n for n in names if n.endswith(".rlframe.lock")]


def test_an_evaluation_job_restores_the_training_jobs_checkpoint_from_its_channel(training_job, tmp_path):
    out, _ = training_job
    checkpoint = out / "opt_ml" / "output" / "data" / "checkpoint"
    latest = (checkpoint / ".coach_checkpoint").read_text().strip()
    hyperparameters = write_json(tmp_path / "hp.json", {"RLCOACH_PRESET": "preset-cartpole-dqn", "evaluate_steps": 100})
    result = run_local("--source-dir", FIXTURES / "cartpole_src", "--entry-point", "evaluate-coach.py",
                       "--hyperparameters", hyperparameters, "--channel", f"checkpoint={checkpoint}",
                       "--output-path", tmp_path / "eval")
    assert result.returncode == 0, result.stderr
    assert f"Checkpoint> Restored {latest} from {tmp_path / 'eval' / 'opt_ml' / 'input' / 'data' / 'checkpoint'}" in result.stdout
    assert "Testing> Name=main_level/agent" in result.stdout
    tree = tmp_path / "eval" / "opt_ml"
    assert json.loads((tree / "input/config/inputdataconfig.json").read_text()) == {"checkpoint": {"TrainingInputMode": "File"}}
    assert (tree / "output" / "success").exists() and not list(tree.glob("output/data/checkpoint/*.state.json"))
    assert checkpoint_names(checkpoint) == [latest], "the channel is read, never written"


def test_a_job_without_an_entry_script_trains_the_preset_its_hyperparameters_name(tmp_path):
    """The output folder may sit inside the source folder: it is not copied into code/."""
    source = tmp_path / "src"
    shutil.copytree(FIXTURES / "cartpole_src", source)
    (source / "hyperparameters.yaml").write_text(
        "RLCOACH_PRESET: preset-cartpole-dqn\nrl.improve_steps:EnvironmentSteps: 300\n"
        "rl.evaluation_steps:EnvironmentEpisodes: 1\n")
    result = run_local("--source-dir", source, "--hyperparameters", source / "hyperparameters.yaml",
                       "--output-path", source / "job", "--checkpoint-dir", tmp_path / "checkpoints")
    assert result.returncode == 0, result.stderr
    assert "-m rlframe.integrations.sagemaker.launcher --RLCOACH_PRESET preset-cartpole-dqn " in result.stdout
    tree = source / "job" / "opt_ml"
    assert not (tree / "code" / "job").exists()
    assert (tree / "output" / "intermediate" / CSV_NAME).is_file()
    assert list((tree / "output" / "intermediate" / "gifs").glob("*.gif"))
    names = checkpoint_names(tree / "output" / "data" / "checkpoint")
    assert names and names == checkpoint_names(tmp_path / "checkpoints" / "algo-1"), "copied to the managed folder"
    assert "success" in tar_names(source / "job" / "output.tar.gz") and (source / "job" / "model.tar.gz").is_file()


def test_a_failing_script_leaves_its_reason_and_both_tarballs(tmp_path):
    result = run_local("--source-dir", FIXTURES / "failing_src", "--entry-point", "train-coach.py",
                       "--output-path", tmp_path / "out")
    assert result.returncode == 1
    failure = (tmp_path / "out" / "opt_ml" / "output" / "failure").read_text().splitlines()[0]
    assert failure.startswith("ConnectionError: cannot reach the simulator at sim.internal:9000")
    with tarfile.open(tmp_path / "out" / "output.tar.gz") as tar:
        assert tar.extractfile("failure").read().decode().splitlines()[0] == failure
    assert (tmp_path / "out" / "model.tar.gz").is_file()
    assert "Traceback" not in result.stdout + result.stderr


# ---- arguments ------------------------------------------------------------------------------------------------
def test_hyperparameters_files_are_encoded_as_the_sdk_encodes_them_unless_sagemaker_wrote_them(tmp_path):
    notebook = tmp_path / "notebook.yaml"
    notebook.write_text("RLCOACH_PRESET: preset-cartpole-clippedppo\ndiscount: 0.9\nsave_model: 1\nuse_gae: true\n"
                        "layers: [32, 32]\n")
    assert read_hyperparameters(str(notebook)) == {"RLCOACH_PRESET": '"preset-cartpole-clippedppo"', "discount": "0.9",
                                                   "save_model": "1", "use_gae": "true", "layers": "[32, 32]"}
    sagemaker = write_json(tmp_path / "hyperparameters.json", {"RLCOACH_PRESET": '"preset-cartpole-dqn"', "save_model": "1",
                                                               "sagemaker_program": '"train-coach.py"'})
    assert read_hyperparameters(str(sagemaker)) == json.loads(sagemaker.read_text())


@pytest.mark.parametrize("args, message", [
    (["--source-dir", "{tmp}/nowhere"], "--source-dir {tmp}/nowhere is not a folder"),
    (["--channel", "checkpoint"], "--channel 'checkpoint': write NAME=PATH"),
    (["--channel", "train={tmp}/nowhere"], "--channel train={tmp}/nowhere: {tmp}/nowhere does not exist."),
    (["--channel", "a b={tmp}"], "--channel 'a b={tmp}': write NAME=PATH"),
    (["--hyperparameters", "{tmp}/list.yaml"], "--hyperparameters: Hyperparameters file '{tmp}/list.yaml' holds a list; write a flat map"),
    (["--hyperparameters", "{tmp}/bad.json"], "--hyperparameters: Hyperparameters file '{tmp}/bad.json' is neither JSON nor YAML (line 1"),
    (["--output-path", "{tmp}/used"], "--output-path {tmp}/used already holds a job (opt_ml, output.tar.gz): give a new "
                                      "--output-path, or move that job's files away (nothing was changed)."),
], ids=["source", "channel-form", "channel-path", "channel-name", "hp-list", "hp-syntax", "used-output"])
def test_bad_arguments_are_one_line_errors_and_change_nothing(tmp_path, capsys, args, message):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "bad.json").write_text('{"a": [1, 2}')
    (tmp_path / "used" / "opt_ml").mkdir(parents=True)
    (tmp_path / "used" / "output.tar.gz").write_text("an earlier job's")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    argv = ["--source-dir", str(FIXTURES / "cartpole_src"), "--entry-point", "train-coach.py",
            "--output-path", str(tmp_path / "out")]
    code = local_main(argv + [a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message.format(tmp=tmp_path) in err[0], err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "used" / "output.tar.gz").read_text() == "an earlier job's"
