"""Space descriptions shared by environments, filters and network heads.

Environments describe themselves with these (built from gymnasium spaces); a batch-RL preset with no
environment writes them by hand, as Coach presets do::

    SpacesDefinition(state=StateSpace({'observation': VectorObservationSpace(shape=4)}), goal=None,
                     action=DiscreteActionSpace(2), reward=RewardSpace(1))
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rlframe.errors import EnvironmentLevelError


class Space:
    """Base of all spaces: a shape, and bounds where they exist."""

    def __init__(self, shape: int | tuple[int, ...], low: Any = -np.inf, high: Any = np.inf) -> None:
        self.shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        self.low = np.broadcast_to(np.asarray(low, dtype=np.float32), self.shape).copy()
        self.high = np.broadcast_to(np.asarray(high, dtype=np.float32), self.shape).copy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape})"


class VectorObservationSpace(Space):
    """A flat vector observation of ``shape`` features."""


class ObservationSpace(Space):
    """Any other array observation (flattened by the embedder)."""


class StateSpace:
    """Named observation spaces; rlframe's agents read the ``'observation'`` entry."""

    def __init__(self, sub_spaces: dict[str, Space]) -> None:
        self.sub_spaces = dict(sub_spaces)

    def __getitem__(self, key: str) -> Space:
        return self.sub_spaces[key]

    def __repr__(self) -> str:
        return f"StateSpace({self.sub_spaces!r})"


class ActionSpace(Space):
    """Base of action spaces."""


class DiscreteActionSpace(ActionSpace):
    """``num_actions`` actions numbered 0..A-1."""

    def __init__(self, num_actions: int, descriptions: Any = None) -> None:
        super().__init__(shape=(), low=0, high=num_actions - 1)
        self.num_actions = int(num_actions)
        self.descriptions = descriptions

    def __repr__(self) -> str:
        return f"DiscreteActionSpace({self.num_actions})"


class BoxActionSpace(ActionSpace):
    """A continuous action vector of ``shape`` within ``[low, high]``."""

    def __init__(self, shape: int | tuple[int, ...], low: Any = -np.inf, high: Any = np.inf,
                 descriptions: Any = None) -> None:
        super().__init__(shape, low, high)
        self.descriptions = descriptions


class RewardSpace(Space):
    """A scalar reward."""

    def __init__(self, shape: int = 1, reward_success_threshold: float | None = None) -> None:
        super().__init__(shape)
        self.reward_success_threshold = reward_success_threshold


class SpacesDefinition:
    """State, goal, action and reward spaces of an environment."""

    def __init__(self, state: StateSpace, goal: Any, action: ActionSpace, reward: RewardSpace) -> None:
        self.state = state
        self.goal = goal
        self.action = action
        self.reward = reward

    @property
    def observation_size(self) -> int:
        """D: the flattened size of the ``'observation'`` entry."""
        return int(np.prod(self.state["observation"].shape))

    def __repr__(self) -> str:
        return f"SpacesDefinition(state={self.state!r}, action={self.action!r})"


def spaces_from_gymnasium(observation_space: Any, action_space: Any, level: str) -> SpacesDefinition:
    """Describe a gymnasium environment's spaces; only Box observations and Discrete/Box actions are supported."""
    import gymnasium as gym

    if not isinstance(observation_space, gym.spaces.Box):
        raise EnvironmentLevelError(
            f"Environment {level!r} has a {type(observation_space).__name__} observation space; rlframe supports "
            "Box observations. Wrap the environment so it returns a Box (for example with FlattenObservation)."
        )
    observation = VectorObservationSpace(observation_space.shape, observation_space.low, observation_space.high)
    state = StateSpace({"observation": observation})
    if isinstance(action_space, gym.spaces.Discrete):
        action: ActionSpace = DiscreteActionSpace(int(action_space.n))
    elif isinstance(action_space, gym.spaces.Box):
        action = BoxActionSpace(action_space.shape, action_space.low, action_space.high)
    else:
        raise EnvironmentLevelError(
            f"Environment {level!r} has a {type(action_space).__name__} action space; rlframe supports Discrete and Box."
        )
    return SpacesDefinition(state=state, goal=None, action=action, reward=RewardSpace(1))
