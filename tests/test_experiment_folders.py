"""An experiment folder belongs to one run at a time and is never overwritten by a new one.

Real runs of the shipped presets: a second run into a folder another run holds is refused at once (naming the
first run's pid) and leaves the first run alone; a fresh run (or an evaluation) into a folder that holds a
run's results is refused without touching a byte of it; ``--start-over`` moves the earlier files into
``previous_<time>/``; resuming with ``-crd`` appends to the folder's log and CSV; a folder whose earlier run
failed before producing results is reused as it is.
"""
from __future__ import annotations

import hashlib
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

from rlframe.cli import train_main
from rlframe.outputs.csv_logger import csv_file_name

pytestmark = pytest.mark.integration

CSV = csv_file_name("simple_rl_graph")
BATCH_CSV = csv_file_name("batch_rl_graph")
SCHEDULE = "heatup_steps=EnvironmentSteps(100);evaluation_steps=EnvironmentEpisodes(1)"
SHORT = SCHEDULE + ";improve_steps=TrainingSteps(300)"
#: MXNet's own log lines on stderr (``[15:08:00] ../src/executor/graph_executor.cc:2072: Subgraph backend ...``)
MXNET_LOG = re.compile(r"^\[\d\d:\d\d:\d\d\] \.\./src/\S+:\d+: ")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rlframe.cli", *args]


def _error_lines(stderr: str) -> list[str]:
    """stderr without MXNet's own log lines."""
    return [line for line in stderr.splitlines() if line.strip() and not MXNET_LOG.match(line)]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = _error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``folder`` (hidden ones too): relative path -> (size, mtime_ns, SHA-256), and every folder."""
    found: dict[str, tuple[int, int, str]] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder) + "/"] = (0, 0, "")
        for name in files:
            path = os.path.join(root, name)
            stat = os.stat(path)
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            found[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns, digest)
    return found


def _training_rows(csv: Path) -> pd.DataFrame:
    frame = pd.read_csv(csv)
    return frame[frame["Evaluation Reward"].isna()]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short finished preset-cartpole-dqn run (CSV, checkpoint, log, parameters); tests work on copies."""
    experiment = tmp_path_factory.mktemp("finished") / "exp"
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(experiment), "-cp", SHORT]) == 0
    assert (experiment / CSV).is_file() and (experiment / "checkpoint" / ".coach_checkpoint").is_file()
    return experiment


@pytest.fixture
def used_folder(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "used"
    shutil.copytree(finished_run, copy)
    return copy



# ---- two runs into one folder -----------------------------------------------------------------------------
def _wait_for_lock(lock: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if lock.is_file() and lock.read_text().strip() == str(process.pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"{lock} did not come to hold pid {process.pid} within {timeout} s (exit code {process.poll()})")


def test_a_second_run_into_a_folder_in_use_is_refused_at_once_and_the_first_is_unaffected(tmp_path, capsys):
    experiment = tmp_path / "exp"
    log = tmp_path / "first.out"
    with open(log, "w") as stdout:
        # Niced and on one thread, so the refused runs (which build their agent before they lock) get the CPU.
        first = subprocess.Popen(
            _cli("-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(experiment),
                 "-cp", SCHEDULE + ";improve_steps=TrainingSteps(100000000)"),
            stdout=stdout, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        os.setpriority(os.PRIO_PROCESS, first.pid, 10)
        _wait_for_lock(experiment / ".rlframe.lock", first)
        second = subprocess.run(_cli("-p", "preset-cartpole-dqn", "--seed", "1", "-ep", str(experiment), "-cp", SHORT),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "Traceback" not in second.stdout + second.stderr
        lines = _error_lines(second.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), second.stderr
        assert f"in use by another rlframe run (pid {first.pid})" in lines[0] and str(experiment) in lines[0]
        assert first.poll() is None, "the refused run must not disturb the first one"
        # --start-over must not move the files of a folder another run holds either (an in-process run this time).
        capsys.readouterr()
        code = train_main(["-p", "preset-cartpole-dqn", "--seed", "1", "-ep", str(experiment), "--start-over", "-cp", SHORT])
        line = _one_error_line(capsys)
        assert code == 2 and f"in use by another rlframe run (pid {first.pid})" in line
        assert first.poll() is None
        assert not list(experiment.glob("previous_*"))
        assert (experiment / ".rlframe.lock").read_text().strip() == str(first.pid)
        assert "in use by another" not in (experiment / "log.txt").read_text()
        first.send_signal(signal.SIGTERM)
        _, first_err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 143, first_err
    assert "Stopped by SIGTERM" in log.read_text()
    name = (experiment / "checkpoint" / ".coach_checkpoint").read_text().strip()
    state = json.loads((experiment / "checkpoint" / f"{name}.state.json").read_text())
    more = state["graph"]["counters"]["TRAIN"]["EnvironmentSteps"] + 100
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "0", "-crd", str(experiment / "checkpoint"),
                       "-cp", SCHEDULE + f";improve_steps=TrainingSteps({more})"]) == 0
    assert f"Checkpoint> Restored {name}" in capsys.readouterr().out


# ---- a fresh run into a used folder --------------------------------------------------------------------------
@pytest.mark.parametrize("lock_file", [True, False], ids=["with-lock-file", "copied-without-lock-file"])
def test_a_fresh_run_into_a_used_folder_is_refused_and_leaves_it_untouched(used_folder, lock_file, capsys):
    if not lock_file:
        (used_folder / ".rlframe.lock").unlink()
    before = _snapshot(used_folder)
    time.sleep(0.01)  # so a rewrite of any file would show in its mtime
    code = train_main(["-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(used_folder), "-cp", SHORT])
    line = _one_error_line(capsys)
    assert code == 2
    assert str(used_folder) in line and "already holds a run" in line
    assert f"-crd {used_folder / 'checkpoint'}" in line and "--start-over" in line
    assert _snapshot(used_folder) == before


def test_start_over_moves_the_earlier_run_into_previous_and_begins_a_new_csv(finished_run, used_folder, capsys):
    old_files = {p.relative_to(used_folder): p.read_bytes()
                 for p in used_folder.rglob("*") if p.is_file() and p.name != ".rlframe.lock"}
    assert Path(CSV) in old_files and any(p.parts[0] == "checkpoint" for p in old_files)
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "1", "-ep", str(used_folder), "--start-over",
                       "-cp", SCHEDULE + ";improve_steps=TrainingSteps(200)"]) == 0
    out = capsys.readouterr().out
    previous = list(used_folder.glob("previous_*"))
    assert len(previous) == 1 and re.fullmatch(r"previous_\d\d_\d\d_\d{4}-\d\d_\d\d_\d\d(_\d+)?", previous[0].name)
    moved = {p.relative_to(previous[0]): p.read_bytes() for p in previous[0].rglob("*") if p.is_file()}
    assert moved == old_files, "every earlier file is in previous_*/, byte for byte"
    assert f"Experiment> moved the earlier run's files into {previous[0]}" in out
    rows = _training_rows(used_folder / CSV)
    assert rows["Episode #"].tolist() == list(range(1, len(rows) + 1)) and len(rows) > 0
    assert re.fullmatch(r"0_Step-\d+\.ckpt\n?", (used_folder / "checkpoint" / ".coach_checkpoint").read_text())
    log = (used_folder / "log.txt").read_text()
    assert log.splitlines()[0].startswith("Experiment> moved the earlier run's files")
    assert "Checkpoint> Saving" in log and (previous[0] / "log.txt").read_text() not in log


@pytest.mark.parametrize("restore", [
    lambda folder: [str(folder / "checkpoint")],
    lambda folder: [os.path.relpath(folder, os.getcwd()) + "/checkpoint/", "-ep", str(folder)],
], ids=["default-experiment-path", "relative-with-explicit-ep"])
def test_resuming_into_the_same_folder_appends_to_its_log_and_csv(used_folder, capsys, restore):
    old_log = (used_folder / "log.txt").read_text()
    old_rows = _training_rows(used_folder / CSV)
    name = (used_folder / "checkpoint" / ".coach_checkpoint").read_text().strip()
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "0", "-crd", *restore(used_folder),
                       "-cp", SCHEDULE + ";improve_steps=TrainingSteps(500)"]) == 0
    out = capsys.readouterr().out
    assert f"Checkpoint> Restored {name}" in out and f"Experiment directory: {used_folder}" in out
    log = (used_folder / "log.txt").read_text()
    assert log.startswith(old_log) and len(log) > len(old_log)
    assert f"Checkpoint> Restored {name}" in log[len(old_log):]
    rows = _training_rows(used_folder / CSV)
    assert rows["Episode #"].tolist() == list(range(1, len(rows) + 1))
    assert len(rows) > len(old_rows)
    pd.testing.assert_frame_equal(rows.iloc[:len(old_rows)].reset_index(drop=True), old_rows.reset_index(drop=True))
    assert not list(used_folder.glob("previous_*"))


def test_evaluating_into_a_used_training_folder_is_refused(used_folder, tmp_path, capsys):
    checkpoint = tmp_path / "elsewhere" / "checkpoint"
    shutil.copytree(used_folder / "checkpoint", checkpoint)
    for restore in (used_folder / "checkpoint", checkpoint):
        before = _snapshot(used_folder)
        code = train_main(["-p", "preset-cartpole-dqn", "-crd", str(restore), "--evaluate", "10",
                           "-ep", str(used_folder)])
        line = _one_error_line(capsys)
        assert code == 2 and str(used_folder) in line and "already holds a run" in line and "--start-over" in line
        assert _snapshot(used_folder) == before


@pytest.mark.parametrize("dataset_flag, message", [
    (lambda folder: str(folder / "missing.csv"), "was not found"),
    (lambda folder: str(folder / "bad.csv"), "sum to 0.8, not 1"),
], ids=["missing-dataset", "malformed-dataset"])
def test_a_folder_whose_run_failed_before_any_result_is_reused(dataset, tmp_path, capsys, dataset_flag, message):
    lines = dataset.read_text().splitlines()
    (tmp_path / "bad.csv").write_text("\n".join(lines[:5] + ['1,"[0.5, 0.3]",0,1.0,0.0,0.1,0.1,0.1,0.1']) + "\n")
    experiment = tmp_path / "exp"
    base = ["-p", "preset-cartpole-ddqnbcq", "--seed", "0", "-ep", str(experiment), "--progress", "lines",
            "-cp", "reward_model_num_epochs=2", "--improve_steps", "2"]
    assert train_main(base + ["--dataset", dataset_flag(tmp_path)]) == 2
    error = _one_error_line(capsys)
    assert message in error
    assert sorted(p.name for p in experiment.iterdir()) == [".rlframe.lock", "log.txt", "parameters.yaml"]
    assert train_main(base + ["--dataset", str(dataset)]) == 0
    capsys.readouterr()
    log = (experiment / "log.txt").read_text()
    assert error in log.splitlines(), "the earlier run's error stays in log.txt"
    assert log.index(error) < log.index("Dataset> ")
    assert not list(experiment.glob("previous_*"))
    assert pd.read_csv(experiment / BATCH_CSV)["Epoch"].tolist() == [1, 2]
