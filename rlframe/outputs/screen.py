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
        self._log = open(log_path, "a", encoding="utf-8", buffering=1) if log_path else None
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
            self._log.write(text + "\n")

    def log_dict(self, prefix: str, values: dict[str, Any]) -> None:
        """``<prefix>> k=v, k=v`` (Coach's ``log_dict``)."""
        self.line(f"{prefix}> " + ", ".join(f"{k}={format_value(v)}" for k, v in values.items()))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._log is not None:
            self._log.close()
            self._log = None
