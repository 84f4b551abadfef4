"""Double DQN: DQN whose next action is chosen by the online network and valued by the target network.

Everything but the target (see :func:`rlframe.agents.dqn.td_target`) and the defaults is DQN.
"""
from __future__ import annotations

from rlframe.agents.dqn import DQNAgent, DQNAgentParameters
from rlframe.core_types import EnvironmentSteps
from rlframe.schedules import LinearSchedule


class DDQNAgentParameters(DQNAgentParameters):
    """DQN's parameters with Coach's DDQN defaults: target copy every 30,000 steps, epsilon 1 -> 0.01
    over 1M steps, evaluation epsilon 0.001."""

    def __init__(self) -> None:
        super().__init__()
        self.algorithm.num_steps_between_copying_online_weights_to_target = EnvironmentSteps(30000)
        self.exploration.epsilon_schedule = LinearSchedule(1, 0.01, 1000000)
        self.exploration.evaluation_epsilon = 0.001

    @property
    def agent_class(self) -> type:
        return DDQNAgent


class DDQNAgent(DQNAgent):
    """DQN with the Double-DQN target."""

    double_q = True
