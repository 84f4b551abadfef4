"""Rollout workers as Ray actors: ``rlframe-train --num-workers N`` (``-n``, a launcher's ``num_workers``).

:class:`RayWorkerPool` is the :class:`~rlframe.graph_managers.rollout_worker.WorkerPool` of a distributed run: it
starts a local Ray instance (or joins the cluster at ``--ray-address`` / ``RLFRAME_RAY_ADDRESS``, as a SageMaker
multi-instance job's leader does), places N :class:`~rlframe.graph_managers.rollout_worker.RolloutWorker` actors
spread over the nodes, one CPU each, and passes requests and answers. The learner's acting state goes into Ray's
object store once per publication; a request carries it to a worker that does not have it yet.

Faults: Ray restarts a worker whose process dies (``max_restarts=-1``); the request it held comes back as a
:class:`~rlframe.graph_managers.rollout_worker.WorkerLost` and the graph manager drops that rollout. When the
cluster no longer has a CPU for every worker (a host went away), the lost worker is retired instead and the run goes
on with fewer.

Only this module imports Ray, and only a run with more than one worker imports this module.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError

from rlframe.agents.contract import AgentCheckpoint
from rlframe.core_types import RunPhase
from rlframe.errors import ParameterValueError, RlframeError
from rlframe.graph_managers.rollout_worker import RolloutWorker, WorkerLost, WorkerSpec

#: the cluster a distributed run joins when ``--ray-address`` is not given (set by a SageMaker job's leader)
ADDRESS_VARIABLE = "RLFRAME_RAY_ADDRESS"
#: seconds between two looks at the stop request while waiting for workers
POLL_SECONDS = 0.25
#: seconds a lost worker has to come back (Ray restarts a killed process within a second or two) before it is retired
RESTART_SECONDS = 120.0


class WorkerFailed(RlframeError):
    """A worker raised an error (the environment or the agent failed there): one line naming the worker and it."""

    exit_code = 1  # the run failed, as a run whose environment fails in this process does


class _RemoteWorker:
    """The actor around a :class:`RolloutWorker` (methods return plain data)."""

    def __init__(self, spec: WorkerSpec, index: int) -> None:
        self.worker = RolloutWorker(spec, index)

    def where(self) -> tuple[int, str, str]:
        """This worker's pid, its node's address and its node's id (nodes on one machine share the address)."""
        return os.getpid(), ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()

    def play(self, state: AgentCheckpoint | None, *args: Any) -> Any:
        return self.worker.play(state, *args)

    def evaluate(self, state: AgentCheckpoint | None, *args: Any) -> Any:
        return self.worker.evaluate(state, *args)


def _cause(exc: BaseException) -> str:
    """The one line of an error raised inside a worker."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return str(cause) if isinstance(cause, RlframeError) else f"{type(cause).__name__}: {cause}"
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


class RayWorkerPool:
    """N rollout workers as Ray actors.

    :param num_workers: N (2 or more).
    :param address: a Ray cluster to join (``host:port``, or ``auto``); None starts a local Ray instance with a CPU
        per worker (at least the machine's CPUs), unless ``RLFRAME_RAY_ADDRESS`` names a cluster.
    """

    def __init__(self, num_workers: int, address: str | None = None) -> None:
        if num_workers < 2:
            raise ParameterValueError(f"--num-workers {num_workers}: a distributed run needs 2 or more workers.")
        self.num_workers = num_workers
        self.address = address or os.environ.get(ADDRESS_VARIABLE) or None
        self._actors: dict[int, Any] = {}
        self._where: dict[int, tuple[int, str, str]] = {}
        self._state: Any = None
        self._version = 0
        self._has_version: dict[int, int] = {}
        self._outstanding: dict[Any, int] = {}  # the reference of each request's answer -> its worker
        self._started_ray = False

    # ---- starting and stopping -------------------------------------------------------------------------
    def start(self, spec: WorkerSpec) -> None:
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
                                   "configure_logging": True}
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:  # "local": a new instance even when this machine already runs a Ray cluster (ray start)
                ray.init(address="local", num_cpus=max(os.cpu_count() or 1, self.num_workers), **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise RlframeError(f"Could not start {where} for --num-workers {self.num_workers}: {exc}") from exc
        self._started_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < self.num_workers:
            fix = (f"use --num-workers {cpus} or fewer, or add nodes" if cpus >= 2
                   else "add nodes, or train in one process (-n 1)")
            raise ParameterValueError(f"--num-workers {self.num_workers}: the Ray cluster at {self.address} has {cpus} "
                                      f"CPUs and each worker takes one; {fix}.")
        remote = ray.remote(_RemoteWorker).options(num_cpus=1, scheduling_strategy="SPREAD", max_restarts=-1,
                                                   max_task_retries=0)
        # the spec by value: an actor Ray restarts is built again from its arguments (ray-project/ray#53727)
        self._actors = {i: remote.remote(spec, i) for i in range(1, self.num_workers + 1)}
        places = self._gather({i: actor.where.remote() for i, actor in self._actors.items()})
        self._where = dict(places)

    def describe(self) -> str:
        nodes = {node for _, _, node in self._where.values()}
        placed = ", ".join(f"worker {i} pid {pid} on {ip}" for i, (pid, ip, _) in sorted(self._where.items()))
        return (f"{len(self._where)} rollout workers on {len(nodes)} node{'s' if len(nodes) > 1 else ''}: {placed}")

    def close(self) -> None:
        self._outstanding.clear()
        if self._started_ray:
            for actor in self._actors.values():
                ray.kill(actor, no_restart=True)
            self._actors.clear()
            ray.shutdown()
            self._started_ray = False

    # ---- requests -----------------------------------------------------------------------------------
    @property
    def workers(self) -> list[int]:
        return sorted(self._actors)

    def publish(self, state: AgentCheckpoint) -> None:
        self._state = ray.put(state)
        self._version += 1

    def _state_for(self, worker: int) -> Any:
        if self._has_version.get(worker) == self._version:
            return None
        self._has_version[worker] = self._version
        return self._state

    def play(self, worker: int, phase: RunPhase, steps: int, episodes: int | None = None,
             finish_episodes: bool = False) -> None:
        ref = self._actors[worker].play.remote(self._state_for(worker), phase, steps, episodes, finish_episodes)
        self._outstanding[ref] = worker

    def evaluate(self, worker: int, steps: int, by_episodes: bool) -> None:
        ref = self._actors[worker].evaluate.remote(self._state_for(worker), steps, by_episodes)
        self._outstanding[ref] = worker

    def next_result(self, stop: Callable[[], bool]) -> tuple[int, Any] | None:
        while self._outstanding:
            if stop():
                return None
            ready, _ = ray.wait(list(self._outstanding), num_returns=1, timeout=POLL_SECONDS)
            if not ready:
                continue
            worker = self._outstanding.pop(ready[0])
            try:
                return worker, ray.get(ready[0])
            except RayTaskError as exc:
                raise WorkerFailed(f"Rollout worker {worker} failed: {_cause(exc)}") from exc
            except RayActorError as exc:
                return worker, self._lost(worker, exc)
        return None

    def cancel(self) -> None:
        # An actor runs its requests in order, so a later request simply waits for these; their answers are dropped.
        self._outstanding.clear()

    def _lost(self, worker: int, exc: RayActorError) -> WorkerLost:
        self._has_version.pop(worker, None)  # a restarted worker has no acting state
        pid, ip, _ = self._where.get(worker, (0, "?", ""))
        reason = f"pid {pid} on {ip} died" if isinstance(exc, ActorUnavailableError) else _cause(exc)
        if self._restarted(worker):
            pid, ip, _ = self._where[worker]
            return WorkerLost(worker, f"{reason}; Ray restarted it as pid {pid} on {ip}", replaced=True)
        ray.kill(self._actors.pop(worker), no_restart=True)
        self._where.pop(worker, None)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        return WorkerLost(worker, f"{reason}; the cluster has {cpus} CPUs for {len(self._actors) + 1} workers",
                          replaced=False)

    def _restarted(self, worker: int) -> bool:
        """Wait for Ray to restart ``worker``; whether it did (within :data:`RESTART_SECONDS`)."""
        deadline = time.monotonic() + RESTART_SECONDS
        answer = self._actors[worker].where.remote()
        while time.monotonic() < deadline:
            if int(ray.cluster_resources().get("CPU", 0)) < len(self._actors):
                return False  # its host is gone and no other has a CPU for it: Ray would wait for one forever
            try:
                self._where[worker] = ray.get(answer, timeout=POLL_SECONDS)
                return True
            except GetTimeoutError:
                pass  # Ray is still placing or starting it
            except ActorUnavailableError:
                time.sleep(POLL_SECONDS)  # still restarting
                answer = self._actors[worker].where.remote()
            except RayActorError:
                return False
        return False

    def _gather(self, refs: dict[int, Any]) -> list[tuple[int, Any]]:
        """Every answer of ``refs`` (worker -> reference), in worker order; a worker that cannot start is an error."""
        out = []
        for worker, ref in sorted(refs.items()):
            try:
                out.append((worker, ray.get(ref, timeout=600)))
            except (RayTaskError, RayActorError) as exc:
                raise WorkerFailed(f"Rollout worker {worker} could not start: {_cause(exc)}") from exc
            except GetTimeoutError as exc:
                raise WorkerFailed(f"Rollout worker {worker} did not start within 600 s: the Ray cluster has no "
                                   "room for it (each worker takes one CPU).") from exc
        return out
