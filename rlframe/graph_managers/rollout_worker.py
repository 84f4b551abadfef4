"""The acting side of a distributed run: a rollout worker plays its own environment copies with a copy of the agent,
and a :class:`WorkerPool` runs N of them somewhere (``rlframe.integrations.ray_rollouts`` runs them as Ray actors).

The learner (the graph manager's agent, in the driver process) never acts in such a run. A worker acts with an agent
built from the same parameters, loading the learner's :meth:`~rlframe.agents.contract.AgentContract.acting_state`
(weights, filter statistics, exploration schedules) before each request; it returns what it played as a
:class:`Rollout`, step by step, and the learner observes it as if it had acted itself
(:class:`~rlframe.graph_managers.basic_rl.BasicRLGraphManager`). Evaluation episodes are played on the workers too
and come back as finished episodes.

A worker holds nothing that a run must keep: a worker that dies loses at most the rollout it was playing, and a
resumed run may use another number of workers.
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from rlframe.agents.contract import AgentCheckpoint, AgentContract
from rlframe.core_types import RunPhase
from rlframe.environments.gym_environment import EnvironmentPool, make_env_factory
from rlframe.graph_managers.environment_loop import EpisodeLoop, FinishedEpisode
from rlframe.memories.experience_replay import TransitionBatch
from rlframe.parameters import AgentParameters
from rlframe.spaces import SpacesDefinition

#: worker i's training copies are first reset with seeds from ``seed + WORKER_SEED_STRIDE * i``
WORKER_SEED_STRIDE = 1000


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker is built from (pickled once and sent to each).

    :param agent_params: the preset's agent parameters (the worker builds its own agent from a copy).
    :param env_params: the preset's environment parameters.
    :param search_dirs: folders environment modules are looked up in (the preset's, the shipped ones).
    :param preset_file: the preset file, imported first so environments it registers exist in the worker.
    :param num_envs: environment copies each worker plays.
    :param seed: the run's seed.
    :param evaluation_seed_offset: evaluation copies are seeded from ``seed + evaluation_seed_offset``, then per
        worker as the training copies.
    :param discount: gamma of the episodes' discounted returns.
    """

    agent_params: AgentParameters
    env_params: Any
    search_dirs: list[Path]
    preset_file: str | None
    num_envs: int
    seed: int
    evaluation_seed_offset: int
    discount: float


@dataclass
class Rollout:
    """What a worker played in the heatup or training phase, as T batched steps of its copies.

    Step t covers rows ``offsets[t]:offsets[t + 1]`` of ``env_index`` (the copies that acted) and of
    ``transitions`` (raw observations, actions, raw rewards, raw next observations, terminated and truncated flags).
    """

    offsets: np.ndarray
    env_index: np.ndarray
    transitions: TransitionBatch

    @property
    def num_steps(self) -> int:
        """Environment steps played (summed over the copies)."""
        return int(self.offsets[-1])

    def steps(self) -> list[tuple[np.ndarray, ...]]:
        """Each batched step as (env_index, obs, action, reward, next_obs, terminated, truncated)."""
        arrays = (self.env_index, *self.transitions)
        return [tuple(a[begin:end] for a in arrays) for begin, end in zip(self.offsets[:-1], self.offsets[1:])]


@dataclass
class _Recording:
    offsets: list[int] = field(default_factory=lambda: [0])
    columns: list[list[np.ndarray]] = field(default_factory=lambda: [[] for _ in range(7)])

    def add(self, *arrays: np.ndarray) -> None:
        for column, array in zip(self.columns, arrays):
            column.append(array)
        self.offsets.append(self.offsets[-1] + len(arrays[0]))

    def rollout(self) -> Rollout:
        index, *transitions = (np.concatenate(c) for c in self.columns)
        return Rollout(np.asarray(self.offsets, dtype=np.int64), index, TransitionBatch(*transitions))


class RolloutWorker:
    """One worker: its training and evaluation copies of the environment and a copy of the agent.

    :param spec: what the run's workers are built from.
    :param index: this worker's number, 1 to N (0 is the learner), which seeds its copies.
    """

    def __init__(self, spec: WorkerSpec, index: int) -> None:
        for folder in spec.search_dirs:  # the user's modules beside the preset, as in the driver
            if str(folder) not in sys.path:
                sys.path.append(str(folder))
        if spec.preset_file is not None:
            from rlframe.presets import load_preset

            load_preset(spec.preset_file)  # registers the environments the preset registers
        self.spec = spec
        self.index = index
        self._make_env = make_env_factory(spec.env_params, spec.search_dirs, False)
        seed = spec.seed + WORKER_SEED_STRIDE * index
        self._train = EpisodeLoop(EnvironmentPool(self._make_env, spec.num_envs, seed), spec.discount, None)
        self._eval: EpisodeLoop | None = None
        self.spaces: SpacesDefinition = self._train.pool.spaces(spec.env_params.level)
        self.agent: AgentContract = spec.agent_params.agent_class(copy.deepcopy(spec.agent_params), self.spaces,
                                                                  np.random.default_rng(seed))

    def load(self, state: AgentCheckpoint | None) -> None:
        """Act as the learner whose acting state this is (None: keep the current one)."""
        if state is not None:
            self.agent.load_acting_state(state)

    def play(self, state: AgentCheckpoint | None, phase: RunPhase, steps: int, episodes: int | None = None,
             finish_episodes: bool = False) -> Rollout:
        """Play ``phase`` until ``steps`` environment steps (or ``episodes`` finished episodes, when given) have been
        played; with ``finish_episodes``, then until every running episode has ended (heatup), after which the copies
        start new ones for the next request."""
        self.load(state)
        pool, agent = self._train.pool, self.agent
        recording = _Recording()
        played = finished = 0
        while True:
            reached = played >= steps if episodes is None else finished >= episodes
            if reached and (not finish_episodes or not pool.active.any()):
                break
            index = np.flatnonzero(pool.active)
            obs = pool.obs[index].copy()
            actions = agent.act(obs, phase)
            result = pool.step(actions, 0 if reached and finish_episodes else None)
            done = result.terminated | result.truncated
            recording.add(index, obs, actions, result.reward, result.next_obs, result.terminated, result.truncated)
            played += len(index)
            finished += int(np.count_nonzero(done))
        if finish_episodes:
            pool.reopen()
        return recording.rollout()

    def evaluate(self, state: AgentCheckpoint | None, steps: int, by_episodes: bool) -> list[FinishedEpisode]:
        """Play whole evaluation episodes: ``steps`` of them (``by_episodes``), or until ``steps`` environment steps
        and the episodes running then have ended; returns them in the order they ended."""
        self.load(state)
        if self._eval is None:
            seed = self.spec.seed + self.spec.evaluation_seed_offset + WORKER_SEED_STRIDE * self.index
            self._eval = EpisodeLoop(EnvironmentPool(self._make_env, self.spec.num_envs, seed), self.spec.discount,
                                     None)
        loop = self._eval
        pool = loop.pool
        loop.tracker.clear()
        pool.restart(min(pool.num_envs, steps) if by_episodes else pool.num_envs)
        started, played = int(pool.active.sum()), 0
        results: list[FinishedEpisode] = []
        while pool.active.any():
            quota = steps - started if by_episodes else (0 if played >= steps else None)
            count, finished = loop.step(self.agent, RunPhase.TEST, quota)
            played += count
            started += int(pool.episode_started.sum())
            results.extend(finished)
        return results

    def close(self) -> None:
        self._train.close()
        if self._eval is not None:
            self._eval.close()


class WorkerLost(Exception):
    """A worker died (its process was killed, its host went away) while it held a request; what it was playing is
    lost. ``replaced`` says whether it is being restarted (else the run goes on with fewer workers)."""

    def __init__(self, worker: int, reason: str, replaced: bool) -> None:
        super().__init__(f"worker {worker} was lost ({reason})")
        self.worker = worker
        self.reason = reason
        self.replaced = replaced


class WorkerPool(Protocol):
    """N :class:`RolloutWorker` s running somewhere, numbered 1 to N.

    Requests carry the learner's latest published acting state to a worker that has not got it yet, so a
    restarted worker catches up by itself.
    """

    def start(self, spec: WorkerSpec) -> None:
        """Start the workers."""

    @property
    def workers(self) -> list[int]:
        """The workers still in the run."""

    def describe(self) -> str:
        """One line on where the workers run (for the log)."""

    def publish(self, state: AgentCheckpoint) -> None:
        """The learner's acting state that every later request carries to workers that do not have it."""

    def play(self, worker: int, phase: RunPhase, steps: int, episodes: int | None = None,
             finish_episodes: bool = False) -> None:
        """Ask ``worker`` for a :meth:`RolloutWorker.play`; its answer comes from :meth:`next_result`."""

    def evaluate(self, worker: int, steps: int, by_episodes: bool) -> None:
        """Ask ``worker`` for a :meth:`RolloutWorker.evaluate`; its answer comes from :meth:`next_result`."""

    def next_result(self, stop: Callable[[], bool]) -> tuple[int, Any] | None:
        """The next answer, as (worker, result), in the order they arrive; a lost worker's answer is a
        :class:`WorkerLost`. None when ``stop()`` turned true while waiting, or no request is outstanding."""

    def cancel(self) -> None:
        """Forget the outstanding requests (a stopped run)."""

    def close(self) -> None:
        """Stop the workers."""
