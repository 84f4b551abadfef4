"""rlframe's batch-RL DDQN+BCQ vs d3rlpy's DiscreteBCQ on the same CartPole dataset file, in one run.

Install (a separate virtualenv, so the project's own stays free of torch; the machine has a local CPU wheel of
torch 2.13.0 that pip finds, so no CUDA packages are pulled -- check with ``--dry-run``)::

    python3 -m venv /tmp/d3venv
    /tmp/d3venv/bin/pip install --dry-run torch==2.13.0   # must say torch-2.13.0+cpu, no nvidia-*
    /tmp/d3venv/bin/pip install torch==2.13.0
    /tmp/d3venv/bin/pip install d3rlpy -e /work/main       # or: -e '/work/main[bench]'

That resolved d3rlpy 2.8.1 with gymnasium 1.0.0 (d3rlpy pins ``gymnasium==1.0.0``; rlframe accepts
``gymnasium>=1.0,<2``), numpy 1.23.5 (rlframe pins ``numpy<1.24`` for MXNet 1.9.1; d3rlpy sets no numpy bound,
and ``pip check`` is clean), torch 2.13.0+cpu, and also pulls the old ``gym`` 0.26.2, which d3rlpy requires and
which prints a deprecation banner on import (harmless). Installed in that order -- torch and d3rlpy first, rlframe
after -- pip briefly installs numpy 2 and then replaces it with 1.23.5, so install d3rlpy and rlframe in one
command as above. ``d3rlpy`` is in the ``bench`` extra (setup.cfg) beside stable-baselines3; note that installing
that extra into a virtualenv moves its gymnasium to 1.0.0. Both frameworks then run from that one interpreter.
To run rlframe's side in its own virtualenv instead (for example the dev one, gymnasium 1.4), give the
interpreters: ``--rlframe-python /tmp/venv/bin/python --d3rlpy-python /tmp/d3venv/bin/python``. The d3rlpy worker
imports only d3rlpy, torch, gymnasium and numpy (it reads the training split from a file the rlframe worker
writes), so its interpreter does not need rlframe. Run (from the repository root)::

    /tmp/d3venv/bin/python benchmarks/batch_rl_cartpole.py               # seeds 0-2 (~1.5 min)
    /tmp/d3venv/bin/python benchmarks/batch_rl_cartpole.py --quick       # smoke test: seed 0, 5 epochs (~15 s)
    /tmp/d3venv/bin/python benchmarks/batch_rl_cartpole.py --seeds 0 1 2 3 4 --workdir /tmp/brl-bench

What is compared. The SageMaker batch-RL CartPole notebook's flow, with its preset unchanged:

1. The dataset: ``rlframe-collect --level CartPole-v0 --num-envs 100 --episodes 5 --seed 0`` (uniform random
   behaviour policy; ~11,000 rows in 500 episodes, average return ~22), collected ONCE, with ``--dataset-seed``
   (default 0), and given to every run of both frameworks, so all of them train on the same file (or pass
   ``--dataset FILE`` to use an existing one). The seeds of the runs (``--seeds``) vary everything else:
   rlframe's train/evaluation split of the episodes, weight initialisation, minibatch order, and the evaluation
   episodes' starting states.
2. rlframe: ``rlframe-train -p preset-cartpole-ddqnbcq --seed S --dataset FILE --improve_steps 50`` (run in
   this worker process through ``rlframe.cli.train_main``): DDQN+BCQ with the kNN action filter, 50 epochs of
   one shuffled pass over the training split (``train_to_eval_ratio`` 0.4 of the transitions, whole episodes,
   drawn from the seed: ~4,200 transitions, 34 minibatches of 128 per epoch, ~1,700 gradient steps), Adam lr
   1e-4, MSE loss, discount 0.99, target copy every 50 gradient steps, 256-then-512 ReLU layers; after every
   epoch its off-policy evaluation (IPS, DM, DR, WIS, Sequential DR on the held-out 60%), a CSV row and a
   checkpoint. Then the final checkpoint is evaluated in CartPole-v0 with
   ``rlframe-train -p preset-cartpole-ddqnbcq-env -crd DIR/checkpoint --evaluate 0 --evaluation_episodes 10
   --num-envs 10 --seed S`` (GIF dumping off): 10 greedy episodes (evaluation epsilon 0), one per copy.
3. d3rlpy: ``DiscreteBCQ`` (Fujimoto et al.'s discrete BCQ: an imitation head sharing the Q network's encoder
   filters the next actions whose behaviour probability is under 0.3 times the most likely one's) trained on
   EXACTLY rlframe's training split of that seed (the transitions rlframe trained on, written to a file by the
   rlframe worker), for the SAME number of gradient steps (rlframe's ``Training Iter`` on its CSV's last row),
   with the preset's settings read from ``preset-cartpole-ddqnbcq``: batch 128, Adam lr 1e-4 with rlframe's
   betas (0.9, 0.99) and epsilon 1e-4, gamma 0.99, ``target_update_interval`` 50,
   ``VectorEncoderFactory(hidden_units=[256, 512])`` (ReLU) and d3rlpy's linear Q head -- the same
   4-256-512-2 network. Everything else is d3rlpy's default (``action_flexibility`` 0.3, ``beta`` 0.5, one
   critic, shared encoder). It is evaluated greedily (``algo.predict``) on 10 CartPole-v0 episodes played from
   the same 10 starting states as rlframe's evaluation (see below).

How the rows become d3rlpy transitions. A dataset row holds the state before a step, its action and its reward.
rlframe pairs consecutive rows t, t+1 of an episode into one transition (s_t, a_t, r_t, s_t+1); an episode of k
rows gives k - 1 transitions, its last row only supplies the final next state, and the last transition is
terminal (``CsvDataset(is_episodic=True)``). d3rlpy's ``MDPDataset`` makes every row of a terminated episode
a transition, the last one terminal with a zero next observation. So each training episode is given to d3rlpy as
rlframe's k - 1 transitions: the observations, actions and rewards of its first k - 1 rows, with ``terminals``
= 1 on the (k - 1)-th, the last row dropped. d3rlpy's transitions are then rlframe's one for one: the same
(s_t, a_t, r_t, s_t+1) for t < k - 2, and for the terminal one the same (s, a, r) with a next state that both
frameworks multiply by (1 - terminal) = 0. The worker checks this (consecutive rows, one terminal per episode,
d3rlpy's ``transition_count`` equal to rlframe's number of training transitions). The alternative, giving
d3rlpy all k rows, would add the episode's real last step (the pole falling) as an extra terminal transition
that rlframe never sees.

Known differences that neither library can be configured to remove: d3rlpy's Q loss is always the Huber loss
(the preset uses MSE); d3rlpy filters actions with a learned imitation head trained together with Q (its loss
is added, weight 1, with a logit penalty ``beta``), rlframe with a kNN filter built once from the training
split (which drops ~20% of the next actions on this dataset); d3rlpy samples each minibatch uniformly with
replacement, rlframe makes shuffled passes over the split; Adam's epsilon placement (MXNet's ``adam_update`` adds
it to sqrt(v), PyTorch to the bias-corrected sqrt(v)); the random streams differ. Both initialise Dense layers
as PyTorch does (uniform +-1/sqrt(fan_in) weights and biases).

What to expect. With these settings d3rlpy's Q values grow past any reachable return within the ~1,700 steps
(mean Q on the training states ~10, 27, 75, 190 after each quarter; its DoubleDQN does the same) and its greedy
policy ends up pushing one way, ~9.5 per episode. That is not the harness: the same worker code with gamma 0.9
instead of 0.99 reaches 190-200 in the same number of steps. rlframe's loss grows over the 50 epochs too, but
its final policy balances the pole (~125-155 on seeds 0-2).

How it is measured. Each run is a fresh subprocess (this script with ``--worker``), one at a time: rlframe's
worker trains and then evaluates; d3rlpy's worker trains and evaluates on the split rlframe's worker wrote.
rlframe runs with the thread environment of ``--mxnet-env`` (``common.py``'s choices, as in ``dqn_cartpole.py``,
default ``omp1``: ``OMP_NUM_THREADS=1``, MXNet's threaded engine); d3rlpy with ``torch.set_num_threads(1)`` and
``OMP_NUM_THREADS=1`` (as the SB3 runs of the other benchmarks). Seconds are wall-clock ``time.perf_counter``:

* rlframe 50 epochs: from the start of the first epoch to the end of the 50th (the preset's 50 training passes
  with their per-epoch off-policy evaluation, CSV row and checkpoint), read from the run's ``on_epoch`` events
  (``rlframe.graph_managers.hooks``) in the worker process; the acceptance target (<= 60 s on 2 cores) is judged
  on it, on the slowest seed. Before it, and not counted, come the preset load, MXNet's graph building, reading
  and splitting the CSV, the reward model's 30 epochs and the kNN filter; after it, closing.
* gradient passes: rlframe's time inside the agent's ``train_epoch`` (the events' ``seconds``: minibatch gathering,
  forward, backward, Adam, target copies) summed over the epochs; d3rlpy's ``fit`` for the same number of steps
  (minibatch sampling, forward, backward, Adam, target copies), after ``build_with_dataset`` has built its networks.
  These two are the like-for-like training cost.
* whole training: rlframe's ``train_main`` call for the training command (all of the above, in process, so
  without interpreter start-up and imports); d3rlpy's ``MDPDataset`` construction, network building and ``fit``.
* final eval reward: the mean total reward of the 10 greedy evaluation episodes of the final policy, then mean
  +- std over seeds. Evaluation seeds: rlframe's evaluation copies i = 0..9 are reset with seed S + 10000 + i
  when they are built and reset again (continuing their generators) when the evaluation starts; d3rlpy's worker
  does the same to 10 ``gymnasium.make('CartPole-v0')`` environments, so both frameworks' episodes start from
  the same 10 states.

Two verdict lines follow the table: rlframe's 50 epochs against 60 s (the slowest seed), and the mean final
evaluation reward of rlframe against d3rlpy's (target: rlframe's higher). ``--quick`` (seed 0, 5 epochs and the
same number of d3rlpy steps) only smoke-tests the pipeline; its verdicts say so. The thread environments,
running a worker (with a chosen interpreter) and reading back its result, ``spread`` and the markdown table are
imported from ``common.py`` in this folder (this script is run as a file, so its folder is on ``sys.path``),
shared with the other benchmarks.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from common import MXNET_ENVS, SB3_ENV, launch, markdown_table, spread, write_result

LEVEL = "CartPole-v0"
TRAIN_PRESET = "preset-cartpole-ddqnbcq"
EVAL_PRESET = "preset-cartpole-ddqnbcq-env"
DATASET_ENVS = 100  # rlframe-collect --num-envs, as the notebook
DATASET_EPISODES = 5  # rlframe-collect --episodes (per environment copy)
QUICK_EPOCHS = 5
EVAL_EPISODES = 10
EVAL_SEED_OFFSET = 10000  # rlframe's EVALUATION_SEED_OFFSET: evaluation copy i is seeded S + 10000 + i
TIME_TARGET_S = 60.0
TARGET_EPOCHS = 50  # the acceptance target's epochs
TORCH_ENV = SB3_ENV  # the torch side's thread environment, as SB3's in the other benchmarks


@dataclass(frozen=True)
class BCQSettings:
    """The preset's training settings, as d3rlpy DiscreteBCQ takes them."""

    epochs: int
    batch_size: int
    learning_rate: float
    adam: tuple[float, float, float]  # beta1, beta2, epsilon
    gamma: float
    target_update: int  # gradient steps between target copies
    hidden: tuple[int, ...]  # ReLU layers, embedder then middleware
    huber: bool
    train_to_eval_ratio: float

    def label(self) -> str:
        return (f"{self.epochs} epochs, {self.train_to_eval_ratio:g} of the transitions train, "
                f"batch {self.batch_size}, "
                f"Adam lr {self.learning_rate:g} betas {self.adam[0]:g}/{self.adam[1]:g} eps {self.adam[2]:g}, "
                f"gamma {self.gamma:g}, target copy every {self.target_update} gradient steps, "
                f"ReLU {'-'.join(map(str, self.hidden))}, {'Huber' if self.huber else 'MSE'} loss")


@dataclass
class RunSpec:
    """What one worker process runs."""

    framework: str  # "rlframe" or "d3rlpy"
    seed: int
    dataset: str  # the CSV (rlframe) or the training split rlframe's worker wrote (d3rlpy)
    workdir: str  # the run's folder: experiments, the split file
    epochs: int = 0  # rlframe: epochs to train (0: the preset's)
    steps: int = 0  # d3rlpy: gradient steps
    settings: dict[str, Any] | None = None  # d3rlpy: BCQSettings read by rlframe's worker


@dataclass
class RunResult:
    """One run: seconds (see the module docstring), the training data's size, the evaluation episodes' total
    rewards, and versions and thread settings."""

    spec: RunSpec
    train_seconds: float  # rlframe: first epoch start to last epoch end; d3rlpy: fit
    gradient_seconds: float
    whole_seconds: float
    gradient_steps: int
    epochs: int
    transitions: int
    episodes: int
    eval_rewards: list[float]
    runtime: dict[str, str]
    settings: dict[str, Any] | None = None  # rlframe: BCQSettings from the preset
    split: str = ""  # rlframe: the file with its training split

    def eval_mean(self) -> float:
        return statistics.mean(self.eval_rewards)


def split_path(workdir: str) -> str:
    return os.path.join(workdir, "train_split.npz")


# ---- rlframe ----------------------------------------------------------------------------------------
def rlframe_settings(preset: str) -> BCQSettings:
    """The DDQN+BCQ training settings of a batch-RL preset."""
    from rlframe.core_types import TrainingSteps
    from rlframe.networks.blocks import layer_sizes
    from rlframe.networks.parameters import EMBEDDER_SCHEMES, MIDDLEWARE_SCHEMES
    from rlframe.presets import load_preset

    graph_manager = load_preset(preset)
    agent_params = graph_manager.agent_params
    algorithm, network = agent_params.algorithm, agent_params.network_wrappers["main"]
    embedder = network.input_embedders_parameters["observation"]
    middleware = network.middleware_parameters
    assert embedder.activation_function == middleware.activation_function == "relu"
    assert network.optimizer_type == "Adam" and not network.learning_rate_decay_rate
    assert not network.clip_gradients, "d3rlpy's DiscreteBCQ would need clip_grad_norm in its AdamFactory"
    target = algorithm.num_steps_between_copying_online_weights_to_target
    assert isinstance(target, TrainingSteps), target
    assert isinstance(graph_manager.improve_steps, TrainingSteps), graph_manager.improve_steps
    assert agent_params.input_filter is None or agent_params.input_filter.is_empty  # d3rlpy gets raw features
    return BCQSettings(
        epochs=int(graph_manager.improve_steps.num_steps), batch_size=int(network.batch_size),
        learning_rate=float(network.learning_rate),
        adam=(float(network.adam_optimizer_beta1), float(network.adam_optimizer_beta2),
              float(network.optimizer_epsilon)),
        gamma=float(algorithm.discount), target_update=int(target.num_steps),
        hidden=tuple(layer_sizes(embedder.scheme, EMBEDDER_SCHEMES, "embedder")
                     + layer_sizes(middleware.scheme, MIDDLEWARE_SCHEMES, "middleware")),
        huber=bool(network.replace_mse_with_huber_loss), train_to_eval_ratio=float(graph_manager.train_to_eval_ratio),
    )


def experiment_csv(experiment: str) -> str:
    paths = glob.glob(os.path.join(experiment, "worker_*.csv"))
    assert len(paths) == 1, f"expected one CSV in {experiment}, found {paths}"
    return paths[0]


def run_rlframe(spec: RunSpec) -> RunResult:
    import gymnasium
    import mxnet as mx
    import numpy as np
    import pandas as pd

    import rlframe
    from rlframe.cli import train_main
    from rlframe.graph_managers.hooks import Epoch, RunHooks

    settings = rlframe_settings(TRAIN_PRESET)
    epochs = spec.epochs or settings.epochs
    marks: dict[str, Any] = {"gradient": 0.0}

    class EpochClock(RunHooks):
        """Epoch times from the run's own events: each training pass, and the first to the last epoch's end."""

        def on_epoch(self, event: Epoch) -> None:
            now = time.perf_counter()
            if "first" not in marks:
                marks["train"] = event.training_split  # the split the epochs train on, for d3rlpy
                marks["first"] = now - event.elapsed
            marks["gradient"] += event.seconds
            marks["last"] = now

    train_dir = os.path.join(spec.workdir, "rlframe-train")
    start = time.perf_counter()
    status = train_main(["-p", TRAIN_PRESET, "--seed", str(spec.seed), "-ep", train_dir, "--dataset", spec.dataset,
                         "--improve_steps", str(epochs), "--progress", "lines"], hooks=[EpochClock()])
    whole = time.perf_counter() - start
    assert status == 0, f"rlframe-train {TRAIN_PRESET} exited {status}"
    assert marks["gradient"] > 0, "no on_epoch event reached the clock"
    last = pd.read_csv(experiment_csv(train_dir)).iloc[-1]
    assert int(last["Epoch"]) == epochs, last

    train = marks["train"]
    assert int(last["ER #Transitions"]) == len(train)
    np.savez(split_path(spec.workdir), obs=train.obs, action=train.action, reward=train.reward,
             next_obs=train.next_obs, terminated=train.terminated, episode_id=train.episode_id)

    eval_dir = os.path.join(spec.workdir, "rlframe-eval")
    status = train_main(["-p", EVAL_PRESET, "-crd", os.path.join(train_dir, "checkpoint"), "--evaluate", "0",
                         "--evaluation_episodes", str(EVAL_EPISODES), "--num-envs", str(EVAL_EPISODES),
                         "-cp", "visualization_parameters.dump_gifs=False", "-ep", eval_dir, "--seed", str(spec.seed),
                         "--progress", "lines"])
    assert status == 0, f"rlframe-train {EVAL_PRESET} --evaluate exited {status}"
    rewards = pd.read_csv(experiment_csv(eval_dir))["Evaluation Reward"].dropna().tolist()
    assert len(rewards) == EVAL_EPISODES, rewards

    thread_variables = ("OMP_NUM_THREADS", "MXNET_ENGINE_TYPE", "MXNET_CPU_WORKER_NTHREADS")
    runtime = {
        "python": sys.executable, "rlframe": rlframe.__version__, "mxnet": mx.__version__, "numpy": np.__version__,
        "gymnasium": gymnasium.__version__, **{name: os.environ.get(name, "unset") for name in thread_variables},
    }
    return RunResult(spec, marks["last"] - marks["first"], marks["gradient"], whole, int(last["Training Iter"]),
                     epochs, len(train), train.num_episodes, [float(r) for r in rewards], runtime,
                     asdict(settings), split_path(spec.workdir))


# ---- d3rlpy -----------------------------------------------------------------------------------------
def run_d3rlpy(spec: RunSpec) -> RunResult:
    import d3rlpy
    import gymnasium as gym
    import numpy as np
    import torch
    from d3rlpy.algos import DiscreteBCQConfig
    from d3rlpy.dataset import MDPDataset
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.models import VectorEncoderFactory
    from d3rlpy.optimizers import AdamFactory

    torch.set_num_threads(1)
    d3rlpy.seed(spec.seed)
    assert spec.settings is not None
    settings = BCQSettings(**spec.settings)
    with np.load(spec.dataset) as split:
        data = {key: split[key] for key in split.files}
    obs, episode = data["obs"], data["episode_id"]
    # rlframe's transitions are consecutive rows of an episode, the last of each episode terminal (see above)
    same = episode[1:] == episode[:-1]
    assert np.array_equal(data["next_obs"][:-1][same], obs[1:][same]), "transitions are not consecutive rows"
    last_of_episode = np.append(~same, True)
    assert np.array_equal(data["terminated"], last_of_episode), "terminal flags are not on each episode's last row"

    start = time.perf_counter()
    dataset = MDPDataset(observations=obs.astype(np.float32), actions=data["action"].astype(np.int64),
                         rewards=data["reward"].astype(np.float32), terminals=last_of_episode.astype(np.float32),
                         action_space=d3rlpy.ActionSpace.DISCRETE, action_size=2)
    assert dataset.transition_count == len(obs), (dataset.transition_count, len(obs))
    assert dataset.size() == int(episode[-1]) + 1
    beta1, beta2, adam_eps = settings.adam
    algo = DiscreteBCQConfig(
        batch_size=settings.batch_size, learning_rate=settings.learning_rate,
        optim_factory=AdamFactory(betas=(beta1, beta2), eps=adam_eps),
        encoder_factory=VectorEncoderFactory(hidden_units=list(settings.hidden), activation="relu"),
        gamma=settings.gamma, target_update_interval=settings.target_update,
    ).create(device=False)
    algo.build_with_dataset(dataset)
    fit_start = time.perf_counter()
    algo.fit(dataset, n_steps=spec.steps, n_steps_per_epoch=spec.steps, logger_adapter=NoopAdapterFactory(),
             show_progress=False, save_interval=spec.steps + 1)
    end = time.perf_counter()

    # rlframe's evaluation copies: reset with seed S + 10000 + i when built, again when the evaluation starts
    envs = [gym.make(LEVEL) for _ in range(EVAL_EPISODES)]
    for i, env in enumerate(envs):
        env.reset(seed=spec.seed + EVAL_SEED_OFFSET + i)
    current = np.stack([env.reset()[0] for env in envs]).astype(np.float32)
    totals = np.zeros(EVAL_EPISODES)
    running = np.ones(EVAL_EPISODES, dtype=bool)
    while running.any():
        index = np.flatnonzero(running)
        for action, i in zip(algo.predict(current[index]), index):
            observation, reward, terminated, truncated, _ = envs[i].step(int(action))
            current[i] = observation
            totals[i] += float(reward)
            running[i] = not (terminated or truncated)
    runtime = {
        "python": sys.executable, "d3rlpy": d3rlpy.__version__, "torch": torch.__version__,
        "numpy": np.__version__, "gymnasium": gym.__version__, "torch threads": str(torch.get_num_threads()),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
    }
    return RunResult(spec, end - fit_start, end - fit_start, end - start, spec.steps, 0, len(obs), dataset.size(),
                     totals.tolist(), runtime)


# ---- driver -----------------------------------------------------------------------------------------
def worker(spec_json: str, result_path: str) -> None:
    spec = RunSpec(**json.loads(spec_json))
    write_result(result_path, asdict(run_rlframe(spec) if spec.framework == "rlframe" else run_d3rlpy(spec)))


def run_worker(spec: RunSpec, python: str, env_update: dict[str, str]) -> RunResult:
    """Run ``spec`` in a fresh ``python`` with ``env_update`` added to the environment; the worker's output goes
    to ``<framework>-worker.log`` in the run's folder."""
    data = launch(__file__, asdict(spec), env_update, python,
                  log_path=os.path.join(spec.workdir, f"{spec.framework}-worker.log"))
    data["spec"] = RunSpec(**data["spec"])
    return RunResult(**data)


def collect(python: str, path: str, seed: int) -> str:
    """Write the notebook's dataset to ``path`` with rlframe-collect; returns its summary line."""
    code = "import sys; from rlframe.data import collect_main; sys.exit(collect_main(sys.argv[1:]))"
    command = [python, "-c", code, "--level", LEVEL, "--num-envs", str(DATASET_ENVS), "--episodes",
               str(DATASET_EPISODES), "--seed", str(seed), "-o", path]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rlframe-collect failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class Row:
    """One table row: the runs (one per seed) of one framework."""

    framework: str
    runs: list[RunResult] = field(default_factory=list)

    def cells(self) -> list[str]:
        return [
            self.framework,
            spread([float(r.gradient_steps) for r in self.runs], "{:,.0f}"),
            spread([r.train_seconds for r in self.runs], "{:.2f}"),
            spread([r.gradient_seconds for r in self.runs], "{:.2f}"),
            spread([r.whole_seconds for r in self.runs], "{:.2f}"),
            spread([r.eval_mean() for r in self.runs], "{:.1f}"),
        ]


def table(rows: list[Row], epochs: int) -> str:
    header = ["framework", "gradient steps", f"train s ({epochs} epochs / same steps)", "gradient passes s",
              "whole training s", f"final eval reward ({EVAL_EPISODES} episodes)"]
    return markdown_table(header, [row.cells() for row in rows])


def verdicts(ours: Row, theirs: Row, epochs: int) -> list[str]:
    seconds = [r.train_seconds for r in ours.runs]
    slowest = max(seconds)
    if epochs == TARGET_EPOCHS:
        time_verdict = f"target <= {TIME_TARGET_S:g} s: {'met' if slowest <= TIME_TARGET_S else 'NOT met'}"
    else:
        time_verdict = f"target <= {TIME_TARGET_S:g} s for {TARGET_EPOCHS} epochs: not judged, {epochs} epochs run"
    ours_reward = statistics.mean(r.eval_mean() for r in ours.runs)
    theirs_reward = statistics.mean(r.eval_mean() for r in theirs.runs)
    reward_verdict = "met" if ours_reward > theirs_reward else "NOT met"
    if epochs != TARGET_EPOCHS:
        reward_verdict += f" (only {epochs} epochs: a smoke test)"
    time_line = (f"rlframe {epochs} epochs: {statistics.mean(seconds):.2f} s (mean of {len(seconds)} seed(s), "
                 f"slowest {slowest:.2f} s; {time_verdict})")
    reward_line = (f"final eval reward: rlframe {ours_reward:.1f} vs d3rlpy {theirs_reward:.1f} "
                   f"(target higher: {reward_verdict})")
    return [time_line, reward_line]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="rlframe's epochs (default: the preset's, 50; --quick: 5)")
    parser.add_argument("--dataset", help="an existing dataset CSV to use instead of collecting one")
    parser.add_argument("--dataset-seed", type=int, default=0,
                        help="rlframe-collect --seed of the one dataset (default 0)")
    parser.add_argument("--rlframe-python", default=sys.executable,
                        help="interpreter of rlframe's workers and of rlframe-collect (default: this one)")
    parser.add_argument("--d3rlpy-python", default=sys.executable,
                        help="interpreter of d3rlpy's workers (default: this one)")
    parser.add_argument("--mxnet-env", choices=sorted(MXNET_ENVS), default="omp1",
                        help="rlframe's threads (as dqn_cartpole.py): omp1 = OMP_NUM_THREADS=1, naive = omp1 + "
                        "NaiveEngine, default = MXNet's defaults")
    parser.add_argument("--workdir", help="keep datasets, experiments, splits and worker logs here "
                        "(default: a temporary folder, deleted)")
    parser.add_argument("--quick", action="store_true", help=f"smoke test: seed 0, {QUICK_EPOCHS} epochs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = args.seeds[:1], args.epochs or QUICK_EPOCHS
    return args


def run_all(args: argparse.Namespace, workdir: str) -> int:
    if args.dataset:
        dataset = os.path.abspath(args.dataset)
        print(f"dataset: {dataset} (given)", flush=True)
    else:
        dataset = os.path.join(workdir, "cartpole_dataset.csv")
        summary = collect(args.rlframe_python, dataset, args.dataset_seed)
        print(f"dataset: rlframe-collect --level {LEVEL} --num-envs {DATASET_ENVS} --episodes {DATASET_EPISODES} "
              f"--seed {args.dataset_seed}: {summary}", flush=True)
    ours, theirs = Row("rlframe DDQN+BCQ (kNN filter)"), Row("d3rlpy DiscreteBCQ")
    settings: BCQSettings | None = None
    for seed in args.seeds:
        run_dir = os.path.join(workdir, f"seed{seed}")
        os.makedirs(run_dir, exist_ok=True)
        mine = run_worker(RunSpec("rlframe", seed, dataset, run_dir, epochs=args.epochs or 0), args.rlframe_python,
                          MXNET_ENVS[args.mxnet_env])
        if settings is None:
            assert mine.settings is not None
            settings = BCQSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in mine.settings.items()})
            print(f"preset {TRAIN_PRESET}: {settings.label()}", flush=True)
        ours.runs.append(mine)
        print(f"  seed {seed} rlframe: {mine.epochs} epochs in {mine.train_seconds:.2f} s (gradient passes "
              f"{mine.gradient_seconds:.2f} s, whole training command {mine.whole_seconds:.2f} s), "
              f"{mine.gradient_steps:,} gradient steps on {mine.transitions:,} transitions ({mine.episodes} episodes); "
              f"eval {[round(r) for r in mine.eval_rewards]} mean {mine.eval_mean():.1f}", flush=True)
        spec = RunSpec("d3rlpy", seed, mine.split, run_dir, steps=mine.gradient_steps, settings=mine.settings)
        other = run_worker(spec, args.d3rlpy_python, TORCH_ENV)
        theirs.runs.append(other)
        print(f"  seed {seed} d3rlpy:  {other.gradient_steps:,} gradient steps in {other.train_seconds:.2f} s (whole "
              f"{other.whole_seconds:.2f} s) on {other.transitions:,} transitions ({other.episodes} episodes); "
              f"eval {[round(r) for r in other.eval_rewards]} mean {other.eval_mean():.1f}", flush=True)
    epochs = ours.runs[0].epochs
    for row in (ours, theirs):
        print(f"{row.framework}: " + ", ".join(f"{k}={v}" for k, v in row.runs[-1].runtime.items()))
    print(f"rlframe thread environment: --mxnet-env {args.mxnet_env} {MXNET_ENVS[args.mxnet_env]}; "
          f"d3rlpy: torch.set_num_threads(1), {TORCH_ENV}")
    print(f"seeds {args.seeds}; one dataset for all runs; d3rlpy trains on rlframe's training split of each seed for "
          f"rlframe's number of gradient steps; evaluation: {EVAL_EPISODES} greedy episodes of {LEVEL} from the same "
          "starting states; train s: rlframe from the first epoch's start to the last epoch's end, d3rlpy its fit; "
          "+- is the std over seeds\n")
    print(table([ours, theirs], epochs))
    print()
    print("\n".join(verdicts(ours, theirs, epochs)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.result)
        return 0
    print(f"# Batch RL on {LEVEL}: rlframe DDQN+BCQ vs d3rlpy DiscreteBCQ ({os.cpu_count()} CPUs)")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}", flush=True)
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        return run_all(args, os.path.abspath(args.workdir))
    with tempfile.TemporaryDirectory(prefix="batch-rl-bench-") as workdir:
        return run_all(args, workdir)


if __name__ == "__main__":
    sys.exit(main())
