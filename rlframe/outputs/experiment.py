"""An experiment folder owned by one run at a time.

A run takes an exclusive ``flock`` on ``<folder>/.rlframe.lock`` (which holds its pid) for as long as it
runs; the kernel drops the lock when the process ends, however it ends, so a killed run never leaves the
folder locked. A second run into a locked folder fails at once, naming the first run's pid.

A new run refuses a folder that already holds a run's results (a CSV, checkpoints, GIFs, a generated
dataset) unless it resumes that folder's own checkpoint, or ``start_over`` asks to move the earlier files
into ``previous_<DD_MM_YYYY-HH_MM_SS>/`` first. Nothing is deleted, and a refused folder is not touched.
A folder whose earlier run left only ``log.txt`` and ``parameters.yaml`` (it failed before producing
anything) is reused, its log appended to.
"""
from __future__ import annotations

import fcntl
import glob
import os
import time
from typing import IO

from rlframe.errors import ExperimentFolderError, StorageError, describe_os_error

LOCK_FILE = ".rlframe.lock"
PREVIOUS_PREFIX = "previous_"
#: what a run writes that a new run must not overwrite (globs relative to the folder)
RESULTS = ("worker_*.csv", "checkpoint/*", "gifs/*", "generated_dataset.npz", "experience_generation")


def results_in(folder: str) -> list[str]:
    """The entries of ``folder`` that hold an earlier run's results (``checkpoint/``, ``worker_0...csv``; empty
    when there are none)."""
    found: set[str] = set()
    for pattern in RESULTS:
        for path in glob.glob(os.path.join(glob.escape(folder), pattern)):
            top = os.path.relpath(path, folder).split(os.sep)[0]
            found.add(top + "/" if os.path.isdir(os.path.join(folder, top)) else top)
    return sorted(found)


class ExperimentFolder:
    """The folder a run writes to, locked for the run's lifetime.

    :param path: the folder (made if missing).
    :param resumes_here: the run resumes from this folder's own checkpoint (so its results are the run's).
    :param start_over: move an earlier run's files aside instead of refusing the folder.
    """

    def __init__(self, path: str, resumes_here: bool, start_over: bool) -> None:
        self.path = os.path.abspath(path)
        self.resumes_here = resumes_here
        self.start_over = start_over
        self.moved_to: str | None = None
        self._lock: IO[str] | None = None

    def open(self) -> "ExperimentFolder":
        """Make and lock the folder; move an earlier run aside when asked. Raises ``ExperimentFolderError``
        (in use, or holds a run) or ``StorageError`` (cannot be made or written)."""
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot use experiment folder {self.path}: {describe_os_error(exc)}. "
                "Pass --experiment-path with a folder on a writable disk."
            ) from exc
        lock_path = os.path.join(self.path, LOCK_FILE)
        earlier = [] if self.resumes_here else results_in(self.path)
        if earlier and not self.start_over and not os.path.exists(lock_path):
            self._refuse(earlier)  # before the lock file is made: a refused folder is left as it was
        self._lock = self._take_lock(lock_path)
        if earlier and not self.start_over:
            self.close()
            self._refuse(earlier)
        try:
            self._lock.seek(0)
            self._lock.truncate()
            self._lock.write(f"{os.getpid()}\n")
            self._lock.flush()
        except OSError as exc:
            self.close()
            raise StorageError(f"Cannot write {lock_path}: {describe_os_error(exc)}. "
                               "Free space or pass another --experiment-path.") from exc
        if earlier:
            self._move_aside()
        return self

    def _take_lock(self, lock_path: str) -> IO[str]:
        try:
            handle = open(lock_path, "a+", encoding="utf-8")
        except OSError as exc:
            raise StorageError(
                f"Cannot write in experiment folder {self.path}: {describe_os_error(exc)}. "
                "Pass --experiment-path with a folder on a writable disk."
            ) from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise ExperimentFolderError(
                f"Experiment folder {self.path} is in use by another rlframe run (pid {owner}). Wait for it to "
                "finish, or pass --experiment-path with another folder."
            ) from None
        return handle

    def _refuse(self, earlier: list[str]) -> None:
        resumable = os.path.isfile(os.path.join(self.path, "checkpoint", ".coach_checkpoint"))
        resume = f"resume it with -crd {os.path.join(self.path, 'checkpoint')}, " if resumable else ""
        shown = ", ".join(earlier[:3]) + (", ..." if len(earlier) > 3 else "")
        raise ExperimentFolderError(
            f"Experiment folder {self.path} already holds a run ({shown}): {resume}pass --start-over to move its "
            f"files into {PREVIOUS_PREFIX}<time>/ there and begin again, or pass another --experiment-path."
        )

    def _move_aside(self) -> None:
        stamp = time.strftime("%d_%m_%Y-%H_%M_%S")
        target, i = os.path.join(self.path, PREVIOUS_PREFIX + stamp), 1
        while os.path.exists(target):
            target, i = os.path.join(self.path, f"{PREVIOUS_PREFIX}{stamp}_{i}"), i + 1
        try:
            os.mkdir(target)
            for name in sorted(os.listdir(self.path)):
                if name != LOCK_FILE and not name.startswith(PREVIOUS_PREFIX):
                    os.rename(os.path.join(self.path, name), os.path.join(target, name))
        except OSError as exc:
            raise StorageError(
                f"Cannot move the earlier run in {self.path} into {target}: {describe_os_error(exc)}.") from exc
        self.moved_to = target

    def close(self) -> None:
        """Release the lock (the lock file stays: removing it would race with a run taking it)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None
