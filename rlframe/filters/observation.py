"""Observation filters."""
from __future__ import annotations

import numpy as np

from rlframe.filters.filter import ObservationFilter, RunningMoments


class ObservationNormalizationFilter(ObservationFilter):
    """Running mean/std normalisation, ``clip((obs - mean) / std, clip_min, clip_max)``.

    Statistics carry Coach's prior (a count of 1e-2 of variance 1, std floored at sqrt(1e-2)), so the first
    observations are not blown up by a near-zero std; see :class:`~rlframe.filters.filter.RunningMoments`. Before
    the first update the filter only clips.

    Checkpoint state: ``_count`` (observations plus the prior), ``_mean``, ``_m2`` (sum of squared deviations from
    the mean) and ``_std``, each (D,) float64; checkpoints with Coach's ``_sum``/``_sum_squares`` still load.

    :param clip_min: lower bound of the normalised observation.
    :param clip_max: upper bound of the normalised observation.
    :param name: the filter's name (used in checkpoint file keys).
    """

    _EPSILON = 1e-2

    def __init__(self, clip_min: float = -5.0, clip_max: float = 5.0, name: str = "observation_stats") -> None:
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.name = name
        self._moments = RunningMoments(self._EPSILON)
        self._scale: tuple[np.ndarray, np.ndarray] | None = None  # (mean, std) as float32, for filter()

    @property
    def mean(self) -> np.ndarray:
        """The running mean (D,) float64; zeros(1) before the first update."""
        return self._moments.mean if self._moments.mean is not None else np.zeros(1)

    @property
    def std(self) -> np.ndarray:
        """The running std (D,) float64, floored at sqrt(1e-2); ones(1) before the first update."""
        return self._moments.std() if self._moments.mean is not None else np.ones(1)

    @property
    def scale(self) -> tuple[np.ndarray, np.ndarray]:
        """The float32 (mean, std) that :meth:`filter` normalises with, each (D,); (0, 1) before the first update,
        when the filter only clips."""
        if self._moments.mean is None:
            return np.zeros(1, np.float32), np.ones(1, np.float32)
        if self._scale is None:  # acting filters a few observations per call: compute mean and std once
            self._scale = (self.mean.astype(np.float32), self.std.astype(np.float32))
        return self._scale

    def filter(self, observation: np.ndarray, update: bool) -> np.ndarray:
        if update:
            self._moments.update(observation.reshape(observation.shape[0], -1))
            self._scale = None
        flat = np.asarray(observation, dtype=np.float32).reshape(observation.shape[0], -1)
        if self._moments.mean is not None:
            mean, std = self.scale
            flat = (flat - mean) / std
        # minimum/maximum: np.clip costs ~10 us of dispatch on a small array (numpy < 1.25)
        return np.minimum(np.maximum(flat, self.clip_min), self.clip_max).reshape(observation.shape)

    def state(self) -> dict[str, np.ndarray]:
        return self._moments.state()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._moments.load_state(state)
        self._scale = None
