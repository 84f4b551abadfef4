"""Coach's ``rl_coach.logger``: the ``screen`` that launchers print through, and experiment names and paths.

SageMaker launchers call ``screen.set_use_colors(False)``, ``screen.warning(...)``, ``logger.get_experiment_name``
and set the module attribute ``experiment_path``. rlframe never colours its lines, so ``set_use_colors`` only
records the choice. Lines go to stdout in rlframe's format (``Prefix> key=value, ...`` for dictionaries).
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any

from rlframe.cli import default_experiment_path
from rlframe.errors import ParameterValueError
from rlframe.outputs.screen import Screen

#: the experiment folder a launcher chose (Coach's module attribute; launchers set it to /opt/ml/output/intermediate)
experiment_path: str | None = None
#: the name :func:`get_experiment_name` last returned
experiment_name: str | None = None

_NAME_PATTERN = re.compile(r"^[\w\-/ ]{1,1000}$")


class ScreenLogger:
    """Coach's ``screen``: titles, warnings, errors and dictionaries, one line each."""

    def __init__(self) -> None:
        self.use_colors = False

    @staticmethod
    def _screen() -> Screen:
        # Made per line so that output follows whatever sys.stdout is at the time (a test's capture, a redirect).
        return Screen()

    def set_use_colors(self, use_colors: bool) -> None:
        self.use_colors = bool(use_colors)

    def log(self, text: str) -> None:
        self._screen().line(str(text))

    def log_title(self, title: str) -> None:
        self._screen().line(f"## {title}")

    def success(self, text: str) -> None:
        self._screen().line(str(text))

    def warning(self, text: str) -> None:
        self._screen().line(f"Warning: {text}")

    def error(self, text: str, crash: bool = True) -> None:
        """Print ``error: text`` on stderr; with ``crash`` (Coach's default) end the process with status 1."""
        print(f"error: {text}", file=sys.stderr, flush=True)
        if crash:
            sys.exit(1)

    def log_dict(self, data: dict[str, Any], prefix: str = "") -> None:
        self._screen().log_dict(prefix, dict(data))


screen = ScreenLogger()


def get_experiment_name(initial_experiment_name: str | None = None) -> str:
    """``initial_experiment_name`` with spaces made underscores (``"experiment"`` when None; rlframe never
    prompts). Letters, digits, ``_``, ``-``, ``/`` and spaces only."""
    global experiment_name
    name = (initial_experiment_name or "experiment").replace(" ", "_")
    if not _NAME_PATTERN.match(name):
        raise ParameterValueError(
            f"Experiment name {initial_experiment_name!r}: use letters, digits, '_', '-' and '/' only (at most 1000)."
        )
    experiment_name = name
    return name


def get_experiment_path(name: str, initial_experiment_path: str | None = None, create_path: bool = True) -> str:
    """``<initial_experiment_path or ./experiments>/<name>/<DD_MM_YYYY-HH_MM>`` (``_<i>`` on a collision), made
    when ``create_path``; it becomes :data:`experiment_path`."""
    global experiment_path
    path = default_experiment_path(name, root=initial_experiment_path or "experiments")
    if create_path:
        os.makedirs(path, exist_ok=True)
    experiment_path = path
    return path
