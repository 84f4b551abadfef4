"""Signal names (the CSV's display names) and their per-row aggregation.

A signal collects samples between two CSV rows and reports ``<name>/Mean``, ``/Stdev``, ``/Max`` and
``/Min`` (empty when it had no samples), as Coach's CSV does.
"""
from __future__ import annotations

import math

import numpy as np

LOSS = "Loss"
LEARNING_RATE = "Learning Rate"
GRADS = "Grads (unclipped)"
DISCOUNTED_RETURN = "Discounted Return"
Q = "Q"

STAT_SUFFIXES = ("Mean", "Stdev", "Max", "Min")


class Signal:
    """Running count, sum, sum of squares, min and max of one signal since the last ``reset``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.total = 0.0
        self.total_squares = 0.0
        self.low = math.inf
        self.high = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.total_squares += value * value
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    def add_many(self, values: "np.ndarray | list[float]") -> None:
        values = np.asarray(values, dtype=np.float64).ravel()
        if not values.size:
            return
        self.count += values.size
        self.total += float(values.sum())
        self.total_squares += float(np.dot(values, values))
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))

    def stats(self) -> dict[str, float | str]:
        if not self.count:
            return {f"{self.name}/{suffix}": "" for suffix in STAT_SUFFIXES}
        mean = self.total / self.count
        variance = max(self.total_squares / self.count - mean * mean, 0.0)
        return {
            f"{self.name}/Mean": mean,
            f"{self.name}/Stdev": math.sqrt(variance),
            f"{self.name}/Max": self.high,
            f"{self.name}/Min": self.low,
        }

    def columns(self) -> list[str]:
        return [f"{self.name}/{suffix}" for suffix in STAT_SUFFIXES]
