"""Epsilon-greedy action choice over a batch of Q-values."""
from __future__ import annotations

import copy

import numpy as np

from rlframe.core_types import RunPhase
from rlframe.errors import ParameterValueError
from rlframe.exploration.parameters import EGreedyParameters
from rlframe.parameters import check_range
from rlframe.schedules import Schedule


class EGreedy:
    """Chooses actions for N environments at once; epsilon advances by N per training call.

    The explorer works on its own copy of the parameters (:attr:`params`, whose ``epsilon_schedule`` is
    :attr:`epsilon_schedule`): how far the schedule has advanced is the agent's state (its ``schedules()``
    checkpoints it), never the preset's, so two agents built from one preset do not share a counter and the preset
    stays as written.

    :param params: the preset's e-greedy parameters (copied, never modified).
    :param num_actions: A.
    :param rng: the random generator of the exploration draws.
    :param where: the parameters' path in the preset tree, for error messages.
    """

    def __init__(self, params: EGreedyParameters, num_actions: int, rng: np.random.Generator,
                 where: str = "agent_params.exploration") -> None:
        check_epsilons(params, where)
        self.params = copy.deepcopy(params)
        #: this explorer's training epsilon; steps once per training action (per environment copy)
        self.epsilon_schedule: Schedule = self.params.epsilon_schedule
        self.evaluation_epsilon = float(params.evaluation_epsilon)
        self.num_actions = num_actions
        self.rng = rng

    def epsilon(self, phase: RunPhase) -> float:
        if phase == RunPhase.TEST:
            return self.evaluation_epsilon
        return float(self.epsilon_schedule.current_value)

    def probabilities(self, q_values: np.ndarray, phase: RunPhase) -> np.ndarray:
        """The probability (N, A) that :meth:`choose` picks each action now: epsilon / A everywhere, plus
        1 - epsilon on the greedy action."""
        epsilon = self.epsilon(phase)
        probs = np.full(q_values.shape, epsilon / self.num_actions)
        probs[np.arange(len(q_values)), q_values.argmax(axis=1)] += 1.0 - epsilon
        return probs

    def choose(self, q_values: np.ndarray, phase: RunPhase) -> np.ndarray:
        """Pick actions (N,) int64 from ``q_values`` (N, A): the greedy action, replaced by a uniformly drawn one
        with probability epsilon. Only ``RunPhase.TRAIN`` advances the schedule (by N)."""
        num_envs = len(q_values)
        actions = q_values.argmax(axis=1).astype(np.int64, copy=False)
        explore = self.rng.random(num_envs) < self.epsilon(phase)
        explored = int(np.count_nonzero(explore))
        if explored:
            actions[explore] = self.rng.integers(0, self.num_actions, explored)
        if phase == RunPhase.TRAIN:
            self.epsilon_schedule.step(num_envs)
        return actions


def check_epsilons(params: EGreedyParameters, where: str) -> None:
    """Epsilon is a probability: outside [0, 1] :meth:`EGreedy.choose` would explore always or never without a
    word, and :meth:`EGreedy.probabilities` would log negative behaviour probabilities into a batch-RL dataset.
    A schedule is checked at its ends (a linear or piecewise-linear schedule stays between them)."""
    schedule = params.epsilon_schedule
    if not isinstance(schedule, Schedule):
        raise ParameterValueError(
            f"{where}.epsilon_schedule = {schedule!r}: use a schedule, for example LinearSchedule(1.0, 0.01, 10000)."
        )
    for path, value in schedule.endpoints():
        check_range(f"{where}.epsilon_schedule{path}", value, 0, 1, example=0.1)
    check_range(f"{where}.evaluation_epsilon", params.evaluation_epsilon, 0, 1, example=0.05)
