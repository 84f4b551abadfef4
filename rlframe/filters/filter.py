"""Filter stages: named, ordered transformations of observations and rewards.

Coach has three stages, kept here: ``input_filter`` runs on every environment response before it is
stored (its reward output is the "shaped" reward), ``pre_network_filter`` runs on observations right before
a network sees them (stateful normalisers live here), and ``output_filter`` maps agent actions to
environment actions (rlframe has no action filters yet, so it is the identity).

Observation filters take ``(N, D)`` float32 arrays, reward filters ``(N,)`` float32 arrays.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from rlframe.errors import ParameterValueError
from rlframe.parameters import Parameters


class ObservationFilter(Parameters):
    """Base of observation filters."""

    def filter(self, observation: np.ndarray, update: bool) -> np.ndarray:
        """Transform ``observation`` (N, D); update internal statistics first when ``update``."""
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        pass


class RewardFilter(Parameters):
    """Base of reward filters."""

    def filter(self, reward: np.ndarray, update: bool) -> np.ndarray:
        """Transform ``reward`` (N,); update internal statistics first when ``update``."""
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        pass


class InputFilter(Parameters):
    """Observation filters per observation name, then reward filters, each applied in insertion order."""

    def __init__(self) -> None:
        self.observation_filters: "OrderedDict[str, OrderedDict[str, ObservationFilter]]" = OrderedDict()
        self.reward_filters: "OrderedDict[str, RewardFilter]" = OrderedDict()

    def add_observation_filter(self, observation_name: str, filter_name: str, filter: ObservationFilter) -> None:
        if not isinstance(filter, ObservationFilter):
            raise ParameterValueError(
                f"add_observation_filter({observation_name!r}, {filter_name!r}, ...) needs an observation filter such as "
                f"ObservationNormalizationFilter(), got {type(filter).__name__}."
            )
        self.observation_filters.setdefault(observation_name, OrderedDict())[filter_name] = filter

    def add_reward_filter(self, filter_name: str, filter: RewardFilter, add_as_the_first_filter: bool = False) -> None:
        if not isinstance(filter, RewardFilter):
            raise ParameterValueError(
                f"add_reward_filter({filter_name!r}, ...) needs a reward filter such as RewardRescaleFilter(0.1), "
                f"got {type(filter).__name__}."
            )
        self.reward_filters[filter_name] = filter
        if add_as_the_first_filter:
            self.reward_filters.move_to_end(filter_name, last=False)

    @property
    def is_empty(self) -> bool:
        return not self.observation_filters and not self.reward_filters

    def filter_observation(self, observation: np.ndarray, update: bool) -> np.ndarray:
        """Apply the ``'observation'`` filters to a (N, D) batch."""
        for obs_filter in self.observation_filters.get("observation", {}).values():
            observation = obs_filter.filter(observation, update)
        return observation

    def filter_reward(self, reward: np.ndarray, update: bool) -> np.ndarray:
        for reward_filter in self.reward_filters.values():
            reward = reward_filter.filter(reward, update)
        return reward

    def state(self) -> dict[str, np.ndarray]:
        """All filter statistics, keyed ``observation_filters.<obs>.<name>.<field>`` / ``reward_filters.<name>.<field>``."""
        out: dict[str, np.ndarray] = {}
        for obs_name, filters in self.observation_filters.items():
            for name, obs_filter in filters.items():
                for field, value in obs_filter.state().items():
                    out[f"observation_filters.{obs_name}.{name}.{field}"] = value
        for name, reward_filter in self.reward_filters.items():
            for field, value in reward_filter.state().items():
                out[f"reward_filters.{name}.{field}"] = value
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        def with_prefix(prefix: str) -> dict[str, Any]:
            return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}

        for obs_name, filters in self.observation_filters.items():
            for name, obs_filter in filters.items():
                obs_filter.load_state(with_prefix(f"observation_filters.{obs_name}.{name}."))
        for name, reward_filter in self.reward_filters.items():
            reward_filter.load_state(with_prefix(f"reward_filters.{name}."))


class NoInputFilter(InputFilter):
    """An input filter that changes nothing."""


class OutputFilter(Parameters):
    """Maps agent actions to environment actions; rlframe ships no action filters, so this is the identity."""

    def __init__(self) -> None:
        self.action_filters: "OrderedDict[str, Any]" = OrderedDict()


class NoOutputFilter(OutputFilter):
    """An output filter that changes nothing."""
