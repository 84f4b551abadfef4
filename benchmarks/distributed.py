"""rlframe Clipped PPO acting on 1, 2, 4 and 8 Ray rollout workers (``rlframe-train -n N``), with RLlib's PPO beside it
when RLlib installs next to rlframe: env-steps/s end to end and of acting alone, the learner's share, where each env
step's time goes, and time to a CartPole threshold.

Install (the benchmarks' virtualenv of ``dqn_cartpole.py`` and ``ppo.py``; RLlib goes there only, never into the
project's own ``.venv``)::

    /tmp/benchvenv/bin/pip install ray==2.60.0                          # rlframe's [distributed] extra
    /tmp/benchvenv/bin/pip install "ray[rllib]==2.60.0" "pyarrow<20"   # optional: the RLlib rows

``ray[rllib]==2.60.0`` pins gymnasium 1.2.2 (d3rlpy 2.8.1, for ``batch_rl_cartpole.py``, pins 1.0.0; pip warns, both
import) and pulls the newest pyarrow, whose wheels need numpy >= 2 at import (sklearn, hence d3rlpy, then fails too);
pyarrow 19.0.1 imports with numpy 1.23.5. numpy stays < 1.24 (MXNet 1.9.1 needs it). Before the runs the script
imports RLlib, torch, MXNet and rlframe together in a fresh interpreter; if that fails, or numpy is >= 1.24, it prints
why and leaves the RLlib rows out. The project's ``.venv`` (no RLlib) runs the script as well.

Run, from the repository root, on an otherwise idle machine::

    /tmp/benchvenv/bin/python benchmarks/distributed.py            # full run, one seed: ~30-40 min on 2 cores
    /tmp/benchvenv/bin/python benchmarks/distributed.py --quick    # smoke test: ~100 s on a busy 2-core machine
    /tmp/benchvenv/bin/python benchmarks/distributed.py --envs cartpole --workers 1 4 --frameworks rlframe

The full run is 33 runs, one at a time (3 levels x 11 rows); most of its time is start-up (Ray and 2-8 workers that
each import MXNet or torch: 15-40 s per run on 2 cores) and RLlib's acting (a few hundred env-steps/s per runner).
Every run's output goes to a log folder (printed first; ``--logs DIR`` to choose it); a run that fails or passes
``--run-timeout`` (default 1,200 s; its Ray processes are stopped with it) becomes a ``failed`` row.

What runs. rlframe's shipped ``CartPole_ClippedPPO`` preset as it is (an update after 2,048 env steps -- in one process
then at the first episode end, Coach's ``act_for_full_episodes``, which a round of workers does not wait for --
10 epochs of minibatches of 64, Adam 3e-4, 64-64 tanh, observation normalisation; 5 evaluation episodes every 2,048
steps) on three levels, CartPole-v1 (500-step limit) underneath each (``slow_envs.py`` in this folder):

(a) ``slow_envs:SleepyCartPole`` -- every step first sleeps 1 ms (an I/O-bound simulator);
(b) ``slow_envs:BusyCartPole`` -- every step first burns 1 ms of CPU (a CPU-bound one);
(c) ``CartPole-v1`` -- plain.

Rows per level, each a fresh process that runs ``rlframe.cli.prepare`` on the flags shown (what ``rlframe-train``
runs) and then ``graph_manager.run(task, until)`` (as ``rlframe-validate`` does, so a run can stop after a number of
updates or at the threshold):

* ``rlframe -n N --num-envs 1``: N rollout workers of one environment copy each, N copies in all (N = 1: one process,
  no Ray, as a user runs it). A round: every worker plays ceil(2048 / N) steps and then on to its copy's next episode
  end; the learner observes the rollouts in worker order, updates, and publishes the new policy.
* ``rlframe -n 1 --num-envs N`` (N > 1): one process stepping N copies together (one forward pass per N env steps),
  to tell the gain of vectorisation from that of distribution.
* RLlib PPO (new API stack), when it imports: ``num_env_runners=N`` (N = 1: ``0``, the local env runner, one process as
  rlframe's ``-n 1``), 1 env per runner, ``train_batch_size_per_learner=2048`` (``rollout_fragment_length`` auto:
  2048 / N per runner), ``minibatch_size=64``, ``num_epochs=10``, ``lr=3e-4``, gamma 0.99, lambda 0.95, clip 0.2, no
  entropy, value loss weight 1 with no value clipping, no gradient clipping, separate 64-64 tanh towers
  (``vf_share_layers=False``), ``MeanStdFilter`` observation normalisation, the learner in the driver
  (``num_learners=0``), torch with one thread. Not matched: RLlib's rollouts are exactly 2,048 steps (no waiting for
  an episode end); its clip is constant (rlframe's decays linearly to 0 over 1M steps, 1% per 10k steps); Adam
  epsilon 1e-8 (rlframe 1e-5); advantages standardised per minibatch (rlframe: per rollout); RLlib's evaluation (5
  episodes, ``explore=False``, local evaluation env runner) runs after every 2,048-step iteration.

Every run makes ``--rounds`` updates (default 6; the first is warm-up); on (c) it then goes on until the first
evaluation with a mean reward >= 195 (at most ``--cap-rounds`` updates, default 60); (a) and (b) do not evaluate. One
seed by default (``--seeds``). Each run's process has ``OMP_NUM_THREADS=1`` (rlframe: MXNet's threaded engine, as
``ppo.py``'s ``omp1``; RLlib: also ``torch.set_num_threads(1)``) and this folder on ``PYTHONPATH``, which Ray's worker
processes inherit, so they import ``slow_envs`` (a worker looks levels up in the preset's folder and rlframe's shipped
environments, then on ``sys.path``; Ray also puts the driver script's folder there, but ``rlframe-train``'s is the
virtualenv's ``bin``), and ``RAY_ADDRESS=local``, so each run starts a Ray instance of its own even when a cluster
started with ``ray start`` is running on the machine (``ray.init()`` would join that one). ``--quick`` runs level
(a) only: rlframe with 1 and 2 workers and RLlib with 2 env runners, 2 updates each -- a smoke test of every path, not
a measurement.

How it is measured. Start-up (imports, preset, environments, networks and, with workers, ``ray.init`` and the actors)
is timed on its own: the column gives it whole and, in brackets, the Ray part (rlframe: ``RayWorkerPool.start``, i.e.
``ray.init`` and every actor built; RLlib: ``ray.init`` plus ``build_algo``). The training clock starts where training
starts and stops during evaluations. Everything is measured over whole rounds, from the end of the first update to the
end of the last (the first round builds MXNet's graphs or torch's modules and ships the first weights). Seconds per
phase come from rlframe's public hook events (each ``Update`` says how long the iteration took to get its steps --
acting in one process, or waiting for the workers and replaying their rollouts -- and how long the agent's
``train()`` took) and a timer around the agent's public ``observe``; for RLlib, from timers around its sampling,
its learner update and its weight sync.

* train env-steps/s: end to end, env steps / training seconds (acting, observing, updating, publishing, bookkeeping);
  ``x``: over the same framework's 1-worker row of the level.
* acting env-steps/s: env steps / seconds spent getting the rollouts, i.e. a round's collection less the learner's
  per-step observe (one process: the forward passes, env steps and bookkeeping; workers: the wait for their rollouts
  and the bookkeeping of replaying them; RLlib: its sampling). This is the part more workers can speed up.
* learner update share: seconds in the learner's update / training seconds. PPO is synchronous: workers idle while the
  learner updates, so with rollout seconds R (1 worker) and update seconds U per round, N workers cannot pass
  (R + U) / (R / N + U) end to end (Amdahl's law); ``Amdahl ceiling`` gives that bound for each rlframe worker row,
  from the level's 1-worker row (with as many cores as workers; fewer cores bound it further).
* delta us/step vs 1: 1e6 x (1 / throughput_N - 1 / throughput_1) within a framework: what N workers add to (or,
  negative, take from) an env step's end-to-end time. Level (c)'s overhead target compares it with RLlib's; the
  verdict also gives both frameworks' end-to-end us per env step at N, since a framework whose one-process acting is
  slower has more to gain from parallel acting and so a more negative delta.
* steps/update: env steps per update (with workers, a round of rlframe's ends when each has played its share; in one
  process the update waits for an episode's end, ``act_for_full_episodes``).
* env steps / train s to eval >= 195 (level (c)): at the first evaluation that reached it.

Targets, a verdict per rlframe row with workers: (a) end-to-end and acting speedups >= 0.8 N up to N = 8; (b) >= 1.7x
at 2 workers; (c) the overhead stated, and rlframe's delta us/step no worse than RLlib's at the same N (when RLlib
ran). The learner's update bounds every level end to end (the ceiling column); on 2 cores only (a)'s acting can scale
to 8 workers (its workers mostly sleep), (b)'s and (c)'s share the 2 cores with the learner. When the update takes half
the training time or more the script says so below the table.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from common import MXNET_ENVS, TrainingClock, markdown_table, write_result

HERE = os.path.dirname(os.path.abspath(__file__))
PRESET = "CartPole_ClippedPPO"
ROLLOUT = 2048  # the preset's num_consecutive_playing_steps
THRESHOLD = 195.0
WORKER_COUNTS = (1, 2, 4, 8)
QUICK_ROUNDS = 2
#: each run's process: one OpenMP thread (MXNet; torch also calls set_num_threads(1)), this folder importable by Ray's
#: worker processes, which inherit the environment of the process that starts Ray, and a Ray instance of its own
#: (``ray.init`` without an address otherwise joins a cluster that ``ray start`` left running on the machine)
RUN_ENV = {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")])),
           "RAY_ADDRESS": "local"}


@dataclass(frozen=True)
class Level:
    key: str
    title: str
    level: str
    to_threshold: bool


LEVELS = {
    "sleep": Level("sleep", "(a) CartPole-v1 + sleep 1 ms/step", "slow_envs:SleepyCartPole", False),
    "busy": Level("busy", "(b) CartPole-v1 + 1 ms CPU/step", "slow_envs:BusyCartPole", False),
    "cartpole": Level("cartpole", "(c) CartPole-v1", "CartPole-v1", True),
}


@dataclass
class RunSpec:
    """What one run's process runs."""

    framework: str  # "rlframe" or "rllib"
    level: str  # a key of LEVELS
    layout: str  # "workers" (N workers x 1 env; N = 1: one process) or "process" (one process, N env copies)
    n: int
    seed: int
    rounds: int  # updates per run (the first is warm-up)
    to_threshold: bool  # evaluate, and go on after ``rounds`` updates until an evaluation >= THRESHOLD
    max_rounds: int = 0  # with ``to_threshold``: stop after this many updates all the same

    def done(self, updates: int, reached: bool) -> bool:
        if updates < self.rounds:
            return False
        return not self.to_threshold or reached or updates >= self.max_rounds

    def label(self) -> str:
        if self.framework == "rllib":
            return (f"RLlib, {self.n} env runners x 1 env" if self.n > 1
                    else "RLlib, local env runner x 1 env (one process)")
        if self.layout == "process":
            return f"rlframe -n 1 --num-envs {self.n} (one process)"
        return (f"rlframe -n {self.n} --num-envs 1 ({self.n} workers)" if self.n > 1
                else "rlframe -n 1 --num-envs 1 (one process)")


@dataclass
class Result:
    spec: RunSpec
    startup_s: float  # process work before training starts (preset, envs, networks, Ray)
    ray_s: float  # of which Ray: rlframe's RayWorkerPool.start / RLlib's ray.init + build_algo
    steps: int  # env steps in the window (end of the first update -> end of the last)
    seconds: float  # training seconds in the window (evaluations left out)
    updates: int  # updates in the window
    buckets: dict[str, float]  # seconds per phase in the window
    evaluations: list[tuple[int, float, float]] = field(default_factory=list)  # (env steps, train s, mean reward)
    runtime: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def throughput(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else math.nan

    @property
    def acting_throughput(self) -> float:
        acting = self.buckets.get("acting", 0.0)
        return self.steps / acting if acting > 0 else math.nan

    @property
    def update_share(self) -> float:
        return self.buckets.get("update", 0.0) / self.seconds if self.seconds > 0 else math.nan

    def breakdown(self) -> dict[str, float] | None:
        """rlframe: us per env step, by where the training seconds went (the parts add up to 1e6 / throughput)."""
        b = self.buckets
        if "collect" not in b or not self.steps:
            return None
        parts = {
            "getting the steps (acting, or waiting for the workers)": b["collect"] - b.get("observe", 0.0),
            "learner observe": b.get("observe", 0.0),
            "learner update (and publishing)": b.get("update", 0.0),
        }
        parts["rest of the loop"] = self.seconds - sum(parts.values())
        return {k: 1e6 * v / self.steps for k, v in parts.items()}

    def first_success(self) -> tuple[int, float] | None:
        for steps, seconds, reward in self.evaluations:
            if reward >= THRESHOLD:
                return steps, seconds
        return None


# ---- rlframe -----------------------------------------------------------------------------------------
class Timers:
    """Seconds per phase, summed by wrappers; nothing is summed while ``paused`` (evaluations)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.paused = False

    def add(self, name: str, seconds: float) -> None:
        if not self.paused:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def wrap(self, owner: Any, method: str, name: Callable[..., str | None]) -> None:
        """Time ``owner.method``; ``name(result, *args)`` gives the phase to add to (None: not counted)."""
        original = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = original(*args, **kwargs)
            phase = name(result, *args)
            if phase is not None:
                self.add(phase, time.perf_counter() - start)
            return result

        setattr(owner, method, timed)


def run_rlframe(spec: RunSpec) -> Result:
    begin = time.perf_counter()
    import mxnet as mx
    import numpy as np

    import rlframe
    from rlframe.agents.clipped_ppo import ClippedPPOAgent
    from rlframe.cli import prepare
    from rlframe.core_types import EnvironmentEpisodes, RunPhase
    from rlframe.graph_managers.hooks import Evaluation, RunHooks, TrainingStart, Update

    level = LEVELS[spec.level]
    timers = Timers()
    distributed = spec.layout == "workers" and spec.n > 1
    if distributed:
        from rlframe.integrations.ray_rollouts import RayWorkerPool

        timers.wrap(RayWorkerPool, "start", lambda _r, *_a: "ray")
    train = RunPhase.TRAIN
    # the learner's observe of each training step (in this process, with or without workers); the Update events
    # give the rest: each iteration's seconds getting its steps and in the agent's train()
    timers.wrap(ClippedPPOAgent, "observe", lambda _r, *a: "observe" if a[-1] == train else None)

    clock = TrainingClock()
    marks: dict[str, Any] = {}

    class Probe(RunHooks):
        updates = 0

        def on_training_start(self, event: TrainingStart) -> None:
            marks["startup"] = time.perf_counter() - begin
            clock.restart()

        def on_update(self, event: Update) -> None:
            timers.add("collect", event.acting_seconds)
            timers.add("update", event.learning_seconds)
            if not event.updates:
                return
            self.updates += 1
            mark = (event.total_steps, clock.seconds(), self.updates, dict(timers.seconds))
            marks.setdefault("first", mark)
            marks["last"] = mark

        def on_evaluation(self, event: Evaluation) -> None:
            clock.exclude(event.seconds)  # the training clock leaves evaluations out
            clock.evaluations.append((event.total_steps, clock.seconds(), event.mean_reward))

    probe = Probe()
    with tempfile.TemporaryDirectory(prefix="rlframe-bench-distributed-") as experiment:
        argv = ["-p", PRESET, "-lvl", level.level, "--seed", str(spec.seed), "-ep", experiment, "--progress", "lines",
                "-n", str(spec.n if spec.layout == "workers" else 1),
                "--num-envs", str(1 if spec.layout == "workers" else spec.n)]
        graph_manager, task, _ = prepare(argv)
        if not spec.to_threshold:
            graph_manager.evaluation_steps = EnvironmentEpisodes(0)
        graph_manager.add_hooks(probe)

        def until(progress: Any) -> bool:
            return spec.done(probe.updates, any(e[2] >= THRESHOLD for e in clock.evaluations))

        graph_manager.run(task, until)
    first, last = marks["first"], marks["last"]
    buckets = {k: v - first[3].get(k, 0.0) for k, v in last[3].items()}
    # one process: forward passes, env steps, bookkeeping; workers: the wait for their rollouts and replaying them
    buckets["acting"] = buckets.get("collect", 0.0) - buckets.get("observe", 0.0)
    runtime = {"python": sys.executable, "rlframe": rlframe.__version__, "mxnet": mx.__version__,
               "numpy": np.__version__, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
               "MXNET_ENGINE_TYPE": os.environ.get("MXNET_ENGINE_TYPE", "threaded (default)")}
    if distributed:
        import ray

        runtime["ray"] = ray.__version__
    return Result(spec, marks["startup"], timers.seconds.get("ray", 0.0), last[0] - first[0], last[1] - first[1],
                  last[2] - first[2], buckets, clock.evaluations, runtime)


# ---- RLlib -------------------------------------------------------------------------------------------
def run_rllib(spec: RunSpec) -> Result:
    begin = time.perf_counter()
    import logging

    import numpy as np
    import ray
    import torch

    torch.set_num_threads(1)
    import ray.rllib.algorithms.ppo.ppo as ppo_module
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import MeanStdFilter
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    level = LEVELS[spec.level]
    env = level.level
    if ":" in level.level:  # RLlib calls an env class with its env_config: register a maker instead
        import slow_envs
        from ray.tune.registry import register_env

        maker = getattr(slow_envs, level.level.partition(":")[2])
        env = level.key
        register_env(env, lambda _config: maker())
    ray_start = time.perf_counter()
    ray.init(num_cpus=max(os.cpu_count() or 1, spec.n), include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    config = (
        PPOConfig()
        .environment(env=env)
        .env_runners(num_env_runners=spec.n if spec.n > 1 else 0, num_envs_per_env_runner=1,
                     rollout_fragment_length="auto", env_to_module_connector=lambda *_a, **_k: MeanStdFilter())
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=ROLLOUT, minibatch_size=64, num_epochs=10, lr=3e-4, gamma=0.99,
                  lambda_=0.95, clip_param=0.2, entropy_coeff=0.0, vf_loss_coeff=1.0, vf_clip_param=float("inf"),
                  grad_clip=None, use_kl_loss=False)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh",
                                                   vf_share_layers=False))
        .debugging(seed=spec.seed, log_level="ERROR")
    )
    if spec.to_threshold:  # an evaluation env runner group made, evaluated by hand below (not inside train())
        config = config.evaluation(evaluation_interval=10**9, evaluation_duration=5,
                                   evaluation_duration_unit="episodes", evaluation_num_env_runners=0,
                                   evaluation_config=PPOConfig.overrides(explore=False))
    algo = config.build_algo()
    ray_s = time.perf_counter() - ray_start
    startup = time.perf_counter() - begin

    timers = Timers()
    sampled = [0]
    original_sample = ppo_module.synchronous_parallel_sample

    def sample(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = original_sample(*args, **kwargs)
        timers.add("acting", time.perf_counter() - start)
        episodes = out[0] if isinstance(out, tuple) else out
        sampled[0] += sum(len(e) for e in episodes)
        return out

    ppo_module.synchronous_parallel_sample = sample
    timers.wrap(algo.learner_group, "update", lambda _r, *_a: "update")
    timers.wrap(algo.env_runner_group, "sync_weights", lambda _r, *_a: "publish")

    clock = TrainingClock()
    first: tuple[int, float, dict[str, float]] | None = None
    last: tuple[int, float, dict[str, float]] = (0, 0.0, {})
    iterations = 0
    while not spec.done(iterations, any(e[2] >= THRESHOLD for e in clock.evaluations)):
        algo.train()
        iterations += 1
        last = (sampled[0], clock.seconds(), dict(timers.seconds))
        if first is None:
            first = last
        if spec.to_threshold:
            clock.pause()
            result = algo.evaluate()
            runners = result.get("env_runners", result.get("evaluation", {}).get("env_runners", {}))
            clock.resume(sampled[0], float(runners.get("episode_return_mean", math.nan)))
    algo.stop()
    ray.shutdown()
    assert first is not None
    buckets = {k: v - first[2].get(k, 0.0) for k, v in last[2].items()}
    runtime = {"python": sys.executable, "ray[rllib]": ray.__version__, "torch": torch.__version__,
               "numpy": np.__version__, "torch threads": str(torch.get_num_threads())}
    updates = iterations - 1
    return Result(spec, startup, ray_s, last[0] - first[0], last[1] - first[1], updates, buckets,
                  clock.evaluations, runtime)


def rllib_problem(python: str) -> str | None:
    """Why RLlib cannot run beside rlframe in ``python``'s environment (None: it imports, with numpy < 1.24)."""
    probe = ("import ray.rllib.algorithms.ppo, ray.rllib.connectors.env_to_module; import numpy, gymnasium, ray, torch;"
             "import mxnet, rlframe.agents.clipped_ppo;"
             "print(numpy.__version__, gymnasium.__version__, ray.__version__, torch.__version__)")
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False,
                          env={**os.environ, **RUN_ENV})
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        return (f"RLlib does not import beside rlframe in {python}: {lines[-1] if lines else done.returncode} "
                "(see this script's docstring to install it)")
    numpy_version = done.stdout.split()[0]
    major, minor = (int(p) for p in numpy_version.split(".")[:2])
    if (major, minor) >= (1, 24):
        return f"numpy {numpy_version} is installed with RLlib; MXNet 1.9.1 needs numpy < 1.24"
    return None


# ---- driver ------------------------------------------------------------------------------------------
def worker(spec_json: str, result_path: str) -> None:
    spec = RunSpec(**json.loads(spec_json))
    result = run_rlframe(spec) if spec.framework == "rlframe" else run_rllib(spec)
    write_result(result_path, asdict(result))


def launch_group(spec: RunSpec, log: str, timeout: float) -> dict[str, Any]:
    """Run this script with ``--worker`` in a fresh interpreter and session (its Ray processes stay in its process
    group), output to ``log``; past ``timeout`` seconds the whole group is stopped. Returns the run's JSON result."""
    with tempfile.TemporaryDirectory(prefix="rlframe-bench-distributed-") as tmp, open(log, "w") as out:
        result_path = os.path.join(tmp, "result.json")
        command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(asdict(spec)),
                   "--result", result_path]
        process = subprocess.Popen(command, env={**os.environ, **MXNET_ENVS["omp1"], **RUN_ENV}, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
                try:
                    os.killpg(process.pid, sig)
                    process.wait(timeout=wait)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
            raise RuntimeError(f"did not finish within {timeout:.0f} s") from None
        if code != 0:
            with open(log, encoding="utf-8", errors="replace") as handle:
                tail = [line for line in handle.read().strip().splitlines() if line.strip()]
            raise RuntimeError(f"exit status {code}: {tail[-1] if tail else ''}")
        with open(result_path, encoding="utf-8") as handle:
            return json.load(handle)


def run_one(spec: RunSpec, log_dir: str, timeout: float) -> Result:
    log = os.path.join(log_dir, f"{spec.framework}-{spec.level}-{spec.layout}-{spec.n}-seed{spec.seed}.log")
    try:
        data = launch_group(spec, log, timeout)
    except RuntimeError as exc:
        return Result(spec, math.nan, math.nan, 0, 0.0, 0, {}, error=f"{exc} (log: {log})")
    data["spec"] = RunSpec(**data["spec"])
    data["evaluations"] = [tuple(e) for e in data["evaluations"]]
    return Result(**data)


def mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.mean(values) if values else math.nan


@dataclass
class Row:
    """The runs (one per seed) of one configuration on one level."""

    spec: RunSpec
    runs: list[Result]

    def ok(self) -> list[Result]:
        return [r for r in self.runs if not r.error]

    def value(self, get: Callable[[Result], float | None]) -> float:
        return mean([get(r) for r in self.ok()])  # type: ignore[misc]


def fmt(value: float, pattern: str = "{:,.0f}") -> str:
    return "-" if value is None or math.isnan(value) else pattern.format(value)


def table(rows: list[Row], rllib_note: str | None) -> tuple[list[list[str]], list[str]]:
    """The table's cells and the verdict lines."""
    cells, verdicts = [], []
    by_key = {(r.spec.framework, r.spec.level, r.spec.layout, r.spec.n): r for r in rows}
    for row in rows:
        spec = row.spec
        if not row.ok():
            cells.append([LEVELS[spec.level].title, spec.label(), "failed: " + row.runs[0].error[:120]]
                         + ["-"] * 8)
            continue
        reference = by_key.get((spec.framework, spec.level, "workers", 1))
        thr, acting = row.value(lambda r: r.throughput), row.value(lambda r: r.acting_throughput)
        ref_thr = reference.value(lambda r: r.throughput) if reference and reference.ok() else math.nan
        ref_acting = reference.value(lambda r: r.acting_throughput) if reference and reference.ok() else math.nan
        speedup, acting_speedup = thr / ref_thr, acting / ref_acting
        ceiling = math.nan
        if spec.framework == "rlframe" and spec.layout == "workers" and reference and reference.ok():
            update = reference.value(lambda r: r.buckets.get("update", 0.0) / max(r.updates, 1))
            rollout = reference.value(lambda r: (r.seconds - r.buckets.get("update", 0.0)) / max(r.updates, 1))
            ceiling = (rollout + update) / (rollout / spec.n + update)
        delta = 1e6 * (1 / thr - 1 / ref_thr) if spec.n > 1 or spec.layout == "process" else math.nan
        successes = [s for s in (r.first_success() for r in row.ok()) if s is not None]
        if LEVELS[spec.level].to_threshold:
            steps, seconds = (statistics.median(s[i] for s in successes) for i in (0, 1)) if successes else (0, 0)
            reached = (f"{steps:,.0f} / {seconds:,.1f} s ({len(successes)}/{len(row.ok())})" if successes
                       else f"not reached (0/{len(row.ok())})")
        else:
            reached = "-"
        target = verdict(row, speedup, acting_speedup, delta, by_key, rllib_note)
        if target not in ("", "reference"):
            verdicts.append(f"{LEVELS[spec.level].title}, {spec.label()}: {target}")
        cells.append([
            LEVELS[spec.level].title, spec.label(),
            f"{row.value(lambda r: r.startup_s):.1f} ({row.value(lambda r: r.ray_s):.1f})",
            f"{fmt(thr)} ({fmt(speedup, '{:.2f}x')})", f"{fmt(acting)} ({fmt(acting_speedup, '{:.2f}x')})",
            fmt(100 * row.value(lambda r: r.update_share), "{:.0f}%"), fmt(ceiling, "{:.2f}x"),
            fmt(delta, "{:+,.0f}"),
            fmt(row.value(lambda r: r.steps / max(r.updates, 1)), "{:,.0f}"), reached, target or "-",
        ])
    return cells, verdicts


def verdict(row: Row, speedup: float, acting_speedup: float, delta: float, by_key: dict[Any, Row],
            rllib_note: str | None) -> str:
    spec = row.spec
    if spec.framework != "rlframe" or spec.layout != "workers":
        return ""
    if spec.n == 1:
        return "reference"

    def check(name: str, value: float, goal: float) -> str:
        return f"{name} {value:.2f}x {'>=' if value >= goal else '<'} {goal:.2f}x {'pass' if value >= goal else 'FAIL'}"

    if spec.level == "sleep":
        goal = 0.8 * spec.n
        return f"{check('train', speedup, goal)}; {check('acting', acting_speedup, goal)}"
    if spec.level == "busy":
        if spec.n != 2:
            return ""
        return f"{check('train', speedup, 1.7)}; {check('acting', acting_speedup, 1.7)}"
    theirs = by_key.get(("rllib", spec.level, "workers", spec.n))
    if theirs is None or not theirs.ok():
        return f"overhead {delta:+,.0f} us/step stated; no RLlib row to compare" + (f" ({rllib_note})" if rllib_note else "")
    their_ref = by_key.get(("rllib", spec.level, "workers", 1))
    if their_ref is None or not their_ref.ok():
        return f"overhead {delta:+,.0f} us/step; RLlib's 1-runner row missing"
    their_step = 1e6 / theirs.value(lambda r: r.throughput)
    their_delta = their_step - 1e6 / their_ref.value(lambda r: r.throughput)
    ok = delta <= their_delta
    return (f"delta {delta:+,.0f} vs RLlib {their_delta:+,.0f} us/step {'pass' if ok else 'FAIL'} (per env step at "
            f"N = {spec.n}: rlframe {1e6 / row.value(lambda r: r.throughput):,.0f} us, RLlib {their_step:,.0f} us)")


BREAKDOWN = ("getting the steps (acting, or waiting for the workers)", "learner observe",
             "learner update (and publishing)", "rest of the loop")


def breakdown_table(rows: list[Row]) -> list[list[str]]:
    """rlframe rows: us per env step by phase (the learner's, the workers' critical path, the distributed path's)."""
    cells = []
    for row in rows:
        parts = [r.breakdown() for r in row.ok()]
        parts = [p for p in parts if p is not None]
        if row.spec.framework != "rlframe" or not parts:
            continue
        values = [mean([p.get(name, math.nan) for p in parts]) for name in BREAKDOWN]
        cells.append([LEVELS[row.spec.level].title, row.spec.label()]
                     + [fmt(v, "{:,.0f}") for v in values] + [fmt(sum(v for v in values if not math.isnan(v)))])
    return cells


HEADER = ("level", "configuration", "start-up s (Ray)", "train env-steps/s (x vs 1)", "acting env-steps/s (x vs 1)",
          "learner update share", "Amdahl ceiling", "delta us/step vs 1",
          "steps/update", "env steps / train s to eval >= 195", "target")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", choices=list(LEVELS), default=list(LEVELS))
    parser.add_argument("--workers", type=int, nargs="+", default=list(WORKER_COUNTS))
    parser.add_argument("--frameworks", nargs="+", choices=["rlframe", "rllib"], default=["rlframe", "rllib"])
    parser.add_argument("--no-process-rows", dest="process_rows", action="store_false",
                        help="leave out the one-process rows with N env copies")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rounds", type=int, default=6,
                        help="updates per run (the first is warm-up); on (c) at least this many, then on to the "
                        "threshold")
    parser.add_argument("--cap-rounds", type=int, default=60, help="most updates per run on (c)")
    parser.add_argument("--quick", action="store_true", help=f"smoke test: level (a) only, rlframe with 1 and 2 "
                        f"workers and RLlib with 2 env runners, {QUICK_ROUNDS} updates each")
    parser.add_argument("--run-timeout", type=float, default=1200,
                        help="seconds after which a run (and the Ray processes it started) is stopped and reported "
                        "as failed (default 1200)")
    parser.add_argument("--logs", help="folder for every run's output (default: a temporary one, kept)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if 1 not in args.workers:
        args.workers = [1, *args.workers]  # every speedup is over the 1-worker row
    return args


def plan(args: argparse.Namespace) -> list[RunSpec]:
    specs: list[RunSpec] = []
    if args.quick:
        return [RunSpec(framework, "sleep", "workers", n, 0, QUICK_ROUNDS, False)
                for framework, n in (("rlframe", 1), ("rlframe", 2), ("rllib", 2)) if framework in args.frameworks]
    for key in args.envs:
        level = LEVELS[key]
        for seed in args.seeds:
            for framework in args.frameworks:
                for n in args.workers:
                    layouts = ["workers", "process"] if framework == "rlframe" and n > 1 and args.process_rows \
                        else ["workers"]
                    specs += [RunSpec(framework, key, layout, n, seed, args.rounds, level.to_threshold,
                                      max(args.rounds, args.cap_rounds)) for layout in layouts]
    return specs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.result)
        return 0
    started = time.perf_counter()
    print(f"# Distributed Clipped PPO: rlframe -n N vs RLlib ({os.cpu_count()} CPUs)")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}", flush=True)
    rllib_note = None
    if "rllib" in args.frameworks:
        rllib_note = rllib_problem(sys.executable)
        if rllib_note:
            print(f"RLlib rows left out: {rllib_note}", flush=True)
            args.frameworks = [f for f in args.frameworks if f != "rllib"]
    specs = plan(args)
    if rllib_note:
        specs = [s for s in specs if s.framework != "rllib"]
    log_dir = args.logs or tempfile.mkdtemp(prefix="rlframe-bench-distributed-logs-")
    os.makedirs(log_dir, exist_ok=True)
    print(f"{len(specs)} runs, one at a time; their output: {log_dir}", flush=True)
    rows: dict[tuple[Any, ...], Row] = {}
    runtimes: dict[str, dict[str, str]] = {}
    for spec in specs:
        result = run_one(spec, log_dir, args.run_timeout)
        key = (spec.framework, spec.level, spec.layout, spec.n)
        rows.setdefault(key, Row(spec, [])).runs.append(result)
        if result.error:
            print(f"  {LEVELS[spec.level].title}, {spec.label()}, seed {spec.seed}: FAILED: {result.error}", flush=True)
            continue
        runtimes[spec.framework] = result.runtime
        print(f"  {LEVELS[spec.level].title}, {spec.label()}, seed {spec.seed}: {result.throughput:,.0f} env-steps/s "
              f"({result.steps:,} steps in {result.seconds:.1f} s, {result.updates} updates), start-up "
              f"{result.startup_s:.1f} s, seconds {({k: round(v, 2) for k, v in sorted(result.buckets.items())})}"
              + (f", evaluations {[round(e[2], 1) for e in result.evaluations]}" if result.evaluations else ""),
              flush=True)
    for framework, values in runtimes.items():
        print(f"{framework}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    rounds_note = (f"quick mode: {QUICK_ROUNDS} updates per run (a smoke test, not a measurement)" if args.quick else
                   f"{args.rounds} updates per run, on (c) then on to the first evaluation >= {THRESHOLD:g} (at most "
                   f"{args.cap_rounds} updates)")
    process_note = ", one-process rows with N copies (-n 1 --num-envs N)" if args.process_rows and not args.quick else ""
    print(f"\nSettings: preset {PRESET} as shipped ({ROLLOUT} env steps per update + to an episode end, 10 epochs, "
          f"minibatch 64, Adam 3e-4, 64-64 tanh), CartPole-v1 underneath every level, 1 env copy per worker "
          f"(-n N --num-envs 1; N = 1 is one process){process_note}; {rounds_note}; seeds "
          f"{args.seeds}; throughputs from the end of the first update to the end of the last; OMP_NUM_THREADS=1; "
          f"{os.cpu_count()} CPUs.\n")
    cells, verdict_lines = table(list(rows.values()), rllib_note)
    print(markdown_table(HEADER, cells))
    print("\nrlframe, us per env step by where the training time goes (the row adds up to 1e6 / train env-steps/s; "
          "with workers, getting the steps is the wait for a round's rollouts and replaying them, and the learner's "
          "observe and update run while every worker idles):\n")
    print(markdown_table(("level", "configuration", *BREAKDOWN, "total"), breakdown_table(list(rows.values()))))
    print()
    print("Targets: (a) train and acting >= 0.8 N x the 1-worker row up to 8 workers; (b) >= 1.7x at 2 workers; "
          "(c) overhead (delta us/step) stated and no worse than RLlib's at the same N.")
    print("\n".join(verdict_lines) or "(no rows with workers)")
    if rllib_note:
        print(f"RLlib: not run ({rllib_note}).")
    dominated = [r for r in rows.values() if r.ok() and r.spec.layout == "workers" and r.spec.framework == "rlframe"
                 and r.value(lambda x: x.update_share) >= 0.5]
    if dominated:
        print("The learner's update takes half or more of the training time in: " + "; ".join(
            f"{LEVELS[r.spec.level].title} {r.spec.label()} ({100 * r.value(lambda x: x.update_share):.0f}%)"
            for r in dominated) + ". Workers cannot speed that part up (PPO is synchronous), so end-to-end speedups "
            "stay under the Amdahl ceiling; the acting column is what distribution changes.")
    print(f"\nwhole benchmark: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
