"""What a run prints: Coach's uncoloured ``<Phase>> k=v, ...`` lines, and a progress bar on a terminal.

Lines such as ``Training> Name=main_level/agent, Worker=0, Episode=12, Total reward=35.0, ...`` match
SageMaker's default metric regexes (``^Training>.*Total reward=(.*?),``). They are printed unbuffered; on a
terminal a tqdm progress bar stays below them. Every line is also appended to ``log.txt``.
"""
from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from tqdm import tqdm

from rlframe.errors import StorageError, describe_os_error


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.4g}"
    return str(value)


class Screen:
    """Prints log lines and keeps an optional progress bar.

    :param log_path: a file every line is appended to (None for none).
    :param stream: where lines go (stdout by default).
    :param progress: show a bar; default: only when ``stream`` is a terminal.
    """

    def __init__(self, log_path: str | None = None, stream: TextIO | None = None, progress: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.log_path = log_path
        try:
            self._log = open(log_path, "a", encoding="utf-8", buffering=1) if log_path else None
        except OSError as exc:
            raise StorageError(f"Cannot write {log_path}: {describe_os_error(exc)}.") from exc
        if progress is None:
            progress = {"bar": True, "lines": False}.get(os.environ.get("RLFRAME_PROGRESS", ""), self.stream.isatty())
        self.progress = progress
        self._bar: tqdm | None = None

    def start_bar(self, total: float | None, unit: str) -> None:
        if self.progress and self._bar is None:
            self._bar = tqdm(total=total, unit=unit, dynamic_ncols=True, file=self.stream, leave=True)

    def advance(self, count: int, **postfix: Any) -> None:
        if self._bar is not None:
            self._bar.update(count)
            if postfix:
                self._bar.set_postfix({k: format_value(v) for k, v in postfix.items() if v is not None}, refresh=False)

    def line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)
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
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        # Lines are flushed as they are written (and a failed one raised there), so closing writes nothing.
        self._drop_log()
