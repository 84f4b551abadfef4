"""A run killed with SIGKILL after its checkpoint resumes from that checkpoint's counters, and the CSV a killed
writer leaves holds whole rows only.

Everything here is driven by steps and rows, never by the clock: runs end at an ``improve_steps`` count, and a
process is killed once its CSV holds rows past a known point (the deadlines only bound a hung process).
"""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rlframe.cli import train_main
from rlframe.outputs.csv_logger import CsvLogger

pytestmark = pytest.mark.integration

CSV_NAME = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
SCHEDULE = "heatup_steps=EnvironmentSteps(200);steps_between_evaluation_periods=EnvironmentEpisodes(10)"
#: DQN acts on 4 environment copies, 4 steps at a time: improve_steps that are multiples of 4 end runs exactly there
RUN = ["-p", "preset-cartpole-dqn", "--seed", "5", "--num-envs", "4"]


def _kill_when(process: subprocess.Popen, ready, what: str, timeout: float = 120.0) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds (polled); fail if it exits first or hangs."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert process.poll() is None, f"the process exited ({process.returncode}) before {what}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()


def _rows_are_whole(path: Path) -> pd.DataFrame:
    """Every line of the CSV has all its fields and ends with a newline; returns the CSV."""
    text = path.read_text()
    header, *rows = text.split("\n")
    assert rows and rows[-1] == "", f"the last line is not whole: {rows[-1:]!r}"
    fields = header.count(",")
    assert all(row.count(",") == fields for row in rows[:-1]), [row for row in rows[:-1] if row.count(",") != fields]
    return pd.read_csv(path)


def _episode_rows(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame({"Episode #": []})
    frame = pd.read_csv(path)
    return frame[frame["Evaluation Reward"].isna()]


def test_resume_after_sigkill_continues_counters_and_csv(tmp_path, capsys):
    experiment = tmp_path / "exp"
    checkpoint = experiment / "checkpoint"
    assert train_main([*RUN, "-ep", str(experiment), "-cp", SCHEDULE + ";improve_steps=TrainingSteps(100)"]) == 0
    name = (checkpoint / ".coach_checkpoint").read_text().strip()
    assert name == "0_Step-100.ckpt"
    state = json.loads((checkpoint / f"{name}.state.json").read_text())
    saved_episodes = state["graph"]["episodes"]
    saved_steps = state["agent"]["counters"]["total_steps"]
    assert state["graph"]["counters"]["TRAIN"]["EnvironmentSteps"] == 100

    # The same run continues in a process killed once its CSV holds 3 episodes past the checkpoint.
    csv = experiment / CSV_NAME
    process = subprocess.Popen([sys.executable, "-m", "rlframe.cli", *RUN, "-crd", str(checkpoint),
                                "-cp", SCHEDULE + ";improve_steps=TrainingSteps(1000000)"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(process, lambda: (_episode_rows(csv)["Episode #"] > saved_episodes + 2).any(),
               "CSV rows past the checkpoint")
    assert (checkpoint / ".coach_checkpoint").read_text().strip() == name  # the killed run saved nothing
    assert _rows_are_whole(csv)["Episode #"].max() > saved_episodes + 2

    more = 100 + 200
    capsys.readouterr()
    assert train_main([*RUN, "-crd", str(checkpoint), "-cp", SCHEDULE + f";improve_steps=TrainingSteps({more})"]) == 0
    out = capsys.readouterr().out
    assert f"Checkpoint> Restored {name}" in out
    first_line = next(line for line in out.splitlines() if line.startswith(("Training>", "Heatup>")))
    assert first_line.startswith("Training>"), "a resumed run must not heat up again"
    assert f"Episode={saved_episodes + 1}," in first_line

    episodes = _episode_rows(csv)  # the killed run's rows past the checkpoint were dropped, none repeated
    assert episodes["Episode #"].tolist() == list(range(1, len(episodes) + 1))
    resumed = episodes[episodes["Episode #"] > saved_episodes]
    assert len(resumed) > 0 and resumed["Total steps"].iloc[0] > saved_steps
    latest = (checkpoint / ".coach_checkpoint").read_text().strip()
    assert latest == f"1_Step-{more}.ckpt"
    final = json.loads((checkpoint / f"{latest}.state.json").read_text())
    assert final["graph"]["counters"]["TRAIN"]["EnvironmentSteps"] == more


WRITER = """
import sys
from rlframe.outputs.csv_logger import CsvLogger

logger = CsvLogger(sys.argv[1], "Episode #", ["Loss/Mean", "Loss/Stdev"], flush_every=1000)
episode = 0
while True:
    for _ in range(3):
        episode += 1
        logger.add_row({"Episode #": episode, "Total steps": 10 * episode, "Loss/Stdev": 0.5})
    logger.flush()
"""


def test_a_csv_writer_killed_mid_run_leaves_whole_rows_that_a_resume_continues(tmp_path):
    path = tmp_path / "agent.csv"
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stderr=subprocess.PIPE)
    inode = []

    def enough_rows() -> bool:
        if path.exists() and not inode:
            inode.append(path.stat().st_ino)
        return path.exists() and path.read_bytes().count(b"\n") > 150

    _kill_when(process, enough_rows, "150 CSV rows")
    assert path.stat().st_ino == inode[0], "the file was replaced, not appended to"
    frame = _rows_are_whole(path)
    count = len(frame)
    assert frame["Episode #"].tolist() == list(range(1, count + 1))
    assert frame["Total steps"].tolist() == [10 * e for e in range(1, count + 1)]

    logger = CsvLogger(str(path), "Episode #", ["Loss/Mean", "Loss/Stdev"], flush_every=1000)
    logger.resume(count)
    logger.add_row({"Episode #": count + 1})
    logger.flush()
    assert _rows_are_whole(path)["Episode #"].tolist() == list(range(1, count + 2))
