"""Episode GIFs: ``gifs/<YYYY-MM-DD-HH-MM-SS>_episode-<n>_score-<r>.gif``.

Every ``max(1, int(5 / frame_skip))``-th frame is kept and played at 10 frames per second, as Coach does,
but with the frame duration given in milliseconds (Coach passed seconds where milliseconds were expected).
Long episodes keep memory bounded: past ``MAX_FRAMES`` frames every other frame is dropped and the frame
duration doubles, so playback speed stays right.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import imageio.v3 as iio
import numpy as np

from rlframe.outputs.atomic import atomic_path

FRAME_DURATION_MS = 100
MAX_FRAMES = 600


class EpisodeRecorder:
    """Frames of one episode of one environment copy."""

    def __init__(self, frame_skip: int = 1) -> None:
        self.base_stride = max(1, int(5 / max(1, frame_skip)))
        self.stride = self.base_stride
        self.frames: list[np.ndarray] = []
        self._step = 0

    def step(self, render: Callable[[], np.ndarray]) -> None:
        """Count one environment step; ``render`` is called only for the frames that are kept."""
        if self._step % self.stride == 0:
            self.frames.append(render())
            if len(self.frames) > MAX_FRAMES:
                self.frames = self.frames[::2]
                self.stride *= 2
        self._step += 1

    @property
    def frame_duration_ms(self) -> int:
        return FRAME_DURATION_MS * self.stride // self.base_stride

    def save(self, directory: str, episode: int, score: float) -> str:
        """Write the GIF atomically and return its path."""
        os.makedirs(directory, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
        path = os.path.join(directory, f"{stamp}_episode-{episode}_score-{score:g}.gif")
        with atomic_path(path) as tmp:
            iio.imwrite(tmp, np.stack(self.frames), extension=".gif", duration=self.frame_duration_ms, loop=0)
        return path
