"""Exploration parameters (coach.md section 1.7). The policies that use them sit beside this module."""
from __future__ import annotations

from rlframe.parameters import Parameters
from rlframe.schedules import LinearSchedule, Schedule


class ExplorationParameters(Parameters):
    """Base of exploration parameters."""


class AdditiveNoiseParameters(ExplorationParameters):
    """Gaussian noise added to continuous actions.

    :param noise_schedule: noise std during training (a fraction of the action range when
        ``noise_as_percentage_from_action_space``); a policy that outputs its own std uses that instead.
    :param evaluation_noise: noise std during evaluation.
    :param noise_as_percentage_from_action_space: scale the noise by the action space's range.
    """

    def __init__(self) -> None:
        self.noise_schedule: Schedule = LinearSchedule(0.1, 0.1, 50000)
        self.evaluation_noise = 0.05
        self.noise_as_percentage_from_action_space = True


class CategoricalParameters(ExplorationParameters):
    """Sample from the policy's action probabilities in training; take the most probable action in evaluation."""


class EGreedyParameters(ExplorationParameters):
    """Epsilon-greedy over Q-values.

    :param epsilon_schedule: epsilon during training; it steps once per network-chosen training action.
    :param evaluation_epsilon: epsilon during evaluation.
    :param continuous_exploration_policy_parameters: used instead when the action space is continuous.
    """

    def __init__(self) -> None:
        self.epsilon_schedule: Schedule = LinearSchedule(0.5, 0.01, 50000)
        self.evaluation_epsilon = 0.05
        self.continuous_exploration_policy_parameters: ExplorationParameters = AdditiveNoiseParameters()
