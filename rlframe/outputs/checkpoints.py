"""Checkpoint directories in Coach's layout, written atomically, restorable for a true resume.

A checkpoint named ``<id>_Step-<train env steps>.ckpt`` is a set of files sharing that prefix:

- ``<prefix>.main_level.agent.<network>.online`` / ``.target``: Gluon parameter files (Coach's MXNet names);
- ``<prefix>.main_level.agent.state.npz``: optimiser moments, filter statistics (arrays);
- ``<prefix>.main_level.agent.memory.npz``: the replay memory (kept for the newest checkpoint only);
- ``<name>.csv``: a copy of the run's CSV as it was when the checkpoint was written, so a run resumed where
  the experiment folder is gone (a spot restart on a fresh machine) continues it;
- ``<name>.onnx`` (with ``export_onnx_graph``): the policy as an ONNX graph, its policy output first, as Coach's;
- ``<prefix>.state.json``: counters, schedule positions, random-generator states, and the size and
  SHA-256 of every other file it needs to restore (all but the .onnx), so a truncated, damaged or missing file is
  named on restore.

``.coach_checkpoint`` names the latest complete checkpoint and is written last, so a checkpoint that a
kill or a full disk interrupted is never picked up; a failed save removes what it wrote, and a writer
removes what an interrupted one left (files of a checkpoint without its state file). Only the newest ``keep``
checkpoints (and any the caller protects) are kept, an older one being deleted only once a newer one is
complete. Nothing is unpickled: arrays load
with ``allow_pickle=False``.

A second directory can mirror the first (SageMaker's managed ``/opt/ml/checkpoints``): :meth:`CheckpointWriter.copy`
copies a complete checkpoint into it in the same order (state file, then marker, last), with the same retention.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from rlframe.errors import CheckpointError, StorageError, describe_os_error
from rlframe.outputs.atomic import TEMPORARY_PREFIX, atomic_path, atomic_write_npz, atomic_write_text

STATE_FILE = ".coach_checkpoint"
AGENT_PREFIX = "main_level.agent"
MANIFEST = "files"
_NAME = re.compile(r"\A(?P<id>[0-9]+)_Step-(?P<steps>[0-9]+)\.ckpt\Z")
_FILE = re.compile(r"\A(?P<name>[0-9]+_Step-[0-9]+\.ckpt)\.")
_WHAT = {"memory.npz": "the replay memory", "state.npz": "the optimizer and filter state",
         "online": "network parameters", "target": "target-network parameters",
         ".csv": "the copy of the run's CSV"}


@dataclass
class CheckpointFiles:
    """Paths of one checkpoint's files."""

    directory: str
    name: str

    @property
    def prefix(self) -> str:
        return os.path.join(self.directory, f"{self.name}.{AGENT_PREFIX}")

    @property
    def arrays(self) -> str:
        return f"{self.prefix}.state.npz"

    @property
    def memory(self) -> str:
        return f"{self.prefix}.memory.npz"

    @property
    def csv(self) -> str:
        """The copy of the run's CSV up to this checkpoint."""
        return os.path.join(self.directory, f"{self.name}.csv")

    @property
    def state_json(self) -> str:
        return os.path.join(self.directory, f"{self.name}.state.json")

    @property
    def checkpoint_id(self) -> int:
        return checkpoint_id(self.name)

    def paths(self) -> list[str]:
        """Every file of this checkpoint now in the directory."""
        return glob.glob(os.path.join(glob.escape(self.directory), glob.escape(self.name) + ".*"))


def checkpoint_id(name: str) -> int:
    return int(_NAME.match(name).group("id"))  # type: ignore[union-attr]


def complete_checkpoints(directory: str) -> list[str]:
    """Names of the checkpoints in ``directory`` whose state file (written last but the marker) exists, oldest first."""
    states = glob.glob(os.path.join(glob.escape(directory), "*.state.json"))
    names = [os.path.basename(p)[:-len(".state.json")] for p in states]
    return sorted((n for n in names if _NAME.match(n)), key=checkpoint_id)


def with_prefix(arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries whose key starts with ``prefix``, keyed without it."""
    return {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}


def library_error_text(exc: BaseException) -> str:
    """The line of a library's error that says what failed (MXNet puts a C++ traceback first)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text.removeprefix(f"{type(exc).__name__}: ")


def load_arrays(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"Checkpoint file {path} is corrupt or unreadable ({exc}). Restore from an earlier checkpoint.") from exc


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_file(source: str, target: str) -> None:
    """Copy ``source`` to ``target`` atomically (the target is whole or absent)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _remove(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


class CheckpointWriter:
    """Writes numbered checkpoints into ``directory``; ids continue after ``first_id - 1``.

    :param directory: the checkpoint directory (made if missing).
    :param first_id: the id of the first checkpoint this writer saves.
    :param keep: how many of the newest complete checkpoints to keep (0: all).
    """

    def __init__(self, directory: str, first_id: int = 0, keep: int = 0) -> None:
        self.directory = directory
        self.keep = keep
        #: names retention never deletes (batch RL's best checkpoint by off-policy evaluation)
        self.protected: set[str] = set()
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"Cannot make the checkpoint directory {directory}: {describe_os_error(exc)}.") from exc
        self._remove_incomplete()
        # Ids never repeat: a run resumed from an earlier checkpoint than the newest (.coach_checkpoint edited
        # back) must not overwrite the newer ones, which retention removes in its own time.
        existing = complete_checkpoints(directory)
        self.next_id = max(first_id, checkpoint_id(existing[-1]) + 1 if existing else 0)

    def next_name(self, train_env_steps: int) -> str:
        """The name the next :meth:`save` at ``train_env_steps`` gives its checkpoint."""
        return f"{self.next_id}_Step-{train_env_steps}.ckpt"

    def save(self, train_env_steps: int, network_files: Callable[[str], Any], arrays: dict[str, np.ndarray],
             memory: dict[str, np.ndarray] | None, state: dict[str, Any], csv: str | None = None) -> CheckpointFiles:
        """Write one checkpoint. ``network_files(prefix)`` writes the network files for a prefix; ``csv``, when
        given, is the run's CSV file, copied into the checkpoint."""
        files = CheckpointFiles(self.directory, self.next_name(train_env_steps))
        try:
            network_files(files.prefix)
            atomic_write_npz(files.arrays, arrays)
            if memory is not None:
                atomic_write_npz(files.memory, memory)
            if csv is not None:
                _copy_file(csv, files.csv)
            # A <name>.onnx (export_onnx_graph) is left out: restoring never reads it, and the SageMaker notebooks'
            # launchers move the newest one into the model, which must leave the checkpoint restorable.
            manifest = {os.path.basename(p): {"bytes": os.path.getsize(p), "sha256": _sha256(p)}
                        for p in sorted(files.paths()) if not p.endswith(".onnx")}
            atomic_write_text(files.state_json, json.dumps({**state, MANIFEST: manifest}, indent=1))
            atomic_write_text(os.path.join(self.directory, STATE_FILE), files.name + "\n")
        except Exception:
            _remove(files.paths())  # a checkpoint nothing names is of no use, and on a full disk its space is needed
            raise
        self.next_id += 1
        self._remove_old(files)
        return files

    def copy(self, source: CheckpointFiles) -> CheckpointFiles:
        """Copy the complete checkpoint ``source`` (of another directory) into this one under the same name:
        every file atomically, its state file after the others and the marker last, so a copy that is
        interrupted is never picked up (and is removed by the next writer); then apply retention here."""
        files = CheckpointFiles(self.directory, source.name)
        state_name = os.path.basename(source.state_json)
        try:
            for path in sorted(source.paths(), key=lambda p: os.path.basename(p) == state_name):
                _copy_file(path, os.path.join(self.directory, os.path.basename(path)))
            atomic_write_text(os.path.join(self.directory, STATE_FILE), files.name + "\n")
        except Exception:
            _remove(files.paths())
            raise
        self.next_id = max(self.next_id, source.checkpoint_id + 1)
        self._remove_old(files)
        return files

    def _remove_old(self, newest: CheckpointFiles) -> None:
        """Retention, once ``newest`` is complete: older memories, and checkpoints beyond the newest ``keep``."""
        memories = glob.glob(os.path.join(glob.escape(self.directory), f"*.{AGENT_PREFIX}.memory.npz"))
        _remove([p for p in memories if p != newest.memory])
        if self.keep <= 0:
            return
        names = complete_checkpoints(self.directory)
        for name in names[:-self.keep]:
            if name not in self.protected and name != newest.name:
                _remove(CheckpointFiles(self.directory, name).paths())

    def _remove_incomplete(self) -> None:
        """Remove what an interrupted save left: temporary files, and the files of checkpoints that have no state
        file (it is written after all the others). A complete checkpoint is never removed here, even one newer
        than ``.coach_checkpoint`` names: a user may have pointed the marker back to resume from an earlier one."""
        complete = set(complete_checkpoints(self.directory))
        leftovers = glob.glob(os.path.join(glob.escape(self.directory), TEMPORARY_PREFIX + "*"))
        for path in glob.glob(os.path.join(glob.escape(self.directory), "*_Step-*.ckpt.*")):
            match = _FILE.match(os.path.basename(path))
            if match and match.group("name") not in complete:
                leftovers.append(path)
        _remove(leftovers)


def latest_checkpoint(directory: str) -> CheckpointFiles:
    """The checkpoint ``.coach_checkpoint`` names in ``directory``, checked to have its state files."""
    if not os.path.isdir(directory):
        raise CheckpointError(
            f"Checkpoint directory {directory!r} does not exist. Pass the 'checkpoint' folder of an experiment.")
    marker = os.path.join(directory, STATE_FILE)
    if not os.path.isfile(marker):
        raise CheckpointError(
            f"{directory!r} has no {STATE_FILE} file, so it holds no complete checkpoint. "
            "Pass the 'checkpoint' folder of an experiment that saved at least one checkpoint."
        )
    with open(marker, encoding="utf-8", errors="replace") as handle:
        name = handle.read().strip()
    if not _NAME.match(name):
        raise CheckpointError(
            f"{marker} should name a checkpoint like '3_Step-1200.ckpt' but contains {name[:80]!r}; the file is corrupt."
        )
    files = CheckpointFiles(directory, name)
    for required in (files.arrays, files.state_json):
        if not os.path.isfile(required):
            raise CheckpointError(
                f"{marker} names checkpoint {name!r}, but {os.path.basename(required)} is not in {directory!r}. "
                "The directory is incomplete; restore from a directory whose files were all copied."
            )
    return files


def read_state(files: CheckpointFiles) -> dict[str, Any]:
    try:
        with open(files.state_json, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"Checkpoint file {files.state_json} is corrupt ({exc}). Restore from an earlier checkpoint.") from exc


def _earlier(files: CheckpointFiles) -> str:
    """How to fall back to an earlier checkpoint of the same directory, if there is one."""
    names = [n for n in complete_checkpoints(files.directory) if checkpoint_id(n) < files.checkpoint_id]
    if not names:
        return "Restore from a copy of the checkpoint directory."
    marker = os.path.join(files.directory, STATE_FILE)
    return f"To resume from an earlier checkpoint, write its name ({names[-1]!r}) into {marker}."


def verify(files: CheckpointFiles, state: dict[str, Any], with_memory: bool) -> None:
    """Check every file the checkpoint's manifest lists (size, SHA-256); the memory file only ``with_memory``.
    A checkpoint written before manifests existed is checked for its memory file alone."""
    manifest: dict[str, dict[str, Any]] = state.get(MANIFEST) or {os.path.basename(files.memory): {}}
    where = f"Checkpoint {files.name} in {files.directory}"
    for base, expected in manifest.items():
        is_memory = base == os.path.basename(files.memory)
        if is_memory and not with_memory:
            continue
        path = os.path.join(files.directory, base)
        what = next((v for k, v in _WHAT.items() if base.endswith(k)), "a checkpoint file")
        if not os.path.isfile(path):
            if is_memory:
                raise CheckpointError(
                    f"{where}: {base} ({what}) is not there (rlframe keeps it with the newest checkpoint only). "
                    "Pass --no-restore-memory to resume with an empty replay memory."
                )
            raise CheckpointError(f"{where}: {base} ({what}) is missing. {_earlier(files)}")
        if not expected:
            continue
        size = os.path.getsize(path)
        if size != expected["bytes"]:
            raise CheckpointError(
                f"{where}: {base} ({what}) is {size:,} bytes but was written with {expected['bytes']:,} "
                f"({'truncated' if size < expected['bytes'] else 'changed since'}). {_earlier(files)}"
            )
        if _sha256(path) != expected["sha256"]:
            raise CheckpointError(f"{where}: {base} ({what}) is damaged: its SHA-256 differs from the one recorded "
                                  f"when it was written. {_earlier(files)}")
