"""Spot restarts through local mode: ``--checkpoint-dir`` plays SageMaker's managed checkpoint folder.

A job is SIGKILLed with everything it started (the instance is gone) once a checkpoint is in the checkpoint
folder; the job started again with the same folder (and a new output folder: a fresh machine) resumes from that
checkpoint and continues its counters and CSV, no episode counted twice; SIGTERM to it (a stop, or the next
interruption) is forwarded to the script, which writes a final checkpoint, and the job exits 143 with both
tarballs written.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sagemaker"
LOCAL = [sys.executable, "-m", "rlframe.integrations.sagemaker.local"]
CSV = "opt_ml/output/intermediate/worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
#: a user's launcher that checkpoints every second (the default is every 10 s), so a test can interrupt it soon
SPOT_LAUNCHER = """\
from sagemaker_rl.coach_launcher import SageMakerCoachPresetLauncher


class SpotLauncher(SageMakerCoachPresetLauncher):
    def default_preset_name(self):
        return "preset-cartpole-dqn"

    def get_config_args(self, parser):
        args = super().get_config_args(parser)
        args.checkpoint_save_secs = 1
        return args


if __name__ == "__main__":
    SpotLauncher.train_main()
"""


def _checkpoint_id(name: str) -> int:
    return int(name.split("_", 1)[0])


def _wait_until(found, process: subprocess.Popen, what: str, timeout: float = 180.0):
    """``found()``'s first truthy value, polled while ``process`` runs; ``what`` names it in a failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the job ended with {process.returncode} before {what}"
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def _wait_for_checkpoint(marker: Path, process: subprocess.Popen, after: int = -1) -> str:
    """The name ``marker`` holds once it names a checkpoint with an id above ``after``."""
    def newer() -> str:
        name = marker.read_text().strip() if marker.exists() else ""
        return name if name and _checkpoint_id(name) > after else ""

    return _wait_until(newer, process, f"a checkpoint after {after} in {marker.parent}")


def _wait_for_line(log: Path, pattern: str, process: subprocess.Popen) -> None:
    """Until a line of ``log`` matches ``pattern`` (a resumed job may first finish an evaluation that was due and
    checkpoint before its first training episode ends)."""
    _wait_until(lambda: re.search(pattern, log.read_text(), re.MULTILINE), process, f"a line of {log} matching {pattern!r}")


def test_a_killed_job_resumes_from_the_checkpoint_folder_and_a_sigterm_writes_a_final_checkpoint(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(FIXTURES / "cartpole_src", source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "train-spot.py").write_text(SPOT_LAUNCHER)
    (tmp_path / "hp.json").write_text(json.dumps({"RLCOACH_PRESET": "preset-cartpole-dqn", "improve_steps": 1000000}))
    checkpoints = tmp_path / "checkpoints"
    marker = checkpoints / "algo-1" / ".coach_checkpoint"

    def job(out: str, log: Path) -> subprocess.Popen:
        with open(log, "w") as handle:
            return subprocess.Popen(LOCAL + ["--source-dir", str(source), "--entry-point", "train-spot.py",
                                             "--hyperparameters", str(tmp_path / "hp.json"), "--output-path",
                                             str(tmp_path / out), "--checkpoint-dir", str(checkpoints)],
                                    stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)

    first = job("first", tmp_path / "first.log")
    try:
        _wait_for_checkpoint(marker, first)
        os.killpg(first.pid, signal.SIGKILL)  # the instance is reclaimed: every process of the job dies at once
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    saved = marker.read_text().strip()
    state = json.loads((checkpoints / "algo-1" / f"{saved}.state.json").read_text())
    saved_episodes = state["graph"]["episodes"]

    second = job("second", tmp_path / "second.log")
    try:
        _wait_for_checkpoint(marker, second, after=_checkpoint_id(saved))
        _wait_for_line(tmp_path / "second.log", r"^(Heatup|Training)> ", second)
        second.send_signal(signal.SIGTERM)  # to rlframe-local only: it forwards the signal to the script
        assert second.wait(timeout=120) == 143
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    log = (tmp_path / "second.log").read_text()
    assert f"Checkpoint> Restored {saved} from {tmp_path / 'second' / 'opt_ml' / 'checkpoints' / 'algo-1'}" in log
    first_episode = re.search(r"^(Heatup|Training)> .*Episode=(\d+),", log, re.MULTILINE)
    assert first_episode.groups() == ("Training", str(saved_episodes + 1)), "no heatup again, no episode twice"

    final = re.search(r"^Stopped by SIGTERM: finished the current step; its last complete checkpoint is (\S+) in",
                      log, re.MULTILINE).group(1)
    assert marker.read_text().strip() == final and _checkpoint_id(final) > _checkpoint_id(saved)
    assert (tmp_path / "second" / "opt_ml" / "output" / "failure").read_text().startswith("Stopped by SIGTERM")
    assert (tmp_path / "second" / "output.tar.gz").is_file() and (tmp_path / "second" / "model.tar.gz").is_file()

    frame = pd.read_csv(tmp_path / "second" / CSV)
    episodes = frame[frame["Evaluation Reward"].isna()]["Episode #"].tolist()
    final_episodes = json.loads((checkpoints / "algo-1" / f"{final}.state.json").read_text())["graph"]["episodes"]
    assert episodes == list(range(1, final_episodes + 1)), "the CSV continues the killed job's, each episode once"
    before = pd.read_csv(checkpoints / "algo-1" / f"{final}.csv")
    pd.testing.assert_frame_equal(frame, before)
