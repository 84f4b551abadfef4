"""The strict parameter tree, step units, schedules and the YAML dump of a resolved preset."""
from __future__ import annotations

import importlib
import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rlframe.agents.ddqn import DDQNAgentParameters
from rlframe.agents.dqn import DQNAgentParameters, DQNAlgorithmParameters, DQNNetworkParameters
from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, RunPhase, TrainingSteps
from rlframe.environments.gym_environment import GymVectorEnvironment
from rlframe.errors import ParameterValueError, UnknownParameterError
from rlframe.exploration.parameters import EGreedyParameters
from rlframe.graph_managers.basic_rl import BasicRLGraphManager
from rlframe.graph_managers.graph_manager import ScheduleParameters
from rlframe.memories.experience_replay import ExperienceReplayParameters
from rlframe.overrides import apply_custom_parameters
from rlframe.parameters import (
    AgentParameters,
    Parameters,
    PresetValidationParameters,
    TaskParameters,
    VisualizationParameters,
    to_plain,
)
from rlframe.presets import load_preset
from rlframe.schedules import ConstantSchedule, ExponentialSchedule, LinearSchedule, PieceWiseSchedule, Schedule

pytestmark = pytest.mark.unit


def _cartpole_graph_manager() -> BasicRLGraphManager:
    return BasicRLGraphManager(
        agent_params=DQNAgentParameters(), env_params=GymVectorEnvironment(level="CartPole-v1"),
        schedule_params=ScheduleParameters(),
    )


# ---- unknown names --------------------------------------------------------------------------------------
TYPOS = [
    (lambda: DQNAgentParameters().algorithm, "dicount", "discount"),
    (lambda: DQNAgentParameters(), "network_wrapper", "network_wrappers"),
    (DQNNetworkParameters, "learning_rat", "learning_rate"),
    (EGreedyParameters, "epsilon_schedul", "epsilon_schedule"),
    (ExperienceReplayParameters, "max_sise", "max_size"),
    (ScheduleParameters, "improve_step", "improve_steps"),
    (VisualizationParameters, "dump_gif", "dump_gifs"),
    (TaskParameters, "experiment_pth", "experiment_path"),
    (PresetValidationParameters, "min_reward_treshold", "min_reward_threshold"),
    (lambda: GymVectorEnvironment("CartPole-v1"), "levl", "level"),
    (lambda: LinearSchedule(1.0, 0.1, 100), "final_valu", "final_value"),
    (_cartpole_graph_manager, "heatup_step", "heatup_steps"),
]


@pytest.mark.parametrize(("make", "typo", "suggestion"), TYPOS, ids=[t[1] for t in TYPOS])
def test_setting_an_unknown_parameter_names_the_closest(make: Any, typo: str, suggestion: str) -> None:
    params = make()
    with pytest.raises(UnknownParameterError) as info:
        setattr(params, typo, 0.5)
    message = str(info.value)
    assert f"has no parameter {typo!r}" in message
    assert f"Did you mean {suggestion!r}" in message
    assert typo not in params.__dict__


@pytest.mark.parametrize(("make", "typo", "suggestion"), TYPOS, ids=[t[1] for t in TYPOS])
def test_reading_an_unknown_parameter_names_the_closest(make: Any, typo: str, suggestion: str) -> None:
    params = make()
    with pytest.raises(UnknownParameterError, match=f"Did you mean {suggestion!r}"):
        getattr(params, typo)
    # It is an AttributeError too, so hasattr/getattr with a default keep their meaning.
    assert not hasattr(params, typo)
    assert getattr(params, typo, "default") == "default"


def test_known_parameters_can_be_set_and_the_lock_starts_after_the_outermost_init() -> None:
    class Extended(DQNAlgorithmParameters):
        def __init__(self) -> None:
            super().__init__()  # the parent's __init__ returns first: the object must not be locked yet
            self.extra_field = 3

    params = Extended()
    params.discount = 0.5
    params.extra_field = 4
    assert (params.discount, params.extra_field) == (0.5, 4)
    with pytest.raises(UnknownParameterError, match="'extra_feild'.*Did you mean 'extra_field'"):
        params.extra_feild = 5


def test_properties_and_methods_are_not_settable_parameters() -> None:
    schedule = LinearSchedule(1.0, 0.1, 100)
    with pytest.raises(ParameterValueError, match="current_value is computed from other parameters"):
        schedule.current_value = 0.5
    with pytest.raises(ParameterValueError, match="agent_class is computed"):
        DQNAgentParameters().agent_class = object
    with pytest.raises(UnknownParameterError, match="has no parameter 'items'"):
        schedule.items = []
    assert schedule.current_value == 1.0


# ---- every Parameters class -----------------------------------------------------------------------------
PARAMETER_MODULES = [
    "rlframe.parameters",
    "rlframe.networks.parameters",
    "rlframe.schedules",
    "rlframe.exploration.parameters",
    "rlframe.memories.memory",
    "rlframe.memories.experience_replay",
    "rlframe.filters.filter",
    "rlframe.filters.observation",
    "rlframe.filters.reward",
    "rlframe.outputs.video_dump_filters",
    "rlframe.environments.gym_environment",
    "rlframe.graph_managers.graph_manager",
    "rlframe.graph_managers.basic_rl",
    "rlframe.agents.dqn",
    "rlframe.agents.ddqn",
]

#: Arguments for the classes whose constructor has required parameters. A new class with required
#: arguments makes test_every_parameters_class_is_listed fail until it gets an entry here.
REQUIRED_ARGS: dict[str, Any] = {
    "AgentParameters": lambda: dict(
        algorithm=DQNAlgorithmParameters(), exploration=EGreedyParameters(), memory=ExperienceReplayParameters(),
        networks={"main": DQNNetworkParameters()},
    ),
    "Schedule": lambda: dict(initial_value=1.0),
    "ConstantSchedule": lambda: dict(initial_value=0.5),
    "LinearSchedule": lambda: dict(initial_value=1.0, final_value=0.1, decay_steps=100),
    "ExponentialSchedule": lambda: dict(initial_value=1.0, final_value=0.1, decay_coefficient=0.9),
    "PieceWiseSchedule": lambda: dict(schedules=[(LinearSchedule(1.0, 0.5, 10), EnvironmentSteps(10))]),
    "Dense": lambda: dict(units=64),
    "SelectedPhaseOnlyDumpFilter": lambda: dict(run_phases=RunPhase.TEST),
    "EveryNEpisodesDumpFilter": lambda: dict(num_episodes_between_dumps=5),
    "RewardRescaleFilter": lambda: dict(rescale_factor=0.1),
    "GraphManager": lambda: dict(
        name="graph", agent_params=DQNAgentParameters(), env_params=GymVectorEnvironment("CartPole-v1"),
        schedule_params=ScheduleParameters(), vis_params=VisualizationParameters(),
        preset_validation_params=PresetValidationParameters(),
    ),
    "BasicRLGraphManager": lambda: dict(
        agent_params=DQNAgentParameters(), env_params=GymVectorEnvironment("CartPole-v1"),
        schedule_params=ScheduleParameters(),
    ),
}


def _parameter_classes() -> list[type[Parameters]]:
    found: dict[str, type[Parameters]] = {}
    for module_name in PARAMETER_MODULES:
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Parameters) and cls.__module__ == module_name:
                found[f"{module_name}.{cls.__name__}"] = cls
    return [found[k] for k in sorted(found)]


PARAMETER_CLASSES = _parameter_classes()


def _required(cls: type) -> list[str]:
    return [
        p.name for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _build(cls: type[Parameters]) -> Parameters:
    return cls(**REQUIRED_ARGS[cls.__name__]()) if _required(cls) else cls()


def test_every_parameters_class_is_listed() -> None:
    assert len(PARAMETER_CLASSES) > 40  # the modules above really were scanned
    missing = [c.__name__ for c in PARAMETER_CLASSES if _required(c) and c.__name__ not in REQUIRED_ARGS]
    assert not missing, f"add constructor arguments for {missing} to REQUIRED_ARGS"


@pytest.mark.parametrize("cls", PARAMETER_CLASSES, ids=[c.__name__ for c in PARAMETER_CLASSES])
def test_every_parameters_class_builds_reads_refuses_unknown_names_and_dumps(cls: type[Parameters]) -> None:
    params = _build(cls)
    # Every public attribute can be read back ...
    values = dict(params.items())
    for name in params.__dict__:
        if not name.startswith("_"):
            assert name in values
    assert repr(params).startswith(type(params).__name__)
    # ... no new one can be made ...
    with pytest.raises(UnknownParameterError):
        params.no_such_parameter_anywhere = 1
    # ... and the object dumps as YAML that loads back to the same data.
    plain = to_plain(params)
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain
    if isinstance(plain, dict):
        assert plain["__class__"] == cls.__name__


def test_to_plain_turns_numpy_scalars_into_plain_numbers() -> None:
    algorithm = DQNAlgorithmParameters()
    algorithm.discount = np.float64(0.95)
    algorithm.num_consecutive_training_steps = np.int64(2)
    plain = to_plain(algorithm)
    assert type(plain["discount"]) is float and plain["discount"] == 0.95
    assert type(plain["num_consecutive_training_steps"]) is int and plain["num_consecutive_training_steps"] == 2
    yaml.safe_dump(plain)


# ---- the YAML dump of a resolved preset -----------------------------------------------------------------
def test_dump_parameters_writes_the_resolved_tree_as_yaml(tmp_path: Path) -> None:
    graph_manager = load_preset("preset-cartpole-dqn")
    apply_custom_parameters(graph_manager, "agent_params.algorithm.discount=0.9;improve_steps=TrainingSteps(500)")
    graph_manager.task_parameters = TaskParameters(experiment_path=str(tmp_path / "exp"), seed=3)
    path = tmp_path / "parameters.yaml"
    graph_manager.dump_parameters(str(path))

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["graph_manager"] == "BasicRLGraphManager"
    assert data["name"] == "simple_rl_graph"
    assert data["improve_steps"] == "TrainingSteps(500)"  # the override, not the preset's 30000
    assert data["heatup_steps"] == "EnvironmentSteps(1000)"
    assert data["evaluation_steps"] == "EnvironmentEpisodes(1)"
    agent = data["agent_params"]
    assert agent["__class__"] == "DQNAgentParameters"
    assert agent["algorithm"]["discount"] == 0.9
    assert agent["algorithm"]["num_steps_between_copying_online_weights_to_target"] == "EnvironmentSteps(100)"
    assert agent["network_wrappers"]["main"]["learning_rate"] == 0.00025
    assert agent["network_wrappers"]["main"]["replace_mse_with_huber_loss"] is False
    assert agent["memory"]["max_size"] == ["MemoryGranularity.Transitions", 40000]
    epsilon = agent["exploration"]["epsilon_schedule"]
    assert (epsilon["__class__"], epsilon["initial_value"], epsilon["final_value"], epsilon["decay_steps"]) == (
        "LinearSchedule", 1.0, 0.01, 10000)
    assert data["env_params"]["level"] == "CartPole-v0"
    assert data["visualization_parameters"]["dump_gifs"] is True
    assert data["preset_validation_params"]["min_reward_threshold"] == 150
    assert data["task_parameters"]["seed"] == 3


def test_dump_parameters_of_the_mountain_car_preset_names_enums_and_dump_filters(tmp_path: Path) -> None:
    graph_manager = load_preset("preset-mountain-car-dqn")
    path = tmp_path / "parameters.yaml"
    graph_manager.dump_parameters(str(path))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    main = data["agent_params"]["network_wrappers"]["main"]
    assert main["input_embedders_parameters"]["observation"]["scheme"] == "EmbedderScheme.Shallow"
    assert main["middleware_parameters"]["scheme"] == "MiddlewareScheme.Shallow"
    filters = data["visualization_parameters"]["video_dump_filters"]
    assert [f["__class__"] for f in filters] == ["SelectedPhaseOnlyDumpFilter", "MaxDumpFilter"]
    assert filters[0]["run_phases"] == ["RunPhase.TEST"]
    assert data["env_params"]["level"] == "patient_envs:PatientMountainCar"
    assert data["task_parameters"] is None  # not run yet


def test_ddqn_parameters_keep_coachs_ddqn_defaults() -> None:
    params = DDQNAgentParameters()
    assert params.algorithm.num_steps_between_copying_online_weights_to_target == EnvironmentSteps(30000)
    assert (params.exploration.epsilon_schedule.initial_value, params.exploration.epsilon_schedule.final_value) == (1, 0.01)
    assert params.exploration.evaluation_epsilon == 0.001
    assert params.agent_class.__name__ == "DDQNAgent"
    assert isinstance(params, AgentParameters)


# ---- step units -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("steps", "divisor", "expected"), [
    (EnvironmentSteps(5), 2, EnvironmentSteps(3)),      # 2.5 rounds up
    (EnvironmentSteps(4), 2, EnvironmentSteps(2)),      # exact stays exact
    (TrainingSteps(10), 3, TrainingSteps(4)),           # 3.33 rounds up
    (EnvironmentEpisodes(1), 4, EnvironmentEpisodes(1)),
    (EnvironmentSteps(0), 8, EnvironmentSteps(0)),
])
def test_dividing_a_step_unit_rounds_up_and_keeps_the_unit(steps: Any, divisor: int, expected: Any) -> None:
    result = steps / divisor
    assert result == expected
    assert type(result) is type(steps)
    assert isinstance(result.num_steps, int)


def test_step_units_compare_by_unit_and_count() -> None:
    assert EnvironmentSteps(3) == EnvironmentSteps(3)
    assert EnvironmentSteps(3) != TrainingSteps(3)
    assert EnvironmentSteps(3) != 3
    assert len({EnvironmentSteps(3), EnvironmentSteps(3), TrainingSteps(3)}) == 2
    assert repr(EnvironmentEpisodes(7)) == "EnvironmentEpisodes(7)"
    assert EnvironmentSteps(2) * 3 == EnvironmentSteps(6)


def test_step_units_normalise_counts_and_refuse_nonsense() -> None:
    assert EnvironmentSteps(3.0).num_steps == 3 and isinstance(EnvironmentSteps(3.0).num_steps, int)
    assert EnvironmentSteps(np.int64(7)) == EnvironmentSteps(7)
    assert type(EnvironmentSteps(np.int64(7)).num_steps) is int
    with pytest.raises(TypeError, match="takes a number of steps"):
        EnvironmentSteps("100")
    with pytest.raises(TypeError, match="takes a number of steps"):
        EnvironmentSteps(True)
    with pytest.raises(ValueError, match="at least 0"):
        TrainingSteps(-1)
    with pytest.raises(ValueError, match="at least 0"):
        TrainingSteps(math.nan)


# ---- schedules ------------------------------------------------------------------------------------------
def test_constant_schedule() -> None:
    schedule = ConstantSchedule(0.3)
    assert [schedule.value_at(s) for s in (0, 1, 10**6)] == [0.3, 0.3, 0.3]


@pytest.mark.parametrize(("step", "expected"), [
    (0, 1.0),
    (25, 0.775),    # 1.0 - 0.9 * 25/100
    (50, 0.55),     # 1.0 - 0.9 * 50/100
    (99, 0.109),    # 1.0 - 0.9 * 99/100
    (100, 0.1),     # reached the final value ...
    (10**6, 0.1),   # ... and stays there
])
def test_linear_schedule_values(step: int, expected: float) -> None:
    assert LinearSchedule(1.0, 0.1, 100).value_at(step) == pytest.approx(expected)


def test_linear_schedule_can_increase_and_steps_through_current_value() -> None:
    rising = LinearSchedule(0.0, 1.0, 4)
    assert [rising.value_at(s) for s in range(6)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    schedule = LinearSchedule(1.0, 0.1, 100)
    schedule.step()
    schedule.step(24)
    assert schedule.current_value == pytest.approx(0.775)
    # Its state is the number of steps taken; a restored copy continues from there.
    restored = LinearSchedule(1.0, 0.1, 100)
    restored.load_state(schedule.state())
    restored.step(25)
    assert restored.current_value == pytest.approx(0.55)


@pytest.mark.parametrize(("step", "expected"), [
    (0, 1.0),
    (1, 0.5),       # 1.0 * 0.5
    (2, 0.25),      # 1.0 * 0.5**2
    (3, 0.125),     # 1.0 * 0.5**3
    (4, 0.1),       # 0.0625 is below the final value 0.1
    (50, 0.1),
])
def test_exponential_schedule_decays_to_its_floor(step: int, expected: float) -> None:
    assert ExponentialSchedule(1.0, 0.1, 0.5).value_at(step) == pytest.approx(expected)


def test_exponential_schedule_can_grow_to_its_ceiling() -> None:
    growing = ExponentialSchedule(1.0, 10.0, 2.0)
    assert [growing.value_at(s) for s in range(6)] == pytest.approx([1.0, 2.0, 4.0, 8.0, 10.0, 10.0])


def test_piecewise_schedule_runs_each_piece_from_its_own_start() -> None:
    schedule = PieceWiseSchedule([
        (LinearSchedule(1.0, 0.5, 10), EnvironmentSteps(10)),   # steps 0-9
        (ConstantSchedule(0.2), EnvironmentSteps(5)),            # steps 10-14
        (LinearSchedule(0.2, 0.0, 4), EnvironmentSteps(4)),      # steps 15-18
    ])
    expected = {
        0: 1.0,
        4: 0.8,     # first piece: 1.0 - 0.5 * 4/10
        9: 0.55,    # first piece: 1.0 - 0.5 * 9/10
        10: 0.2,    # second piece
        14: 0.2,
        15: 0.2,    # third piece at its own step 0
        17: 0.1,    # third piece at its step 2: 0.2 - 0.2 * 2/4
        19: 0.0,    # after the last piece: its final value
        1000: 0.0,
    }
    assert {s: schedule.value_at(s) for s in expected} == pytest.approx(expected)
    assert schedule.initial_value == 1.0


@pytest.mark.parametrize("make", [
    lambda: LinearSchedule("1.0", 0.01, 1000),
    lambda: LinearSchedule(1.0, 0.01, None),
    lambda: ExponentialSchedule(1.0, 0.01, "0.99"),
    lambda: ConstantSchedule(True),
    lambda: PieceWiseSchedule([]),
    lambda: PieceWiseSchedule([(1.0, EnvironmentSteps(10))]),
    lambda: PieceWiseSchedule([(ConstantSchedule(1.0), 10)]),
], ids=["linear-str", "linear-none", "exponential-str", "constant-bool", "piecewise-empty",
        "piecewise-no-schedule", "piecewise-no-unit"])
def test_schedules_refuse_bad_arguments_when_made(make: Any) -> None:
    with pytest.raises(TypeError):
        make()


def test_schedule_base_has_no_values() -> None:
    schedule = Schedule(1.0)
    with pytest.raises(NotImplementedError):
        schedule.value_at(0)
    # ... but it still dumps (the property that cannot be computed is left out).
    assert to_plain(schedule) == {"__class__": "Schedule", "initial_value": 1.0}
