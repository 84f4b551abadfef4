"""On-policy rollout storage: the transitions of N environment copies, kept in time order per copy.

Clipped PPO stores what it plays here and takes everything out at each update (:meth:`Rollout.drain`).
An episode still running at an update is cut there; its transitions are used (the cut bootstraps from the
value of the last next-observation) and the rest of the episode goes into the next rollout.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class RolloutBatch(NamedTuple):
    """T transitions, each copy's in time order, copies one after another.

    obs (T, D) float32, action (T,) int64 or (T, K) float32, reward (T,) float32, next_obs (T, D) float32,
    terminated (T,) bool, segment_end (T,) bool: the last transition of an episode or of a cut segment
    (GAE does not look past it).
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    segment_end: np.ndarray


class Rollout:
    """Per-copy lists of transitions since the last :meth:`drain`."""

    def __init__(self) -> None:
        self._per_env: dict[int, list[tuple]] = {}
        self.num_transitions = 0
        self.num_episodes = 0

    def store(self, env_index: np.ndarray, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
              next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Append one transition for each copy in ``env_index`` (k,)."""
        for j, i in enumerate(env_index):
            done = bool(terminated[j] or truncated[j])
            self._per_env.setdefault(int(i), []).append(
                (obs[j], action[j], reward[j], next_obs[j], bool(terminated[j]), done)
            )
            self.num_episodes += done
        self.num_transitions += len(env_index)

    def drain(self) -> RolloutBatch:
        """Everything stored, as arrays; the store is left empty."""
        rows = []
        for i in sorted(self._per_env):
            transitions = self._per_env[i]
            if transitions:
                last = transitions[-1]
                transitions[-1] = last[:5] + (True,)  # a cut segment ends here too
                rows.extend(transitions)
        self._per_env = {}
        self.num_transitions = 0
        self.num_episodes = 0
        obs, action, reward, next_obs, terminated, segment_end = zip(*rows)
        return RolloutBatch(
            np.stack(obs).astype(np.float32), np.stack(action), np.asarray(reward, dtype=np.float32),
            np.stack(next_obs).astype(np.float32), np.asarray(terminated), np.asarray(segment_end),
        )
