"""``rl_coach.coach.CoachLauncher`` on rlframe: Coach's argument names, the launch pipeline users override, a run
their own ``start_single_threaded`` drives (stopped by a real SIGTERM), users' ``sagemaker_rl`` copies setting
parameters through ``obj.__dict__``, and one-line errors."""
from __future__ import annotations

import importlib.util
import inspect
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import rl_coach.core_types
from rl_coach.coach import CoachLauncher
from rlframe.core_types import EnvironmentSteps, TrainingSteps
from rlframe.parameters import Frameworks, to_plain
from rlframe.presets import load_preset

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sagemaker"
SHORT_RUN = ("improve_steps=TrainingSteps(120);heatup_steps=EnvironmentSteps(60);"
             "evaluation_steps=EnvironmentEpisodes(1);steps_between_evaluation_periods=EnvironmentSteps(60)")


def test_the_argument_parser_gives_coachs_names() -> None:
    args, _ = CoachLauncher().get_argument_parser().parse_known_args(args=[])
    expected = {
        "preset": None, "experiment_name": None, "experiment_path": None, "checkpoint_save_dir": None,
        "checkpoint_save_secs": None, "checkpoint_restore_dir": None, "export_onnx_graph": False, "no_summary": False,
        "num_workers": 1, "framework": "tensorflow", "evaluate": None, "seed": None, "dump_gifs": False,
        "custom_parameter": None, "level": None, "apply_stop_condition": False,
    }
    assert {name: getattr(args, name) for name in expected} == expected


def test_a_coach_command_line_runs_outside_sagemaker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SM_TRAINING_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    launcher = CoachLauncher()
    parser = launcher.get_argument_parser()
    args = launcher.get_config_args(parser, ["-p", "preset-cartpole-dqn", "-e", "my run", "-cp", SHORT_RUN,
                                             "--seed", "0", "-lvl", "CartPole-v1"])
    assert args.experiment_name == "my_run" and args.framework is Frameworks.tensorflow
    experiment = Path(args.experiment_path)
    assert experiment.parent == Path("experiments") / "my_run"  # Coach's ./experiments/<name>/<date-time>
    graph_manager = launcher.get_graph_manager_from_args(args)
    assert graph_manager.env_params.level == "CartPole-v1" and graph_manager.improve_steps == TrainingSteps(120)
    launcher.run_graph_manager(graph_manager, args)
    assert graph_manager.task_parameters.checkpoint_sync_dir is None  # no SageMaker context outside a job
    assert pd.read_csv(graph_manager.csv_path)["Training Reward"].notna().any()
    assert (experiment / "checkpoint" / ".coach_checkpoint").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments"]


def load_fixture_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"fixture_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_users_sagemaker_rl_copy_sets_parameters_through_dict() -> None:
    """The shipped copy's configuration list walks ``obj.__dict__[name]`` and dicts and assigns with
    ``obj.__dict__[name] = value``, bypassing rlframe's checks: the values still reach the run."""
    copy = load_fixture_module(FIXTURES / "shipped_launcher_src" / "sagemaker_rl" / "configuration_list.py")

    class CoachConfigurationList(copy.ConfigurationList):
        ALLOWED_TYPES = {"EnvironmentSteps": rl_coach.core_types.EnvironmentSteps}

    hyperparameters = CoachConfigurationList()
    for name, value in [("rl.agent_params.algorithm.discount", "0.95"),
                        ("rl.agent_params.network_wrappers.main.learning_rate", "0.01"),
                        ("rl.improve_steps:EnvironmentSteps", "500"),
                        ("rl.env_params.additional_simulator_parameters.max_steps", "60")]:
        hyperparameters.store(name, value)
    graph_manager = load_preset("preset-cartpole-dqn")
    hyperparameters.apply_subset(graph_manager, "rl.")
    for network in graph_manager.agent_params.network_wrappers.values():
        network.framework = Frameworks.mxnet
    assert hyperparameters.hp_dict == {}
    assert graph_manager.agent_params.algorithm.discount == 0.95
    assert graph_manager.agent_params.network_wrappers["main"].learning_rate == 0.01
    assert graph_manager.improve_steps == EnvironmentSteps(500)
    assert graph_manager.env_params.additional_simulator_parameters == {"max_steps": 60}
    assert to_plain(graph_manager.agent_params)["network_wrappers"]["main"]["framework"] == "Frameworks.mxnet"


USER_DRIVEN_LAUNCHER = '''
from rl_coach.coach import CoachLauncher


class MyLauncher(CoachLauncher):
    def start_single_threaded(self, task_parameters, graph_manager, args):
        graph_manager.create_graph(task_parameters)
        graph_manager.improve()
        graph_manager.close()


MyLauncher().launch()
'''


def test_sigterm_stops_a_run_the_users_launcher_drives(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(USER_DRIVEN_LAUNCHER)
    experiment = tmp_path / "exp"
    argv = [sys.executable, str(script), "-p", "preset-cartpole-dqn", "-ep", str(experiment),
            "-cp", "improve_steps=TrainingSteps(100000000);heatup_steps=EnvironmentSteps(50)"]
    env = {k: v for k, v in os.environ.items() if k != "SM_TRAINING_ENV"}
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # SIGTERM once it is training
            seen.append(line)
            if line.startswith("Training>"):
                process.send_signal(signal.SIGTERM)
                break
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    out = "".join(seen) + out
    assert process.returncode == 143, err
    assert "Traceback" not in out + err
    stopped = [line for line in out.splitlines() if line.startswith("Stopped by SIGTERM")]
    assert len(stopped) == 1 and "its last complete checkpoint is" in stopped[0]
    assert (experiment / "checkpoint" / ".coach_checkpoint").is_file()
    assert pd.read_csv(next(experiment.glob("*.csv")))["Training Reward"].notna().any()


@pytest.mark.parametrize(("argv", "message"), [
    ([], "No preset: pass -p PRESET"),
    (["-p", "nosuch"], "Unknown preset 'nosuch'."),
    (["-p", "preset-cartpole-dqn", "--bogus"], "unrecognized arguments: --bogus. Run with --help to see the options."),
    (["-p", "preset-cartpole-dqn", "-f", "pytorch"], "Framework 'pytorch': use one of tensorflow, mxnet"),
    (["-p", "preset-cartpole-dqn", "-n", "0"], "num_workers = 0 (-n/--num-workers): use 1 to act in this process, or 2 or more for rollout workers on Ray."),
    (["-p", "preset-cartpole-dqn", "-cp", "agent_params.algorithm.dicount=0.9"], "Did you mean 'discount'?"),
    (["-p", "preset-cartpole-dqn", "-e", "bad*name"], "Experiment name 'bad*name': use letters, digits"),
])
def test_mistakes_are_one_line(argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["coach", *argv, "-ep", str(tmp_path / "exp")])
    with pytest.raises(SystemExit) as exit_info:
        CoachLauncher().launch()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert "Traceback" not in out + err and not (tmp_path / "exp").exists()


class BrokenLauncher(CoachLauncher):
    def get_graph_manager_from_args(self, args: Any) -> Any:
        return {}["simulator"]


def test_an_exception_in_users_code_is_one_line_unless_a_traceback_is_asked_for(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "-p", "preset-cartpole-dqn", "-ep", str(tmp_path / "exp")])
    monkeypatch.delenv("RLFRAME_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        BrokenLauncher().launch()
    assert exit_info.value.code == 1
    line = inspect.getsourcelines(BrokenLauncher.get_graph_manager_from_args)[1] + 1
    assert capsys.readouterr().err == (
        f"error: KeyError: 'simulator' (test_coach_launcher.py, line {line}, in get_graph_manager_from_args)\n")
    monkeypatch.setenv("RLFRAME_TRACEBACK", "1")
    with pytest.raises(KeyError):
        BrokenLauncher().launch()
