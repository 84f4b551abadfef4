"""The model directory: what ``rlframe-export`` and ``save_model`` write, and ``rlframe-serve`` reads.

Layout (the shared contract of issue 10)::

    MODEL_DIR/model.onnx           the policy for onnxruntime and MXNet's ONNX importer (raw observations in)
    MODEL_DIR/policy-symbol.json   rlframe's own model: the same computation as an MXNet symbol ...
    MODEL_DIR/policy-0000.params   ... and its parameters (gluon.nn.SymbolBlock.imports loads both)
    MODEL_DIR/rlframe-model.json   metadata: agent, kind, spaces, outputs, action distribution, filter statistics,
                                   preset and hyperparameters, checkpoint, file names
    MODEL_DIR/code/                optional, the user's: an inference handler (kept when a model is replaced)

A new directory is written beside its final place and renamed into it, so it is whole or absent. An existing one
(an empty folder, SageMaker's ``/opt/ml/model`` mount point, or an rlframe model replaced with ``force``) loses
its metadata first, then each file is replaced atomically and the metadata is written last: a directory with
``rlframe-model.json`` is always complete.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlframe import __version__
from rlframe.errors import StorageError, describe_os_error
from rlframe.export.graph import INPUT_NAME, ExportError, PolicyGraph
from rlframe.export.layout import CODE, FILES, FORMAT, FORMAT_VERSION, METADATA
from rlframe.export.onnx_graph import policy_to_onnx, write_onnx
from rlframe.export.symbol import policy_to_symbol, write_symbol
from rlframe.graph_managers.graph_manager import GraphManager
from rlframe.outputs.atomic import TEMPORARY_PREFIX, atomic_write_text
from rlframe.outputs.checkpoints import CheckpointFiles
from rlframe.spaces import ActionSpace, DiscreteActionSpace

if TYPE_CHECKING:
    from rlframe.agents.agent import Agent



def space_bounds(values: np.ndarray) -> list[float | None]:
    """Bounds as JSON values: a list, with None for an infinite bound."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).ravel()]


def action_description(action: ActionSpace) -> dict[str, Any]:
    """The model directory's ``action`` entry (rlframe's agents act in discrete and box spaces only)."""
    if isinstance(action, DiscreteActionSpace):
        return {"type": "discrete", "num_actions": int(action.num_actions)}
    return {"type": "box", "shape": list(action.shape), "low": space_bounds(action.low), "high": space_bounds(action.high)}


def model_metadata(graph: PolicyGraph, preset: dict[str, Any] | None, checkpoint: CheckpointFiles | None) -> dict[str, Any]:
    """``rlframe-model.json`` for ``graph``; ``preset`` as :meth:`GraphManager.preset_record` gives it (None: unknown)."""
    observation = graph.observation
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "rlframe_version": __version__,
        "agent": graph.agent,
        "kind": graph.kind,
        "observation": {"shape": list(observation.shape), "dtype": "float32",
                        "low": space_bounds(observation.low), "high": space_bounds(observation.high)},
        "action": action_description(graph.action),
        "input_name": INPUT_NAME,
        "outputs": [{"name": o.name, "onnx_name": o.onnx_name, "shape": o.shape} for o in graph.outputs],
        "distribution": graph.distribution,
        "filters": [{"stage": f.stage, "name": f.name, "type": "ObservationNormalizationFilter",
                     "mean": f.mean.tolist(), "std": f.std.tolist(), "clip_min": f.clip_min, "clip_max": f.clip_max}
                    for f in graph.filters],
        "preset": preset or {"name": None, "hyperparameters": None},
        "checkpoint": {"name": checkpoint.name if checkpoint else None,
                       "directory": os.path.abspath(checkpoint.directory) if checkpoint else None},
        "files": dict(FILES),
    }


def _describe_existing(folder: Path) -> str:
    """What the model in ``folder`` was exported from, for messages ('' when its metadata cannot be read)."""
    try:
        checkpoint = json.loads((folder / METADATA).read_text(encoding="utf-8"))["checkpoint"]
        return f" (checkpoint {checkpoint['name']} of {checkpoint['directory']})" if checkpoint.get("name") else ""
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""


def check_output_folder(folder: Path, force: bool) -> None:
    """Refuse an output folder that holds something other than an rlframe model (and its ``code/``), or a model
    when not ``force``; raises :class:`ExportError` saying how to go on. Nothing is changed."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ExportError(f"Output folder {folder} is a file: give another output folder (-o).")
    # Files an interrupted export left (atomic writes' temporaries) are no one's: the next export removes them.
    entries = {name for name in os.listdir(folder) if not name.startswith(TEMPORARY_PREFIX)} - {CODE}
    others = sorted(entries - set(FILES.values()) - {METADATA})
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise ExportError(f"Output folder {folder} already holds files that are not an rlframe model ({shown}): give "
                          "another output folder (-o), or delete them.")
    if entries and not force:
        raise ExportError(f"Output folder {folder} already holds an rlframe model{_describe_existing(folder)}: give "
                          "another output folder (-o), delete it, or pass --force to replace it.")


def write_model_dir(graph: PolicyGraph, folder: str | os.PathLike, preset: dict[str, Any] | None = None,
                    checkpoint: CheckpointFiles | None = None, force: bool = False) -> Path:
    """Write the model directory of ``graph`` into ``folder`` (see the module docstring); returns its absolute path."""
    out = Path(folder).absolute()
    check_output_folder(out, force)
    model = policy_to_onnx(graph)  # both built before anything is written: a failure leaves the folder as it was
    symbol, params = policy_to_symbol(graph)
    metadata = json.dumps(model_metadata(graph, preset, checkpoint), indent=1) + "\n"

    def write(into: Path) -> None:
        write_onnx(model, str(into / FILES["onnx"]))
        write_symbol(symbol, params, str(into / FILES["symbol"]), str(into / FILES["params"]))
        atomic_write_text(str(into / METADATA), metadata)

    try:
        if out.is_dir():
            # It may be a mount point (SageMaker's /opt/ml/model), which no rename can replace.
            (out / METADATA).unlink(missing_ok=True)
            for leftover in out.glob(f"{TEMPORARY_PREFIX}*"):
                leftover.unlink()
            write(out)
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f"{TEMPORARY_PREFIX}{out.name}-{secrets.token_hex(4)}"
        staging.mkdir()
    except OSError as exc:
        raise StorageError(f"Cannot write the model into {out}: {describe_os_error(exc)}.") from exc
    try:
        write(staging)
        os.rename(staging, out)
    except OSError as exc:
        raise StorageError(f"Cannot write the model into {out}: {describe_os_error(exc)}.") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def export_model(source: "GraphManager | Agent", folder: str | os.PathLike, force: bool = False) -> Path:
    """Export a graph manager's agent (after a run; its preset and last checkpoint go into the metadata), or an
    agent, as it is now, into the model directory ``folder``; returns its absolute path."""
    if isinstance(source, GraphManager):
        return write_model_dir(source.agent.policy_graph(), folder, source.preset_record(), source.last_checkpoint, force)
    return write_model_dir(source.policy_graph(), folder, force=force)
