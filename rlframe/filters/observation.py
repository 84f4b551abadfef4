"""Observation filters."""
from __future__ import annotations

import numpy as np

from rlframe.filters.filter import ObservationFilter


class ObservationNormalizationFilter(ObservationFilter):
    """Running mean/std normalisation, ``clip((obs - mean) / std, clip_min, clip_max)``.

    Statistics start at a count of 1e-2 with std floored at sqrt(1e-2), as in Coach's numpy
    implementation, so the first observations are not blown up by a near-zero std.

    :param clip_min: lower bound of the normalised observation.
    :param clip_max: upper bound of the normalised observation.
    :param name: the filter's name (used in checkpoint file keys).
    """

    _EPSILON = 1e-2

    def __init__(self, clip_min: float = -5.0, clip_max: float = 5.0, name: str = "observation_stats") -> None:
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.name = name
        self._count = self._EPSILON
        self._sum: np.ndarray | None = None
        self._sum_squares: np.ndarray | None = None
        self._scale: tuple[np.ndarray, np.ndarray] | None = None  # (mean, std) as float32, for filter()

    def _update(self, observation: np.ndarray) -> None:
        batch = observation.reshape(observation.shape[0], -1).astype(np.float64)
        if self._sum is None:
            self._sum = np.zeros(batch.shape[1])
            self._sum_squares = np.full(batch.shape[1], self._EPSILON)
        self._count += batch.shape[0]
        self._sum += batch.sum(axis=0)
        self._sum_squares += np.square(batch).sum(axis=0)
        self._scale = None

    @property
    def mean(self) -> np.ndarray:
        return self._sum / self._count if self._sum is not None else np.zeros(1)

    @property
    def std(self) -> np.ndarray:
        if self._sum is None:
            return np.ones(1)
        variance = np.maximum(self._sum_squares / self._count - np.square(self.mean), self._EPSILON)
        return np.sqrt(variance)

    @property
    def scale(self) -> tuple[np.ndarray, np.ndarray]:
        """The float32 (mean, std) that :meth:`filter` normalises with, each (D,); (0, 1) before the first update,
        when the filter only clips."""
        if self._sum is None:
            return np.zeros(1, np.float32), np.ones(1, np.float32)
        if self._scale is None:  # acting filters a few observations per call: compute mean and std once
            self._scale = (self.mean.astype(np.float32), self.std.astype(np.float32))
        return self._scale

    def filter(self, observation: np.ndarray, update: bool) -> np.ndarray:
        if update:
            self._update(observation)
        flat = np.asarray(observation, dtype=np.float32).reshape(observation.shape[0], -1)
        if self._sum is not None:
            mean, std = self.scale
            flat = (flat - mean) / std
        # minimum/maximum: np.clip costs ~10 us of dispatch on a small array (numpy < 1.25)
        return np.minimum(np.maximum(flat, self.clip_min), self.clip_max).reshape(observation.shape)

    def state(self) -> dict[str, np.ndarray]:
        if self._sum is None:
            return {"_count": np.asarray(self._count)}
        return {
            "_count": np.asarray(self._count),
            "_sum": self._sum,
            "_sum_squares": self._sum_squares,
            "_mean": self.mean,
            "_std": self.std,
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._count = float(state.get("_count", self._EPSILON))
        self._sum = np.asarray(state["_sum"], dtype=np.float64) if "_sum" in state else None
        self._sum_squares = np.asarray(state["_sum_squares"], dtype=np.float64) if "_sum_squares" in state else None
        self._scale = None
