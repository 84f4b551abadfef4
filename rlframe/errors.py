"""User-facing errors.

Every mistake a user can make (a bad preset, parameter, hyperparameter, level or checkpoint) raises a
subclass of :class:`RlframeError`. Its message says what is wrong, where, and how to fix it, in one line;
the command-line tools print it without a traceback and exit with status 2.
"""
from __future__ import annotations

import difflib
import errno
from typing import Iterable


class RlframeError(Exception):
    """A mistake in what the user gave rlframe (not a bug in rlframe), or a condition of the machine it must report.

    ``exit_code`` is the status the command-line tools exit with.
    """

    exit_code = 2


class UnknownParameterError(RlframeError, AttributeError):
    """A parameter or hyperparameter name that does not exist."""


class ParameterValueError(RlframeError, ValueError):
    """A parameter value of the wrong type or out of range."""


class PresetError(RlframeError):
    """A preset that cannot be found, imported or used."""


class EnvironmentLevelError(RlframeError):
    """An environment level (gymnasium id or ``module:callable``) that cannot be made."""


class CheckpointError(RlframeError):
    """A checkpoint directory or file that is missing, incomplete or corrupt."""


class ExperimentFolderError(RlframeError):
    """An experiment folder that another run is using, or that holds a run this one would overwrite."""


class StorageError(RlframeError):
    """A file the run must write could not be written (a full or read-only disk, a path that is not a folder).

    Not a mistake in the command, so the tools exit with 1 rather than 2.
    """

    exit_code = 1


def describe_os_error(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``: the system's words and the error's symbolic name."""
    name = errno.errorcode.get(exc.errno or 0)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason} ({name})" if name else reason


def closest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return a "did you mean" clause for ``name`` among ``candidates`` ('' when nothing is close)."""
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"
