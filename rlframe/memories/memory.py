"""Memory parameters shared by every memory type (coach.md section 1.7)."""
from __future__ import annotations

from enum import Enum
from typing import Any

from rlframe.parameters import Parameters


class MemoryGranularity(Enum):
    """The unit of ``max_size``: ``(MemoryGranularity.Transitions, 40000)``."""

    Transitions = 0
    Episodes = 1


class MemoryParameters(Parameters):
    """Base of memory parameters.

    :param max_size: ``(MemoryGranularity, count)``.
    :param shared_memory: accepted for Coach compatibility.
    :param load_memory_from_file_path: a dataset to fill the memory from (batch RL).
    """

    def __init__(self) -> None:
        self.max_size: Any = None
        self.shared_memory = False
        self.load_memory_from_file_path: Any = None


class EpisodicExperienceReplayParameters(MemoryParameters):
    """Whole episodes in order (Clipped PPO, batch RL).

    :param n_step: accepted for Coach compatibility (-1 = Monte-Carlo returns).
    :param train_to_eval_ratio: share of episodes used for training in batch RL.
    """

    def __init__(self) -> None:
        super().__init__()
        self.max_size = (MemoryGranularity.Transitions, 1000000)
        self.n_step = -1
        self.train_to_eval_ratio = 1
