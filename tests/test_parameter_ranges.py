"""Out-of-range hyperparameters fail when the agent, its networks and its memory are built: ``rlframe-train``
prints one ``error:`` line naming the value's path in the preset tree, its value, the allowed range and an
example, exits with status 2, and writes no experiment folder.

Every case runs the real CLI in-process on a shipped preset (or a preset written by the test where only a
preset can set the value), so it checks the path a user's value takes: preset or override, then the check
where the component is built. All fail before any environment step, so the file runs in seconds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from rlframe.cli import train_main

pytestmark = pytest.mark.unit

DQN = ["-p", "preset-cartpole-dqn"]
PPO_CONTINUOUS = ["-p", "preset-mountain-car-continuous-clipped-ppo"]
PPO_DISCRETE = ["-p", "preset-cartpole-clippedppo"]
MAIN = "agent_params.network_wrappers['main']"


def train_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``rlframe-train argv``; check it failed as a user mistake (status 2, one ``error:`` line, no
    traceback, no experiment written) and return the line."""
    code = train_main(argv)
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert not Path("experiments").exists()
    return lines[0]


# (argv, what the error line must contain: the parameter's path and, where the range check made it, the range)
CASES = {
    # the algorithm, for every agent
    "discount below 0": (DQN + ["--discount", "-5"], "agent_params.algorithm.discount = -5.0: use a number from 0 to 1"),
    "discount above 1": (["-p", "preset-mountain-car-dqn", "--discount", "1.01"], "agent_params.algorithm.discount = 1.01:"),
    "discount of a batch-RL agent": (["-p", "preset-cartpole-ddqnbcq", "-cp", "agent_params.algorithm.discount=2"],
                                     "agent_params.algorithm.discount = 2.0: use a number from 0 to 1"),
    "training steps 0": (DQN + ["-cp", "agent_params.algorithm.num_consecutive_training_steps=0"],
                         "agent_params.algorithm.num_consecutive_training_steps = 0: use an integer of at least 1"),
    "target copy rate 0": (DQN + ["-cp", "agent_params.algorithm.rate_for_copying_weights_to_target=0"],
                           "agent_params.algorithm.rate_for_copying_weights_to_target = 0.0: use a number above 0 and at most 1"),
    "target copy rate above 1": (DQN + ["-cp", "agent_params.algorithm.rate_for_copying_weights_to_target=1.5"],
                                 "agent_params.algorithm.rate_for_copying_weights_to_target = 1.5:"),
    # Clipped PPO
    "gae_lambda above 1": (PPO_CONTINUOUS + ["--gae_lambda", "1.5"],
                           "agent_params.algorithm.gae_lambda = 1.5: use a number from 0 to 1, for example 0.95."),
    "optimization epochs 0": (["-p", "preset-mountain-car-discrete-clipped-ppo", "--training_epochs", "0"],
                              "agent_params.algorithm.optimization_epochs = 0: use an integer of at least 1"),
    "clipping epsilon 0": (PPO_DISCRETE + ["-cp", "agent_params.algorithm.clip_likelihood_ratio_using_epsilon=0"],
                           "agent_params.algorithm.clip_likelihood_ratio_using_epsilon = 0.0: use a number above 0"),
    "clipping epsilon negative": (PPO_DISCRETE + ["-cp", "agent_params.algorithm.clip_likelihood_ratio_using_epsilon=-0.2"],
                                  "agent_params.algorithm.clip_likelihood_ratio_using_epsilon = -0.2:"),
    # networks
    "learning rate negative (rl. path)": (DQN + ["--rl.agent_params.network_wrappers.main.learning_rate", "-0.1"],
                                          f"{MAIN}.learning_rate = -0.1: use a number of at least 0"),
    "learning rate negative (shortcut)": (PPO_CONTINUOUS + ["--training_learning_rate", "-0.004"],
                                          f"{MAIN}.learning_rate = -0.004:"),
    "batch size 0": (DQN + ["-cp", f"{MAIN}.batch_size=0"], f"{MAIN}.batch_size = 0: use an integer of at least 1"),
    "batch size negative (shortcut)": (PPO_CONTINUOUS + ["--training_batch_size", "-256"], f"{MAIN}.batch_size = -256:"),
    # memory
    "replay size 0": (DQN + ["-cp", "agent_params.memory.max_size=(MemoryGranularity.Transitions, 0)"],
                      "agent_params.memory.max_size[1] = 0: use an integer of at least 1"),
    "episodic memory size negative": (PPO_DISCRETE + ["-cp", "agent_params.memory.max_size=(MemoryGranularity.Episodes, -1)"],
                                      "agent_params.memory.max_size[1] = -1:"),
    # e-greedy exploration
    "epsilon schedule start above 1": (DQN + ["-cp", "agent_params.exploration.epsilon_schedule=LinearSchedule(1.5, 0.1, 100)"],
                                       "agent_params.exploration.epsilon_schedule.initial_value = 1.5: use a number from 0 to 1"),
    "epsilon schedule end negative": (DQN + ["-cp", "agent_params.exploration.epsilon_schedule=LinearSchedule(1.0, -0.1, 100)"],
                                      "agent_params.exploration.epsilon_schedule.final_value = -0.1:"),
    "piecewise epsilon schedule": (
        DQN + ["-cp", "agent_params.exploration.epsilon_schedule=PieceWiseSchedule([(LinearSchedule(1.0, 0.1, 100), "
                      "EnvironmentSteps(100)), (ConstantSchedule(2.0), EnvironmentSteps(100))])"],
        "agent_params.exploration.epsilon_schedule.schedules[1][0].initial_value = 2.0:"),
    "evaluation epsilon above 1": (DQN + ["-cp", "agent_params.exploration.evaluation_epsilon=1.5"],
                                   "agent_params.exploration.evaluation_epsilon = 1.5: use a number from 0 to 1"),
    # negative step counts: a hyperparameter wrapped in a unit is refused as it is applied, naming it
    "negative playing steps (rl. path)": (
        DQN + ["--rl.agent_params.algorithm.num_consecutive_playing_steps:EnvironmentSteps", "-5"],
        "rl.agent_params.algorithm.num_consecutive_playing_steps:EnvironmentSteps': EnvironmentSteps takes a count of at least 0"),
    "negative training frequency (shortcut)": (PPO_CONTINUOUS + ["--training_freq_env_steps", "-5"],
                                               "'training_freq_env_steps': EnvironmentSteps takes a count of at least 0"),
    # not numbers at all
    "discount not a number": (DQN + ["--discount", "abc"], "discount (rl.agent_params.algorithm.discount) expects a number, got 'abc'"),
    "learning rate not a number": (DQN + ["-cp", f"{MAIN}.learning_rate='fast'"], f"{MAIN}.learning_rate expects a number"),
    "batch size not an integer": (DQN + ["-cp", f"{MAIN}.batch_size=2.5"], f"{MAIN}.batch_size expects an integer"),
    "gae_lambda None": (PPO_DISCRETE + ["-cp", "agent_params.algorithm.gae_lambda=None"],
                        "agent_params.algorithm.gae_lambda = None: use a number from 0 to 1"),
    "memory size not a count": (DQN + ["-cp", "agent_params.memory.max_size=(MemoryGranularity.Transitions, 'many')"],
                                "agent_params.memory.max_size[1] = 'many': use an integer of at least 1"),
}


@pytest.mark.parametrize("argv, expected", list(CASES.values()), ids=list(CASES))
def test_out_of_range_value_is_one_error_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = train_error(argv, capsys)
    assert expected in line, line


def test_the_whole_message_names_path_value_range_and_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert train_error(DQN + ["--discount", "-5"], capsys) == (
        "error: agent_params.algorithm.discount = -5.0: use a number from 0 to 1, for example 0.99.")
    assert train_error(DQN + ["--rl.agent_params.network_wrappers.main.learning_rate", "-0.1"], capsys) == (
        "error: agent_params.network_wrappers['main'].learning_rate = -0.1: use a number of at least 0, for example 0.00025.")
    assert train_error(DQN + ["-cp", f"{MAIN}.batch_size=0"], capsys) == (
        "error: agent_params.network_wrappers['main'].batch_size = 0: use an integer of at least 1, for example 32.")


# Values only a preset can set: a string where a number belongs (an override's type is checked as it is applied), and
# a step count made negative after its unit was made (the unit's constructor refuses a negative count).
PRESET_CASES = {
    "discount as text": ("agent_params.algorithm.discount = '0.9'",
                         "agent_params.algorithm.discount = '0.9': use a number from 0 to 1, for example 0.99."),
    "learning rate as text": ("agent_params.network_wrappers['main'].learning_rate = '1e-3'",
                              f"{MAIN}.learning_rate = '1e-3': use a number of at least 0"),
    "negative playing steps": ("agent_params.algorithm.num_consecutive_playing_steps.num_steps = -5",
                               "agent_params.algorithm.num_consecutive_playing_steps.num_steps = -5: use a number of at least 0"),
    "negative target copy period": (
        "agent_params.algorithm.num_steps_between_copying_online_weights_to_target.num_steps = -5",
        "agent_params.algorithm.num_steps_between_copying_online_weights_to_target.num_steps = -5:"),
    "epsilon schedule not a schedule": ("agent_params.exploration.epsilon_schedule = 0.1",
                                        "agent_params.exploration.epsilon_schedule = 0.1: use a schedule"),
    "boolean batch size": ("agent_params.network_wrappers['main'].batch_size = True", f"{MAIN}.batch_size = True:"),
}


@pytest.mark.parametrize("extra, expected", list(PRESET_CASES.values()), ids=list(PRESET_CASES))
def test_out_of_range_value_in_a_preset_is_one_error_line(extra: str, expected: str, write_preset: Callable[..., Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    write_preset("bad_preset", extra=extra)
    line = train_error(["-p", "bad_preset"], capsys)
    assert expected in line, line


def test_values_at_the_ends_of_their_ranges_are_accepted() -> None:
    """The checks refuse only what is outside: gamma 0 and 1, lambda 0 and 1, learning rate 0 and epsilon 0 and 1
    build (a run of one training step, so the agent and its networks were made)."""
    short = "improve_steps=TrainingSteps(1);heatup_steps=EnvironmentSteps(40);evaluation_steps=EnvironmentEpisodes(0)"
    assert train_main(DQN + ["--seed", "0", "--discount", "1", "-cp", short + ";agent_params.network_wrappers['main'].learning_rate=0;"
                             "agent_params.exploration.epsilon_schedule=LinearSchedule(1, 0, 10);"
                             "agent_params.exploration.evaluation_epsilon=0;agent_params.algorithm.rate_for_copying_weights_to_target=1"
                             ]) == 0
    assert train_main(PPO_DISCRETE + ["--seed", "0", "-cp", short + ";agent_params.algorithm.discount=0;"
                                      "agent_params.algorithm.gae_lambda=1"]) == 0
