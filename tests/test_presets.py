"""Finding, importing and checking presets, and Coach presets' ``rl_coach`` imports."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

import pytest

from rlframe.agents.ddqn import DDQNAgent, DDQNAgentParameters
from rlframe.agents.dqn import DQNAgentParameters
from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, TrainingSteps
from rlframe.errors import PresetError
from rlframe.graph_managers.basic_rl import BasicRLGraphManager
from rlframe.graph_managers.graph_manager import GraphManager
from rlframe.integrations.coach_launcher import short_dynamic_import
from rlframe.memories.memory import MemoryGranularity
from rlframe.parameters import TaskParameters
from rlframe.presets import available_presets, find_preset, load_preset
from rlframe.schedules import LinearSchedule
from rlframe.shipped import shipped_dir

pytestmark = pytest.mark.unit

WritePreset = Callable[..., Path]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHIPPED_PRESETS = sorted(p for p in shipped_dir("presets").glob("*.py") if p.stem != "__init__")


# ---- lookup ---------------------------------------------------------------------------------------------
def test_a_preset_in_the_current_directory(write_preset: WritePreset, tmp_path: Path) -> None:
    write_preset("my_preset", extra="agent_params.algorithm.discount = 0.5")
    graph_manager = load_preset("my_preset")
    assert graph_manager.agent_params.algorithm.discount == 0.5
    assert graph_manager.origin.name == "my_preset"
    assert graph_manager.origin.directory == tmp_path.resolve()
    assert "my_preset" in available_presets()


def test_the_current_directory_comes_before_the_shipped_presets(write_preset: WritePreset) -> None:
    write_preset("preset-cartpole-dqn", extra="agent_params.algorithm.discount = 0.42")
    assert load_preset("preset-cartpole-dqn").agent_params.algorithm.discount == 0.42


def test_presets_on_the_preset_path(write_preset: WritePreset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_preset("shared", extra="agent_params.algorithm.discount = 0.1", folder=first)
    write_preset("shared", extra="agent_params.algorithm.discount = 0.2", folder=second)
    write_preset("only_in_second", extra="agent_params.algorithm.discount = 0.3", folder=second)
    monkeypatch.setenv("RLFRAME_PRESET_PATH", os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)]))
    assert load_preset("shared").agent_params.algorithm.discount == 0.1  # earlier folders win
    assert load_preset("only_in_second").agent_params.algorithm.discount == 0.3
    assert {"shared", "only_in_second", "CartPole_DQN"} <= set(available_presets())


def test_shipped_presets_are_found_by_name() -> None:
    assert {"CartPole_DQN", "preset-cartpole-dqn", "preset-mountain-car-dqn"} <= set(available_presets())
    graph_manager = load_preset("preset-mountain-car-dqn")
    assert graph_manager.env_params.level == "patient_envs:PatientMountainCar"
    assert graph_manager.origin.shortcuts == "mountain_car"


@pytest.mark.parametrize("spec", ["CartPole_DQN", "cartpole_dqn", "CARTPOLE_DQN", "CartPole_DQN.py", "cartpole_dqn.py",
                                  "cartpole_dqn.PY", "cartpole_dqn:graph_manager"])
def test_names_are_case_insensitive_with_or_without_py(spec: str) -> None:
    path, variable = find_preset(spec)
    assert path.name == "CartPole_DQN.py"
    assert variable == "graph_manager"
    assert load_preset(spec).improve_steps == TrainingSteps(10000000000)


def test_the_exact_spelling_wins_over_a_case_variant(write_preset: WritePreset, tmp_path: Path) -> None:
    write_preset("Mixed", extra="agent_params.algorithm.discount = 0.1")
    write_preset("mixed", extra="agent_params.algorithm.discount = 0.2")
    if len(list(tmp_path.glob("*.py"))) < 2:
        pytest.skip("case-insensitive file system")
    assert load_preset("mixed").agent_params.algorithm.discount == 0.2
    assert load_preset("Mixed").agent_params.algorithm.discount == 0.1


def test_paths_and_variables(write_preset: WritePreset, tmp_path: Path) -> None:
    extra = "other = BasicRLGraphManager(agent_params=DDQNAgentParameters(), env_params=GymVectorEnvironment(level='CartPole-v1'), schedule_params=schedule_params)"
    path = write_preset("two_graphs", extra="from rl_coach.agents.ddqn_agent import DDQNAgentParameters\n" + extra,
                        folder=tmp_path / "sub" / "dir")
    assert isinstance(load_preset("sub/dir/two_graphs.py").agent_params, DQNAgentParameters)
    assert isinstance(load_preset(str(path)).agent_params, DQNAgentParameters)
    assert isinstance(load_preset("sub/dir/two_graphs").agent_params, DQNAgentParameters)  # a path may omit .py
    assert isinstance(load_preset("sub/dir/two_graphs.py:other").agent_params, DDQNAgentParameters)
    assert isinstance(load_preset(f"{path}:other").agent_params, DDQNAgentParameters)


def test_a_preset_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"Preset file 'sub/nope.py' does not exist.*CartPole_DQN"):
        load_preset("sub/nope.py")


@pytest.mark.parametrize(("spec", "suggestion"), [
    ("preset-cartpole-dq", "preset-cartpole-dqn"),
    ("preset_mountain_car_dqn", "preset-mountain-car-dqn"),
    ("cartpole_dq", "CartPole_DQN"),  # suggestions ignore case, as the lookup does
])
def test_an_unknown_preset_lists_the_available_ones_and_suggests_the_closest(spec: str, suggestion: str) -> None:
    with pytest.raises(PresetError) as info:
        load_preset(spec)
    message = str(info.value)
    assert f"Unknown preset {spec!r}. Did you mean {suggestion!r}" in message
    assert "Available presets: " + ", ".join(p.stem for p in SHIPPED_PRESETS) in message
    assert "$RLFRAME_PRESET_PATH" in message


def test_a_bad_variable_name(write_preset: WritePreset) -> None:
    write_preset("fine")
    with pytest.raises(PresetError, match="'no such' after ':' is not a Python variable name"):
        load_preset("fine.py:no such")


# ---- broken presets -------------------------------------------------------------------------------------
def test_a_preset_that_raises_names_the_file_and_line(write_preset: WritePreset) -> None:
    path = write_preset("raises", text="x = 1\n\nraise RuntimeError('boom')\n")
    with pytest.raises(PresetError) as info:
        load_preset("raises")
    message = str(info.value)
    assert f"Preset {path.resolve()}, line 3 raised RuntimeError: boom." in message


def test_a_preset_with_a_parameter_typo_names_the_file_line_and_closest_name(write_preset: WritePreset) -> None:
    path = write_preset("typo", extra="agent_params.algorithm.dicount = 0.9")
    line = path.read_text().splitlines().index("agent_params.algorithm.dicount = 0.9") + 1
    with pytest.raises(PresetError) as info:
        load_preset("typo")
    message = str(info.value)
    assert f"Preset {path.resolve()}, line {line} is invalid:" in message
    assert "has no parameter 'dicount'. Did you mean 'discount'?" in message


def test_a_preset_with_a_syntax_error(write_preset: WritePreset) -> None:
    path = write_preset("broken", text="graph_manager = (\n")
    with pytest.raises(PresetError, match=rf"Preset {path.resolve()}, line 1: syntax error"):
        load_preset("broken")


def test_a_preset_without_graph_manager(write_preset: WritePreset) -> None:
    path = write_preset("empty", text="# mentions graph_manager only in a comment\nx = 1\n")
    with pytest.raises(PresetError) as info:
        load_preset("empty")
    assert f"Preset {path.resolve()} defines no 'graph_manager'" in str(info.value)
    assert "graph_manager = BasicRLGraphManager(agent_params=..., env_params=..., schedule_params=...)" in str(info.value)


def test_a_missing_variable(write_preset: WritePreset) -> None:
    write_preset("fine")
    with pytest.raises(PresetError, match="defines no 'other_graph'"):
        load_preset("fine.py:other_graph")


def test_a_graph_manager_that_is_not_a_graph_manager(write_preset: WritePreset) -> None:
    write_preset("number", text="graph_manager = 42\n")
    with pytest.raises(PresetError, match="'graph_manager' is a int, not a graph manager"):
        load_preset("number")


def test_a_preset_may_import_a_module_beside_it(write_preset: WritePreset, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "my_settings_for_test.py").write_text("DISCOUNT = 0.77\n", encoding="utf-8")
    write_preset("uses_sibling", folder=folder,
                 extra="from my_settings_for_test import DISCOUNT\nagent_params.algorithm.discount = DISCOUNT")
    try:
        assert load_preset(str(folder / "uses_sibling.py")).agent_params.algorithm.discount == 0.77
        assert str(folder) not in sys.path  # the preset's folder is on sys.path only while it is imported
    finally:
        sys.modules.pop("my_settings_for_test", None)


# ---- every shipped preset -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", SHIPPED_PRESETS, ids=[p.stem for p in SHIPPED_PRESETS])
def test_every_shipped_preset_imports_and_builds(path: Path, tmp_path: Path) -> None:
    graph_manager = load_preset(str(path))
    assert isinstance(graph_manager, GraphManager)
    assert graph_manager.preset_validation_params.test is True
    # Building makes the environments, the agent and its networks, and the outputs; nothing is run.
    graph_manager.create_graph(TaskParameters(experiment_path=str(tmp_path / "exp"), seed=0))
    try:
        assert (tmp_path / "exp" / "parameters.yaml").is_file()
    finally:
        graph_manager.close()


# ---- Coach presets ------------------------------------------------------------------------------------
def test_a_coach_preset_loads_unchanged() -> None:
    fixture = FIXTURES / "coach_cartpole_dqn.py"
    assert "from rl_coach.agents.ddqn_agent import DDQNAgentParameters" in fixture.read_text(encoding="utf-8")
    graph_manager = load_preset(str(fixture))
    assert isinstance(graph_manager, BasicRLGraphManager)
    agent = graph_manager.agent_params
    assert isinstance(agent, DDQNAgentParameters)
    assert agent.agent_class is DDQNAgent
    assert agent.algorithm.num_steps_between_copying_online_weights_to_target == EnvironmentSteps(100)
    assert agent.network_wrappers["main"].learning_rate == 0.00025
    assert agent.network_wrappers["main"].replace_mse_with_huber_loss is False
    assert agent.memory.max_size == (MemoryGranularity.Transitions, 40000)
    assert agent.exploration.epsilon_schedule.final_value == 0.01
    assert graph_manager.steps_between_evaluation_periods == EnvironmentEpisodes(10)
    assert graph_manager.heatup_steps == EnvironmentSteps(1000)
    assert graph_manager.env_params.level == "CartPole-v0"
    assert graph_manager.preset_validation_params.min_reward_threshold == 150


# The Coach names the ten SageMaker RL notebooks' presets and launchers import (CartPole, spot and batch CartPole,
# Mountain Car, knapsack, tic-tac-toe, TSP/VRP, portfolio, autoscaling, stock trading).
NOTEBOOK_IMPORTS = {
    "rl_coach.agents.clipped_ppo_agent": ["ClippedPPOAgentParameters"],
    "rl_coach.agents.dqn_agent": ["DQNAgentParameters"],
    "rl_coach.agents.ddqn_agent": ["DDQNAgentParameters"],
    "rl_coach.agents.ddqn_bcq_agent": ["DDQNBCQAgentParameters", "KNNParameters"],
    "rl_coach.agents.actor_critic_agent": ["ActorCriticAgentParameters"],
    "rl_coach.agents.policy_gradients_agent": ["PolicyGradientsAgentParameters"],
    "rl_coach.agents.policy_optimization_agent": ["PolicyGradientRescaler"],
    "rl_coach.architectures.layers": ["Dense", "Conv2d"],
    "rl_coach.architectures.head_parameters": ["DuelingQHeadParameters"],
    "rl_coach.base_parameters": ["DistributedCoachSynchronizationType", "MiddlewareScheme", "PresetValidationParameters",
                                 "VisualizationParameters", "TaskParameters", "Frameworks"],
    "rl_coach.core_types": ["EnvironmentEpisodes", "EnvironmentSteps", "RunPhase", "TrainingSteps", "Frames", "Time",
                            "SelectedPhaseOnlyDumpFilter", "MaxDumpFilter", "CsvDataset"],
    "rl_coach.environments.gym_environment": ["GymVectorEnvironment", "mujoco_v2", "ObservationSpaceType"],
    "rl_coach.exploration_policies.additive_noise": ["AdditiveNoiseParameters"],
    "rl_coach.exploration_policies.e_greedy": ["EGreedyParameters"],
    "rl_coach.filters.filter": ["InputFilter"],
    "rl_coach.filters.observation.observation_normalization_filter": ["ObservationNormalizationFilter"],
    "rl_coach.filters.reward.reward_rescale_filter": ["RewardRescaleFilter"],
    "rl_coach.graph_managers.basic_rl_graph_manager": ["BasicRLGraphManager"],
    "rl_coach.graph_managers.batch_rl_graph_manager": ["BatchRLGraphManager"],
    "rl_coach.graph_managers.graph_manager": ["ScheduleParameters", "SimpleSchedule"],
    "rl_coach.memories.memory": ["MemoryGranularity"],
    "rl_coach.memories.episodic": ["EpisodicExperienceReplayParameters"],
    "rl_coach.schedules": ["LinearSchedule"],
    "rl_coach.spaces": ["SpacesDefinition", "StateSpace", "VectorObservationSpace", "DiscreteActionSpace", "RewardSpace"],
    "rl_coach.coach": ["CoachLauncher"],
    "rl_coach.utils": ["short_dynamic_import"],
    "rl_coach.logger": ["screen", "get_experiment_name", "experiment_path"],
    "sagemaker_rl.coach_launcher": ["SageMakerCoachPresetLauncher", "SageMakerCoachLauncher", "CoachConfigurationList"],
}


@pytest.mark.parametrize("module", sorted(NOTEBOOK_IMPORTS))
def test_every_coach_name_the_notebooks_import(module: str) -> None:
    imported = importlib.import_module(module)
    for name in NOTEBOOK_IMPORTS[module]:
        assert hasattr(imported, name), f"{module}.{name}"


def test_an_rl_coach_module_rlframe_does_not_provide() -> None:
    with pytest.raises(ImportError) as info:
        importlib.import_module("rl_coach.agents.rainbow_dqn_agent")
    message = str(info.value)
    assert "rlframe does not provide 'rl_coach.agents.rainbow_dqn_agent'" in message
    assert "The Coach modules a preset or launcher can import are:" in message
    for provided in ("rl_coach.agents.dqn_agent", "rl_coach.coach", "rl_coach.logger", "rl_coach.schedules"):
        assert provided in message


def test_a_class_rlframe_does_not_implement_imports_and_fails_only_when_used(write_preset: WritePreset) -> None:
    imports = "from rl_coach.agents.policy_gradients_agent import PolicyGradientsAgentParameters\n"
    write_preset("names_it", text=imports + (FIXTURES / "coach_cartpole_dqn.py").read_text())
    assert isinstance(load_preset("names_it"), BasicRLGraphManager)
    path = write_preset("uses_it", text=imports + "x = 1\nagent_params = PolicyGradientsAgentParameters()\n")
    with pytest.raises(PresetError) as info:
        load_preset("uses_it")
    assert str(info.value) == (
        f"Preset {path.resolve()}, line 3 is invalid: rlframe does not implement PolicyGradientsAgentParameters "
        "(from rl_coach.agents.policy_gradients_agent); use ClippedPPOAgentParameters (rl_coach.agents.clipped_ppo_agent)."
    )


def test_short_dynamic_import_finds_a_preset_ignoring_case(tmp_path: Path) -> None:
    (tmp_path / "Preset-CartPole.py").write_text((FIXTURES / "coach_cartpole_dqn.py").read_text())
    graph_manager = short_dynamic_import(f"{tmp_path}/preset-cartpole.py:graph_manager", ignore_module_case=True)
    assert isinstance(graph_manager, BasicRLGraphManager)
    assert short_dynamic_import("rlframe.schedules:LinearSchedule") is LinearSchedule
    with pytest.raises(PresetError, match="does not exist"):
        short_dynamic_import(f"{tmp_path}/preset-cartpole.py:graph_manager")
