"""Changing a preset from the command line: Coach's -cp, SageMaker's rl.<path>[:Type] and notebook shortcuts.

Every bad input must fail before the run with a message that says what is wrong; nothing in a value is
ever executed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlframe.cli import prepare
from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, TrainingSteps
from rlframe.errors import ParameterValueError, UnknownParameterError
from rlframe.graph_managers.graph_manager import GraphManager
from rlframe.memories.memory import MemoryGranularity
from rlframe.networks.parameters import Dense
from rlframe.overrides import (
    apply_custom_parameters,
    apply_hyperparameters,
    decode_sagemaker_value,
    is_sagemaker_internal,
    parse_value,
)
from rlframe.parameters import EmbedderScheme, MiddlewareScheme
from rlframe.presets import load_preset
from rlframe.schedules import ConstantSchedule, LinearSchedule, PieceWiseSchedule

pytestmark = pytest.mark.unit


@pytest.fixture
def cartpole() -> GraphManager:
    return load_preset("preset-cartpole-dqn")


@pytest.fixture
def mountain_car() -> GraphManager:
    return load_preset("preset-mountain-car-dqn")


def main_network(graph_manager: GraphManager) -> Any:
    return graph_manager.agent_params.network_wrappers["main"]


# ---- Coach's -cp ----------------------------------------------------------------------------------------
def test_coach_custom_parameters(mountain_car: GraphManager) -> None:
    apply_custom_parameters(
        mountain_car,
        "agent_params.network_wrappers['main'].learning_rate=0.001;"
        "heatup_steps=EnvironmentSteps(1000);"
        "agent_params.exploration.epsilon_schedule=LinearSchedule(1.0, 0.01, 10000);"
        "agent_params.memory.max_size=(MemoryGranularity.Transitions, 100)",
    )
    assert main_network(mountain_car).learning_rate == 0.001          # preset: 0.00025
    assert mountain_car.heatup_steps == EnvironmentSteps(1000)          # preset: 50000
    schedule = mountain_car.agent_params.exploration.epsilon_schedule
    assert isinstance(schedule, LinearSchedule)
    assert (schedule.initial_value, schedule.final_value, schedule.decay_steps) == (1.0, 0.01, 10000)
    assert mountain_car.agent_params.memory.max_size == (MemoryGranularity.Transitions, 100)


def test_coach_custom_parameters_spellings(cartpole: GraphManager) -> None:
    apply_custom_parameters(
        cartpole,
        ' graph_manager.agent_params.algorithm.discount = 1 ;'            # 'graph_manager.' prefix, spaces, int
        'agent_params.network_wrappers["main"].batch_size=64;'            # double quotes
        "improve_steps=500;"                                              # a bare number keeps the unit
        "env_params.level='CartPole-v1';;",                               # empty entries are skipped
    )
    assert cartpole.agent_params.algorithm.discount == 1.0
    assert isinstance(cartpole.agent_params.algorithm.discount, float)
    assert main_network(cartpole).batch_size == 64
    assert cartpole.improve_steps == TrainingSteps(500)
    assert cartpole.env_params.level == "CartPole-v1"


def test_coach_custom_parameters_schemes_layers_and_piecewise_schedules(cartpole: GraphManager) -> None:
    apply_custom_parameters(
        cartpole,
        "agent_params.network_wrappers['main'].input_embedders_parameters['observation'].scheme=EmbedderScheme.Deep;"
        "agent_params.network_wrappers['main'].middleware_parameters.scheme=[Dense(32), Dense(16)];"
        "agent_params.exploration.epsilon_schedule="
        "PieceWiseSchedule([(LinearSchedule(1.0, 0.1, 100), EnvironmentSteps(100)), (ConstantSchedule(0.1), EnvironmentSteps(10))])",
    )
    network = main_network(cartpole)
    assert network.input_embedders_parameters["observation"].scheme is EmbedderScheme.Deep
    assert [layer.units for layer in network.middleware_parameters.scheme] == [32, 16]
    schedule = cartpole.agent_params.exploration.epsilon_schedule
    assert isinstance(schedule, PieceWiseSchedule)
    assert isinstance(schedule.schedules[1][0], ConstantSchedule)
    assert schedule.value_at(50) == pytest.approx(0.55)


def test_an_unquoted_level_is_text(cartpole: GraphManager) -> None:
    # 'CartPole-v1' parses as the expression CartPole - v1; it has no call, so it is plain text.
    apply_custom_parameters(cartpole, "env_params.level=CartPole-v1")
    assert cartpole.env_params.level == "CartPole-v1"
    apply_hyperparameters(cartpole, {"rl.env_params.level": "patient_envs:PatientMountainCar"}, "cartpole")
    assert cartpole.env_params.level == "patient_envs:PatientMountainCar"


@pytest.mark.parametrize(("text", "expected"), [
    ("0.001", 0.001),
    ("1e-3", 0.001),
    ("-3", -3),
    ("None", None),
    ("[1, 2]", [1, 2]),
    ("{'a': 1}", {"a": 1}),
    ("'quoted'", "quoted"),
    ("plain words", "plain words"),
    ("ALE/Pong-v5", "ALE/Pong-v5"),
    ("data/train.csv", "data/train.csv"),
    ("my_envs.py:Env", "my_envs.py:Env"),
    ("(MemoryGranularity.Transitions, 5)", (MemoryGranularity.Transitions, 5)),
    ("MiddlewareScheme.Deep", MiddlewareScheme.Deep),
    ("EnvironmentEpisodes(3)", EnvironmentEpisodes(3)),
    (0.5, 0.5),  # YAML values arrive typed already
])
def test_parse_value(text: Any, expected: Any) -> None:
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_value_builds_allowed_constructors() -> None:
    assert isinstance(parse_value("Dense(64)"), Dense)
    assert parse_value("LinearSchedule(initial_value=1.0, final_value=0.5, decay_steps=10)").value_at(5) == 0.75


# ---- SageMaker's rl.<path>[:Type] -----------------------------------------------------------------------
def test_sagemaker_rl_paths(cartpole: GraphManager) -> None:
    result = apply_hyperparameters(cartpole, {
        "rl.improve_steps:EnvironmentSteps": "100000",
        "rl.evaluation_steps:EnvironmentEpisodes": "8",
        "rl.agent_params.network_wrappers.main.learning_rate": "0.001",
        "rl.agent_params.algorithm.discount": "0.9",
        "rl.agent_params.algorithm.num_steps_between_copying_online_weights_to_target:TrainingSteps": "50",
        "sagemaker_program": "train-coach.py",  # the SDK's own keys are ignored
    }, "cartpole")
    assert cartpole.improve_steps == EnvironmentSteps(100000)
    assert cartpole.evaluation_steps == EnvironmentEpisodes(8)
    assert main_network(cartpole).learning_rate == 0.001
    assert cartpole.agent_params.algorithm.discount == 0.9
    assert cartpole.agent_params.algorithm.num_steps_between_copying_online_weights_to_target == TrainingSteps(50)
    assert "sagemaker_program" not in result.applied
    assert result.applied["rl.agent_params.algorithm.discount"] == 0.9


def test_sagemaker_strings_for_enums(mountain_car: GraphManager) -> None:
    apply_hyperparameters(mountain_car, {"rl.agent_params.network_wrappers.main.middleware_parameters.scheme": "Deep"},
                          "mountain_car")
    assert main_network(mountain_car).middleware_parameters.scheme is MiddlewareScheme.Deep


# ---- notebook shortcuts ---------------------------------------------------------------------------------
def test_mountain_car_shortcuts_and_the_training_frequency_ties(mountain_car: GraphManager) -> None:
    result = apply_hyperparameters(mountain_car, {
        "discount": "0.995",
        "evaluation_episodes": "3",
        "improve_steps": "100000",
        "training_freq_env_steps": "75000",
        "training_learning_rate": "0.004",
        "training_batch_size": "256",
        "save_model": "1",
    }, "mountain_car")
    algorithm = mountain_car.agent_params.algorithm
    assert algorithm.discount == 0.995
    assert mountain_car.evaluation_steps == EnvironmentEpisodes(3)
    assert mountain_car.improve_steps == EnvironmentSteps(100000)
    # training_freq_env_steps sets the playing period and, as the notebook's launcher does, two more fields.
    assert algorithm.num_consecutive_playing_steps == EnvironmentSteps(75000)
    assert algorithm.num_steps_between_copying_online_weights_to_target == EnvironmentSteps(75000)
    assert mountain_car.steps_between_evaluation_periods == EnvironmentSteps(75000)
    assert main_network(mountain_car).learning_rate == 0.004
    assert main_network(mountain_car).batch_size == 256
    assert result.recorded == {"save_model": 1}


@pytest.mark.parametrize("order", ["tie-first", "tie-last"])
def test_the_training_frequency_tie_wins_over_evaluation_frequency(mountain_car: GraphManager, order: str) -> None:
    values = {"evaluation_freq_env_steps": "500", "training_freq_env_steps": "75000"}
    if order == "tie-first":
        values = dict(reversed(list(values.items())))
    apply_hyperparameters(mountain_car, values, "mountain_car")
    assert mountain_car.steps_between_evaluation_periods == EnvironmentSteps(75000)


def test_evaluation_frequency_alone(mountain_car: GraphManager) -> None:
    apply_hyperparameters(mountain_car, {"evaluation_freq_env_steps": "500"}, "mountain_car")
    assert mountain_car.steps_between_evaluation_periods == EnvironmentSteps(500)
    assert mountain_car.agent_params.algorithm.num_consecutive_playing_steps == EnvironmentSteps(1)  # untouched


@pytest.mark.parametrize(("shortcut_set", "unit"), [
    ("mountain_car", EnvironmentSteps),
    ("cartpole", TrainingSteps),
    ("batch", TrainingSteps),
])
def test_improve_steps_unit_depends_on_the_shortcut_set(cartpole: GraphManager, shortcut_set: str, unit: type) -> None:
    apply_hyperparameters(cartpole, {"improve_steps": "10000"}, shortcut_set)
    assert cartpole.improve_steps == unit(10000)


@pytest.mark.parametrize("raw", ["true", "True", "1", True, 1, 1.0])
def test_booleans_accept_true_spellings(cartpole: GraphManager, raw: Any) -> None:
    assert main_network(cartpole).replace_mse_with_huber_loss is False
    apply_hyperparameters(cartpole, {"rl.agent_params.network_wrappers.main.replace_mse_with_huber_loss": raw}, "cartpole")
    assert main_network(cartpole).replace_mse_with_huber_loss is True


@pytest.mark.parametrize("raw", ["false", "False", "0", False, 0])
def test_booleans_accept_false_spellings(cartpole: GraphManager, raw: Any) -> None:
    apply_custom_parameters(cartpole, "visualization_parameters.dump_gifs=True")
    apply_hyperparameters(cartpole, {"rl.visualization_parameters.dump_gifs": raw}, "cartpole")
    assert cartpole.visualization_parameters.dump_gifs is False


def test_coach_booleans(cartpole: GraphManager) -> None:
    apply_custom_parameters(cartpole, "agent_params.network_wrappers['main'].replace_mse_with_huber_loss=true")
    assert main_network(cartpole).replace_mse_with_huber_loss is True


# ---- every bad input fails with a message that says what to fix -----------------------------------------
@pytest.mark.parametrize(("override", "message"), [
    ("agent_params.algorithm.dicount=0.9", "DQNAlgorithmParameters has no parameter 'dicount'. Did you mean 'discount'?"),
    ("improve_step=TrainingSteps(5)", "has no parameter 'improve_step'. Did you mean 'improve_steps'?"),
    ("agent_params.network_wrappers['mian'].learning_rate=0.1", "'mian' is not a key here. Did you mean 'main'?"),
    ("agent_params.exploration.epsilon_schedule.decay_step=10", "has no parameter 'decay_step'. Did you mean 'decay_steps'?"),
    ("improve_steps.num_steps=10", "cannot look up 'num_steps' in a TrainingSteps value"),
])
def test_unknown_coach_parameter(cartpole: GraphManager, override: str, message: str) -> None:
    with pytest.raises(UnknownParameterError) as info:
        apply_custom_parameters(cartpole, override)
    assert message in str(info.value)


def test_unknown_rl_path(cartpole: GraphManager) -> None:
    with pytest.raises(UnknownParameterError, match="has no parameter 'dicount'. Did you mean 'discount'"):
        apply_hyperparameters(cartpole, {"rl.agent_params.algorithm.dicount": "0.9"}, "cartpole")


@pytest.mark.parametrize(("name", "shortcut_set", "message"), [
    ("dicount", "cartpole", "Unknown hyperparameter 'dicount'. Did you mean 'discount'?"),
    ("training_learning_rat", "mountain_car", "Did you mean 'training_learning_rate'?"),
    # Every notebook's shortcuts are accepted for any preset, so the message lists all of them.
    ("learning_rate", None, "The notebooks' shortcuts are discount, evaluation_episodes, improve_steps, "
                            "evaluation_freq_env_steps, gae_lambda, training_freq_env_steps, training_learning_rate"),
])
def test_unknown_hyperparameter(cartpole: GraphManager, name: str, shortcut_set: str, message: str) -> None:
    with pytest.raises(UnknownParameterError) as info:
        apply_hyperparameters(cartpole, {name: "1"}, shortcut_set)
    assert message in str(info.value)


def test_unknown_shortcut_set(cartpole: GraphManager) -> None:
    with pytest.raises(ParameterValueError, match="Unknown shortcut set 'pong'"):
        apply_hyperparameters(cartpole, {}, "pong")


@pytest.mark.parametrize(("override", "message"), [
    ("agent_params.network_wrappers['main'].learning_rate=abc", "learning_rate expects a number, got 'abc'"),
    ("agent_params.network_wrappers['main'].learning_rate='0.1'", "learning_rate expects a number, got '0.1'"),
    ("agent_params.network_wrappers['main'].batch_size=3.5", "batch_size expects an integer, got 3.5"),
    ("agent_params.network_wrappers['main'].batch_size=True", "batch_size expects an integer, got True"),
    ("agent_params.algorithm.discount=True", "discount expects a number, got True"),
    ("improve_steps=abc", "improve_steps expects a step count such as TrainingSteps(1000)"),
    ("heatup_steps=LinearSchedule(1.0, 0.1, 10)", "heatup_steps expects a step count"),
    ("heatup_steps=-5", "EnvironmentSteps takes a count of at least 0"),
    ("agent_params.exploration.epsilon_schedule=0.5", "expects a schedule such as LinearSchedule(1.0, 0.01, 10000)"),
    ("agent_params.network_wrappers['main'].replace_mse_with_huber_loss=2", "expects a boolean (true/false/1/0)"),
    ("agent_params.network_wrappers['main'].replace_mse_with_huber_loss=yes", "expects a boolean"),
    ("agent_params.network_wrappers['main'].optimizer_type=3", "optimizer_type expects a string, got 3"),
    ("agent_params.network_wrappers['main'].middleware_parameters.scheme=EmbedderScheme.Deep",
     "expects a scheme such as MiddlewareScheme.Medium or a list of layers such as [Dense(64)]"),
    ("agent_params.network_wrappers['main'].gradients_clipping_method=7", "expects one of GradientClippingMethod."),
    ("agent_params.memory.max_size=(MemoryGranularity.Transition, 100)",
     "MemoryGranularity.Transition does not exist; members: Transitions, Episodes"),
    ("agent_params.exploration=3", "expects a value of type EGreedyParameters"),
    ("agent_params.exploration.epsilon_schedule=LinearSchedule('a', 0.1, 10)", "initial_value must be a number"),
    ("agent_params.exploration.epsilon_schedule=PieceWiseSchedule([])", "non-empty list of (schedule, duration) pairs"),
    ("improve_steps=TrainingSteps()", "missing 1 required positional argument"),
    ("agent_params.algorithm.discount", "has no '='; write key=value"),
    ("agent_params.network_wrappers[main].learning_rate=0.1", "is not a parameter path"),
])
def test_wrong_value_type(cartpole: GraphManager, override: str, message: str) -> None:
    with pytest.raises(ParameterValueError) as info:
        apply_custom_parameters(cartpole, override)
    assert message in str(info.value)


@pytest.mark.parametrize(("values", "message"), [
    ({"rl.agent_params.network_wrappers.main.learning_rate": "abc"},
     "rl.agent_params.network_wrappers.main.learning_rate expects a number, got 'abc'"),
    ({"rl.agent_params.network_wrappers.main.batch_size": "3.5"}, "batch_size expects an integer, got 3.5"),
    ({"discount": "high"}, "discount (rl.agent_params.algorithm.discount) expects a number, got 'high'"),
    ({"rl.improve_steps:EnvironmentSteps": "abc"}, "expects a number of EnvironmentSteps, got 'abc'"),
    ({"rl.improve_steps:EnvironmentSteps": "-10"}, "EnvironmentSteps takes a count of at least 0"),
    ({"improve_steps": "many"}, "'improve_steps' expects a number of TrainingSteps, got 'many'"),
    ({"save_model": "maybe"}, "save_model expects a boolean"),
])
def test_wrong_hyperparameter_type(cartpole: GraphManager, values: dict, message: str) -> None:
    with pytest.raises(ParameterValueError) as info:
        apply_hyperparameters(cartpole, values, "cartpole")
    assert message in str(info.value)


@pytest.mark.parametrize(("name", "message"), [
    ("rl.improve_steps:EnvSteps", "unknown type 'EnvSteps'. Did you mean 'EnvironmentSteps'?"),
    ("rl.evaluation_steps:EnvironmentEpisode", "Did you mean 'EnvironmentEpisodes'"),
    ("rl.improve_steps:int", "unknown type 'int'. Use one of EnvironmentSteps, EnvironmentEpisodes, TrainingSteps, Frames, Time."),
])
def test_unknown_type_suffix(cartpole: GraphManager, name: str, message: str) -> None:
    with pytest.raises(ParameterValueError) as info:
        apply_hyperparameters(cartpole, {name: "100"}, "cartpole")
    assert message in str(info.value)


@pytest.mark.parametrize("name", ["rl.__class__", "rl.agent_params.__dict__", "rl.agent_params.__class__.__init__",
                                  "rl.agent_params.network_wrappers.__len__"])
def test_unsafe_rl_path_is_refused(cartpole: GraphManager, name: str) -> None:
    with pytest.raises(ParameterValueError, match="path segments starting with '__' are not allowed"):
        apply_hyperparameters(cartpole, {name: "1"}, "cartpole")


@pytest.mark.parametrize("override", [
    "agent_params.__dict__=1",
    "__class__.__name__='x'",
    "agent_params.network_wrappers['__init__']=1",
    "agent_params.algorithm.__class__=1",
])
def test_unsafe_coach_path_is_refused(cartpole: GraphManager, override: str) -> None:
    with pytest.raises(ParameterValueError, match="path segments starting with '__' are not allowed"):
        apply_custom_parameters(cartpole, override)
    assert type(cartpole.agent_params.algorithm).__name__ == "DQNAlgorithmParameters"


def test_private_names_are_not_parameters(cartpole: GraphManager) -> None:
    with pytest.raises(UnknownParameterError, match="has no parameter '_locked'"):
        apply_custom_parameters(cartpole, "agent_params._locked=False")


# Each would leave a file named 'pwned' in the working directory if it ran.
DANGEROUS_VALUES = [
    "__import__('os').system('touch pwned')",
    "open('pwned', 'w')",
    "eval(\"open('pwned', 'w')\")",
    "exec(\"open('pwned', 'w')\")",
    "(lambda: open('pwned', 'w'))()",
    "LinearSchedule(1.0, 0.1, open('pwned', 'w'))",
    "EnvironmentSteps(__import__('os').system('touch pwned'))",
    "[open('pwned', 'w')]",
    "{'a': open('pwned', 'w')}",
    "getattr(EnvironmentSteps, '__init__')",
    "EnvironmentSteps.__class__",
    "MemoryGranularity.Transitions.__class__",
    "__builtins__",
    "[].__class__.__base__",
]


@pytest.mark.parametrize("value", DANGEROUS_VALUES)
def test_disallowed_code_in_a_coach_value_is_refused_and_never_runs(cartpole: GraphManager, tmp_path: Path,
                                                                     value: str) -> None:
    for key in ("agent_params.algorithm.discount", "discount"):  # a valid key, and one that does not even exist
        with pytest.raises(ParameterValueError, match="is not allowed in a value"):
            apply_custom_parameters(cartpole, f"{key}={value}")
    assert not (tmp_path / "pwned").exists()
    assert cartpole.agent_params.algorithm.discount == 0.99


@pytest.mark.parametrize("value", DANGEROUS_VALUES)
def test_disallowed_code_in_a_hyperparameter_is_refused_and_never_runs(cartpole: GraphManager, tmp_path: Path,
                                                                       value: str) -> None:
    with pytest.raises(ParameterValueError, match="is not allowed in a value"):
        apply_hyperparameters(cartpole, {"rl.agent_params.algorithm.discount": value}, "cartpole")
    with pytest.raises(ParameterValueError, match="is not allowed in a value"):
        apply_hyperparameters(cartpole, {"discount": value}, "cartpole")
    assert not (tmp_path / "pwned").exists()


def test_the_refusal_lists_what_is_allowed(cartpole: GraphManager) -> None:
    with pytest.raises(ParameterValueError) as info:
        apply_custom_parameters(cartpole, "agent_params.algorithm.discount=open('x')")
    message = str(info.value)
    assert "'open' is not allowed in a value" in message
    assert "EnvironmentSteps" in message and "LinearSchedule" in message and "MemoryGranularity.<member>" in message


# ---- hyperparameters arriving through the CLI (pairs and YAML files) ------------------------------------
@pytest.mark.parametrize("extra", [["--discount"], ["--discount", "0.9", "--improve_steps"]])
def test_odd_number_of_extra_arguments(extra: list[str]) -> None:
    with pytest.raises(ParameterValueError, match="Odd number of extra arguments .*'--name value' pairs"):
        prepare(["-p", "preset-cartpole-dqn", *extra])


def test_extra_argument_without_dashes() -> None:
    with pytest.raises(ParameterValueError, match="Unknown command-line argument 'discount'"):
        prepare(["-p", "preset-cartpole-dqn", "discount", "0.9"])


def test_name_equals_value_pairs() -> None:
    graph_manager, _, _ = prepare(["-p", "preset-cartpole-dqn", "--discount=0.5", "--rl.evaluation_steps:EnvironmentEpisodes", "2"])
    assert graph_manager.agent_params.algorithm.discount == 0.5
    assert graph_manager.evaluation_steps == EnvironmentEpisodes(2)


def test_hyperparameters_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.yaml"
    path.write_text(
        "discount: 0.9\n"
        "improve_steps: 2000\n"
        "rl.agent_params.network_wrappers.main.replace_mse_with_huber_loss: true\n"
        "rl.evaluation_steps:EnvironmentEpisodes: 4\n"
        "sagemaker_region: us-west-2\n",
        encoding="utf-8",
    )
    graph_manager, _, _ = prepare(["-p", "preset-cartpole-dqn", "--hyperparameters", str(path), "--discount", "0.8"])
    assert graph_manager.agent_params.algorithm.discount == 0.8  # the command line wins over the file
    assert graph_manager.improve_steps == TrainingSteps(2000)
    assert main_network(graph_manager).replace_mse_with_huber_loss is True
    assert graph_manager.evaluation_steps == EnvironmentEpisodes(4)


@pytest.mark.parametrize(("content", "message"), [
    ("- discount\n- 0.9\n", "holds a list; write a flat map of name: value"),
    ("just a string\n", "holds a str; write a flat map of name: value"),
    ("discount: [0.9\n", "is neither JSON nor YAML (line "),
])
def test_bad_hyperparameters_yaml_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "hyperparameters.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ParameterValueError, match="Hyperparameters file") as info:
        prepare(["-p", "preset-cartpole-dqn", "--hyperparameters", str(path)])
    assert message in str(info.value)


def test_missing_hyperparameters_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ParameterValueError, match="Cannot read hyperparameters file .*No such file or directory"):
        prepare(["-p", "preset-cartpole-dqn", "--hyperparameters", str(tmp_path / "missing.yaml")])


def test_empty_hyperparameters_yaml_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    graph_manager, _, _ = prepare(["-p", "preset-cartpole-dqn", "--hyperparameters", str(path)])
    assert graph_manager.agent_params.algorithm.discount == 0.99


# ---- issue 9: the notebooks' shortcuts for any preset, SageMaker's file values, environment keyword arguments ----
def test_every_notebooks_shortcuts_work_for_a_preset_of_another_notebook(cartpole: GraphManager) -> None:
    # preset-cartpole-dqn belongs to the CartPole notebook, whose launcher has no training_* shortcuts.
    apply_hyperparameters(cartpole, {"training_learning_rate": "0.004", "training_batch_size": "64",
                                     "training_freq_env_steps": "500"})
    assert (main_network(cartpole).learning_rate, main_network(cartpole).batch_size) == (0.004, 64)
    assert cartpole.agent_params.algorithm.num_consecutive_playing_steps == EnvironmentSteps(500)
    assert cartpole.steps_between_evaluation_periods == EnvironmentSteps(500)  # the Mountain Car launcher's tie


@pytest.mark.parametrize(("preset", "unit"), [
    ("preset-mountain-car-dqn", EnvironmentSteps),  # a Mountain Car notebook preset (its preset says TrainingSteps)
    ("preset-cartpole-dqn", TrainingSteps),
])
def test_improve_steps_follows_the_notebook_whose_preset_name_matches(preset: str, unit: type) -> None:
    graph_manager = load_preset(preset)
    apply_hyperparameters(graph_manager, {"improve_steps": "300"}, None, preset)
    assert graph_manager.improve_steps == unit(300)


def test_a_copied_notebook_preset_keeps_its_own_improve_steps_unit_and_takes_every_shortcut(tmp_path: Path) -> None:
    copy = tmp_path / "my-car.py"
    text = (Path(__file__).parents[1] / "presets" / "preset-mountain-car-continuous-clipped-ppo.py").read_text()
    copy.write_text(text.replace('HYPERPARAMETER_SHORTCUTS = "mountain_car"', ""))
    graph_manager = load_preset(str(copy))
    assert graph_manager.improve_steps == EnvironmentEpisodes(100)
    apply_hyperparameters(graph_manager, {"improve_steps": "20", "gae_lambda": "0.997", "training_epochs": "15"},
                          None, "my-car")
    assert graph_manager.improve_steps == EnvironmentEpisodes(20)
    assert graph_manager.agent_params.algorithm.gae_lambda == 0.997
    assert graph_manager.agent_params.algorithm.optimization_epochs == 15
    apply_hyperparameters(graph_manager, {"rl.improve_steps:EnvironmentSteps": "100000"}, None, "my-car")
    assert graph_manager.improve_steps == EnvironmentSteps(100000)  # the explicit form names its unit


def test_environment_keyword_arguments_take_new_keys(mountain_car: GraphManager) -> None:
    assert mountain_car.env_params.additional_simulator_parameters == {}
    apply_hyperparameters(mountain_car, {"rl.env_params.additional_simulator_parameters.warmup_latency": "60"})
    apply_custom_parameters(mountain_car, "env_params.additional_simulator_parameters['mode']='hard'")
    assert mountain_car.env_params.additional_simulator_parameters == {"warmup_latency": 60, "mode": "hard"}
    # Other dicts keep only the keys the preset gave them.
    with pytest.raises(UnknownParameterError, match="'critic' is not a key here"):
        apply_hyperparameters(mountain_car, {"rl.agent_params.network_wrappers.critic": "1"})
    with pytest.raises(ParameterValueError, match="path segments starting with '__' are not allowed"):
        apply_hyperparameters(mountain_car, {"rl.env_params.additional_simulator_parameters.__init__": "1"})


@pytest.mark.parametrize(("raw", "value"), [
    ("0.9", 0.9), ('"ppo"', "ppo"), ("ppo", "ppo"), ("true", True), ("True", "True"), ("[1, 2]", [1, 2]),
    ('{"a": 1}', {"a": 1}), (5, 5), ("CartPole-v1", "CartPole-v1"),
])
def test_sagemaker_hyperparameter_values_are_json_decoded_with_a_raw_fallback(raw: Any, value: Any) -> None:
    assert decode_sagemaker_value(raw) == value


def test_sagemaker_internal_keys_are_no_hyperparameters(cartpole: GraphManager) -> None:
    result = apply_hyperparameters(cartpole, {"sagemaker_program": "train-coach.py", "_tuning_objective_metric": "x",
                                              "sagemaker_job_name": "job", "discount": "0.9"})
    assert result.applied == {"discount": 0.9}
    assert is_sagemaker_internal("sagemaker_region") and not is_sagemaker_internal("discount")
