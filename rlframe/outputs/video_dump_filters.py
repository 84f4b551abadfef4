"""Dump filters: which finished episodes become GIFs. An episode is recorded only if every filter agrees.

Frames are captured for every episode that could qualify (the phase filter is checked up front); the other
filters decide at the episode's end, when its total reward is known.
"""
from __future__ import annotations

from rlframe.core_types import RunPhase
from rlframe.parameters import Parameters


class VideoDumpFilter(Parameters):
    """Base: ``should_capture(phase)`` before an episode, ``should_dump(...)`` at its end."""

    def should_capture(self, phase: RunPhase) -> bool:
        return True

    def should_dump(self, phase: RunPhase, episode: int, total_reward: float, best_reward: float) -> bool:
        return True


class AlwaysDumpFilter(VideoDumpFilter):
    """Record every episode."""


class SelectedPhaseOnlyDumpFilter(VideoDumpFilter):
    """Record episodes of the given phase(s) only.

    :param run_phases: the ``RunPhase`` (or list of them) whose episodes may be recorded, e.g. ``RunPhase.TEST``.
    """

    def __init__(self, run_phases: RunPhase | list[RunPhase]) -> None:
        self.run_phases = run_phases if isinstance(run_phases, list) else [run_phases]

    def should_capture(self, phase: RunPhase) -> bool:
        return phase in self.run_phases

    def should_dump(self, phase: RunPhase, episode: int, total_reward: float, best_reward: float) -> bool:
        return phase in self.run_phases


class MaxDumpFilter(VideoDumpFilter):
    """Record an episode only if its total reward is a new maximum among the episodes seen so far."""

    def should_dump(self, phase: RunPhase, episode: int, total_reward: float, best_reward: float) -> bool:
        return total_reward > best_reward


class EveryNEpisodesDumpFilter(VideoDumpFilter):
    """Record every ``num_episodes_between_dumps``-th episode.

    :param num_episodes_between_dumps: record an episode whose number is a multiple of this (episodes).
    """

    def __init__(self, num_episodes_between_dumps: int) -> None:
        self.num_episodes_between_dumps = num_episodes_between_dumps

    def should_dump(self, phase: RunPhase, episode: int, total_reward: float, best_reward: float) -> bool:
        return episode % self.num_episodes_between_dumps == 0
