"""A file the run cannot write ends it with one line naming the path and the cause, never a traceback.

Real ``rlframe-train`` subprocesses (so what reaches the terminal is what is checked, including Python's
"Exception ignored" reports): an experiment path under a regular file, inside /proc, on a read-only mount,
and a small tmpfs that fills in the middle of a run, whose last complete checkpoint must resume elsewhere.
The mount cases need root (they skip otherwise) and always unmount.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from rlframe.cli import train_main

pytestmark = pytest.mark.integration

SCHEDULE = "heatup_steps=EnvironmentSteps(100);evaluation_steps=EnvironmentEpisodes(1)"
SHORT = SCHEDULE + ";improve_steps=TrainingSteps(300)"
#: MXNet's own log lines on stderr (``[15:08:00] ../src/executor/graph_executor.cc:2072: Subgraph backend ...``)
MXNET_LOG = re.compile(r"^\[\d\d:\d\d:\d\d\] \.\./src/\S+:\d+: ")
CHECKPOINT_FILE = re.compile(r"\A(?P<id>[0-9]+)_Step-[0-9]+\.ckpt\.")


def _train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlframe.cli", "-p", "preset-cartpole-dqn", "--seed", "0", *args],
                          capture_output=True, text=True, timeout=timeout)


def _storage_error(run: subprocess.CompletedProcess, path: str, cause: str | re.Pattern) -> str:
    """Check the run ended with exit status 1 and one ``error: Cannot ...`` line naming ``path`` and ``cause``."""
    output = run.stdout + run.stderr
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in run.stderr.splitlines() if line.strip() and not MXNET_LOG.match(line)]
    assert len(lines) == 1, run.stderr[-3000:]
    line = lines[0]
    assert line.startswith("error: Cannot "), line
    assert run.returncode == 1, (run.returncode, line)
    assert path in line, line
    if isinstance(cause, re.Pattern):
        assert cause.search(line), line
    else:
        assert cause in line, line
    return line


ANY_ERRNO = re.compile(r": [A-Za-z][^:()]* \(E[A-Z]+\)")


def _checkpoint_names(files: list[str]) -> set[str]:
    return {base[:base.index(".ckpt.") + len(".ckpt")] for base in files if CHECKPOINT_FILE.match(base)}


def _mount_tmpfs(where: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command")
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode})")


def _unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[callable]:
    """``tmpfs(name, options)`` mounts a tmpfs at ``tmp_path/name``; every mount is undone at teardown."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        where = tmp_path / name
        _mount_tmpfs(where, options)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        _unmount(where)


# ---- a path that cannot be a folder -------------------------------------------------------------------------
def test_an_experiment_path_under_a_regular_file(tmp_path):
    (tmp_path / "afile").write_text("not a folder\n")
    experiment = tmp_path / "afile" / "exp"
    run = _train("-ep", str(experiment), "-cp", SHORT)
    _storage_error(run, str(experiment), "Not a directory (ENOTDIR)")


def test_an_experiment_path_that_is_a_regular_file(tmp_path):
    (tmp_path / "afile").write_text("not a folder\n")
    run = _train("-ep", str(tmp_path / "afile"), "-cp", SHORT)
    _storage_error(run, str(tmp_path / "afile"), ANY_ERRNO)
    assert (tmp_path / "afile").read_text() == "not a folder\n"


def test_an_experiment_path_inside_proc():
    experiment = f"/proc/rlframe-test-{os.getpid()}/exp"
    run = _train("-ep", experiment, "-cp", SHORT)
    _storage_error(run, experiment, ANY_ERRNO)
    assert not os.path.exists(experiment)


# ---- a read-only mount --------------------------------------------------------------------------------------
def test_an_experiment_path_on_a_read_only_mount(tmpfs):
    mount = tmpfs("ro", "size=1m,ro")
    experiment = mount / "exp"
    run = _train("-ep", str(experiment), "-cp", SHORT)
    _storage_error(run, str(experiment), "Read-only file system (EROFS)")


def test_an_existing_experiment_folder_remounted_read_only(tmpfs):
    mount = tmpfs("ro", "size=1m")
    experiment = mount / "exp"
    experiment.mkdir()
    remount = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True, text=True)
    if remount.returncode != 0:
        pytest.skip(f"cannot remount the tmpfs read-only ({remount.stderr.strip()})")
    run = _train("-ep", str(experiment), "-cp", SHORT)
    _storage_error(run, str(experiment), "Read-only file system (EROFS)")


# ---- a disk that fills during the run -----------------------------------------------------------------------
# A preset-cartpole-dqn checkpoint is about 2.15 MB (two 536 KB parameter files and a 1.08 MB optimizer state),
# plus its replay memory (about 120 bytes a transition). On a 5 MB tmpfs two checkpoints fit and the third
# cannot, whatever the machine's speed: with a checkpoint every 0.2 s the disk fills within a few seconds of
# training, after two complete checkpoints, while the third writes its network parameters.
FILL_TMPFS = "size=5m"


def test_a_disk_that_fills_mid_run_ends_it_at_the_last_complete_checkpoint_which_resumes(tmpfs, tmp_path, capsys):
    mount = tmpfs("small", FILL_TMPFS)
    experiment = mount / "exp"
    try:
        run = _train("-s", "0.2", "-ep", str(experiment), "-cp", SCHEDULE + ";improve_steps=TrainingSteps(100000000)")
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the run did not fill {FILL_TMPFS} of tmpfs within 120 s") from exc
    checkpoint = experiment / "checkpoint"
    name = (checkpoint / ".coach_checkpoint").read_text().strip()
    line = _storage_error(run, str(experiment), "No space left on device (ENOSPC)")
    written = re.search(r"Cannot write (\S+): No space left on device \(ENOSPC\)", line)
    assert written and written.group(1).startswith(str(experiment) + os.sep), line
    assert f"last complete checkpoint is {name}" in line and f"-crd {checkpoint}" in line

    # Nothing of a checkpoint newer than .coach_checkpoint's, and no temporary file, is left on the full disk.
    latest = int(CHECKPOINT_FILE.match(name + ".").group("id"))
    leftovers = []
    for root, _, files in os.walk(experiment):
        for base in files:
            match = CHECKPOINT_FILE.match(base)
            if base.startswith(".tmp-") or (match and int(match.group("id")) > latest):
                leftovers.append(os.path.join(root, base))
    assert not leftovers, leftovers
    assert (checkpoint / f"{name}.state.json").is_file()

    copy = tmp_path / "copy"
    shutil.copytree(experiment, copy)
    state = json.loads((copy / "checkpoint" / f"{name}.state.json").read_text())
    more = state["graph"]["counters"]["TRAIN"]["EnvironmentSteps"] + 100
    capsys.readouterr()
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "0", "-crd", str(copy / "checkpoint"),
                       "-cp", SCHEDULE + f";improve_steps=TrainingSteps({more})"]) == 0
    assert f"Checkpoint> Restored {name} from {copy / 'checkpoint'}" in capsys.readouterr().out


def test_a_disk_that_fills_while_a_npz_file_is_written_prints_only_the_error_line(tmpfs):
    # 1.5 MB: the first (final) checkpoint's two 536 KB parameter files fit, its 1.08 MB state.npz does not.
    mount = tmpfs("small", "size=1536k")
    experiment = mount / "exp"
    run = _train("-ep", str(experiment), "-cp", SHORT)
    line = _storage_error(run, str(experiment / "checkpoint"), "No space left on device (ENOSPC)")
    assert ".main_level.agent.state.npz: No space left on device (ENOSPC)" in line
    assert "no checkpoint was written" in line
    assert not any(p.name.startswith(".tmp-") for p in experiment.rglob("*"))


def test_a_checkpoint_whose_marker_cannot_be_written_leaves_nothing_behind(tmpfs):
    from rlframe.errors import StorageError
    from rlframe.outputs.atomic import atomic_write_bytes
    from rlframe.outputs.checkpoints import CheckpointWriter

    # An inode budget makes the disk full at an exact file: the root, the folder, 4 files of the first checkpoint
    # and its marker, then the second checkpoint's 4 files. Its marker is the 12th inode, one too many.
    mount = tmpfs("inodes", "size=4m,nr_inodes=11")
    directory = mount / "checkpoint"
    writer = CheckpointWriter(str(directory), keep=5)

    def network_files(prefix: str) -> None:
        atomic_write_bytes(f"{prefix}.main.online", b"\0" * 4096)

    first = writer.save(1, network_files, {"a": np.zeros(3)}, {"m": np.zeros(3)}, {"graph": {}})
    with pytest.raises(StorageError) as failure:
        writer.save(2, network_files, {"a": np.ones(3)}, {"m": np.ones(3)}, {"graph": {}})
    assert f"Cannot write {directory / '.coach_checkpoint'}: No space left on device (ENOSPC)" in str(failure.value)
    assert (directory / ".coach_checkpoint").read_text().strip() == first.name
    assert sorted(_checkpoint_names(os.listdir(directory))) == [first.name]
