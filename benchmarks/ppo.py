"""rlframe Clipped PPO vs Stable-Baselines3 PPO on Patient Continuous Mountain Car and CartPole-v0, in one run.

Install (the same separate virtualenv as ``dqn_cartpole.py``, so the project's own stays free of torch; the
machine has a local CPU wheel of torch 2.13.0 that pip finds, so no CUDA packages are pulled -- check with
``--dry-run``)::

    python3 -m venv /tmp/benchvenv
    /tmp/benchvenv/bin/pip install --dry-run torch==2.13.0   # must say torch-2.13.0+cpu, no nvidia-*
    /tmp/benchvenv/bin/pip install torch==2.13.0
    /tmp/benchvenv/bin/pip install stable-baselines3 -e /work/main   # or: -e '/work/main[bench]'

Run (from the repository root)::

    /tmp/benchvenv/bin/python benchmarks/ppo.py                  # both environments, seeds 0-2 (~4 min)
    /tmp/benchvenv/bin/python benchmarks/ppo.py --quick          # smoke test: seed 0, short caps (~1 min)
    /tmp/benchvenv/bin/python benchmarks/ppo.py --envs cartpole --seeds 0 1 2 3 4
    /tmp/benchvenv/bin/python benchmarks/ppo.py --profile --envs mountain-car --cap 65536   # cProfile of rlframe

What is compared. Two environments, each given to both frameworks through rlframe's own environment factory
(``make_env_factory``), so SB3 steps the very same objects: ``patient_envs:PatientContinuousMountainCar``
(gymnasium's Continuous_MountainCarEnv in a 10,000-step TimeLimit; solved at a mean evaluation reward >= 90)
and ``CartPole-v0`` (200-step limit; solved at >= 195). Three configurations per environment:

(i) rlframe with its shipped preset (``preset-mountain-car-continuous-clipped-ppo-tuned`` and
    ``CartPole_ClippedPPO``), loaded with ``rlframe.presets.load_preset`` and run in this process. Only the
    schedule is changed: ``improve_steps`` = the step cap, an evaluation of 10 episodes every evaluation
    period (see below), no other parameter. It keeps its default outputs (CSV, screen lines, parameters.yaml;
    the final checkpoint is written after the clock stops).
(ii) SB3 PPO with rl-baselines3-zoo's hyperparameters (rl_zoo3 2.9.2 ``ppo.yml``, see ``ENVIRONMENTS``):
    Mountain Car uses the ``MountainCarContinuous-v0`` entry (VecNormalize of observations and rewards,
    gamma 0.9999, 1 env x 8 steps, batch 256 (cut to 8 by SB3), 10 epochs, lr 7.77e-5, entropy 0.00429,
    clip 0.1, GAE lambda 0.9, grad norm 5, vf_coef 0.19, gSDE with log_std -3.29, no orthogonal init; the zoo
    tuned it on the 999-step MountainCarContinuous-v0, here it runs on the same 10,000-step environment);
    CartPole uses the ``CartPole-v1`` entry (8 envs x 32 steps, batch 256, 20 epochs, gamma 0.98, lambda 0.8,
    no entropy, lr and clip linear from 0.001 and 0.2 to 0 over the zoo's 100,000 steps, 2x64 tanh, and SB3's
    defaults vf_coef 0.5 and max_grad_norm 0.5).
(iii) SB3 PPO at rlframe's settings, read from the preset by ``rlframe_settings``: the same number of envs,
    rollout length per update (``num_consecutive_playing_steps``), batch size, epochs, Adam lr, betas and
    epsilon, discount, GAE lambda, clip epsilon times ``clipping_decay_schedule`` (CartPole: linear to 0 over
    1,000,000 steps), entropy weight (0 in both presets), separate policy and value towers with the preset's
    layer sizes and tanh, observation normalisation only (VecNormalize ``norm_obs=True, norm_reward=False``,
    clipped at rlframe's +-5), no gradient clipping (``max_grad_norm=1e10``), value loss weight 1
    (``vf_coef=1``, rlframe's loss is policy + (V - target)^2 - beta * entropy), and rlframe's initialisation
    (``ortho_init=False`` keeps PyTorch's uniform +-1/sqrt(fan_in) weights and biases, as rlframe's Dense
    layers; the policy output weights are redrawn from N(0, 0.01), as rlframe's; log-std starts at 0 in both).

Known differences between (i) and (iii) that SB3 or rlframe cannot be configured to remove:

* advantages are standardised over the whole rollout in rlframe, per minibatch in SB3;
* observation statistics: rlframe updates them once per update from the rollout's observations (the first
  rollout acts on statistics of the N first observations, replaced at the first update), starting from a count
  of 0.01 with a variance floor of 0.01, and re-normalises the whole rollout with the new statistics before
  computing values and old log-probabilities; SB3 updates them every env step, epsilon 1e-8, and trains on the
  observations as normalised when they were played;
* Adam's epsilon placement (MXNet's ``adam_update`` adds it to sqrt(v), PyTorch to the bias-corrected
  sqrt(v));
* rlframe's CartPole preset keeps Coach's ``act_for_full_episodes``: an update waits for the first step at
  which some episode ends after 2,048 steps, so its rollouts are a few steps longer than SB3's 8 x 256;
* time-limit truncation bootstraps in both, rlframe inside GAE from V(s'), SB3 by adding gamma * V(s') to
  the reward; a cut at the end of a rollout bootstraps in both;
* the random streams differ (numpy in rlframe, torch in SB3), so equal seeds do not give equal trajectories.

How it is measured. Every evaluation period (1,024 training env steps for Mountain Car and 2,048 for
CartPole, rounded up to a whole number of the configuration's rollouts, so rlframe and (iii) on Mountain
Car evaluate after every 16,384-step update), 10 deterministic episodes (the Gaussian mean or the most
probable action) are played on separate environment copies seeded ``seed + 10000 + i`` and then continuing
their own generators, as rlframe's ``BasicRLGraphManager`` does (rlframe plays them on its N evaluation
copies, on CartPole's 8 the first two to finish play the last two episodes; SB3 on 10 copies, one episode
each); their mean total reward is the evaluation reward. An evaluation always sees the policy after every
update that the steps so far allow: SB3 evaluates at the start of a rollout, rlframe after its period (the
CartPole preset's update that waits for an episode end is waited for). SB3 evaluates with the training
VecNormalize's observation statistics, frozen, and no reward normalisation (as rl-zoo's EvalCallback). A run
stops at the first evaluation that reaches the threshold, or at the step cap (``--cap``; default 300,000 for
Mountain Car and 100,000 for CartPole, rounded up to a whole number of evaluation periods: 311,296 for rlframe
and (iii) on Mountain Car), where the final policy is evaluated too. Runs of (i) and (iii), whose throughputs
are compared, do not stop before 98,304 training env steps on Mountain Car (6 updates) and 20,480 on CartPole
(10 updates), so their throughput is measured over several updates rather than over one that also builds
MXNet's graphs (time to threshold is read from the first evaluation that reached it all the same).
A clock runs from the start of training (after the networks and environments are built) and is paused during
evaluations, so all seconds are training seconds (acting, storing, learning, bookkeeping), never evaluation.

* train env-steps/s: steady-state throughput, env steps / training seconds from the end of the first
  evaluation to the end of the run (the whole run when it ended at its first evaluation).
* env steps / train s to threshold: at the first evaluation that reached it (median over the seeds that
  reached it; ``k/n`` = seeds that reached it).
* final eval reward: the last evaluation, mean +- std over seeds.

Two verdict lines follow the table: rlframe's throughput over (iii)'s (target >= 3x), and rlframe's median
training seconds to the threshold against (ii)'s (target: no worse, i.e. at most (ii)'s median and reached on
at least as many seeds).

Each run is a fresh subprocess (this script with ``--worker``), one at a time: SB3 runs with
``torch.set_num_threads(1)`` and ``OMP_NUM_THREADS=1``; rlframe with the environment chosen by ``--mxnet-env``
(``common.py``'s choices, as in ``dqn_cartpole.py``), by default ``omp1``: ``OMP_NUM_THREADS=1`` and MXNet's
threaded engine. For PPO, ``naive`` (plus ``MXNET_ENGINE_TYPE=NaiveEngine``) measured 9-15% faster on the 2-core
machine: every acting step and minibatch crosses to the engine thread and back for ``nd.array`` and
``asnumpy``. The thread settings, the training clock, running a worker and reading back its result, the
throughput and threshold measures, ``spread``, ``profile_text`` and the markdown table are imported from
``common.py`` in this folder (this script is run as a file, so its folder is on ``sys.path``), shared with
``dqn_cartpole.py``; ``RunSpec`` and ``Row`` are this script's own, with a threshold per
environment and SB3 settings carried in the run's spec.
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
from typing import Any, Callable

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

EVAL_EPISODES = 10
EVAL_SEED_OFFSET = 10000  # the evaluation copies' seeds, as rlframe's BasicRLGraphManager
NO_GRADIENT_CLIPPING = 1e10  # SB3 always clips by global norm; this never binds
#: rlframe's ActorCritic draws its policy output weights from N(0, 0.01); its other Dense layers are initialised
#: as PyTorch's (uniform +-1/sqrt(fan_in) weights and biases), which SB3 keeps with ``ortho_init=False``
RLFRAME_POLICY_OUTPUT_STD = 0.01

#: a value that goes linearly from ``start`` to ``end`` over ``span`` training env steps, then stays at
#: ``end`` (``span`` 0: constant ``start``)
Linear = tuple[float, float, int]


def constant(value: float) -> Linear:
    return (value, value, 0)


@dataclass(frozen=True)
class PPOSettings:
    """The hyperparameters of one SB3 PPO configuration (and, read from a preset, of rlframe's)."""

    num_envs: int
    n_steps: int  # per env and rollout
    batch_size: int
    n_epochs: int
    learning_rate: Linear
    gamma: float
    gae_lambda: float
    clip_range: Linear
    ent_coef: float
    vf_coef: float
    max_grad_norm: float
    hidden: tuple[int, ...]  # each of the two tanh towers (policy, value)
    adam: tuple[float, float, float]  # beta1, beta2, epsilon
    normalize_obs: bool
    normalize_reward: bool
    clip_obs: float = 10.0
    use_sde: bool = False
    log_std_init: float = 0.0
    ortho_init: bool = True
    policy_output_std: float = 0.0  # > 0: redraw the policy output layer's weights from N(0, this)

    @property
    def rollout(self) -> int:
        return self.num_envs * self.n_steps

    def label(self) -> str:
        def linear(value: Linear) -> str:
            start, end, span = value
            return f"{start:g}" if not span else f"{start:g}->{end:g} over {span:,}"

        norm = "+".join(n for n, on in (("obs", self.normalize_obs), ("reward", self.normalize_reward)) if on) or "none"
        return (f"{self.num_envs} env x {self.n_steps} steps, batch {self.batch_size}, {self.n_epochs} epochs, "
                f"lr {linear(self.learning_rate)}, gamma {self.gamma:g}, lambda {self.gae_lambda:g}, "
                f"clip {linear(self.clip_range)}, entropy {self.ent_coef:g}, vf_coef {self.vf_coef:g}, "
                f"grad norm {'none' if self.max_grad_norm >= NO_GRADIENT_CLIPPING else f'{self.max_grad_norm:g}'}, "
                f"tanh {'x'.join(map(str, self.hidden))}, normalise {norm}, "
                f"init {'orthogonal' if self.ortho_init else 'uniform 1/sqrt(fan_in)'}"
                + (f" (policy output N(0, {self.policy_output_std:g}))" if self.policy_output_std else "")
                + (f", gSDE log_std {self.log_std_init:g}" if self.use_sde else ""))


@dataclass(frozen=True)
class Environment:
    """One table section: the level, rlframe's preset, the threshold and the measurement grid."""

    name: str
    level: str  # rlframe's level; SB3 makes the same environment through rlframe's factory
    preset: str
    threshold: float
    cap: int  # training env steps per run
    quick_cap: int
    eval_every: int  # training env steps between evaluations, before rounding up to whole rollouts
    throughput_steps: int  # runs at equal settings train at least this long (steady-state throughput)
    zoo: PPOSettings


#: rl_zoo3 2.9.2 ``ppo.yml`` (``MountainCarContinuous-v0``, ``CartPole-v1``); SB3's defaults where the zoo sets
#: nothing (Adam betas and epsilon; CartPole's vf_coef 0.5 and max_grad_norm 0.5)
ENVIRONMENTS: dict[str, Environment] = {
    "mountain-car": Environment(
        name="PatientContinuousMountainCar", level="patient_envs:PatientContinuousMountainCar",
        preset="preset-mountain-car-continuous-clipped-ppo-tuned", threshold=90.0, cap=300_000, quick_cap=16_384,
        eval_every=1024, throughput_steps=98_304,
        zoo=PPOSettings(
            num_envs=1, n_steps=8, batch_size=256, n_epochs=10, learning_rate=constant(7.77e-5), gamma=0.9999,
            gae_lambda=0.9, clip_range=constant(0.1), ent_coef=0.00429, vf_coef=0.19, max_grad_norm=5.0,
            hidden=(64, 64), adam=(0.9, 0.999, 1e-5), normalize_obs=True, normalize_reward=True, use_sde=True,
            log_std_init=-3.29, ortho_init=False,
        ),
    ),
    "cartpole": Environment(
        name="CartPole-v0", level="CartPole-v0", preset="CartPole_ClippedPPO", threshold=195.0, cap=100_000,
        quick_cap=4096, eval_every=2048, throughput_steps=20_480,
        zoo=PPOSettings(
            num_envs=8, n_steps=32, batch_size=256, n_epochs=20, learning_rate=(0.001, 0.0, 100_000), gamma=0.98,
            gae_lambda=0.8, clip_range=(0.2, 0.0, 100_000), ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
            hidden=(64, 64), adam=(0.9, 0.999, 1e-5), normalize_obs=False, normalize_reward=False,
        ),
    ),
}

#: table rows per environment, in order: (key, label)
CONFIGURATIONS = (("rlframe", "rlframe, shipped preset"), ("zoo", "SB3 PPO, rl-zoo hyperparameters"),
                  ("sb3-rlframe", "SB3 PPO, rlframe's settings"))


def rlframe_settings(preset: str) -> PPOSettings:
    """rlframe's Clipped PPO settings in a preset, as SB3 PPO hyperparameters."""
    from rlframe.agents.clipped_ppo import ClippedPPOAgent
    from rlframe.core_types import EnvironmentSteps
    from rlframe.filters.observation import ObservationNormalizationFilter
    from rlframe.networks.blocks import layer_sizes
    from rlframe.networks.parameters import EMBEDDER_SCHEMES, MIDDLEWARE_SCHEMES
    from rlframe.presets import load_preset
    from rlframe.schedules import ConstantSchedule, LinearSchedule

    graph_manager = load_preset(preset)
    agent_params = graph_manager.agent_params
    algorithm, network = agent_params.algorithm, agent_params.network_wrappers["main"]
    num_envs = graph_manager.env_params.num_envs or ClippedPPOAgent.default_num_envs
    playing = algorithm.num_consecutive_playing_steps
    assert isinstance(playing, EnvironmentSteps) and playing.num_steps % num_envs == 0, playing
    embedder = network.input_embedders_parameters["observation"]
    middleware = network.middleware_parameters
    assert embedder.activation_function == middleware.activation_function == "tanh"
    assert network.optimizer_type == "Adam" and not network.learning_rate_decay_rate
    epsilon = float(algorithm.clip_likelihood_ratio_using_epsilon)
    decay = algorithm.clipping_decay_schedule
    if isinstance(decay, ConstantSchedule):
        clip_range = constant(epsilon * decay.initial_value)
    else:
        assert isinstance(decay, LinearSchedule), decay
        clip_range = (epsilon * decay.initial_value, epsilon * decay.final_value, int(decay.decay_steps))
    normalizers = [f for f in agent_params.pre_network_filter.observation_filters.get("observation", {}).values()
                   if isinstance(f, ObservationNormalizationFilter)]
    assert agent_params.input_filter is None or agent_params.input_filter.is_empty
    return PPOSettings(
        num_envs=num_envs, n_steps=int(playing.num_steps) // num_envs, batch_size=int(network.batch_size),
        n_epochs=int(algorithm.optimization_epochs), learning_rate=constant(float(network.learning_rate)),
        gamma=float(algorithm.discount), gae_lambda=float(algorithm.gae_lambda), clip_range=clip_range,
        ent_coef=float(algorithm.beta_entropy), vf_coef=1.0,
        max_grad_norm=float(network.clip_gradients or NO_GRADIENT_CLIPPING),
        hidden=tuple(layer_sizes(embedder.scheme, EMBEDDER_SCHEMES, "embedder")
                     + layer_sizes(middleware.scheme, MIDDLEWARE_SCHEMES, "middleware")),
        adam=(float(network.adam_optimizer_beta1), float(network.adam_optimizer_beta2),
              float(network.optimizer_epsilon)),
        normalize_obs=bool(normalizers), normalize_reward=False,
        clip_obs=float(normalizers[0].clip_max) if normalizers else 10.0,
        ortho_init=False, policy_output_std=RLFRAME_POLICY_OUTPUT_STD,
    )


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def evaluation_period(environment: Environment, settings: PPOSettings) -> int:
    """The environment's evaluation period rounded up to whole rollouts of ``settings``."""
    return round_up(environment.eval_every, settings.rollout)


@dataclass
class RunSpec:
    """What one worker process runs."""

    framework: str  # "rlframe" or "sb3"
    env: str  # a key of ENVIRONMENTS
    seed: int
    cap: int
    eval_every: int
    settings: dict[str, Any] | None = None  # PPOSettings for SB3
    profile: bool = False
    min_steps: int = 0  # a solved evaluation ends the run only from this many training env steps on


# ---- rlframe ----------------------------------------------------------------------------------------
def run_rlframe(spec: RunSpec) -> RunResult:
    import mxnet as mx

    import rlframe
    from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, StepMethod
    from rlframe.graph_managers.basic_rl import BasicRLGraphManager
    from rlframe.graph_managers.graph_manager import Progress
    from rlframe.parameters import TaskParameters
    from rlframe.presets import load_preset

    environment = ENVIRONMENTS[spec.env]
    preset = load_preset(environment.preset)
    updates_per_period = spec.eval_every // preset.agent_params.algorithm.num_consecutive_playing_steps.num_steps

    clock = TrainingClock()

    class TimedGraphManager(BasicRLGraphManager):
        """Runs the schedule, timed by ``clock`` (restarted where training begins, after the graph is built), and
        ends each period with its update (the CartPole preset updates at the first episode end after its rollout)."""

        def improve(self, until: Any = None) -> None:
            clock.restart()
            super().improve(until)

        def train_and_act(self, steps: StepMethod) -> None:
            updates_before = self.agent.training_iteration
            super().train_and_act(steps)
            while self.agent.training_iteration - updates_before < updates_per_period:  # at the cap too
                super().train_and_act(EnvironmentSteps(1))

    graph_manager = TimedGraphManager(preset.agent_params, preset.env_params, preset.schedule_params,
                                      preset.visualization_parameters, preset.preset_validation_params)
    graph_manager.improve_steps = EnvironmentSteps(spec.cap)
    graph_manager.steps_between_evaluation_periods = EnvironmentSteps(spec.eval_every)
    graph_manager.evaluation_steps = EnvironmentEpisodes(EVAL_EPISODES)
    graph_manager.add_hooks(clock_hooks(clock))

    def solved(progress: Progress) -> bool:
        return (progress.last_evaluation_reward is not None and progress.last_evaluation_reward >= environment.threshold
                and graph_manager.agent.total_steps >= spec.min_steps)

    runtime = {
        "rlframe": rlframe.__version__, "mxnet": mx.__version__,
        "mxnet OpenMP": str(mx.runtime.Features().is_enabled("OPENMP")),
        **{name: os.environ.get(name, "unset") for name in ("OMP_NUM_THREADS", "MXNET_ENGINE_TYPE")},
    }
    profiler = None
    with tempfile.TemporaryDirectory(prefix="rlframe-bench-") as experiment:
        task = TaskParameters(experiment_path=experiment, seed=spec.seed)
        if spec.profile:
            profiler = cProfile.Profile()
            profiler.runcall(graph_manager.run, task, solved)
        else:
            graph_manager.run(task, solved)
    final_steps, final_seconds = clock.last_mark
    return RunResult(spec, clock.evaluations, final_steps, final_seconds, runtime,
                     profile_text(profiler) if profiler is not None else "")


# ---- Stable-Baselines3 ------------------------------------------------------------------------------
def sb3_schedule(value: Linear, total_timesteps: int) -> Callable[[float], float]:
    """``value`` as SB3's schedule of ``progress_remaining`` (1 -> 0 over ``total_timesteps``)."""
    start, end, span = value

    def at(progress_remaining: float) -> float:
        if not span:
            return start
        return start + (end - start) * min(1.0, (1.0 - progress_remaining) * total_timesteps / span)

    return at


def run_sb3(spec: RunSpec) -> RunResult:
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

    from rlframe.environments.gym_environment import GymVectorEnvironment, make_env_factory
    from rlframe.shipped import shipped_dir

    torch.set_num_threads(1)
    assert spec.settings is not None
    settings = PPOSettings(**spec.settings)
    environment = ENVIRONMENTS[spec.env]
    make_env = make_env_factory(GymVectorEnvironment(level=environment.level), [shipped_dir("environments")], False)
    venv: VecEnv = DummyVecEnv([make_env] * settings.num_envs)
    normalizer = None
    if settings.normalize_obs or settings.normalize_reward:
        venv = normalizer = VecNormalize(venv, norm_obs=settings.normalize_obs, norm_reward=settings.normalize_reward,
                                         clip_obs=settings.clip_obs, gamma=settings.gamma)

    class TimedEvaluation(BaseCallback):
        """Evaluates at the first rollout start on or after every ``eval_every`` env steps and at the end,
        clock paused, and stops training once an evaluation reaches the threshold."""

        clock: TrainingClock

        def __init__(self) -> None:
            super().__init__()
            self.envs = [make_env() for _ in range(EVAL_EPISODES)]
            self.seeds: list[int | None] = [spec.seed + EVAL_SEED_OFFSET + i for i in range(EVAL_EPISODES)]
            self.next_evaluation = spec.eval_every
            self.solved = False

        def _on_training_start(self) -> None:
            self.clock = TrainingClock()

        def _on_rollout_start(self) -> None:
            if self.num_timesteps >= self.next_evaluation:
                self.evaluate_now()

        def _on_step(self) -> bool:
            return not self.solved

        def _on_training_end(self) -> None:
            if not self.solved:  # the cap: evaluate the final policy, as rlframe does after its last period
                self.evaluate_now()

        def evaluate_now(self) -> None:
            self.clock.mark(self.num_timesteps)
            self.clock.pause()
            reward = self.evaluate()
            self.clock.resume(self.num_timesteps, reward)
            while self.next_evaluation <= self.num_timesteps:
                self.next_evaluation += spec.eval_every
            self.solved = reward >= environment.threshold and self.num_timesteps >= spec.min_steps

        def evaluate(self) -> float:
            """One deterministic episode on each evaluation copy, acting on all running copies at once."""
            obs = np.stack([env.reset(seed=seed)[0] for env, seed in zip(self.envs, self.seeds)])
            self.seeds = [None] * EVAL_EPISODES
            totals = np.zeros(EVAL_EPISODES)
            running = np.ones(EVAL_EPISODES, dtype=bool)
            while running.any():
                index = np.flatnonzero(running)
                batch = normalizer.normalize_obs(obs[index]) if normalizer is not None else obs[index]
                actions, _ = self.model.predict(batch, deterministic=True)
                for action, i in zip(actions, index):
                    obs[i], reward, terminated, truncated, _ = self.envs[i].step(action)
                    totals[i] += float(reward)
                    running[i] = not (terminated or truncated)
            return float(totals.mean())

    model = PPO(
        "MlpPolicy", venv, learning_rate=sb3_schedule(settings.learning_rate, spec.cap), n_steps=settings.n_steps,
        batch_size=settings.batch_size, n_epochs=settings.n_epochs, gamma=settings.gamma,
        gae_lambda=settings.gae_lambda, clip_range=sb3_schedule(settings.clip_range, spec.cap),
        ent_coef=settings.ent_coef, vf_coef=settings.vf_coef, max_grad_norm=settings.max_grad_norm,
        use_sde=settings.use_sde,
        policy_kwargs={
            "net_arch": {"pi": list(settings.hidden), "vf": list(settings.hidden)}, "activation_fn": torch.nn.Tanh,
            "log_std_init": settings.log_std_init, "ortho_init": settings.ortho_init,
            "optimizer_kwargs": {"betas": tuple(settings.adam[:2]), "eps": settings.adam[2]},
        },
        seed=spec.seed, device="cpu", verbose=0,
    )
    if settings.policy_output_std:
        action_net = model.policy.action_net
        assert isinstance(action_net, torch.nn.Linear)
        torch.nn.init.normal_(action_net.weight, 0.0, settings.policy_output_std)
    callback = TimedEvaluation()
    model.learn(total_timesteps=spec.cap, callback=callback)
    final_steps, final_seconds = callback.clock.last_mark
    return RunResult(spec, callback.clock.evaluations, final_steps, final_seconds, sb3_runtime())


# ---- driver -----------------------------------------------------------------------------------------
def worker(spec_json: str, result_path: str) -> None:
    spec = RunSpec(**json.loads(spec_json))
    write_result(result_path, asdict(run_rlframe(spec) if spec.framework == "rlframe" else run_sb3(spec)))


def run_worker(spec: RunSpec, mxnet_env: str) -> RunResult:
    """Run ``spec`` in a fresh interpreter with its framework's thread environment."""
    return run_in_subprocess(__file__, spec, MXNET_ENVS[mxnet_env] if spec.framework == "rlframe" else SB3_ENV)


@dataclass
class Row:
    """One table row: the runs (one per seed) of one configuration on one environment."""

    environment: str
    configuration: str
    runs: list[RunResult] = field(default_factory=list)

    def throughput(self) -> float:
        return statistics.mean(r.steady_throughput() for r in self.runs)

    def successes(self) -> list[tuple[int, float]]:
        return [s for s in (r.first_success(ENVIRONMENTS[r.spec.env].threshold) for r in self.runs) if s is not None]

    def median_seconds(self) -> float | None:
        successes = self.successes()
        return statistics.median(s[1] for s in successes) if successes else None

    def reached(self) -> str:
        return f"{len(self.successes())}/{len(self.runs)}"

    def cells(self) -> list[str]:
        successes = self.successes()
        seconds = self.median_seconds()
        finals = [r.evaluations[-1][2] for r in self.runs if r.evaluations]
        return [
            self.environment,
            self.configuration,
            spread([r.steady_throughput() for r in self.runs], "{:,.0f}"),
            f"{statistics.median(s[0] for s in successes):,.0f} ({self.reached()})" if successes
            else f"not reached ({self.reached()})",
            f"{seconds:,.1f}" if seconds is not None else "-",
            spread(finals, "{:.1f}"),
        ]


TABLE_HEADER = ("environment", "configuration", "train env-steps/s", "env steps to threshold (k/n)",
                "train s to threshold", "final eval reward")


def verdicts(environment: Environment, rows: dict[str, Row]) -> list[str]:
    """The throughput and time-to-threshold verdicts of one environment."""
    ours, zoo, same = rows["rlframe"], rows["zoo"], rows["sb3-rlframe"]
    ratio = ours.throughput() / same.throughput()
    lines = [f"{environment.name}: throughput rlframe {ours.throughput():,.0f} / SB3 at rlframe's settings "
             f"{same.throughput():,.0f} env-steps/s = {ratio:.2f}x "
             f"(target >= 3x: {'met' if ratio >= 3 else 'NOT met'})"]
    ours_s, zoo_s = ours.median_seconds(), zoo.median_seconds()
    no_worse = (ours_s is not None and len(ours.successes()) >= len(zoo.successes())
                and (zoo_s is None or ours_s <= zoo_s))

    def median(seconds: float | None) -> str:
        return f"{seconds:.1f} s" if seconds is not None else "never"

    lines.append(f"{environment.name}: training seconds to eval >= {environment.threshold:g}, median: rlframe "
                 f"{median(ours_s)} ({ours.reached()}) vs SB3 rl-zoo {median(zoo_s)} ({zoo.reached()}) "
                 f"(target rlframe no worse: {'met' if no_worse else 'NOT met'})")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", choices=sorted(ENVIRONMENTS), default=list(ENVIRONMENTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cap", type=int, help="training env steps per run, rounded up to whole evaluation periods "
                        "(default: 300,000 for Mountain Car, 100,000 for CartPole)")
    parser.add_argument("--mxnet-env", choices=sorted(MXNET_ENVS), default="omp1",
                        help="rlframe's threads (as dqn_cartpole.py): omp1 = OMP_NUM_THREADS=1, naive = omp1 + "
                        "NaiveEngine, default = MXNet's defaults")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: seed 0, caps of 16,384 (Mountain Car) and 4,096 (CartPole) steps")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the table, cProfile one rlframe run (first of --envs and --seeds)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.result)
        return 0
    print(f"# PPO: rlframe vs Stable-Baselines3 ({os.cpu_count()} CPUs)")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    if args.profile:
        key = args.envs[0]
        environment = ENVIRONMENTS[key]
        eval_every = evaluation_period(environment, rlframe_settings(environment.preset))
        spec = RunSpec("rlframe", key, args.seeds[0], round_up(args.cap or environment.cap, eval_every), eval_every,
                       profile=True)
        result = run_worker(spec, args.mxnet_env)
        print(f"rlframe {environment.preset}, seed {spec.seed}, {result.runtime}")
        print(f"{result.final_steps} env steps in {result.final_seconds:.1f} training s "
              f"({result.final_steps / result.final_seconds:,.0f} env-steps/s), evaluations "
              f"{[round(e[2], 1) for e in result.evaluations]}; whole run under cProfile:")
        print(result.profile)
        return 0
    rows: list[Row] = []
    verdict_lines: list[str] = []
    runtimes: dict[str, dict[str, str]] = {}
    for key in args.envs:
        environment = ENVIRONMENTS[key]
        cap = args.cap or (environment.quick_cap if args.quick else environment.cap)
        settings = {"rlframe": rlframe_settings(environment.preset), "zoo": environment.zoo}
        settings["sb3-rlframe"] = settings["rlframe"]
        print(f"{environment.name} (threshold {environment.threshold:g}, cap {cap:,} env steps rounded up to whole "
              "evaluation periods):", flush=True)
        by_config: dict[str, Row] = {}
        for config, label in CONFIGURATIONS:
            eval_every = evaluation_period(environment, settings[config])
            config_cap = round_up(cap, eval_every)
            print(f"  {label}: {settings[config].label()}; evaluation every {eval_every:,} env steps, "
                  f"cap {config_cap:,}", flush=True)
            framework = "rlframe" if config == "rlframe" else "sb3"
            row = by_config[config] = Row(environment.name, label)
            for seed in args.seeds:
                # the equal-settings pair trains long enough for a steady-state throughput (the first update
                # builds MXNet's graphs; on CartPole the threshold can fall on the first evaluation)
                min_steps = 0 if args.quick or config == "zoo" else min(environment.throughput_steps, config_cap)
                spec = RunSpec(framework, key, seed, config_cap, eval_every,
                               None if framework == "rlframe" else asdict(settings[config]), min_steps=min_steps)
                result = run_worker(spec, args.mxnet_env)
                runtimes[framework] = result.runtime
                row.runs.append(result)
                print(f"    seed {seed}: {result.steady_throughput():,.0f} env-steps/s, {result.final_steps:,} steps "
                      f"in {result.final_seconds:.1f} s, evaluations {[round(e[2], 1) for e in result.evaluations]}",
                      flush=True)
            rows.append(row)
        verdict_lines += verdicts(environment, by_config)
    for framework, values in runtimes.items():
        print(f"{framework}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    print(f"rlframe thread environment: --mxnet-env {args.mxnet_env} {MXNET_ENVS[args.mxnet_env]}; "
          f"SB3: torch.set_num_threads(1), {SB3_ENV}")
    print(f"seeds {args.seeds}; evaluation: {EVAL_EPISODES} deterministic episodes on separate copies; "
          "seconds exclude evaluation; each run stops at its first evaluation that reaches the threshold, "
          "runs at equal settings not before " + ", ".join(f"{ENVIRONMENTS[k].throughput_steps:,} steps on "
                                                          f"{ENVIRONMENTS[k].name}" for k in args.envs) + "\n")
    print(markdown_table(TABLE_HEADER, [row.cells() for row in rows]))
    print()
    print("\n".join(verdict_lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
