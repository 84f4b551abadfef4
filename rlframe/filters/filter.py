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


class RunningMoments:
    """Running count, mean and spread of a stream of batches, merged with the parallel update of Chan et al.

    Each batch is reduced to its own (rows, mean, sum of squared deviations from that mean) and merged into the
    running ones, so the variance never comes from subtracting two large sums of squares: values around 1e6
    with std 1 keep their std to float64 precision, where ``E[x^2] - E[x]^2`` cancels to noise.

    Coach's prior is kept: ``prior_count`` (Coach's 1e-2) pseudo-rows of variance 1, so a first batch of identical
    rows is not divided by a zero std, and a variance floor of ``prior_count``. Unlike Coach's sums the prior
    carries no mean: a pseudo-row at 0 pulled the mean by ``prior_count * mean / rows`` and added
    ``prior_count * mean^2 / rows`` to the variance (std 1250 after 6,400 rows of std 1 around 1e6).

    :param prior_count: the prior's weight in rows; also the floor of the variance.
    """

    def __init__(self, prior_count: float) -> None:
        self.prior_count = prior_count
        self.rows = 0.0
        #: float64, the shape of one row; None before the first row
        self.mean: np.ndarray | None = None
        #: float64 sum of squared deviations of the rows from ``mean``, the shape of one row
        self.m2: np.ndarray | None = None

    def update(self, batch: np.ndarray) -> None:
        """Merge ``batch`` (B, ...): B rows of the shape of one row; B = 0 changes nothing."""
        if batch.shape[0] == 0:
            return
        batch = batch.astype(np.float64)
        added = float(batch.shape[0])
        batch_mean = batch.mean(axis=0)
        batch_m2 = np.square(batch - batch_mean).sum(axis=0)
        if self.mean is None or self.m2 is None:
            self.mean, self.m2 = batch_mean, batch_m2
        else:
            total = self.rows + added
            delta = batch_mean - self.mean
            self.mean = self.mean + delta * (added / total)
            self.m2 = self.m2 + batch_m2 + np.square(delta) * (self.rows * added / total)
        self.rows += added

    @property
    def count(self) -> float:
        """Rows seen plus the prior's (Coach's ``_count``)."""
        return self.rows + self.prior_count

    def std(self) -> np.ndarray:
        """sqrt(max((m2 + prior) / (rows + prior), prior)), float64, the shape of one row (a scalar before the
        first row, when it is 1)."""
        m2 = self.m2 if self.m2 is not None else np.float64(0.0)
        return np.sqrt(np.maximum((m2 + self.prior_count) / self.count, self.prior_count))

    def state(self) -> dict[str, np.ndarray]:
        """``_count`` (Coach's meaning: rows plus the prior), and once rows were seen ``_mean``, ``_m2`` and ``_std``."""
        if self.mean is None or self.m2 is None:
            return {"_count": np.asarray(self.count)}
        return {"_count": np.asarray(self.count), "_mean": self.mean, "_m2": self.m2, "_std": self.std()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Load what :meth:`state` wrote, or the ``_count``/``_sum``/``_sum_squares`` of checkpoints written before
        the parallel update (their statistics, and the precision they had, carry over). An empty ``state`` (a
        filter that had no state in the checkpoint) starts afresh."""
        self.rows = max(float(state.get("_count", self.prior_count)) - self.prior_count, 0.0)
        self.mean = self.m2 = None
        if self.rows <= 0.0:
            self.rows = 0.0
        elif "_m2" in state:
            self.mean = np.asarray(state["_mean"], dtype=np.float64)
            self.m2 = np.asarray(state["_m2"], dtype=np.float64)
        elif "_sum" in state:
            total = np.asarray(state["_sum"], dtype=np.float64)
            self.mean = total / self.rows
            squares = np.asarray(state["_sum_squares"], dtype=np.float64) - self.prior_count  # minus the prior's
            self.m2 = np.maximum(squares - total * self.mean, 0.0)
        else:  # a count without statistics: nothing to continue from
            self.rows = 0.0


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
    """Observation filters per observation name, then reward filters, each applied in insertion order.

    :param observation_filters: observation name -> (filter name -> observation filter), in the order applied.
    :param reward_filters: filter name -> reward filter, in the order applied.
    """

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

    def update_statistics(self, observation: np.ndarray) -> None:
        """Update the stateful ``'observation'`` filters' statistics with a (N, D) batch, as
        ``filter_observation(observation, update=True)`` does, without keeping the output."""
        self.filter_observation(observation, update=True)

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
    """Maps agent actions to environment actions; rlframe ships no action filters, so this is the identity.

    :param action_filters: filter name -> action filter (accepted for Coach compatibility; always empty).
    """

    def __init__(self) -> None:
        self.action_filters: "OrderedDict[str, Any]" = OrderedDict()


class NoOutputFilter(OutputFilter):
    """An output filter that changes nothing."""
