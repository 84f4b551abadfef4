"""SIGTERM and SIGINT in every phase of a run, sent to a real ``rlframe-train`` subprocess.

For each phase (heatup, acting, a gradient update, an evaluation, a GIF being written, a batch-RL epoch) a run
is started with a schedule that keeps it in that phase, the signal is sent once the phase has begun (a line or
a file says so), and the run must: exit with 143 (SIGTERM) or 130 (SIGINT) within 5 s, print one line naming
its final checkpoint, leave that checkpoint named in ``.coach_checkpoint`` with counters that match the CSV
(no missing or extra row), and resume from it with the counters continuing and the CSV's rows contiguous.

Runs that render frames for GIFs start pygame/SDL, which would install its own SIGTERM handler and swallow the
signal; each phase runs once with GIFs of every episode and once without.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from rlframe.cli import train_main
from rlframe.outputs.csv_logger import csv_file_name

pytestmark = pytest.mark.integration

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}
ONLINE_CSV = csv_file_name("simple_rl_graph")
BATCH_CSV = csv_file_name("batch_rl_graph")
#: SageMaker sends SIGKILL 120 s after SIGTERM. A run stops after its current step (well under 5 s on an idle
#: machine), while the runs here would otherwise go on for minutes; the bound is kept far from both so that a loaded
#: machine cannot fail it and a run that ignored the signal could not pass it.
EXIT_WITHIN_SECONDS = 60.0
#: how long a phase may take to begin on a slow machine (not a measurement: a bound on waiting)
START_TIMEOUT = 180.0

#: preset-cartpole-dqn writing a GIF of every episode of every phase, so SDL is running from the first step
GIF_PRESET = '''\
from rlframe.outputs.video_dump_filters import AlwaysDumpFilter
from rlframe.presets import load_preset

graph_manager = load_preset("preset-cartpole-dqn")
graph_manager.visualization_parameters.dump_gifs = True
graph_manager.visualization_parameters.video_dump_filters = [AlwaysDumpFilter()]
'''


class Run:
    """A ``python -m rlframe.cli`` subprocess whose output lines are collected as they come."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-u", "-m", "rlframe.cli", *args, "--progress", "lines"], cwd=cwd,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.process.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if self.process.poll() is not None:
                raise AssertionError(f"the run ended (exit {self.process.returncode}) before {what}:\n" + "\n".join(self.err[-5:]))
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"no {what} within {START_TIMEOUT} s")
            time.sleep(0.01)

    def count(self, prefix: str) -> int:
        return sum(1 for line in list(self.lines) if line.startswith(prefix))

    def stop(self, signum: int) -> float:
        """Send ``signum``; returns the seconds until the process exited."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout=60)
        finally:
            self.process.kill()
        elapsed = time.monotonic() - sent
        for reader in self._readers:
            reader.join(timeout=10)
        return elapsed


def _state(checkpoint_dir: Path) -> tuple[str, dict]:
    name = (checkpoint_dir / ".coach_checkpoint").read_text().strip()
    return name, json.loads((checkpoint_dir / f"{name}.state.json").read_text())


def _check_stopped(run: Run, signum: int, elapsed: float, checkpoint_dir: Path) -> tuple[str, dict]:
    assert run.process.returncode == EXIT_CODES[signum], (run.process.returncode, run.err[-5:])
    assert elapsed < EXIT_WITHIN_SECONDS, f"took {elapsed:.1f} s to exit"
    everything = "\n".join(run.lines + run.err)
    assert "Traceback" not in everything
    name, state = _state(checkpoint_dir)
    assert run.lines[-1] == (f"Stopped by {signal.Signals(signum).name}: finished the current step; its last complete "
                             f"checkpoint is {name} in {checkpoint_dir} (resume with -crd {checkpoint_dir}).")
    return name, state


def _check_online_csv(experiment: Path, episodes: int) -> pd.DataFrame:
    """The CSV has one row per finished episode 1..episodes (evaluation rows carry the count before them)."""
    frame = pd.read_csv(experiment / ONLINE_CSV)
    rows = frame[frame["Evaluation Reward"].isna()]
    assert rows["Episode #"].tolist() == list(range(1, episodes + 1))
    return frame


# ---- online RL: heatup, acting, an update, an evaluation, a GIF ------------------------------------------------
#: phase -> (-cp schedule that keeps the run in it, the output that shows it has begun: a line prefix and a count)
PHASES = {
    "heatup": ("heatup_steps=EnvironmentSteps(100000000)", ("Heatup>", 3)),
    # one update per 1000 steps: acting is almost all the time
    "act": ("heatup_steps=EnvironmentSteps(100);agent_params.algorithm.num_consecutive_playing_steps=EnvironmentSteps(1000);"
            "steps_between_evaluation_periods=EnvironmentEpisodes(100000)", ("Training>", 3)),
    # 50 gradient updates after every step: nearly all the time is spent updating
    "update": ("heatup_steps=EnvironmentSteps(100);agent_params.algorithm.num_consecutive_training_steps=50;"
               "steps_between_evaluation_periods=EnvironmentEpisodes(100000)", ("Training>", 1)),
    "evaluation": ("heatup_steps=EnvironmentSteps(100);steps_between_evaluation_periods=EnvironmentEpisodes(2);"
                   "evaluation_steps=EnvironmentEpisodes(100000)", ("Testing>", 3)),
}


def _preset(tmp_path: Path, gifs: bool) -> list[str]:
    if not gifs:
        return ["-p", "preset-cartpole-dqn", "--seed", "3"]
    (tmp_path / "gif_everything.py").write_text(GIF_PRESET)
    return ["-p", str(tmp_path / "gif_everything.py"), "--seed", "3"]


def _resume_online(tmp_path: Path, preset: list[str], schedule: str, state: dict, name: str, capsys) -> None:
    """Resume with a short remaining budget; the run continues from the checkpoint's counters and the CSV grows
    without a gap or a repeated episode."""
    experiment = tmp_path / "exp"
    counters = state["graph"]["counters"]
    heatup_done = counters["HEATUP"]["EnvironmentSteps"]
    train_done = counters["TRAIN"]["TrainingSteps"]
    episodes = state["graph"]["episodes"]
    saved_steps = state["agent"]["counters"]["total_steps"]
    finish = (f"{schedule};heatup_steps=EnvironmentSteps({heatup_done + 50});improve_steps=TrainingSteps({train_done + 150});"
              "evaluation_steps=EnvironmentEpisodes(1);visualization_parameters.dump_gifs=False;"
              "agent_params.algorithm.num_consecutive_training_steps=1")
    capsys.readouterr()
    assert train_main([*preset, "-crd", str(experiment / "checkpoint"), "-cp", finish, "--progress", "lines"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"Checkpoint> Restored {name} from {experiment / 'checkpoint'}" in out
    first = next(line for line in out if line.startswith(("Heatup>", "Training>")))
    assert f"Episode={episodes + 1}," in first
    assert int(first.split("Steps=")[1].split(",")[0]) > saved_steps
    resumed_name, resumed = _state(experiment / "checkpoint")
    _check_online_csv(experiment, resumed["graph"]["episodes"])
    assert resumed["graph"]["episodes"] > episodes and resumed_name != name


#: Every phase with both signals and with and without GIFs, and each (GIFs, signal) pair in two phases: all pairs
#: of the three settings in 8 runs instead of all 16 triples. The signal changes only the exit code and the name
#: in the last line (rlframe.stopping), the same in every phase.
PHASE_CASES = [
    pytest.param(phase, gifs, signum, id=f"{phase}-{'gifs' if gifs else 'no-gifs'}-{signal.Signals(signum).name}")
    for i, phase in enumerate(PHASES)
    for gifs, signum in ([(True, signal.SIGTERM), (False, signal.SIGINT)] if i % 2 == 0
                         else [(True, signal.SIGINT), (False, signal.SIGTERM)])
]


@pytest.mark.parametrize(("phase", "gifs", "signum"), PHASE_CASES)
def test_a_signal_in_each_phase_stops_with_a_final_checkpoint_that_resumes(tmp_path, capsys, phase, gifs, signum):
    schedule, (prefix, count) = PHASES[phase]
    preset = _preset(tmp_path, gifs)
    experiment = tmp_path / "exp"
    run = Run([*preset, "-ep", str(experiment), "-cp", schedule], tmp_path)
    run.wait_for(lambda: run.count(prefix) >= count, f"{count} {prefix} lines")
    elapsed = run.stop(signum)
    name, state = _check_stopped(run, signum, elapsed, experiment / "checkpoint")
    _check_online_csv(experiment, state["graph"]["episodes"])
    if gifs:
        assert any((experiment / "gifs").glob("*.gif"))
    if phase == "evaluation":
        # the evaluation it cut short is not counted (no row, no episodes) and is run again on resume
        assert state["graph"]["evaluation_pending"] is True
        assert state["graph"]["counters"]["TEST"]["EnvironmentEpisodes"] == 0
    _resume_online(tmp_path, preset, schedule, state, name, capsys)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_gifs_are_written_stops_with_whole_gifs(tmp_path, capsys, signum):
    """MountainCar's 200-step episodes make 40-frame GIFs of 600x400 frames, so writing them is most of the run."""
    preset = _preset(tmp_path, gifs=True)
    experiment = tmp_path / "exp"
    schedule = "heatup_steps=EnvironmentSteps(100000000)"
    run = Run([*preset, "-lvl", "MountainCar-v0", "-ep", str(experiment), "-cp", schedule], tmp_path)
    run.wait_for(lambda: len(list((experiment / "gifs").glob("*.gif"))) >= 2, "two GIFs")
    elapsed = run.stop(signum)
    name, state = _check_stopped(run, signum, elapsed, experiment / "checkpoint")
    _check_online_csv(experiment, state["graph"]["episodes"])
    gifs = list((experiment / "gifs").glob("*.gif"))
    assert not list((experiment / "gifs").glob(".tmp-*"))  # a GIF is written whole or not at all
    import imageio.v3 as iio

    for gif in gifs:
        assert iio.improps(gif, extension=".gif").shape[0] >= 1
    assert train_main([*preset, "-lvl", "MountainCar-v0", "-crd", str(experiment / "checkpoint"), "--progress", "lines", "-cp",
                       f"heatup_steps=EnvironmentSteps({state['graph']['counters']['HEATUP']['EnvironmentSteps'] + 10});"
                       "improve_steps=TrainingSteps(10);evaluation_steps=EnvironmentEpisodes(0);"
                       "visualization_parameters.dump_gifs=False"]) == 0
    assert f"Checkpoint> Restored {name}" in capsys.readouterr().out


# ---- batch RL: an epoch, and the dataset generation before the first ------------------------------------------
def _check_batch_csv(experiment: Path, epochs: int) -> None:
    assert pd.read_csv(experiment / BATCH_CSV)["Epoch"].tolist() == list(range(1, epochs + 1))


BATCH_RUNS = {
    # the notebook's preset: no environment, an epoch is a pass over the data plus off-policy evaluation
    "dataset": (["-p", "preset-cartpole-ddqnbcq", "-cp", "reward_model_num_epochs=2"], "Off-Policy Evaluation>"),
    # random heatup data, then every epoch evaluated in CartPole with a GIF of each evaluation episode
    "environment-gifs": (["-p", "CartPole_DDQN_BatchRL", "-dg", "-cp",
                          "heatup_steps=EnvironmentSteps(2000);evaluation_steps=EnvironmentEpisodes(2)"], "Training> Epoch="),
}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("kind", list(BATCH_RUNS))
def test_a_signal_in_a_batch_epoch_keeps_the_last_epoch_and_resumes(tmp_path, dataset, capsys, kind, signum):
    args, prefix = BATCH_RUNS[kind]
    experiment = tmp_path / "exp"
    run = Run([*args, "--seed", "0", "-ep", str(experiment), "--improve_steps", "100000"], tmp_path)
    run.wait_for(lambda: run.count(prefix) >= 3, f"3 {prefix} lines")
    elapsed = run.stop(signum)
    name, state = _check_stopped(run, signum, elapsed, experiment / "checkpoint")
    epochs = state["graph"]["epoch"]
    assert epochs >= 3 and name.endswith(f"_Step-{epochs}.ckpt")
    _check_batch_csv(experiment, epochs)
    capsys.readouterr()
    assert train_main([*args, "--seed", "0", "-crd", str(experiment / "checkpoint"), "--improve_steps", str(epochs + 2),
                       "--progress", "lines"]) == 0
    out = capsys.readouterr().out
    assert f"Checkpoint> Restored {name}" in out and f"Epoch={epochs + 1}," in out
    _check_batch_csv(experiment, epochs + 2)


def test_a_signal_while_the_dataset_is_generated_counts_nothing_and_the_resumed_run_generates_it_again(tmp_path, capsys):
    experiment = tmp_path / "exp"
    args = ["-p", "CartPole_DDQN_BatchRL", "--seed", "0", "-cp", "heatup_steps=EnvironmentSteps(100000000)"]
    run = Run([*args, "-ep", str(experiment)], tmp_path)
    run.wait_for(lambda: run.count("Heatup>") >= 5, "5 Heatup> lines")
    elapsed = run.stop(signal.SIGTERM)
    name, state = _check_stopped(run, signal.SIGTERM, elapsed, experiment / "checkpoint")
    assert "Dataset> generation stopped before it was complete; a resumed run generates it again" in run.lines
    assert state["graph"]["epoch"] == 0 and state["graph"]["counters"]["HEATUP"]["EnvironmentSteps"] == 0
    assert state["agent"]["counters"]["total_steps"] == 0
    assert not (experiment / "generated_dataset.npz").exists()
    capsys.readouterr()
    assert train_main(["-p", "CartPole_DDQN_BatchRL", "--seed", "0", "-crd", str(experiment / "checkpoint"), "--improve_steps", "1",
                       "-cp", "heatup_steps=EnvironmentSteps(500);evaluation_steps=EnvironmentEpisodes(1)", "--progress", "lines"]) == 0
    out = capsys.readouterr().out
    assert "Heatup> Name=main_level/agent, Worker=0, Episode=1," in out  # generated from the start
    assert (experiment / "generated_dataset.npz").exists()
    _check_batch_csv(experiment, 1)


# ---- a second signal during the final save --------------------------------------------------------------------
#: observations of 4,000 floats: 3,000 heatup transitions make a ~100 MB replay memory, so a save takes a while
BIG_ENV = '''\
import gymnasium as gym
import numpy as np


class BigObservations(gym.Env):
    """Ten-step episodes of constant 4,000-float observations."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4000,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(4000, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(4000, np.float32), 1.0, self.t >= 10, False, {}
'''

BIG_SCHEDULE = "heatup_steps=EnvironmentSteps(3000);steps_between_evaluation_periods=EnvironmentEpisodes(2);" \
               "evaluation_steps=EnvironmentEpisodes(1)"


def _big_preset(tmp_path: Path) -> list[str]:
    (tmp_path / "big_env.py").write_text(BIG_ENV)
    (tmp_path / "big.py").write_text(
        "from rlframe.presets import load_preset\n"
        "graph_manager = load_preset('preset-cartpole-dqn')\n"
        "graph_manager.env_params.level = 'big_env:BigObservations'\n"
        "graph_manager.visualization_parameters.dump_gifs = False\n"
    )
    return ["-p", str(tmp_path / "big.py"), "--seed", "0"]


def test_a_signal_while_a_checkpoint_is_written_lets_it_finish_then_writes_the_final_one(tmp_path):
    preset = _big_preset(tmp_path)
    experiment = tmp_path / "exp"
    checkpoints = experiment / "checkpoint"
    run = Run([*preset, "-ep", str(experiment), "-s", "1", "-cp", BIG_SCHEDULE], tmp_path)
    run.wait_for(lambda: run.count("Training>") >= 1, "a Training> line")
    run.wait_for(lambda: any(checkpoints.glob(".tmp-*")), "a periodic checkpoint being written")
    elapsed = run.stop(signal.SIGTERM)
    name, _ = _check_stopped(run, signal.SIGTERM, elapsed, checkpoints)
    saved = [line.split("/")[-1].split(".ckpt")[0] + ".ckpt" for line in run.lines if line.startswith("Checkpoint> Saving")]
    assert len(saved) >= 2 and saved[-1] == name  # the save under way completed, then the final one was written
    assert sorted(p.name for p in checkpoints.glob("*.state.json")) == sorted(f"{n}.state.json" for n in saved[-5:])
    assert not list(checkpoints.glob(".tmp-*"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_during_the_final_save_exits_at_once_and_keeps_the_previous_checkpoint(tmp_path, capsys, signum):
    preset = _big_preset(tmp_path)
    experiment = tmp_path / "exp"
    checkpoints = experiment / "checkpoint"
    run = Run([*preset, "-ep", str(experiment), "-cp", BIG_SCHEDULE], tmp_path)
    # a first run, stopped, writes the checkpoint the interrupted save must not replace
    run.wait_for(lambda: run.count("Training>") >= 1, "a Training> line")
    first_elapsed = run.stop(signal.SIGTERM)
    first, _ = _check_stopped(run, signal.SIGTERM, first_elapsed, checkpoints)

    run = Run([*preset, "-crd", str(checkpoints), "-cp", BIG_SCHEDULE], tmp_path)
    run.wait_for(lambda: run.count("Training>") >= 1, "a Training> line after resuming")
    run.process.send_signal(signum)
    # the final save has begun once a temporary file of it appears; the memory file alone takes far longer
    run.wait_for(lambda: any(checkpoints.glob(".tmp-*")), "the final save")
    elapsed = run.stop(signum)
    assert run.process.returncode == EXIT_CODES[signum]
    assert elapsed < EXIT_WITHIN_SECONDS, f"took {elapsed:.1f} s to exit"
    assert run.err[-1] == f"Second {signal.Signals(signum).name}: stopping at once; the last complete checkpoint is kept."
    assert "Traceback" not in "\n".join(run.lines + run.err)
    assert (checkpoints / ".coach_checkpoint").read_text().strip() == first  # the interrupted save never became current
    capsys.readouterr()
    assert train_main([*preset, "-crd", str(checkpoints), "--evaluate", "10",
                       "-ep", str(tmp_path / "eval"), "--progress", "lines"]) == 0
    assert f"Checkpoint> Restored {first}" in capsys.readouterr().out


# ---- a library that installs a C-level handler of its own after rlframe did ------------------------------------
GREEDY_ENV = '''\
import ctypes
import signal

import gymnasium as gym


def make(render_mode=None):
    """CartPole whose first reset, like SDL or any C library might, sets SIGTERM to be ignored at the C level."""
    libc = ctypes.CDLL(None)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.signal(int(signal.SIGTERM), 1)  # SIG_IGN
    return gym.make("CartPole-v0", render_mode=render_mode)
'''


def test_a_handler_a_library_installs_later_does_not_swallow_sigterm(tmp_path):
    (tmp_path / "greedy_env.py").write_text(GREEDY_ENV)
    experiment = tmp_path / "exp"
    run = Run(["-p", "preset-cartpole-dqn", "--seed", "0", "-lvl", "greedy_env:make", "-ep", str(experiment), "-cp",
               "heatup_steps=EnvironmentSteps(100000000);visualization_parameters.dump_gifs=False"], tmp_path)
    run.wait_for(lambda: run.count("Heatup>") >= 20, "20 Heatup> lines")
    elapsed = run.stop(signal.SIGTERM)
    _check_stopped(run, signal.SIGTERM, elapsed, experiment / "checkpoint")
