"""Checkpoint directories in Coach's layout, written atomically, restorable for a true resume.

A checkpoint named ``<id>_Step-<train env steps>.ckpt`` is a set of files sharing that prefix:

- ``<prefix>.main_level.agent.<network>.online`` / ``.target``: Gluon parameter files (Coach's MXNet names);
- ``<prefix>.main_level.agent.state.npz``: optimiser moments, filter statistics (arrays);
- ``<prefix>.main_level.agent.memory.npz``: the replay memory (kept for the latest checkpoint only);
- ``<prefix>.state.json``: counters, schedule positions and random-generator states.

``.coach_checkpoint`` names the latest complete checkpoint and is written last, so a checkpoint that a
kill interrupted is never picked up. Nothing is unpickled: arrays load with ``allow_pickle=False``.
"""
from __future__ import annotations

import glob
import json
import os
import re
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlframe.errors import CheckpointError
from rlframe.outputs.atomic import atomic_path, atomic_write_text

STATE_FILE = ".coach_checkpoint"
AGENT_PREFIX = "main_level.agent"
_NAME = re.compile(r"\A(?P<id>[0-9]+)_Step-(?P<steps>[0-9]+)\.ckpt\Z")


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
    def state_json(self) -> str:
        return os.path.join(self.directory, f"{self.name}.state.json")

    @property
    def checkpoint_id(self) -> int:
        return int(_NAME.match(self.name).group("id"))  # type: ignore[union-attr]


def with_prefix(arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries whose key starts with ``prefix``, keyed without it."""
    return {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}


def save_arrays(path: str, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_arrays(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"Checkpoint file {path} is corrupt or unreadable ({exc}). Restore from an earlier checkpoint.") from exc


class CheckpointWriter:
    """Writes numbered checkpoints into ``directory``; ids continue after ``first_id - 1``."""

    def __init__(self, directory: str, first_id: int = 0) -> None:
        self.directory = directory
        self.next_id = first_id
        os.makedirs(directory, exist_ok=True)

    def save(self, train_env_steps: int, network_files: Any, arrays: dict[str, np.ndarray],
             memory: dict[str, np.ndarray] | None, state: dict[str, Any]) -> CheckpointFiles:
        """Write one checkpoint. ``network_files(prefix)`` writes the network files for a prefix."""
        files = CheckpointFiles(self.directory, f"{self.next_id}_Step-{train_env_steps}.ckpt")
        network_files(files.prefix)
        save_arrays(files.arrays, arrays)
        if memory is not None:
            save_arrays(files.memory, memory)
        atomic_write_text(files.state_json, json.dumps(state, indent=1))
        atomic_write_text(os.path.join(self.directory, STATE_FILE), files.name + "\n")
        # The replay memory is large and only needed to resume from the newest checkpoint.
        for old in glob.glob(os.path.join(self.directory, f"*.{AGENT_PREFIX}.memory.npz")):
            if old != files.memory:
                os.unlink(old)
        self.next_id += 1
        return files


def latest_checkpoint(directory: str) -> CheckpointFiles:
    """The checkpoint ``.coach_checkpoint`` names in ``directory``, checked to be complete."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"Checkpoint directory {directory!r} does not exist. Pass the 'checkpoint' folder of an experiment.")
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
        raise CheckpointError(f"Checkpoint file {files.state_json} is corrupt ({exc}). Restore from an earlier checkpoint.") from exc
