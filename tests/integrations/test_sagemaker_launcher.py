"""``sagemaker_rl.coach_launcher.SageMakerCoachPresetLauncher``: users' ``train-coach.py`` and ``evaluate-coach.py``
run as a SageMaker training job runs them, with the ``/opt/ml`` tree relocated under a temporary folder.

The scripts are the fixtures of tests/fixtures/sagemaker/cartpole_src (in the style of the notebooks), run as
subprocesses from their code folder with ``SAGEMAKER_BASE_DIR`` and ``SM_TRAINING_ENV`` set, as rlframe's
entrypoint and SageMaker's training toolkit start them. Every job is a few hundred CartPole steps.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from rlframe.export import export_checkpoint
from rlframe.integrations.sagemaker.launcher import SageMakerCoachPresetLauncher
from rlframe.outputs.checkpoints import STATE_FILE

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sagemaker"
CSV_NAME = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
#: the CartPole fixture's own shortcuts (play_steps has a tie), a notebook shortcut and an rl.* path
TRAINING_ARGS = ["--discount", "0.98", "--improve_steps", "300", "--play_steps", "100",
                 "--rl.agent_params.network_wrappers.main.batch_size", "16", "--save_model", "1"]


def job_tree(root: Path, source: str = "cartpole_src") -> Path:
    """``root/opt_ml`` with the source folder copied to ``code/`` (as SageMaker unpacks it)."""
    tree = root / "opt_ml"
    shutil.copytree(FIXTURES / source, tree / "code", ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def run_job(tree: Path, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``argv`` in ``tree/code`` as a training job's user process."""
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tree), "SM_TRAINING_ENV": "{}", "COACH_BACKEND": "mxnet"}
    env.pop("RLFRAME_TRACEBACK", None)
    return subprocess.run(argv, cwd=tree / "code", env=env, capture_output=True, text=True, timeout=timeout)


def parameters(tree: Path) -> dict[str, Any]:
    return yaml.safe_load((tree / "output" / "intermediate" / "parameters.yaml").read_text())


def checkpoint_steps(folder: Path) -> list[tuple[int, int]]:
    """(id, training environment steps) of the complete checkpoints in ``folder`` (``3_Step-1200.ckpt``), oldest first."""
    names = [p.name[:-len(".ckpt.state.json")] for p in folder.glob("*.ckpt.state.json")]
    return sorted((int(n.split("_Step-")[0]), int(n.split("_Step-")[1])) for n in names)


@pytest.fixture(scope="module")
def training_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    tree = job_tree(tmp_path_factory.mktemp("training"))
    return tree, run_job(tree, [sys.executable, "train-coach.py", *TRAINING_ARGS])


def test_training_writes_where_sagemaker_collects(training_job: tuple[Path, subprocess.CompletedProcess]) -> None:
    tree, result = training_job
    assert result.returncode == 0, result.stderr
    intermediate = tree / "output" / "intermediate"
    frame = pd.read_csv(intermediate / CSV_NAME)
    assert frame["Training Reward"].notna().any() and frame["Evaluation Reward"].notna().any()
    assert list((intermediate / "gifs").glob("*.gif"))
    saved = checkpoint_steps(tree / "output" / "data" / "checkpoint")
    assert saved and saved[-1][1] >= 300  # the final checkpoint (and one every 10 s before it)
    # Every checkpoint is copied to SageMaker's managed checkpoint folder of this host.
    assert checkpoint_steps(tree / "checkpoints" / "algo-1") == saved
    assert sorted(p.name for p in tree.iterdir()) == ["checkpoints", "code", "model", "output"]
    assert not (tree / "code" / "experiments").exists()
    assert "Loading preset preset-cartpole-dqn from" in result.stdout


def test_save_model_exports_the_final_checkpoints_policy_into_the_model_folder(
        training_job: tuple[Path, subprocess.CompletedProcess], tmp_path: Path) -> None:
    """save_model=1: every checkpoint gets its .onnx (export_onnx_graph), and /opt/ml/model holds the model of the final
    checkpoint, the same one rlframe-export makes of it."""
    tree, result = training_job
    checkpoints = tree / "output" / "data" / "checkpoint"
    latest = (checkpoints / STATE_FILE).read_text().strip()
    assert f"Model: exported {latest} to {tree / 'model'} (save_model=1)" in result.stdout
    assert all((checkpoints / f"{i}_Step-{steps}.ckpt.onnx").is_file() for i, steps in checkpoint_steps(checkpoints))
    model = tree / "model"
    assert sorted(p.name for p in model.iterdir()) == ["model.onnx", "policy-0000.params", "policy-symbol.json",
                                                       "rlframe-model.json"]
    metadata = json.loads((model / "rlframe-model.json").read_text())
    assert metadata["checkpoint"] == {"name": latest, "directory": str(checkpoints)}
    assert metadata["preset"]["name"] == "preset-cartpole-dqn" and metadata["agent"] == "DQNAgent"
    again = export_checkpoint(checkpoints, tmp_path / "again")
    assert (model / "model.onnx").read_bytes() == (again / "model.onnx").read_bytes()
    assert (model / "policy-0000.params").read_bytes() == (again / "policy-0000.params").read_bytes()


def test_the_launchers_shortcuts_and_ties_reach_the_preset(training_job: tuple[Path, subprocess.CompletedProcess]) -> None:
    tree, _ = training_job
    values = parameters(tree)
    algorithm = values["agent_params"]["algorithm"]
    assert algorithm["discount"] == 0.98
    assert values["improve_steps"] == "EnvironmentSteps(300)"  # the launcher's map: rl.improve_steps:EnvironmentSteps
    assert algorithm["num_consecutive_playing_steps"] == "EnvironmentSteps(100)"
    assert values["steps_between_evaluation_periods"] == "EnvironmentSteps(100)"  # the tie the launcher writes
    main = values["agent_params"]["network_wrappers"]["main"]
    assert main["batch_size"] == 16 and main["framework"] == "Frameworks.mxnet"  # COACH_BACKEND
    assert values["hyperparameters"]["recorded"] == {"save_model": 1}
    task = values["task_parameters"]
    assert task["experiment_path"] == str(tree / "output" / "intermediate")
    assert task["checkpoint_save_dir"] == str(tree / "output" / "data" / "checkpoint")
    assert task["checkpoint_sync_dir"] == str(tree / "checkpoints" / "algo-1")


def test_a_restarted_job_resumes_from_the_managed_checkpoints(training_job: tuple[Path, subprocess.CompletedProcess],
                                                              tmp_path: Path) -> None:
    tree = tmp_path / "opt_ml"
    shutil.copytree(training_job[0], tree)
    first = pd.read_csv(tree / "output" / "intermediate" / CSV_NAME)
    last_id, last_steps = checkpoint_steps(tree / "checkpoints" / "algo-1")[-1]
    argv = [sys.executable, "train-coach.py", *TRAINING_ARGS]
    argv[argv.index("300")] = "400"
    result = run_job(tree, argv)
    assert result.returncode == 0, result.stderr
    assert f"Resuming from the managed checkpoint in {tree / 'checkpoints' / 'algo-1'}" in result.stdout
    assert f"Checkpoint> Restored {last_id}_Step-{last_steps}.ckpt from {tree / 'checkpoints' / 'algo-1'}" in result.stdout
    assert "Heatup>" not in result.stdout
    # The earlier attempt's files are kept aside, and the CSV continues without counting an episode twice.
    assert list((tree / "output" / "intermediate").glob("previous_*/" + CSV_NAME))
    resumed = pd.read_csv(tree / "output" / "intermediate" / CSV_NAME)
    new_id, new_steps = checkpoint_steps(tree / "checkpoints" / "algo-1")[-1]
    assert new_id > last_id and new_steps >= 400
    assert resumed.iloc[:len(first)].equals(first)
    training = resumed["Training Reward"].notna()
    assert resumed.loc[training, "Episode #"].is_unique and len(resumed) > len(first)


def test_evaluate_main_restores_the_checkpoint_channel(training_job: tuple[Path, subprocess.CompletedProcess],
                                                       tmp_path: Path) -> None:
    """The base class's ``evaluate_main`` (the fixture's evaluate-coach.py, which overrides it as the notebooks do,
    runs through local mode in test_local_mode)."""
    tree = job_tree(tmp_path)
    (tree / "code" / "evaluate.py").write_text(
        "from sagemaker_rl.coach_launcher import SageMakerCoachPresetLauncher\n\n\n"
        "class MyLauncher(SageMakerCoachPresetLauncher):\n"
        "    def default_preset_name(self):\n"
        "        return 'preset-cartpole-dqn'\n\n\n"
        "MyLauncher.evaluate_main()\n"
    )
    shutil.copytree(training_job[0] / "output" / "data" / "checkpoint", tree / "input" / "data" / "checkpoint")
    result = run_job(tree, [sys.executable, "evaluate.py", "--evaluate_steps", "30", "--discount", "0.5"])
    assert result.returncode == 0, result.stderr
    last_id, last_steps = checkpoint_steps(tree / "input" / "data" / "checkpoint")[-1]
    assert f"Checkpoint> Restored {last_id}_Step-{last_steps}.ckpt from {tree / 'input/data/checkpoint'}" in result.stdout
    assert "Testing>" in result.stdout and "Training>" not in result.stdout
    intermediate = tree / "output" / "intermediate"
    assert list((intermediate / "gifs").glob("*.gif"))
    assert not list(intermediate.glob("*.csv"))  # no CSV, as the notebooks' evaluation launchers
    assert not (tree / "output" / "data").exists() and not (tree / "checkpoints").exists()  # no checkpoint written
    assert parameters(tree)["agent_params"]["algorithm"]["discount"] == 0.99  # other hyperparameters are ignored


def test_the_built_in_launcher_takes_a_copied_preset_from_the_code_folder(tmp_path: Path) -> None:
    """The entrypoint's job without a script: ``python -m ...launcher --RLCOACH_PRESET ...``, preset in code/."""
    tree = tmp_path / "opt_ml"
    (tree / "code").mkdir(parents=True)
    shutil.copy(FIXTURES / "cartpole_src" / "preset-cartpole-dqn.py", tree / "code" / "My-CartPole.py")
    result = run_job(tree, [sys.executable, "-m", "rlframe.integrations.sagemaker.launcher", "--RLCOACH_PRESET",
                            "my-cartpole", "--improve_steps", "150", "--training_learning_rate", "0.01",
                            "--evaluation_episodes", "1", "--rl.heatup_steps:EnvironmentSteps", "50",
                            "--rl.visualization_parameters.dump_gifs", "False"])
    assert result.returncode == 0, result.stderr
    assert f"Loading preset my-cartpole from {tree / 'code'}" in result.stdout
    values = parameters(tree)
    assert values["improve_steps"] == "EnvironmentSteps(150)"  # no notebook's preset: the preset's own unit
    assert values["agent_params"]["network_wrappers"]["main"]["learning_rate"] == 0.01
    assert checkpoint_steps(tree / "output" / "data" / "checkpoint")[-1][1] >= 150


def test_a_failing_script_ends_with_one_line(tmp_path: Path) -> None:
    tree = job_tree(tmp_path, "failing_src")
    result = run_job(tree, [sys.executable, "train-coach.py"])
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: ConnectionError: cannot reach the simulator at sim.internal:9000 "
                                     "(train-coach.py, line 10, in get_graph_manager_from_args)")


# ---- mistakes in a job's hyperparameters: one line, status 2, nothing written ----------------------------------
class ProjectLauncher(SageMakerCoachPresetLauncher):
    """A launcher whose presets are in one folder (its script's folder, for a real launcher)."""

    folder = Path()

    def default_preset_name(self) -> str:
        return "preset-cartpole-dqn"

    def preset_dirs(self) -> list[Path]:
        return [self.folder]


@pytest.mark.parametrize(("argv", "message"), [
    (["--discount"], "Odd number of extra arguments ['--discount']: hyperparameters come as '--name value' pairs."),
    (["discount", "0.9"], "Unknown command-line argument 'discount': hyperparameters are written '--name value'."),
    (["--dicount", "0.9"], "Unknown hyperparameter 'dicount'. Did you mean 'discount'?"),
    (["--save_model", "yes"], "argument --save_model: invalid int value: 'yes'"),
    (["--discount", "high"], "discount (rl.agent_params.algorithm.discount) expects a number, got 'high'"),
    (["--num_workers", "0"], "num_workers = 0 (-n/--num-workers): use 1 to act in this process, or 2 or more for rollout workers on Ray."),
    (["--RLCOACH_PRESET", "nope"], "Preset 'nope' is not in "),
    (["--RLCOACH_PRESET", "uses-policy-gradients"],
     "line 2 is invalid: rlframe does not implement PolicyGradientsAgentParameters (from rl_coach.agents.policy_gradients_agent)"),
])
def test_a_mistake_in_the_hyperparameters_is_one_line(argv: list[str], message: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "uses-policy-gradients.py").write_text(
        "from rl_coach.agents.policy_gradients_agent import PolicyGradientsAgentParameters\n"
        "agent_params = PolicyGradientsAgentParameters()\n")
    monkeypatch.setattr(ProjectLauncher, "folder", tmp_path)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    monkeypatch.setattr(sys, "argv", ["train-coach.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        ProjectLauncher.train_main()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert "Traceback" not in out + err
    assert not (tmp_path / "opt_ml").exists()
