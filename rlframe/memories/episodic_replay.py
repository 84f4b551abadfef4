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
    """The batched steps stored since the last :meth:`drain`, as they came (one array per step)."""

    def __init__(self) -> None:
        self._steps: list[tuple[np.ndarray, ...]] = []
        self.num_transitions = 0
        self.num_episodes = 0

    def store(self, env_index: np.ndarray, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
              next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Append one transition for each copy in ``env_index`` (k,)."""
        done = np.logical_or(terminated, truncated)
        self._steps.append((np.asarray(env_index), np.array(obs, dtype=np.float32), np.array(action),
                            np.asarray(reward, dtype=np.float32), np.array(next_obs, dtype=np.float32),
                            np.asarray(terminated, dtype=bool), done))
        self.num_transitions += len(env_index)
        self.num_episodes += int(done.sum())

    def observations(self, row_shape: tuple[int, ...]) -> np.ndarray:
        """The observations stored so far (T, *row_shape) float32, in the order stored (the store is unchanged);
        (0, *row_shape) when it is empty."""
        if not self._steps:
            return np.zeros((0, *row_shape), dtype=np.float32)
        return np.concatenate([step[1] for step in self._steps])

    def drain(self) -> RolloutBatch:
        """Everything stored, as arrays, each copy's transitions in time order; the store is left empty."""
        env, obs, action, reward, next_obs, terminated, done = (np.concatenate(column) for column in zip(*self._steps))
        self._steps = []
        self.num_transitions = 0
        self.num_episodes = 0
        order = np.argsort(env, kind="stable")  # stable: time order within a copy is kept
        env = env[order]
        last_of_copy = np.append(env[1:] != env[:-1], True)  # a cut segment ends there too
        return RolloutBatch(obs[order], action[order], reward[order], next_obs[order], terminated[order],
                            done[order] | last_of_copy)
