"""What a run prints: Coach's uncoloured ``<Phase>> k=v, ...`` lines.

Lines such as ``Training> Name=main_level/agent, Worker=0, Episode=12, Total reward=35.0, ...`` match
SageMaker's default metric regexes (``^Training>.*Total reward=(.*?),``). They are printed unbuffered, through
``tqdm.write`` so that a progress bar on the same stream (:mod:`rlframe.outputs.progress_bar`, a run hook) stays
below them. Every line is also appended to ``log.txt``.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

from rlframe.errors import StorageError, describe_os_error


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.4g}"
    return str(value)


class Screen:
    """Prints log lines.

    :param log_path: a file every line is appended to (None for none).
    :param stream: where lines go (stdout by default).
    """

    def __init__(self, log_path: str | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.log_path = log_path
        try:
            self._log = open(log_path, "a", encoding="utf-8", buffering=1) if log_path else None
        except OSError as exc:
            raise StorageError(f"Cannot write {log_path}: {describe_os_error(exc)}.") from exc

    def line(self, text: str) -> None:
        tqdm.write(text, file=self.stream)
        self.stream.flush()
        if self._log is not None:
            try:
                self._log.write(text + "\n")
            except OSError as exc:
                self._drop_log()
                raise StorageError(f"Cannot write {self.log_path}: {describe_os_error(exc)}.") from exc

    def log_only(self, text: str) -> None:
        """Append a line to the log file alone, if it can still be written (the error a run ends with: the
        command-line tool prints it on stderr)."""
        if self._log is not None:
            try:
                self._log.write(text + "\n")
            except OSError:
                self._drop_log()

    def _drop_log(self) -> None:
        """Stop writing the log file (after a failed write, its unwritten buffer would fail again at close)."""
        log, self._log = self._log, None
        if log is not None:
            try:
                log.close()
            except OSError:
                pass

    def log_dict(self, prefix: str, values: dict[str, Any]) -> None:
        """``<prefix>> k=v, k=v`` (Coach's ``log_dict``)."""
        self.line(f"{prefix}> " + ", ".join(f"{k}={format_value(v)}" for k, v in values.items()))

    def close(self) -> None:
        # Lines are flushed as they are written (and a failed one raised there), so closing writes nothing.
        self._drop_log()
