"""rlframe DQN vs Stable-Baselines3 DQN on gymnasium's CartPole-v0, at equal settings, in one run.

Install (a separate virtualenv, so the project's own stays free of torch; the machine has a local CPU
wheel of torch 2.13.0 that pip finds, so no CUDA packages are pulled -- check with ``--dry-run``)::

    python3 -m venv /tmp/benchvenv
    /tmp/benchvenv/bin/pip install --dry-run torch==2.13.0   # must say torch-2.13.0+cpu, no nvidia-*
    /tmp/benchvenv/bin/pip install torch==2.13.0
    /tmp/benchvenv/bin/pip install stable-baselines3 -e /work/main   # or: -e '/work/main[bench]'

That resolved stable-baselines3 2.9.2 with numpy 1.23.5 (rlframe pins numpy<1.24 for MXNet 1.9.1; SB3
accepts numpy>=1.20). Run::

    /tmp/benchvenv/bin/python benchmarks/dqn_cartpole.py               # both settings, seeds 0-2 (~40 min)
    /tmp/benchvenv/bin/python benchmarks/dqn_cartpole.py --quick       # smoke test, ~3 minutes
    /tmp/benchvenv/bin/python benchmarks/dqn_cartpole.py --profile --steps 5000   # cProfile of rlframe

What is compared. Two settings, each applied identically to both frameworks (see ``SETTINGS``):

(a) Coach's CartPole_DQN: train every env step with one gradient step, batch 32, Adam lr 2.5e-4,
    target copy every 100 env steps, replay 40,000, heatup 1,000, epsilon 1 -> 0.01 over 10,000 steps,
    hidden layers 256 then 512 (rlframe's default DQN network); 30,000 training env steps.
(b) rl-baselines3-zoo's CartPole DQN: train every 256 env steps with 128 gradient steps, batch 64,
    Adam lr 2.3e-3, target copy every 10 env steps, replay 100,000, heatup 1,000, epsilon 1 -> 0.04
    over the first 8,000 env steps, hidden layers 256 and 256; 50,000 training env steps.

Common to both: gamma 0.99, Huber loss (SB3's DQN always uses it), gradient clipping at global norm 10
(SB3's default), ReLU, the same Adam betas/epsilon, time-limit truncations bootstrap in both, one
training environment for SB3 and ``N`` for rlframe (``--num-envs``, default 1 and 8: N=1 is the
like-for-like row; N>1 is rlframe's batched acting, which keeps the ratio of gradient steps to env
steps). rlframe's epsilon schedule starts after heatup; SB3's counts from step 0, so SB3's
``exploration_initial_eps`` and ``exploration_fraction`` are derived to give the same epsilon at every
env step after heatup. Known differences that are not configurable: weight initialisation (rlframe:
Xavier-uniform weights, zero biases; PyTorch: Kaiming-uniform(a=sqrt(5)) weights, uniform biases), Adam's
epsilon placement (MXNet's ``adam_update`` adds it to sqrt(v), PyTorch to the bias-corrected sqrt(v)),
and when the target copy lands relative to a block of gradient steps in (b) (SB3 copies during the
rollout, rlframe after the block's first gradient step).

How it is measured. Every env-step count is the total including heatup. Every ``--eval-every`` training
env steps, 10 evaluation episodes are played on separate environment copies with epsilon 0.05 (rlframe
DQN's evaluation epsilon, done by hand for SB3); their mean total reward is the evaluation reward. A
clock runs from the start of heatup and is paused during evaluations, so all seconds below are training
seconds (acting, storing, learning, bookkeeping), never evaluation. Columns:

* train env-steps/s: steady-state throughput, env steps / training seconds from the end of the first
  evaluation to the end of the run (skips heatup and warm-up such as graph building).
* env steps / train s to eval >= 195: at the first evaluation whose mean reward reached 195 (median over
  the seeds that reached it; ``k/n`` = seeds that reached it).
* final eval reward: the last evaluation, mean +- std over seeds.

Each run is a fresh subprocess (this script with ``--worker``), one at a time, so the thread settings and
imports of one framework never leak into the other: SB3 runs with ``torch.set_num_threads(1)`` and
``OMP_NUM_THREADS=1``; rlframe with the environment chosen by ``--mxnet-env`` (set before MXNet is
imported). Its default, ``omp1`` (``OMP_NUM_THREADS=1``, MXNet's threaded engine), measured 5-15% faster
on the 2-core machine than ``naive`` (plus ``MXNET_ENGINE_TYPE=NaiveEngine``: no overlap of Python and
operators) and a little faster than MXNet's defaults; an explicit ``OMP_NUM_THREADS=2`` makes
``adam_update`` about 5x slower there. The versions and threads in force are printed above the table.

The thread environments, the training clock, running a worker and reading back its result, ``spread``,
``profile_text`` and the markdown table come from ``common.py`` in this folder (this script is run as a file, so
its folder is on ``sys.path``); the other benchmarks share them from there.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from common import (
    MXNET_ENVS,
    SB3_ENV,
    RunResult,
    TrainingClock,
    clock_hooks,
    markdown_table,
    profile_text,
    run_in_subprocess,
    sb3_runtime,
    spread,
    write_result,
)

LEVEL = "CartPole-v0"
GAMMA = 0.99
MAX_GRAD_NORM = 10.0
REWARD_THRESHOLD = 195.0
EVAL_EPISODES = 10
EVAL_EPSILON = 0.05
EVAL_SEED_OFFSET = 10000  # the evaluation copies' seeds, as rlframe's BasicRLGraphManager


@dataclass(frozen=True)
class Setting:
    """One row group of the table: the hyperparameters both frameworks get.

    The epsilon schedule is written as rlframe runs it: from ``eps_start`` at the first training step
    (after heatup) to ``eps_end`` over ``eps_decay_steps`` training env steps.
    """

    name: str
    hidden: tuple[int, int]
    batch_size: int
    train_freq: int
    gradient_steps: int
    learning_rate: float
    target_update: int
    buffer_size: int
    heatup: int
    eps_start: float
    eps_end: float
    eps_decay_steps: int
    adam: tuple[float, float, float]  # beta1, beta2, epsilon
    steps: int  # default budget of training env steps (after heatup)

    def label(self) -> str:
        return (f"{self.name}: every {self.train_freq} step(s) x{self.gradient_steps} grad, batch {self.batch_size}, "
                f"lr {self.learning_rate:g}, target {self.target_update}, net {self.hidden[0]}-{self.hidden[1]}")


SETTINGS: dict[str, Setting] = {
    "a": Setting(
        name="(a) Coach", hidden=(256, 512), batch_size=32, train_freq=1, gradient_steps=1, learning_rate=2.5e-4,
        target_update=100, buffer_size=40000, heatup=1000, eps_start=1.0, eps_end=0.01, eps_decay_steps=10000,
        adam=(0.9, 0.99, 1e-4), steps=30000,
    ),
    # rl-zoo: epsilon 1 -> 0.04 over 16% of 50,000 steps counted from step 0, so 0.88 when heatup ends.
    "b": Setting(
        name="(b) rl-zoo", hidden=(256, 256), batch_size=64, train_freq=256, gradient_steps=128, learning_rate=2.3e-3,
        target_update=10, buffer_size=100000, heatup=1000, eps_start=0.88, eps_end=0.04, eps_decay_steps=7000,
        adam=(0.9, 0.999, 1e-8), steps=50000,
    ),
}


@dataclass
class RunSpec:
    """What one worker process runs."""

    framework: str  # "rlframe" or "sb3"
    setting: str
    seed: int
    steps: int
    eval_every: int
    num_envs: int = 1
    profile: bool = False


# ---- rlframe ----------------------------------------------------------------------------------------
def run_rlframe(spec: RunSpec, setting: Setting) -> RunResult:
    import mxnet as mx

    import rlframe
    from rlframe.agents.dqn import DQNAgentParameters
    from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, TrainingSteps
    from rlframe.environments.gym_environment import GymVectorEnvironment
    from rlframe.graph_managers.basic_rl import BasicRLGraphManager
    from rlframe.graph_managers.graph_manager import ScheduleParameters
    from rlframe.memories.memory import MemoryGranularity
    from rlframe.networks.parameters import Dense
    from rlframe.parameters import TaskParameters, VisualizationParameters
    from rlframe.schedules import LinearSchedule

    clock = TrainingClock()

    class TimedGraphManager(BasicRLGraphManager):
        """Runs the schedule unchanged, timed by ``clock`` (restarted where training begins, after the graph is built)."""

        def improve(self, until: Any = None) -> None:
            clock.restart()
            super().improve(until)

    agent_params = DQNAgentParameters()
    algorithm = agent_params.algorithm
    algorithm.discount = GAMMA
    algorithm.num_consecutive_playing_steps = EnvironmentSteps(setting.train_freq)
    algorithm.num_consecutive_training_steps = setting.gradient_steps
    algorithm.num_steps_between_copying_online_weights_to_target = EnvironmentSteps(setting.target_update)
    network = agent_params.network_wrappers["main"]
    network.input_embedders_parameters["observation"].scheme = [Dense(setting.hidden[0])]
    network.middleware_parameters.scheme = [Dense(setting.hidden[1])]
    network.batch_size = setting.batch_size
    network.learning_rate = setting.learning_rate
    network.replace_mse_with_huber_loss = True
    network.clip_gradients = MAX_GRAD_NORM
    network.adam_optimizer_beta1, network.adam_optimizer_beta2, network.optimizer_epsilon = setting.adam
    agent_params.memory.max_size = (MemoryGranularity.Transitions, setting.buffer_size)
    exploration = agent_params.exploration
    exploration.epsilon_schedule = LinearSchedule(setting.eps_start, setting.eps_end, setting.eps_decay_steps)
    exploration.evaluation_epsilon = EVAL_EPSILON

    schedule = ScheduleParameters()
    schedule.heatup_steps = EnvironmentSteps(setting.heatup)
    schedule.improve_steps = TrainingSteps(spec.steps)
    schedule.steps_between_evaluation_periods = EnvironmentSteps(spec.eval_every)
    schedule.evaluation_steps = EnvironmentEpisodes(EVAL_EPISODES)
    env_params = GymVectorEnvironment(level=LEVEL)
    env_params.num_envs = spec.num_envs
    graph_manager = TimedGraphManager(agent_params, env_params, schedule, VisualizationParameters(dump_gifs=False))
    graph_manager.add_hooks(clock_hooks(clock))

    thread_variables = ("OMP_NUM_THREADS", "MXNET_ENGINE_TYPE", "MXNET_CPU_WORKER_NTHREADS")
    runtime = {
        "rlframe": rlframe.__version__, "mxnet": mx.__version__,
        "mxnet OpenMP": str(mx.runtime.Features().is_enabled("OPENMP")),
        **{name: os.environ.get(name, "unset") for name in thread_variables},
    }
    profiler = cProfile.Profile() if spec.profile else None
    with tempfile.TemporaryDirectory(prefix="rlframe-bench-") as experiment:
        task = TaskParameters(experiment_path=experiment, seed=spec.seed)
        if profiler is not None:
            profiler.runcall(graph_manager.run, task)
        else:
            graph_manager.run(task)
    final_steps, final_seconds = clock.last_mark
    return RunResult(spec, clock.evaluations, final_steps, final_seconds, runtime,
                     profile_text(profiler) if profiler is not None else "")


# ---- Stable-Baselines3 ------------------------------------------------------------------------------
def run_sb3(spec: RunSpec, setting: Setting) -> RunResult:
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)

    class TimedEvaluation(BaseCallback):
        """Evaluates every ``eval_every`` env steps after heatup on its own environment, clock paused."""

        clock: TrainingClock

        def __init__(self) -> None:
            super().__init__()
            self.env = gym.make(LEVEL)
            self.env.reset(seed=spec.seed + EVAL_SEED_OFFSET)
            self.rng = np.random.default_rng(spec.seed + EVAL_SEED_OFFSET)
            assert isinstance(self.env.action_space, gym.spaces.Discrete)
            self.num_actions = int(self.env.action_space.n)

        def _on_training_start(self) -> None:
            self.clock = TrainingClock()

        def _on_step(self) -> bool:
            trained = self.num_timesteps - setting.heatup
            if trained > 0 and trained % spec.eval_every == 0:
                self.clock.pause()
                self.clock.resume(self.num_timesteps, self.evaluate())
            return True

        def _on_training_end(self) -> None:
            self.clock.mark(self.num_timesteps)

        def evaluate(self) -> float:
            totals = []
            for _ in range(EVAL_EPISODES):
                obs, _ = self.env.reset()
                total, done = 0.0, False
                while not done:
                    if self.rng.random() < EVAL_EPSILON:
                        action = int(self.rng.integers(self.num_actions))
                    else:
                        action = int(self.model.predict(obs, deterministic=True)[0])
                    obs, reward, terminated, truncated, _ = self.env.step(action)
                    total += float(reward)
                    done = terminated or truncated
                totals.append(total)
            return float(np.mean(totals))

    # SB3's epsilon is linear in total steps from step 0; pick its start and span so that it equals
    # rlframe's (eps_start at the end of heatup, eps_end eps_decay_steps later).
    h, d = setting.heatup, setting.eps_decay_steps
    total_timesteps = h + spec.steps
    initial_eps = (setting.eps_start * (h + d) - setting.eps_end * h) / d
    beta1, beta2, adam_eps = setting.adam
    model = DQN(
        "MlpPolicy", gym.make(LEVEL), learning_rate=setting.learning_rate, buffer_size=setting.buffer_size,
        learning_starts=setting.heatup, batch_size=setting.batch_size, tau=1.0, gamma=GAMMA,
        train_freq=setting.train_freq, gradient_steps=setting.gradient_steps,
        target_update_interval=setting.target_update, exploration_fraction=(h + d) / total_timesteps,
        exploration_initial_eps=initial_eps, exploration_final_eps=setting.eps_end, max_grad_norm=MAX_GRAD_NORM,
        policy_kwargs={"net_arch": list(setting.hidden), "activation_fn": torch.nn.ReLU,
                       "optimizer_kwargs": {"betas": (beta1, beta2), "eps": adam_eps}},
        seed=spec.seed, device="cpu", verbose=0,
    )
    callback = TimedEvaluation()
    model.learn(total_timesteps=total_timesteps, callback=callback)
    final_steps, final_seconds = callback.clock.last_mark
    return RunResult(spec, callback.clock.evaluations, final_steps, final_seconds, sb3_runtime())


# ---- driver -----------------------------------------------------------------------------------------
def worker(spec_json: str, result_path: str) -> None:
    spec = RunSpec(**json.loads(spec_json))
    runner = run_rlframe if spec.framework == "rlframe" else run_sb3
    write_result(result_path, asdict(runner(spec, SETTINGS[spec.setting])))


def run_worker(spec: RunSpec, mxnet_env: str) -> RunResult:
    """Run ``spec`` in a fresh interpreter with its framework's thread environment."""
    return run_in_subprocess(__file__, spec, MXNET_ENVS[mxnet_env] if spec.framework == "rlframe" else SB3_ENV)


@dataclass
class Row:
    """One table row: the runs (one per seed) of one framework configuration in one setting."""

    setting: str
    framework: str
    runs: list[RunResult] = field(default_factory=list)

    def cells(self) -> list[str]:
        throughput = [r.steady_throughput() for r in self.runs]
        successes = [s for s in (r.first_success(REWARD_THRESHOLD) for r in self.runs) if s is not None]
        finals = [r.evaluations[-1][2] for r in self.runs if r.evaluations]
        reached = f" ({len(successes)}/{len(self.runs)})"
        return [
            self.setting,
            self.framework,
            spread(throughput, "{:,.0f}"),
            f"{statistics.median(s[0] for s in successes):,.0f}{reached}" if successes else f"not reached{reached}",
            f"{statistics.median(s[1] for s in successes):,.1f}" if successes else "-",
            spread(finals, "{:.1f}"),
        ]


TABLE_HEADER = ("setting", "framework", "train env-steps/s", "env steps to eval >= 195", "train s to eval >= 195",
                "final eval reward")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=sorted(SETTINGS))
    parser.add_argument("--steps", type=int, help="training env steps per run, after heatup (default: per setting)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=2000, help="training env steps between evaluations")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 8],
                        help="rlframe's env_params.num_envs; one table row per value")
    parser.add_argument("--mxnet-env", choices=sorted(MXNET_ENVS), default="omp1",
                        help="rlframe's threads: naive = OMP_NUM_THREADS=1 + NaiveEngine, omp1 = OMP_NUM_THREADS=1, "
                        "default = MXNet's defaults")
    parser.add_argument("--quick", action="store_true", help="smoke test: 4,000 steps, seed 0, evaluate every 1,000")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the table, cProfile one rlframe run (first setting, seed, num-envs; --steps)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.eval_every = args.steps or 4000, args.seeds[:1], 1000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.result)
        return 0
    print(f"# DQN on {LEVEL}: rlframe vs Stable-Baselines3 ({os.cpu_count()} CPUs)")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    if args.profile:
        setting = args.settings[0]
        spec = RunSpec("rlframe", setting, args.seeds[0], args.steps or SETTINGS[setting].steps, args.eval_every,
                       args.num_envs[0], profile=True)
        result = run_worker(spec, args.mxnet_env)
        print(f"rlframe {SETTINGS[setting].label()}, N={spec.num_envs}, seed {spec.seed}, {result.runtime}")
        print(f"{result.final_steps} env steps in {result.final_seconds:.1f} training s "
              f"({result.final_seconds / result.final_steps * 1e3:.3f} ms per env step); whole run under cProfile:")
        print(result.profile)
        return 0
    rows: list[Row] = []
    runtimes: dict[str, dict[str, str]] = {}
    for key in args.settings:
        setting = SETTINGS[key]
        steps = args.steps or setting.steps
        print(f"{setting.label()}; {steps:,} training env steps after {setting.heatup:,} heatup", flush=True)
        configs = [("sb3", 1)] + [("rlframe", n) for n in args.num_envs]
        for framework, num_envs in configs:
            label = "SB3" if framework == "sb3" else f"rlframe (N={num_envs})"
            row = Row(setting.name, label)
            for seed in args.seeds:
                result = run_worker(RunSpec(framework, key, seed, steps, args.eval_every, num_envs), args.mxnet_env)
                runtimes[framework] = result.runtime
                row.runs.append(result)
                print(f"  {label} seed {seed}: {result.steady_throughput():,.0f} env-steps/s, evaluations "
                      f"{[round(e[2]) for e in result.evaluations]}", flush=True)
            rows.append(row)
    for framework, values in runtimes.items():
        print(f"{framework}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    print(f"rlframe thread environment: --mxnet-env {args.mxnet_env} {MXNET_ENVS[args.mxnet_env]}; "
          f"SB3: torch.set_num_threads(1), {SB3_ENV}")
    print(f"seeds {args.seeds}; evaluation every {args.eval_every:,} training env steps: {EVAL_EPISODES} episodes, "
          f"epsilon {EVAL_EPSILON}; seconds exclude evaluation\n")
    print(markdown_table(TABLE_HEADER, [row.cells() for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
