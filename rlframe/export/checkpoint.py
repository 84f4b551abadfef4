"""Export a checkpoint: rebuild its agent from the preset it recorded, load it, write the model directory."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rlframe.export.graph import ExportError
from rlframe.export.model_dir import check_output_folder, export_model
from rlframe.outputs.checkpoints import STATE_FILE, latest_checkpoint, read_state, verify
from rlframe.overrides import apply_custom_parameters, apply_hyperparameters
from rlframe.presets import load_preset


def checkpoint_folder(path: str | os.PathLike) -> str:
    """``path`` itself, or its ``checkpoint/`` when ``path`` is an experiment folder that has one."""
    inner = Path(path) / "checkpoint"
    return str(inner) if not (Path(path) / STATE_FILE).exists() and (inner / STATE_FILE).is_file() else str(path)


def export_checkpoint(checkpoint_dir: str | os.PathLike, folder: str | os.PathLike, preset: str | None = None,
                      hyperparameters: dict[str, Any] | None = None, custom_parameters: str | None = None,
                      force: bool = False) -> Path:
    """Export the checkpoint that ``.coach_checkpoint`` names in ``checkpoint_dir`` (or in an experiment folder's
    ``checkpoint/``) into the model directory ``folder``; returns its absolute path.

    The agent is rebuilt from ``preset`` (a name or file, as ``rlframe-train -p`` takes it), by default the preset the
    checkpoint recorded, with the hyperparameters and ``-cp`` overrides the run applied, then ``hyperparameters``
    (``name -> value``, as ``rlframe-train --name value``) and ``custom_parameters`` (``-cp`` text) on top.
    A checkpoint that is missing, incomplete or does not fit the preset, a preset that cannot be found, and a
    ``folder`` that holds something else (or a model, without ``force``) raise one-line errors; nothing is written then.
    """
    directory = checkpoint_folder(checkpoint_dir)
    files = latest_checkpoint(directory)
    state = read_state(files)
    verify(files, state, with_memory=False)
    check_output_folder(Path(folder).absolute(), force)
    record = state.get("preset") or {}
    if preset is None:
        preset_file = record.get("file")
        if preset_file is None:
            raise ExportError(f"Checkpoint {files.name} in {directory} does not record the preset that wrote it: pass "
                              "-p PRESET, the preset it was trained with.")
        if not os.path.isfile(preset_file):
            raise ExportError(f"Checkpoint {files.name} in {directory} was written by preset {preset_file}, which is "
                              "not there any more: pass -p PRESET (its name or file).")
        variable = record.get("variable", "graph_manager")
        preset = preset_file if variable == "graph_manager" else f"{preset_file}:{variable}"
    graph_manager = load_preset(preset)
    graph_manager.record_hyperparameters(apply_hyperparameters(
        graph_manager, {**record.get("hyperparameters", {}), **(hyperparameters or {})}, graph_manager.origin.shortcuts,
        graph_manager.origin.name))
    for text in [*record.get("custom_parameters", []), *([custom_parameters] if custom_parameters else [])]:
        apply_custom_parameters(graph_manager, text)
        graph_manager.record_custom_parameters(text)
    graph_manager.load_policy(directory)
    return export_model(graph_manager, folder, force)
