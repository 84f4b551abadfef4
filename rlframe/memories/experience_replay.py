"""Uniform experience replay: a preallocated numpy ring buffer of transitions (the DQN family's memory).

Each row holds ``obs``, ``action``, ``reward``, ``next_obs`` and the episode-end flags. ``terminated`` and
``truncated`` are stored separately: a time-limit cut is not a terminal state, so the learner still
bootstraps from ``next_obs`` there.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from rlframe.errors import ParameterValueError
from rlframe.memories.memory import MemoryGranularity, MemoryParameters, check_max_size, shown_max_size


class ExperienceReplayParameters(MemoryParameters):
    """Uniform replay with replacement.

    :param max_size: ``(MemoryGranularity.Transitions, capacity)``; the oldest transitions are overwritten.
    :param allow_duplicates_in_batch_sampling: sample with replacement (the only mode rlframe implements).
    """

    def __init__(self) -> None:
        super().__init__()
        self.max_size = (MemoryGranularity.Transitions, 1000000)
        self.allow_duplicates_in_batch_sampling = True


class TransitionBatch(NamedTuple):
    """B transitions: obs (B, D) float32, action (B,) int64 or (B, K) float32, reward (B,) float32,
    next_obs (B, D) float32, terminated (B,) bool, truncated (B,) bool."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


def transition_capacity(max_size: Any, where: str) -> int:
    """Read ``(MemoryGranularity.Transitions, n)`` and return n; any other form is a user error."""
    check_max_size(max_size, where)
    if max_size is None or max_size[0] is not MemoryGranularity.Transitions:
        raise ParameterValueError(
            f"{where} = {shown_max_size(max_size)} is not supported: the replay buffer counts transitions; use "
            "(MemoryGranularity.Transitions, <positive int>), "
            "for example (MemoryGranularity.Transitions, 40000)."
        )
    return int(max_size[1])


class ExperienceReplay:
    """Ring buffer of ``capacity`` transitions with uniform sampling."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...], action_dtype: type) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.action: np.ndarray = np.zeros((capacity, *action_shape), dtype=action_dtype)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.truncated = np.zeros(capacity, dtype=bool)
        self._next = 0
        self._size = 0
        self.num_episodes = 0

    def __len__(self) -> int:
        return self._size

    def store(self, batch: TransitionBatch) -> None:
        """Append B transitions, overwriting the oldest ones when full."""
        count = batch.obs.shape[0]
        index = (self._next + np.arange(count)) % self.capacity
        self.obs[index] = batch.obs
        self.next_obs[index] = batch.next_obs
        self.action[index] = batch.action
        self.reward[index] = batch.reward
        self.terminated[index] = batch.terminated
        self.truncated[index] = batch.truncated
        self._next = int((self._next + count) % self.capacity)
        self._size = min(self._size + count, self.capacity)
        self.num_episodes += int(np.count_nonzero(batch.terminated | batch.truncated))

    def sample(self, batch_size: int, rng: np.random.Generator) -> TransitionBatch:
        """B transitions drawn uniformly with replacement from the filled slots."""
        index = rng.integers(0, self._size, batch_size)
        return TransitionBatch(
            self.obs[index], self.action[index], self.reward[index], self.next_obs[index],
            self.terminated[index], self.truncated[index],
        )

    def state(self) -> dict[str, np.ndarray]:
        """The filled part of the buffer, oldest first, for checkpoints."""
        order = (np.arange(self._size) + (self._next - self._size)) % self.capacity
        return {
            "obs": self.obs[order], "next_obs": self.next_obs[order], "action": self.action[order],
            "reward": self.reward[order], "terminated": self.terminated[order], "truncated": self.truncated[order],
            "num_episodes": np.asarray(self.num_episodes),
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._next = 0
        self._size = 0
        kept = min(len(state["reward"]), self.capacity)
        tail = slice(len(state["reward"]) - kept, None)
        self.store(TransitionBatch(
            state["obs"][tail], state["action"][tail], state["reward"][tail], state["next_obs"][tail],
            state["terminated"][tail], state["truncated"][tail],
        ))
        self.num_episodes = int(state["num_episodes"])
