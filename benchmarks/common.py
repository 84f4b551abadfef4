"""Helpers shared by the benchmark scripts in this folder (``dqn_cartpole.py``, ``ppo.py``,
``batch_rl_cartpole.py``).

The scripts are run as files, so this folder is on ``sys.path`` and they import from here with
``from common import ...``. Held here: the workers' thread environments, the training clock, running a
worker (the calling script with ``--worker``) in a fresh interpreter and reading back its JSON result, the
evaluation-curve measures, ``spread`` for table cells, ``profile_text`` and the markdown table.
"""
from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PROFILE_ENTRIES = 25

#: environment of an rlframe worker, by ``--mxnet-env`` name
MXNET_ENVS: dict[str, dict[str, str]] = {
    "default": {},
    "omp1": {"OMP_NUM_THREADS": "1"},
    "naive": {"OMP_NUM_THREADS": "1", "MXNET_ENGINE_TYPE": "NaiveEngine"},
}
#: environment of a torch worker (SB3, d3rlpy), which also calls ``torch.set_num_threads(1)``
SB3_ENV = {"OMP_NUM_THREADS": "1"}


class TrainingClock:
    """Seconds since the clock was made, evaluations left out, and the evaluation curve."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._excluded = 0.0
        self._paused_at: float | None = None
        self.evaluations: list[tuple[int, float, float]] = []
        self.last_mark: tuple[int, float] = (0, 0.0)

    def seconds(self) -> float:
        now = self._paused_at if self._paused_at is not None else time.perf_counter()
        return now - self._start - self._excluded

    def pause(self) -> None:
        self._paused_at = time.perf_counter()

    def resume(self, env_steps: int, reward: float) -> None:
        """End an evaluation that was played after ``env_steps`` and scored ``reward``."""
        assert self._paused_at is not None
        self.evaluations.append((env_steps, self.seconds(), reward))
        self._excluded += time.perf_counter() - self._paused_at
        self._paused_at = None

    def exclude(self, seconds: float) -> None:
        """Leave out ``seconds`` that just passed (an evaluation measured by someone else)."""
        self._excluded += seconds

    def restart(self) -> None:
        """Start again from now, with nothing recorded."""
        self.__init__()  # type: ignore[misc]

    def mark(self, env_steps: int) -> None:
        """Note the end of a training period."""
        self.last_mark = (env_steps, self.seconds())


def clock_hooks(clock: TrainingClock) -> Any:
    """Hooks (``rlframe.graph_managers.hooks``) that keep ``clock`` for an rlframe run: every training iteration
    marks it, every evaluation's seconds are left out and its reward recorded. Imported here, in rlframe's workers
    only, so a Stable-Baselines3 worker never imports rlframe."""
    from rlframe.graph_managers.hooks import Evaluation, RunHooks, Update

    class ClockHooks(RunHooks):
        def on_update(self, event: Update) -> None:
            clock.mark(event.total_steps)

        def on_evaluation(self, event: Evaluation) -> None:
            clock.exclude(event.seconds)
            clock.evaluations.append((event.total_steps, clock.seconds(), event.mean_reward))

    return ClockHooks()


@dataclass
class RunResult:
    """One training run: evaluations as (env steps, training seconds, mean reward), the end of training,
    versions and thread settings. ``spec`` is the script's own run description."""

    spec: Any
    evaluations: list[tuple[int, float, float]]
    final_steps: int
    final_seconds: float
    runtime: dict[str, str]
    profile: str = ""

    def steady_throughput(self) -> float:
        """Env steps per training second from the end of the first evaluation to the end of the run (the
        whole run when there was no evaluation before its end)."""
        start_steps, start_seconds = (self.evaluations[0][0], self.evaluations[0][1]) if self.evaluations else (0, 0.0)
        if self.final_steps <= start_steps:  # no evaluation before the end: measure the whole run
            start_steps, start_seconds = 0, 0.0
        return (self.final_steps - start_steps) / (self.final_seconds - start_seconds)

    def first_success(self, threshold: float) -> tuple[int, float] | None:
        """(env steps, training seconds) of the first evaluation whose reward reached ``threshold``."""
        for steps, seconds, reward in self.evaluations:
            if reward >= threshold:
                return steps, seconds
        return None


def profile_text(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(PROFILE_ENTRIES)
    return out.getvalue()


def write_result(result_path: str, result: dict[str, Any]) -> None:
    """A worker's end: its result, as JSON, where ``launch`` reads it."""
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


def launch(script_path: str, spec_dict: dict[str, Any], env: Mapping[str, str], python: str = sys.executable,
           log_path: str | None = None) -> dict[str, Any]:
    """Run ``python script_path --worker <spec_dict as JSON> --result <path>`` in a fresh interpreter, with
    ``env`` added to this process's environment, and return the JSON the worker wrote to ``path``.

    ``log_path``: also write the worker's stdout and stderr there.
    """
    full_env = dict(os.environ)
    full_env.update(env)
    with tempfile.TemporaryDirectory(prefix="rlframe-bench-worker-") as tmp:
        result_path = os.path.join(tmp, "result.json")
        command = [python, os.path.abspath(script_path), "--worker", json.dumps(spec_dict), "--result", result_path]
        done = subprocess.run(command, env=full_env, capture_output=True, text=True, check=False)
        if log_path is not None:
            with open(log_path, "w", encoding="utf-8") as log:
                log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"worker {spec_dict} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
        with open(result_path, encoding="utf-8") as handle:
            return json.load(handle)


def sb3_runtime() -> dict[str, str]:
    """Versions and thread settings of a Stable-Baselines3 worker (torch is imported by then)."""
    import stable_baselines3
    import torch

    return {
        "torch": torch.__version__, "stable-baselines3": stable_baselines3.__version__,
        "torch threads": str(torch.get_num_threads()), "torch interop threads": str(torch.get_num_interop_threads()),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
    }


def run_in_subprocess(script_path: str, spec: Any, env: Mapping[str, str]) -> RunResult:
    """:func:`launch` the dataclass ``spec`` and rebuild the worker's :class:`RunResult` (its spec as the
    same dataclass)."""
    data = launch(script_path, asdict(spec), env)
    data["spec"] = type(spec)(**data["spec"])
    data["evaluations"] = [tuple(e) for e in data["evaluations"]]
    return RunResult(**data)


def spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.mean(values))} +- {fmt.format(statistics.stdev(values))}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table: the header, a ``---`` line, then one line per row of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
