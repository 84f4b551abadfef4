"""Atomic file writes: write a temporary file in the same directory, fsync, then rename over the target.

A write that fails (a full or read-only disk, a folder that is a file) leaves the target as it was, removes
the temporary file and raises :class:`~rlframe.errors.StorageError` naming the target and the cause.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from typing import Iterator

import numpy as np

from rlframe.errors import StorageError, describe_os_error

TEMPORARY_PREFIX = ".tmp-"
#: bytes written to learn why a library's own write failed (its error rarely says)
_PROBE_BYTES = 1 << 16


def storage_error(path: str, exc: OSError) -> StorageError:
    return StorageError(f"Cannot write {path}: {describe_os_error(exc)}.")


def _probe(directory: str) -> OSError | None:
    """The error a plain write of a few KB into ``directory`` raises now (None if it works)."""
    try:
        with tempfile.TemporaryFile(dir=directory) as handle:
            handle.write(b"\0" * _PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return exc
    return None


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces ``path`` in one rename."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, dir=directory)
    except OSError as exc:
        raise storage_error(path, exc) from exc
    os.close(fd)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise storage_error(path, exc) from exc
    except StorageError:
        raise
    except Exception as exc:
        # A library that writes the file itself (MXNet's parameter files) reports a full disk as its own
        # error with a C++ traceback; a plain write tells what the file system refuses.
        refused = _probe(directory)
        if refused is not None:
            raise storage_error(path, refused) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def atomic_write_text(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)


def atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def atomic_write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Replace ``path`` with an ``.npz`` of ``arrays`` (what ``np.savez`` writes, no pickles), closing the archive
    even when a write fails: ``np.savez`` leaves it open, and its ``__del__`` later prints a traceback over the
    one-line error of a full disk."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for key, value in arrays.items():
                with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
