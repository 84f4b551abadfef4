"""Importing a Python file by path: presets, environment modules named by ``path.py:Class`` and serving handler
modules are user files, not installed packages."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_file(path: Path, name: str) -> ModuleType:
    """Execute the file ``path`` as the module ``name``, registered in ``sys.modules`` while it runs (so classes and
    pickles defined in it can find their module) and removed again if it raises; its exception propagates
    unchanged, for the caller to word (a preset, an environment and a handler each say what to fix)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be imported as a Python module: give a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
