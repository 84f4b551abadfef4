"""Memory parameters shared by every memory type (coach.md section 1.7)."""
from __future__ import annotations

from enum import Enum
from typing import Any

from rlframe.errors import ParameterValueError
from rlframe.parameters import Parameters, check_range


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


def shown_max_size(max_size: Any) -> str:
    """``max_size`` as a preset writes it: ``(MemoryGranularity.Transitions, 40000)``, not the enum's repr."""
    if isinstance(max_size, tuple) and len(max_size) == 2 and isinstance(max_size[0], MemoryGranularity):
        return f"({max_size[0]}, {max_size[1]!r})"
    return repr(max_size)


def check_max_size(max_size: Any, where: str = "agent_params.memory.max_size") -> None:
    """Check a memory's ``max_size`` is ``(MemoryGranularity, count)`` with a whole count of at least 1.

    A count of 0 or less leaves no room to store anything: a replay buffer of 0 rows fails on its first store
    with a numpy error, and a negative one when it is allocated. None means the memory sets no size.
    """
    if max_size is None:
        return
    if not (isinstance(max_size, tuple) and len(max_size) == 2 and isinstance(max_size[0], MemoryGranularity)):
        raise ParameterValueError(
            f"{where} = {shown_max_size(max_size)}: use (MemoryGranularity.Transitions, <count>) or "
            "(MemoryGranularity.Episodes, <count>), for example (MemoryGranularity.Transitions, 40000)."
        )
    check_range(f"{where}[1]", max_size[1], 1, integer=True, example=40000)
