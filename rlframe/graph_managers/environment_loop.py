"""Playing an environment with an agent: N copies stepped together, each episode's running totals, and GIFs of the
episodes the preset's dump filters choose.

Both graph managers compose it: the online one heats up, trains and evaluates with it; the batch one evaluates its
policy and collects a dataset with it. It knows nothing of schedules, CSV rows or checkpoints: :meth:`EpisodeLoop.step`
plays one step and returns the episodes that finished, and the graph manager decides what they mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from rlframe.agents.contract import AgentContract
from rlframe.core_types import RunPhase
from rlframe.environments.gym_environment import EnvironmentPool
from rlframe.outputs.gifs import EpisodeRecorder


@dataclass
class FinishedEpisode:
    """An episode that ended: the copy that played it, its total and shaped (filtered) reward, its length in steps
    and its discounted return."""

    env_index: int
    total_reward: float
    shaped_reward: float
    length: int
    discounted_return: float


class EpisodeTracker:
    """Running totals of the episode each environment copy is in."""

    def __init__(self, num_envs: int, discount: float) -> None:
        self.discount = discount
        self.reward = np.zeros(num_envs)
        self.shaped = np.zeros(num_envs)
        self.length = np.zeros(num_envs, dtype=np.int64)
        self.discounted = np.zeros(num_envs)
        self.discount_power = np.ones(num_envs)

    def record(self, index: np.ndarray, reward: np.ndarray, shaped: np.ndarray, done: np.ndarray) -> list[FinishedEpisode]:
        self.reward[index] += reward
        self.shaped[index] += shaped
        self.length[index] += 1
        self.discounted[index] += self.discount_power[index] * reward
        self.discount_power[index] *= self.discount
        finished = []
        for i in index[done]:
            finished.append(FinishedEpisode(int(i), float(self.reward[i]), float(self.shaped[i]), int(self.length[i]),
                                            float(self.discounted[i])))
            self.reward[i] = self.shaped[i] = self.discounted[i] = 0.0
            self.length[i] = 0
            self.discount_power[i] = 1.0
        return finished

    def clear(self) -> None:
        self.__init__(len(self.reward), self.discount)  # type: ignore[misc]


class GifRecording:
    """Which episodes become GIFs, and the best total reward seen per phase (kept in checkpoints, so a resumed run
    compares with the same best).

    :param filters: the preset's ``video_dump_filters``.
    :param directory: where GIFs are written.
    :param frame_skip: the environment's frame skip (a GIF's frame duration).
    """

    def __init__(self, filters: list[Any], directory: str, frame_skip: int) -> None:
        self.filters = filters
        self.directory = directory
        self.frame_skip = frame_skip
        self.best_reward: dict[str, float] = {}

    def wants(self, phase: RunPhase) -> bool:
        """Whether episodes of ``phase`` may be dumped (then their frames are recorded)."""
        return all(f.should_capture(phase) for f in self.filters)

    def finish(self, recorder: EpisodeRecorder, phase: RunPhase, number: int, total_reward: float) -> None:
        """An episode recorded by ``recorder`` ended: write its GIF if the filters want it."""
        best = self.best_reward.get(phase.name, -math.inf)
        if all(f.should_dump(phase, number, total_reward, best) for f in self.filters):
            recorder.save(self.directory, number, total_reward)
        self.best_reward[phase.name] = max(best, total_reward)


class EpisodeLoop:
    """One :class:`~rlframe.environments.gym_environment.EnvironmentPool` played by an agent.

    :param pool: the N environment copies (this loop closes them).
    :param discount: gamma of the episodes' discounted returns.
    :param gifs: GIF recording, or None when the run dumps no GIFs.
    """

    def __init__(self, pool: EnvironmentPool, discount: float, gifs: GifRecording | None) -> None:
        self.pool = pool
        self.tracker = EpisodeTracker(pool.num_envs, discount)
        self.gifs = gifs
        self._recorders: dict[int, EpisodeRecorder] = {}

    @property
    def num_envs(self) -> int:
        return self.pool.num_envs

    def step(self, agent: AgentContract, phase: RunPhase,
             max_new_episodes: int | None) -> tuple[int, list[FinishedEpisode]]:
        """Act once in every active copy (training and heatup steps are observed by the agent; evaluation steps only
        have their rewards shaped); returns the steps played and the episodes that ended, in copy order. At most
        ``max_new_episodes`` copies whose episode ended start a new one (None: all of them)."""
        pool = self.pool
        index = np.flatnonzero(pool.active)
        obs = pool.obs[index].copy()
        recording = self.gifs is not None and self.gifs.wants(phase)
        if recording:
            for i in np.flatnonzero(pool.episode_started & pool.active):
                recorder = EpisodeRecorder(self.gifs.frame_skip)  # type: ignore[union-attr]
                recorder.step(partial(pool.render, int(i)))
                self._recorders[int(i)] = recorder
        actions = agent.act(obs, phase)
        result = pool.step(actions, max_new_episodes)
        if phase == RunPhase.TEST:
            shaped = agent.shape_reward(result.reward, update=False)
        else:
            shaped = agent.observe(index, obs, actions, result.reward, result.next_obs, result.terminated,
                                   result.truncated, phase)
        finished = self.tracker.record(index, result.reward, shaped, result.terminated | result.truncated)
        if self._recorders:
            ended = {e.env_index for e in finished}
            for i in index:
                if int(i) in self._recorders and int(i) not in ended:
                    self._recorders[int(i)].step(partial(pool.render, int(i)))
        return len(index), finished

    def episode_numbered(self, episode: FinishedEpisode, phase: RunPhase, number: int) -> None:
        """The graph manager numbered a finished episode: its GIF (if it was recorded) is judged and written now."""
        recorder = self._recorders.pop(episode.env_index, None)
        if recorder is not None and self.gifs is not None:
            self.gifs.finish(recorder, phase, number, episode.total_reward)

    def close(self) -> None:
        self.pool.close()
