"""Where the shipped ``presets/`` and ``environments/`` folders are.

The repository's top-level ``presets/`` and ``environments/`` are packaged as ``rlframe.shipped.presets``
and ``rlframe.shipped.environments`` (``setup.py`` maps them), so they are found after a plain install, an
editable install, or straight from a source checkout.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path


def shipped_dir(kind: str) -> Path:
    """The folder of shipped ``'presets'`` or ``'environments'``."""
    spec = importlib.util.find_spec(f"rlframe.shipped.{kind}")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parents[2] / kind
