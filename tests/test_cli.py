"""``rlframe-train`` and ``rlframe-validate`` run in-process: user mistakes print one ``error:`` line and exit
with status 2; a short run prints SageMaker-parsable lines and where its CSV and checkpoints are."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import pytest

from rlframe.cli import prepare, train_main, validate_main
from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, TrainingSteps
from rlframe.errors import UnknownParameterError

pytestmark = pytest.mark.integration

# SageMaker's default metric definitions for Coach (sagemaker-examples.md section 6).
TRAINING_REWARD = re.compile(r"^Training>.*Total reward=(.*?),", re.MULTILINE)
TESTING_REWARD = re.compile(r"^Testing>.*Total reward=(.*?),", re.MULTILINE)

# About 120 training-phase environment steps: a few finished training episodes and two evaluations.
SHORT_RUN = (
    "improve_steps=TrainingSteps(120);heatup_steps=EnvironmentSteps(60);"
    "evaluation_steps=EnvironmentEpisodes(1);steps_between_evaluation_periods=EnvironmentSteps(60)"
)


def run_cli(main: Callable[[Sequence[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def expect_usage_error(main: Callable[[Sequence[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``main``; check it exits 2 with a single ``error:`` line and no traceback; return that line."""
    code, out, err = run_cli(main, argv, capsys)
    assert code == 2, out + err
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


# ---- a short real run, shared by the tests that need its outputs ----------------------------------------
@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """Train preset-cartpole-dqn for about 120 steps; returns (exit code, stdout, experiment path)."""
    experiment = tmp_path_factory.mktemp("short_run") / "exp"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = train_main(["-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(experiment), "-cp", SHORT_RUN])
    return code, stdout.getvalue(), experiment


def test_a_short_training_run(short_run: tuple[int, str, Path]) -> None:
    code, out, experiment = short_run
    assert code == 0, out
    assert f"Experiment directory: {experiment}" in out
    csv = Path(re.search(r"^CSV: (.*)$", out, re.MULTILINE).group(1))
    assert csv == experiment / "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
    assert csv.is_file()
    rows = pd.read_csv(csv)
    assert rows.columns[0] == "Episode #"
    assert rows["Training Reward"].notna().any()
    checkpoints = Path(re.search(r"^Checkpoints: (.*)$", out, re.MULTILINE).group(1))
    assert checkpoints == experiment / "checkpoint"
    assert (checkpoints / ".coach_checkpoint").is_file()
    assert (experiment / "parameters.yaml").is_file()
    training = [float(r) for r in TRAINING_REWARD.findall(out)]
    testing = [float(r) for r in TESTING_REWARD.findall(out)]
    assert training and testing
    assert all(r > 0 for r in training + testing)  # CartPole pays 1 per step
    assert "## agent: Finished evaluation phase." in out


def test_evaluate_a_checkpoint(short_run: tuple[int, str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, experiment = short_run
    code, out, err = run_cli(train_main, [
        "-p", "preset-cartpole-dqn", "--seed", "0", "--evaluate", "20",
        "-crd", str(experiment / "checkpoint"), "-ep", str(tmp_path / "evaluation"),
    ], capsys)
    assert code == 0, out + err
    assert "Checkpoint> Restored" in out
    assert TESTING_REWARD.findall(out)
    assert not TRAINING_REWARD.findall(out)
    assert "Checkpoints:" not in out  # evaluation writes no checkpoint


def test_resuming_continues_the_experiment_that_owns_the_checkpoint(short_run: tuple[int, str, Path]) -> None:
    _, _, experiment = short_run
    _, task, _ = prepare(["-p", "preset-cartpole-dqn", "-crd", str(experiment / "checkpoint")])
    assert Path(task.experiment_path) == experiment
    assert task.checkpoint_restore_dir == str(experiment / "checkpoint")
    assert task.evaluate_only is None


def test_a_checkpoint_directory_missing_a_file(short_run: tuple[int, str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _, _, experiment = short_run
    copy = tmp_path / "checkpoint"
    shutil.copytree(experiment / "checkpoint", copy)
    for state in copy.glob("*.state.json"):
        state.unlink()
    line = expect_usage_error(train_main, ["-p", "preset-cartpole-dqn", "--evaluate", "-crd", str(copy)], capsys)
    assert "state.json is not in" in line and "The directory is incomplete" in line


def test_validate_passes_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = "heatup_steps=EnvironmentSteps(40);steps_between_evaluation_periods=EnvironmentSteps(40);" \
             "evaluation_steps=EnvironmentEpisodes(1)"
    code, out, _ = run_cli(validate_main, [
        "-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(tmp_path / "pass"),
        "-cp", common + ";preset_validation_params.min_reward_threshold=1;preset_validation_params.max_episodes_to_achieve_reward=40",
    ], capsys)
    assert code == 0, out
    assert "PASSED: preset-cartpole-dqn (seed 0) reached evaluation reward >= 1" in out
    code, out, _ = run_cli(validate_main, [
        "-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(tmp_path / "fail"),
        "-cp", common + ";preset_validation_params.min_reward_threshold=1000;preset_validation_params.max_episodes_to_achieve_reward=3",
    ], capsys)
    assert code == 1, out
    assert "FAILED: preset-cartpole-dqn (seed 0) did not reach evaluation reward >= 1000 within 3 episodes" in out


# ---- user mistakes --------------------------------------------------------------------------------------
def _checkpoint_dir(tmp_path: Path, marker: str | None) -> str:
    directory = tmp_path / "checkpoint"
    directory.mkdir()
    if marker is not None:
        (directory / ".coach_checkpoint").write_text(marker, encoding="utf-8")
    return str(directory)


CARTPOLE = ["-p", "preset-cartpole-dqn"]
TRAIN_ERRORS: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("unknown preset", lambda t: ["-p", "preset-cartpole-dq"],
     "error: Unknown preset 'preset-cartpole-dq'. Did you mean 'preset-cartpole-dqn'"),
    ("unknown -cp parameter", lambda t: CARTPOLE + ["-cp", "agent_params.algorithm.dicount=0.9"],
     "has no parameter 'dicount'. Did you mean 'discount'?"),
    ("unknown hyperparameter", lambda t: CARTPOLE + ["--dicount", "0.9"],
     "error: Unknown hyperparameter 'dicount'. Did you mean 'discount'?"),
    ("wrong type", lambda t: CARTPOLE + ["--rl.agent_params.network_wrappers.main.learning_rate", "abc"],
     "learning_rate expects a number, got 'abc'"),
    ("wrong type -cp", lambda t: CARTPOLE + ["-cp", "agent_params.network_wrappers['main'].batch_size=3.5"],
     "batch_size expects an integer, got 3.5"),
    ("unknown :Type", lambda t: CARTPOLE + ["--rl.improve_steps:EnvSteps", "100"],
     "unknown type 'EnvSteps'. Did you mean 'EnvironmentSteps'?"),
    ("unsafe rl path", lambda t: CARTPOLE + ["--rl.__class__", "1"], "path segments starting with '__' are not allowed"),
    ("unsafe -cp path", lambda t: CARTPOLE + ["-cp", "agent_params.__dict__=1"], "path segments starting with '__' are not allowed"),
    ("disallowed value", lambda t: CARTPOLE + ["-cp", "agent_params.algorithm.discount=__import__('os').system('touch pwned')"],
     "is not allowed in a value"),
    ("evaluate without checkpoint", lambda t: CARTPOLE + ["--evaluate"],
     "error: --evaluate needs a checkpoint to evaluate: add -crd <experiment>/checkpoint."),
    ("no workers", lambda t: CARTPOLE + ["--num_workers", "0"],
     "error: num_workers = 0 (-n/--num-workers): use 1 to act in this process, or 2 or more for rollout workers on Ray."),
    ("level module missing", lambda t: CARTPOLE + ["-lvl", "nosuchmodule:Env"],
     "Environment level 'nosuchmodule:Env': module 'nosuchmodule' was not found"),
    ("level callable missing", lambda t: CARTPOLE + ["-lvl", "patient_envs:NoSuchEnv"],
     "module 'patient_envs' has no callable 'NoSuchEnv'. Callables it defines:"),
    ("unknown gymnasium id", lambda t: CARTPOLE + ["-lvl", "CartPol-v0"], "Did you mean 'CartPole-v0'"),
    ("unknown gymnasium id from -cp", lambda t: CARTPOLE + ["-cp", "env_params.level='CartPol-v1'"], "Did you mean 'CartPole-v1'"),
    ("missing checkpoint dir", lambda t: CARTPOLE + ["-crd", "/nonexistent"],
     "error: Checkpoint directory '/nonexistent' does not exist."),
    ("checkpoint dir without marker", lambda t: CARTPOLE + ["-crd", _checkpoint_dir(t, None)],
     "has no .coach_checkpoint file, so it holds no complete checkpoint"),
    ("marker naming a missing file", lambda t: CARTPOLE + ["--evaluate", "-crd", _checkpoint_dir(t, "0_Step-100.ckpt\n")],
     "names checkpoint '0_Step-100.ckpt', but 0_Step-100.ckpt.main_level.agent.state.npz is not in"),
    ("corrupt marker", lambda t: CARTPOLE + ["-crd", _checkpoint_dir(t, "garbage")],
     "should name a checkpoint like '3_Step-1200.ckpt' but contains 'garbage'"),
    ("odd extra arguments", lambda t: CARTPOLE + ["--discount"], "Odd number of extra arguments ['--discount']"),
    ("negative seed", lambda t: CARTPOLE + ["--seed", "-1"], "error: --seed -1: use an integer from 0 to"),
    ("negative evaluation steps", lambda t: CARTPOLE + ["--evaluate", "-5", "-crd", "/nonexistent"],
     "error: --evaluate -5: give a number of environment steps"),
    ("no environment copies", lambda t: CARTPOLE + ["--num-envs", "0"], "error: --num-envs 0: use a positive integer"),
    ("wrong schedule unit", lambda t: CARTPOLE + ["-cp", "heatup_steps=TrainingSteps(5)"],
     "heatup_steps = TrainingSteps(5): use a step unit, one of EnvironmentSteps, EnvironmentEpisodes"),
    ("missing hyperparameters file", lambda t: CARTPOLE + ["--hyperparameters", str(t / "nope.yaml")],
     "Cannot read hyperparameters file"),
    ("PPO shortcut on DQN", lambda t: ["-p", "preset-mountain-car-dqn", "--gae_lambda", "0.997"],
     "error: gae_lambda (rl.agent_params.algorithm.gae_lambda): DQNAlgorithmParameters has no parameter 'gae_lambda'."),
]


@pytest.mark.parametrize(("argv", "message"), [(c[1], c[2]) for c in TRAIN_ERRORS], ids=[c[0] for c in TRAIN_ERRORS])
def test_train_reports_user_mistakes_in_one_line(argv: Callable[[Path], list[str]], message: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    line = expect_usage_error(train_main, argv(tmp_path) + ["-ep", str(tmp_path / "exp")], capsys)
    assert message in line
    assert not (tmp_path / "pwned").exists()


def test_a_preset_that_raises(write_preset: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = write_preset("raises", text="x = 1\n\nraise RuntimeError('boom')\n")
    line = expect_usage_error(train_main, ["-p", "raises"], capsys)
    assert line.startswith(f"error: Preset {path.resolve()}, line 3 raised RuntimeError: boom.")


@pytest.mark.parametrize(("argv", "message"), [
    (["-p", "nosuch"], "error: Unknown preset 'nosuch'."),
    (["-p", "preset-cartpole-dqn", "-cp", "preset_validation_params.min_reward_treshold=1"],
     "has no parameter 'min_reward_treshold'. Did you mean 'min_reward_threshold'"),
])
def test_validate_reports_user_mistakes_in_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in expect_usage_error(validate_main, argv, capsys)


# ---- prepare: parsing without running -------------------------------------------------------------------
MOUNTAIN_CAR_NOTEBOOK = [
    "--discount", "0.995", "--evaluation_episodes", "3", "--improve_steps", "100000",
    "--training_freq_env_steps", "75000", "--training_learning_rate", "0.004", "--training_batch_size", "256",
    "--save_model", "1",
]


def test_the_mountain_car_notebook_hyperparameters_parse_against_the_dqn_preset() -> None:
    graph_manager, task, args = prepare(["-p", "preset-mountain-car-dqn", *MOUNTAIN_CAR_NOTEBOOK])
    algorithm = graph_manager.agent_params.algorithm
    main = graph_manager.agent_params.network_wrappers["main"]
    assert algorithm.discount == 0.995
    assert graph_manager.evaluation_steps == EnvironmentEpisodes(3)
    assert graph_manager.improve_steps == EnvironmentSteps(100000)  # the Mountain Car notebook counts env steps
    assert algorithm.num_consecutive_playing_steps == EnvironmentSteps(75000)
    assert algorithm.num_steps_between_copying_online_weights_to_target == EnvironmentSteps(75000)
    assert graph_manager.steps_between_evaluation_periods == EnvironmentSteps(75000)
    assert (main.learning_rate, main.batch_size) == (0.004, 256)
    assert graph_manager.hyperparameters.recorded == {"save_model": 1}
    assert task.evaluate_only is None and args.num_workers == 1


@pytest.mark.parametrize(("name", "value", "field"), [
    ("gae_lambda", "0.997", "gae_lambda"),
    ("training_epochs", "15", "optimization_epochs"),
])
def test_ppo_only_notebook_hyperparameters_are_unknown_to_dqn(name: str, value: str, field: str) -> None:
    with pytest.raises(UnknownParameterError) as info:
        prepare(["-p", "preset-mountain-car-dqn", *MOUNTAIN_CAR_NOTEBOOK, f"--{name}", value])
    message = str(info.value)
    assert message.startswith(f"{name} (rl.agent_params.algorithm.{field}): DQNAlgorithmParameters has no parameter {field!r}.")
    assert "Valid parameters: num_consecutive_playing_steps" in message


def test_the_shortcut_set_comes_from_the_preset_unless_given() -> None:
    graph_manager, _, _ = prepare(["-p", "preset-cartpole-dqn", "--improve_steps", "500"])
    assert graph_manager.improve_steps == TrainingSteps(500)
    graph_manager, _, _ = prepare(["-p", "preset-cartpole-dqn", "--shortcuts", "mountain_car", "--improve_steps", "500"])
    assert graph_manager.improve_steps == EnvironmentSteps(500)
    # No HYPERPARAMETER_SHORTCUTS and no notebook's preset name: the unit of the preset's own improve_steps.
    graph_manager, _, _ = prepare(["-p", "CartPole_DQN", "--improve_steps", "500"])
    assert graph_manager.improve_steps == TrainingSteps(500)


def test_command_line_settings_reach_the_graph_manager_and_task() -> None:
    graph_manager, task, _ = prepare([
        "--RLCOACH_PRESET", "preset-cartpole-dqn", "--seed", "7", "-lvl", "CartPole-v1", "--num-envs", "2", "-dg",
        "-s", "30", "--no-restore-memory", "-ep", "somewhere",
    ])
    assert graph_manager.env_params.level == "CartPole-v1"
    assert graph_manager.env_params.num_envs == 2
    assert graph_manager.visualization_parameters.dump_gifs is True
    assert (task.seed, task.checkpoint_save_secs, task.restore_memory, task.experiment_path) == (7, 30.0, False, "somewhere")


def test_the_default_experiment_path(tmp_path: Path) -> None:
    _, task, _ = prepare(["-p", "preset-cartpole-dqn"])
    assert re.fullmatch(r"experiments/preset-cartpole-dqn/\d\d_\d\d_\d{4}-\d\d_\d\d", task.experiment_path.replace(os.sep, "/"))
    os.makedirs(task.experiment_path)
    _, again, _ = prepare(["-p", "preset-cartpole-dqn"])
    assert again.experiment_path != task.experiment_path
    if again.experiment_path.startswith(task.experiment_path):  # same minute: a suffix, as in Coach
        assert again.experiment_path == task.experiment_path + "_1"
    _, named, _ = prepare(["-p", "preset-cartpole-dqn", "-e", "my_run"])
    assert named.experiment_path.replace(os.sep, "/").startswith("experiments/my_run/")
    assert not (tmp_path / "experiments" / "my_run").exists()  # prepare writes nothing


# ---- issue 9: SageMaker's hyperparameters.json and the notebooks' shortcuts for any preset ---------------
def write_sagemaker_hyperparameters(path: Path, values: dict[str, object]) -> Path:
    """A hyperparameters.json as SageMaker writes it: every value JSON-encoded into a string."""
    path.write_text(json.dumps({name: json.dumps(value) for name, value in values.items()}), encoding="utf-8")
    return path


def test_a_sagemaker_hyperparameters_json_as_it_is(tmp_path: Path) -> None:
    hyperparameters = write_sagemaker_hyperparameters(tmp_path / "hyperparameters.json", {
        "RLCOACH_PRESET": "preset-cartpole-dqn", "discount": 0.9, "save_model": 1, "improve_steps": 500,
        "rl.agent_params.network_wrappers.main.replace_mse_with_huber_loss": True,
        "rl.env_params.level": "CartPole-v1",
        "sagemaker_program": "train-coach.py", "sagemaker_submit_directory": "s3://bucket/src.tar.gz",
        "sagemaker_estimator": "RLEstimator", "_tuning_objective_metric": "reward",
    })
    graph_manager, _, args = prepare(["--hyperparameters", str(hyperparameters)])
    assert args.preset == "preset-cartpole-dqn" and graph_manager.origin.name == "preset-cartpole-dqn"
    assert graph_manager.agent_params.algorithm.discount == 0.9
    assert graph_manager.improve_steps == TrainingSteps(500)  # the CartPole notebook's unit
    assert graph_manager.agent_params.network_wrappers["main"].replace_mse_with_huber_loss is True
    assert graph_manager.env_params.level == "CartPole-v1"
    assert graph_manager.hyperparameters.recorded == {"save_model": 1}
    # -p wins over the file's RLCOACH_PRESET.
    graph_manager, _, _ = prepare(["-p", "preset-mountain-car-dqn", "--hyperparameters", str(hyperparameters)])
    assert graph_manager.origin.name == "preset-mountain-car-dqn"
    assert graph_manager.improve_steps == EnvironmentSteps(500)  # the Mountain Car notebook's unit


def test_no_preset_anywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hyperparameters = write_sagemaker_hyperparameters(tmp_path / "hyperparameters.json", {"discount": 0.9})
    line = expect_usage_error(train_main, ["--hyperparameters", str(hyperparameters)], capsys)
    assert line == ("error: No preset: pass -p PRESET, or a --hyperparameters file with RLCOACH_PRESET "
                    "(the SageMaker notebooks' key).")


def test_a_copied_mountain_car_preset_takes_the_notebooks_shortcuts(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[1] / "presets" / "preset-mountain-car-continuous-clipped-ppo.py"
    copy = tmp_path / "my-mountain-car.py"  # as the notebook's preset file, renamed: no HYPERPARAMETER_SHORTCUTS
    copy.write_text(shipped.read_text().replace('HYPERPARAMETER_SHORTCUTS = "mountain_car"', ""))
    graph_manager, _, _ = prepare(["-p", str(copy), *MOUNTAIN_CAR_NOTEBOOK, "--gae_lambda", "0.997",
                                   "--training_epochs", "15"])
    algorithm = graph_manager.agent_params.algorithm
    assert (algorithm.gae_lambda, algorithm.optimization_epochs, algorithm.discount) == (0.997, 15, 0.995)
    assert algorithm.num_consecutive_playing_steps == EnvironmentSteps(75000)
    assert graph_manager.steps_between_evaluation_periods == EnvironmentSteps(75000)
    # improve_steps keeps the unit of the preset's own improve_steps (EnvironmentEpisodes(100) there).
    assert graph_manager.improve_steps == EnvironmentEpisodes(100000)
