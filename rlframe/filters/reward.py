"""Reward filters. The input filter's reward output is what the CSV calls the *shaped* reward."""
from __future__ import annotations

import numpy as np

from rlframe.filters.filter import RewardFilter, RunningMoments


class RewardRescaleFilter(RewardFilter):
    """Multiply rewards by ``rescale_factor``.

    :param rescale_factor: the factor every reward is multiplied by.
    """

    def __init__(self, rescale_factor: float) -> None:
        self.rescale_factor = rescale_factor

    def filter(self, reward: np.ndarray, update: bool) -> np.ndarray:
        return (reward * self.rescale_factor).astype(np.float32)


class RewardClippingFilter(RewardFilter):
    """Clip rewards to ``[clipping_low, clipping_high]``.

    :param clipping_low: the lowest reward let through (reward units).
    :param clipping_high: the highest reward let through (reward units).
    """

    def __init__(self, clipping_low: float = -np.inf, clipping_high: float = np.inf) -> None:
        self.clipping_low = clipping_low
        self.clipping_high = clipping_high

    def filter(self, reward: np.ndarray, update: bool) -> np.ndarray:
        return np.clip(reward, self.clipping_low, self.clipping_high).astype(np.float32)


class RewardNormalizationFilter(RewardFilter):
    """Divide rewards by their running std, clipped to ``[clip_min, clip_max]``.

    The std carries Coach's prior (a count of 1e-2 of variance 1, variance floored at 1e-2; see
    :class:`~rlframe.filters.filter.RunningMoments`), so it is 1 before the first update. Checkpoint state:
    ``_count``, ``_mean``, ``_m2``, ``_std`` (scalars); checkpoints with ``_sum``/``_sum_squares`` still load.

    :param clip_min: lower bound of the normalised reward.
    :param clip_max: upper bound of the normalised reward.
    """

    def __init__(self, clip_min: float = -5.0, clip_max: float = 5.0) -> None:
        self.clip_min = clip_min
        self.clip_max = clip_max
        self._moments = RunningMoments(1e-2)

    def filter(self, reward: np.ndarray, update: bool) -> np.ndarray:
        if update:
            self._moments.update(np.ravel(reward))
        return np.clip(reward / self._moments.std(), self.clip_min, self.clip_max).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return self._moments.state()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._moments.load_state(state)
