"""Turning a run into a distributed one: the one place the command line and the launchers ask for rollout workers.

Ray is imported only here, and only for more than one worker, so a run in one process never loads it.
"""
from __future__ import annotations

from rlframe.errors import ParameterValueError
from rlframe.graph_managers.basic_rl import BasicRLGraphManager
from rlframe.graph_managers.graph_manager import GraphManager


def distribute(graph_manager: GraphManager, num_workers: int, address: str | None = None) -> None:
    """Make ``graph_manager`` act on ``num_workers`` Ray rollout workers (1: in this process, as always); ``address``
    joins an existing Ray cluster (see :mod:`rlframe.integrations.ray_rollouts`)."""
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ParameterValueError(f"num_workers = {num_workers!r} (-n/--num-workers): use 1 to act in this process, "
                                  "or 2 or more for rollout workers on Ray.")
    if num_workers == 1:
        if address:
            raise ParameterValueError(f"--ray-address {address} without --num-workers: a run in one process uses no "
                                      "Ray cluster; add --num-workers N (2 or more).")
        return
    if type(graph_manager) is not BasicRLGraphManager:
        raise ParameterValueError(f"num_workers = {num_workers}: rollout workers act in online training "
                                  f"(BasicRLGraphManager); {type(graph_manager).__name__} trains in one process, use 1.")
    try:
        from rlframe.integrations.ray_rollouts import RayWorkerPool
    except ImportError as exc:
        raise ParameterValueError(f"num_workers = {num_workers} needs Ray, which is not installed ({exc}): "
                                  "pip install 'rlframe[distributed]'.") from exc
    graph_manager.use_workers(RayWorkerPool(num_workers, address))
