"""Finding and importing presets.

``--preset NAME`` searches, in order, the current directory, each folder of ``RLFRAME_PRESET_PATH``
(``os.pathsep``-separated) and the shipped ``presets/``; names match case-insensitively, with or without
``.py``. ``--preset path/to/file.py`` and ``file.py:variable`` (default variable ``graph_manager``) work
too. Coach presets' ``rl_coach.*`` imports are answered by rlframe's ``rl_coach`` package (see
:mod:`rlframe.coach_compat`).
"""
from __future__ import annotations

import os
import re
import sys
import traceback
from pathlib import Path

from rlframe.environments.gym_compat import install_gym_fallback
from rlframe.errors import PresetError, RlframeError, closest
from rlframe.graph_managers.graph_manager import GraphManager
from rlframe.module_files import import_file
from rlframe.shipped import shipped_dir

PRESET_PATH_VARIABLE = "RLFRAME_PRESET_PATH"


def search_dirs() -> list[Path]:
    dirs = [Path.cwd()]
    dirs += [Path(p) for p in os.environ.get(PRESET_PATH_VARIABLE, "").split(os.pathsep) if p]
    dirs.append(shipped_dir("presets"))
    return dirs


def available_presets() -> list[str]:
    """Names of the presets found in the search folders (shipped ones included)."""
    names: list[str] = []
    for directory in search_dirs():
        names += [name for name in presets_in(directory) if name not in names]
    return names


def presets_in(directory: Path) -> list[str]:
    """Names of the presets in one folder (none when it does not exist)."""
    if not directory.is_dir():
        return []
    return [p.stem for p in sorted(directory.glob("*.py")) if p.stem != "__init__" and _looks_like_preset(p)]


_ASSIGNS_GRAPH_MANAGER = re.compile(r"^graph_manager\s*=", re.MULTILINE)


def _looks_like_preset(path: Path) -> bool:
    """A file that assigns a module-level ``graph_manager`` (a launcher script that only mentions one is not)."""
    try:
        return _ASSIGNS_GRAPH_MANAGER.search(path.read_text(encoding="utf-8", errors="ignore")) is not None
    except OSError:
        return False


def _closest_name(wanted: str, names: list[str]) -> str:
    """A "did you mean" clause that ignores case, as the lookup does (``cartpole_dq`` -> ``CartPole_DQN``)."""
    by_lower = {n.lower(): n for n in names}
    clause = closest(wanted.lower(), list(by_lower))
    for lower, name in by_lower.items():
        clause = clause.replace(repr(lower), repr(name))
    return clause


def find_in_dir(directory: Path, stem: str) -> Path | None:
    """``directory/<stem>.py`` matched ignoring case (as Coach's ``ignore_module_case``), resolved; None if absent.

    On a case-sensitive file system two files may differ only in case; the exact spelling wins.
    """
    if not directory.is_dir():
        return None
    matches = sorted(p for p in directory.glob("*.py") if p.stem.lower() == stem.lower())
    exact = [p for p in matches if p.stem == stem]
    return (exact or matches)[0].resolve() if matches else None


def find_preset(spec: str) -> tuple[Path, str]:
    """Resolve ``NAME``, ``path.py`` or ``path.py:variable`` to (file, variable)."""
    file_part, variable = spec, "graph_manager"
    if ":" in spec and not os.path.exists(spec):
        file_part, _, variable = spec.rpartition(":")
        if not variable.isidentifier():
            raise PresetError(
                f"Preset {spec!r}: {variable!r} after ':' is not a Python variable name (write file.py:graph_manager).")
    candidate = Path(file_part).expanduser()
    is_path = os.sep in file_part or "/" in file_part
    if is_path or candidate.suffix.lower() == ".py":
        path = candidate if candidate.suffix.lower() == ".py" else candidate.with_suffix(".py")
        if path.is_file():
            return path.resolve(), variable
        if is_path:
            raise PresetError(
                f"Preset file {str(path)!r} does not exist. Check the path, or pass a preset name: "
                f"{', '.join(available_presets())}."
            )
        # A bare 'NAME.py' that is not in the current directory is still a name: look it up like 'NAME'.
    wanted = file_part[:-3] if file_part.lower().endswith(".py") else file_part
    for directory in search_dirs():
        found = find_in_dir(directory, wanted)
        if found is not None:
            return found, variable
    names = available_presets()
    raise PresetError(
        f"Unknown preset {spec!r}.{_closest_name(wanted, names)} Available presets: {', '.join(names)}. "
        f"Presets are looked up in the current directory, ${PRESET_PATH_VARIABLE} and the shipped presets/."
    )


def load_preset(spec: str) -> GraphManager:
    """Import the preset and return its graph manager (a fresh import every call)."""
    path, variable = find_preset(spec)
    module_name = f"rlframe_preset_{path.stem.replace('-', '_')}"
    sys.path.insert(0, str(path.parent))
    install_gym_fallback()  # a preset may 'import gym' (to register an environment) before any rl_coach import
    try:
        module = import_file(path, module_name)
    except SyntaxError as exc:
        raise PresetError(f"Preset {exc.filename or path}, line {exc.lineno}: syntax error: {exc.msg}.") from exc
    except Exception as exc:
        # The line in the preset is what the user has to fix, for a typo (UnknownParameterError) as much as a crash.
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f"{path}, line {frames[-1].lineno}" if frames else str(path)
        if isinstance(exc, RlframeError):
            raise PresetError(f"Preset {where} is invalid: {exc}") from exc
        raise PresetError(
            f"Preset {where} raised {type(exc).__name__}: {exc}. Fix the preset (it must run as plain Python)."
        ) from exc
    finally:
        sys.path.remove(str(path.parent))
    graph_manager = getattr(module, variable, None)
    if graph_manager is None:
        raise PresetError(
            f"Preset {path} defines no {variable!r}. A preset must end with "
            f"'{variable} = BasicRLGraphManager(agent_params=..., env_params=..., schedule_params=...)'."
        )
    if not isinstance(graph_manager, GraphManager):
        raise PresetError(f"Preset {path}: {variable!r} is a {type(graph_manager).__name__}, not a graph manager.")
    graph_manager.origin.directory = path.parent
    graph_manager.origin.name = path.stem
    graph_manager.origin.variable = variable
    graph_manager.origin.shortcuts = getattr(module, "HYPERPARAMETER_SHORTCUTS", None)
    return graph_manager
