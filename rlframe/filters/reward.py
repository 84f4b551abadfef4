"""Reward filters. The input filter's reward output is what the CSV calls the *shaped* reward."""
from __future__ import annotations

import numpy as np

from rlframe.filters.filter import RewardFilter


class RewardRescaleFilter(RewardFilter):
    """Multiply rewards by ``rescale_factor``."""

    def __init__(self, rescale_factor: float) -> None:
        self.rescale_factor = rescale_factor

    def filter(self, reward: np.ndarray, update: bool) -> np.ndarray:
        return (reward * self.rescale_factor).astype(np.float32)


class RewardClippingFilter(RewardFilter):
    """Clip rewards to ``[clipping_low, clipping_high]``."""

    def __init__(self, clipping_low: float = -np.inf, clipping_high: float = np.inf) -> None:
        self.clipping_low = clipping_low
        self.clipping_high = clipping_high

    def filter(self, reward: np.ndarray, update: bool) -> np.ndarray:
        return np.clip(reward, self.clipping_low, self.clipping_high).astype(np.float32)


class RewardNormalizationFilter(RewardFilter):
    """Divide rewards by their running std, clipped to ``[clip_min, clip_max]``."""

    def __init__(self, clip_min: float = -5.0, clip_max: float = 5.0) -> None:
        self.clip_min = clip_min
        self.clip_max = clip_max
        self._count = 1e-2
        self._sum = 0.0
        self._sum_squares = 1e-2

    def filter(self, reward: np.ndarray, update: bool) -> np.ndarray:
        if update:
            self._count += reward.size
            self._sum += float(reward.sum())
            self._sum_squares += float(np.square(reward).sum())
        mean = self._sum / self._count
        std = np.sqrt(max(self._sum_squares / self._count - mean * mean, 1e-2))
        return np.clip(reward / std, self.clip_min, self.clip_max).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"_count": np.asarray(self._count), "_sum": np.asarray(self._sum), "_sum_squares": np.asarray(self._sum_squares)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        if state:
            self._count = float(state["_count"])
            self._sum = float(state["_sum"])
            self._sum_squares = float(state["_sum_squares"])
