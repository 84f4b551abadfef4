"""Acting from a policy network's own distribution, as the actor-critic family does (Clipped PPO, A2C).

Training samples the policy: a categorical over discrete actions (or Coach's e-greedy over the action
probabilities, when a preset sets ``EGreedyParameters``), the network's diagonal Gaussian over box actions.
Evaluation takes the most probable action or the mean. Shapes: N = environment copies, A = actions, K = action
dimensions.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rlframe.core_types import RunPhase
from rlframe.errors import ParameterValueError
from rlframe.exploration.e_greedy import EGreedy
from rlframe.exploration.parameters import AdditiveNoiseParameters, CategoricalParameters, EGreedyParameters
from rlframe.networks.distributions import sample_categorical, softmax
from rlframe.spaces import BoxActionSpace, DiscreteActionSpace, SpacesDefinition


def resolve_exploration(exploration: Any, spaces: SpacesDefinition) -> tuple[Any, str]:
    """Pick the exploration parameters for the action space when a preset gives a dict per space type; returns
    them with their path in the preset tree (for error messages)."""
    if isinstance(exploration, dict):
        for space_type, params in exploration.items():
            if isinstance(spaces.action, space_type):
                return params, f"agent_params.exploration[{space_type.__name__}]"
        raise ParameterValueError(
            f"agent_params.exploration has no entry for {type(spaces.action).__name__}; "
            f"it has {[t.__name__ for t in exploration]}."
        )
    return exploration, "agent_params.exploration"


class PolicyActing:
    """Actions from a policy's outputs, with the exploration the preset chose.

    :param exploration: ``agent_params.exploration`` (one object, or a dict per action-space type).
    :param spaces: the environment's spaces (discrete or box actions).
    :param rng: the agent's random generator.
    :param agent: the algorithm's name, for error messages.
    :param continuous_names: the exploration classes the algorithm names for box actions, for error messages.
    """

    def __init__(self, exploration: Any, spaces: SpacesDefinition, rng: np.random.Generator, agent: str,
                 continuous_names: str = "AdditiveNoiseParameters") -> None:
        self.continuous = isinstance(spaces.action, BoxActionSpace)
        self.rng = rng
        params, where = resolve_exploration(exploration, spaces)
        if isinstance(params, EGreedyParameters) and self.continuous:
            # Coach's e-greedy names a policy for box actions; for a policy network that is its own Gaussian.
            params = params.continuous_exploration_policy_parameters
            where += ".continuous_exploration_policy_parameters"
        expected: tuple[type, ...] = ((AdditiveNoiseParameters,) if self.continuous
                                      else (CategoricalParameters, EGreedyParameters))
        if not isinstance(params, expected):
            names = continuous_names if self.continuous else "CategoricalParameters or EGreedyParameters"
            raise ParameterValueError(
                f"{where} is {type(params).__name__}; {agent} on a {type(spaces.action).__name__} uses {names}."
            )
        self.params = params
        self.e_greedy: EGreedy | None = None
        if isinstance(params, EGreedyParameters):
            assert isinstance(spaces.action, DiscreteActionSpace)
            self.e_greedy = EGreedy(params, spaces.action.num_actions, rng, where)
        #: the probabilities (N, A) the last discrete actions were drawn with (None for box actions)
        self.last_probabilities: np.ndarray | None = None

    def choose(self, outputs: tuple[np.ndarray, ...], phase: RunPhase) -> np.ndarray:
        """Actions (N,) or (N, K) from the policy's outputs: ``(logits (N, A),)`` or ``(mean (N, K), log_std
        (N, K))``."""
        if self.continuous:
            mean, log_std = outputs
            if phase == RunPhase.TEST:
                return mean
            return (mean + np.exp(log_std) * self.rng.standard_normal(mean.shape)).astype(np.float32)
        probs = softmax(outputs[0].astype(np.float64))
        if self.e_greedy is not None:
            self.last_probabilities = self.e_greedy.probabilities(probs, phase)
            return self.e_greedy.choose(probs, phase)
        self.last_probabilities = probs
        if phase == RunPhase.TEST:
            return probs.argmax(axis=1).astype(np.int64)
        return sample_categorical(probs, self.rng)

    def exploration_value(self, phase: RunPhase, log_std: np.ndarray | None) -> float:
        """The CSV's ``Epsilon``: e-greedy's epsilon, the policy's mean std on box actions in training (``log_std``
        (K,) of the network), else 0."""
        if self.e_greedy is not None:
            return self.e_greedy.epsilon(phase)
        if self.continuous and phase != RunPhase.TEST and log_std is not None:
            return float(np.exp(log_std).mean())
        return 0.0
