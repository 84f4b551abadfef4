"""A run killed with SIGKILL after its second checkpoint resumes from that checkpoint's counters."""
import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from rlframe.cli import train_main

pytestmark = pytest.mark.integration

CSV_NAME = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
SCHEDULE = "heatup_steps=EnvironmentSteps(200);steps_between_evaluation_periods=EnvironmentEpisodes(10)"


def _wait_for_checkpoints(marker, process, count, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if marker.exists() and marker.read_text().startswith(f"{count - 1}_Step-"):
            return marker.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint {count - 1} within {timeout} s (exit code {process.poll()})")


def test_resume_after_sigkill_continues_counters_and_csv(tmp_path, capsys):
    experiment = tmp_path / "exp"
    command = [sys.executable, "-m", "rlframe.cli", "-p", "preset-cartpole-dqn", "--seed", "5", "-s", "0.5",
               "-ep", str(experiment), "-cp", SCHEDULE + ";improve_steps=TrainingSteps(1000000)"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        name = _wait_for_checkpoints(experiment / "checkpoint" / ".coach_checkpoint", process, 2)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    state = json.loads((experiment / "checkpoint" / f"{name}.state.json").read_text())
    saved_episodes = state["graph"]["episodes"]
    saved_steps = state["agent"]["counters"]["total_steps"]
    saved_train_steps = state["graph"]["counters"]["TRAIN"]["EnvironmentSteps"]
    assert name == f"1_Step-{saved_train_steps}.ckpt"

    more = saved_train_steps + 300
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "5", "-crd", str(experiment / "checkpoint"),
                       "-cp", SCHEDULE + f";improve_steps=TrainingSteps({more})"]) == 0
    out = capsys.readouterr().out
    assert f"Checkpoint> Restored {name}" in out
    first_line = next(line for line in out.splitlines() if line.startswith(("Training>", "Heatup>")))
    assert first_line.startswith("Training>"), "a resumed run must not heat up again"
    assert f"Episode={saved_episodes + 1}," in first_line

    frame = pd.read_csv(experiment / CSV_NAME)
    episodes = frame[frame["Evaluation Reward"].isna()]
    assert episodes["Episode #"].tolist() == list(range(1, len(episodes) + 1))
    resumed = episodes[episodes["Episode #"] > saved_episodes]
    assert len(resumed) > 0 and resumed["Total steps"].iloc[0] > saved_steps
    latest = (experiment / "checkpoint" / ".coach_checkpoint").read_text().strip()
    assert latest == f"2_Step-{more}.ckpt" or latest.startswith("2_Step-")
