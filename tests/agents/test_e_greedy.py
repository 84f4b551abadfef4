"""Epsilon-greedy exploration: epsilon per phase, the probabilities it reports against the frequencies of its
choices, and which actions advance its schedule."""
from __future__ import annotations

import numpy as np
import pytest

from rlframe.core_types import RunPhase
from rlframe.exploration.e_greedy import EGreedy
from rlframe.exploration.parameters import EGreedyParameters
from rlframe.schedules import ConstantSchedule, LinearSchedule

pytestmark = pytest.mark.unit


def _params(schedule, evaluation_epsilon: float = 0.05) -> EGreedyParameters:
    params = EGreedyParameters()
    params.epsilon_schedule = schedule
    params.evaluation_epsilon = evaluation_epsilon
    return params


def test_epsilon_is_the_schedules_in_training_and_heatup_and_the_evaluation_epsilon_in_test():
    explorer = EGreedy(_params(LinearSchedule(1.0, 0.0, 100), evaluation_epsilon=0.05), 2, np.random.default_rng(0))
    explorer.choose(np.zeros((25, 2)), RunPhase.TRAIN)
    assert explorer.epsilon(RunPhase.TRAIN) == pytest.approx(0.75)
    assert explorer.epsilon(RunPhase.HEATUP) == pytest.approx(0.75)
    assert explorer.epsilon(RunPhase.TEST) == 0.05


@pytest.mark.parametrize("phase", [RunPhase.TRAIN, RunPhase.TEST])
def test_reported_probabilities_match_the_frequencies_of_the_choices(phase):
    # 3 actions, each row's greedy action differs with the row; epsilon 0.3 in both phases.
    explorer = EGreedy(_params(ConstantSchedule(0.3), evaluation_epsilon=0.3), 3, np.random.default_rng(7))
    rows = 30000
    q_values = np.tile(np.array([[2.0, 1.0, 0.0], [0.0, 5.0, 1.0], [0.0, 0.0, 1.0]]), (rows // 3, 1))
    probabilities = explorer.probabilities(q_values, phase)
    actions = explorer.choose(q_values, phase)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    # greedy 0.3 / 3 + 0.7 = 0.8, the others 0.1 each; per kind of row, 10,000 draws: std ~0.004
    for kind in range(3):
        chosen = actions[kind::3]
        frequencies = np.bincount(chosen, minlength=3) / len(chosen)
        np.testing.assert_allclose(frequencies, probabilities[kind], atol=0.015)
        assert probabilities[kind].max() == pytest.approx(0.8)
    assert actions.dtype == np.int64


def test_only_training_actions_advance_the_schedule():
    explorer = EGreedy(_params(LinearSchedule(1.0, 0.0, 100)), 2, np.random.default_rng(0))
    for phase in (RunPhase.HEATUP, RunPhase.TEST):
        explorer.choose(np.zeros((8, 2)), phase)
    assert explorer.epsilon_schedule.state() == 0
    explorer.choose(np.zeros((4, 2)), RunPhase.TRAIN)  # one step per environment copy
    assert explorer.epsilon_schedule.state() == 4
    assert explorer.epsilon(RunPhase.TRAIN) == pytest.approx(0.96)


def test_epsilon_zero_is_greedy_and_one_ignores_the_q_values():
    q_values = np.array([[0.0, 3.0, 1.0]] * 2000)
    greedy = EGreedy(_params(ConstantSchedule(0.0)), 3, np.random.default_rng(1))
    assert (greedy.choose(q_values, RunPhase.TRAIN) == 1).all()
    uniform = EGreedy(_params(ConstantSchedule(1.0)), 3, np.random.default_rng(1))
    np.testing.assert_allclose(np.bincount(uniform.choose(q_values, RunPhase.TRAIN), minlength=3) / 2000, 1 / 3, atol=0.04)


def test_the_explorer_steps_its_own_copy_of_the_schedule():
    params = _params(LinearSchedule(1.0, 0.0, 100))
    first = EGreedy(params, 2, np.random.default_rng(0))
    second = EGreedy(params, 2, np.random.default_rng(0))
    first.choose(np.zeros((10, 2)), RunPhase.TRAIN)
    assert first.epsilon(RunPhase.TRAIN) == pytest.approx(0.9)
    assert second.epsilon(RunPhase.TRAIN) == 1.0
    assert params.epsilon_schedule.state() == 0
