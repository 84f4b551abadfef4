"""The Coach-compatible agent CSV (coach.md section 3.2).

Columns: the index (``Episode #`` for online RL, ``Epoch`` for batch RL), Coach's fixed columns in order,
then ``<signal>/Mean|Stdev|Max|Min`` for each signal of the agent. Missing values are written empty
(pandas reads them as NaN).

Rows are well defined (unlike Coach's, which could overwrite or shift): one row per finished heatup or
training episode, and one row per evaluation phase whose ``Episode #`` is the number of episodes finished
before it and whose training columns are empty.

The file is created atomically (header and first rows, renamed into place) and then grows by appending: each
flush adds its rows as one write of complete lines, then fsyncs, so earlier bytes are never rewritten. A
SIGKILL leaves every row whole or absent, except that a kill inside that one write call can leave a partial
last line; :meth:`CsvLogger.resume` cuts it off, and a write that fails (a full disk) is cut back at once.
A flush happens at every checkpoint, at the end, and after ``dump_signals_to_csv_every_x_episodes`` new rows
once at least ``MIN_SECONDS_BETWEEN_FLUSHES`` have passed since the last one (an fsync per few CartPole
episodes would cost more than they do; rows after the last checkpoint are dropped on resume anyway, so no
episode row is duplicated or missing).

Columns are fixed when the logger is made (the agent's signals are known then), so a later row never needs a
new column and the header is written once.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
from typing import Any, Iterable

import pandas as pd

from rlframe.errors import CheckpointError
from rlframe.outputs.atomic import atomic_write_text, storage_error

FIXED_COLUMNS = (
    "Training Iter", "Episode #", "Epoch", "In Heatup", "ER #Transitions", "ER #Episodes", "Episode Length",
    "Total steps", "Epsilon", "Shaped Training Reward", "Training Reward", "Update Target Network",
    "Wall-Clock Time", "Evaluation Reward", "Shaped Evaluation Reward", "Success Rate",
    "Inverse Propensity Score", "Direct Method Reward", "Doubly Robust", "Weighted Importance Sampling",
    "Sequential Doubly Robust",
)


MIN_SECONDS_BETWEEN_FLUSHES = 2.0


def csv_file_name(graph_name: str, task_index: int = 0) -> str:
    """``worker_0.simple_rl_graph.main_level.main_level.agent_0.csv`` and its batch-RL twin."""
    return f"worker_{task_index}.{graph_name}.main_level.main_level.agent_0.csv"


class CsvLogger:
    """Collects rows and appends them to ``path``, a CSV whose rows are whole (see the module docstring).

    :param path: the CSV file.
    :param index: the index column name (``Episode #`` or ``Epoch``).
    :param signal_columns: the ``<signal>/<stat>`` columns, in order.
    :param flush_every: rows between automatic flushes.
    """

    def __init__(self, path: str, index: str, signal_columns: Iterable[str], flush_every: int) -> None:
        self.path = path
        self.index = index
        self.columns = [index] + [c for c in FIXED_COLUMNS if c != index] + list(signal_columns)
        self.flush_every = max(1, int(flush_every))
        header = io.StringIO()
        pd.DataFrame(columns=self.columns).to_csv(header, index=False)
        self._header = header.getvalue()
        self._pending: list[list[Any]] = []  # rows not written yet
        #: bytes of ``path`` this logger wrote (header and whole rows); None until it has written the file
        self._size: int | None = None
        self._start = ""  # whole lines (after the header) a resume keeps, for when the file is (re)created
        self._last_flush = time.monotonic()

    def resume(self, last_index: int, checkpoint_copy: str | None = None) -> None:
        """Keep the rows of an existing file up to ``last_index`` (inclusive); drop the rest, and a partial last
        line a kill inside a write left. Kept rows keep their bytes.

        When the file does not exist (the run resumes on a machine where its experiment folder is gone, as on a
        spot restart) and ``checkpoint_copy`` (the CSV saved with the checkpoint) does, its rows up to
        ``last_index`` start the file instead.
        """
        source = self.path
        if not os.path.exists(source):
            if checkpoint_copy is None or not os.path.exists(checkpoint_copy):
                return
            source = checkpoint_copy
        try:
            with open(source, encoding="utf-8", newline="") as handle:
                text = handle.read()
            whole = text[:text.rfind("\n") + 1]  # a partial last line is a row the kill cut short
            existing = pd.read_csv(io.StringIO(whole))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise CheckpointError(
                f"Cannot resume the CSV {source}: it is not readable ({exc}). Move it away to start a new one."
            ) from exc
        if list(existing.columns) != self.columns:
            raise CheckpointError(
                f"Cannot resume the CSV {source}: its columns differ from this run's (was it written by another "
                "preset?). Pass --experiment-path to write to a new directory."
            )
        header, *rows = whole.splitlines(keepends=True)
        assert len(rows) == len(existing), "every row of a CSV of numbers is one line"
        keep = (existing[self.index] <= last_index).tolist()
        self._start = "".join(row for row, kept in zip(rows, keep) if kept)
        if source == self.path and all(keep) and whole == text:
            self._size = len(text.encode("utf-8"))  # the file is already what this run continues
        else:
            self._size = None  # recreate it, with the kept rows, at the next flush
        self.flush()

    def add_row(self, values: dict[str, Any]) -> None:
        unknown = set(values) - set(self.columns)
        assert not unknown, f"CSV row has columns that are not in the header: {unknown}"
        self._pending.append([values.get(c, float("nan")) for c in self.columns])
        if len(self._pending) >= self.flush_every and time.monotonic() - self._last_flush >= MIN_SECONDS_BETWEEN_FLUSHES:
            self.flush()

    def flush(self, create: bool = True) -> None:
        """Write the rows not written yet: the first flush (or the first after a resume that dropped rows)
        creates the file atomically, later ones append. ``create=False``: never write a file with no rows (a run
        that failed before its first row leaves no CSV). A failed write raises StorageError and keeps the rows
        for the next flush; the file keeps every row written before."""
        rows = ""
        if self._pending:
            # object dtype: every value is written as itself (an int stays an int in a column with gaps)
            rows = pd.DataFrame(self._pending, columns=self.columns, dtype=object).to_csv(index=False, header=False)
        if self._size is None:
            if create or rows or self._start:
                text = self._header + self._start + rows
                atomic_write_text(self.path, text)
                self._size = len(text.encode("utf-8"))
                self._start = ""
        elif rows:
            self._size = self._append(rows.encode("utf-8"), self._size)
        self._pending = []
        self._last_flush = time.monotonic()

    def _append(self, data: bytes, size: int) -> int:
        """Append ``data`` (whole lines) to the file of ``size`` bytes this logger wrote, fsync it, and return the
        new size. A longer file is first cut back to ``size`` (a tail a failed write could not remove); a write
        that fails is cut back too. A file that vanished (deleted by hand) is started again with the header."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            text = self._header + data.decode("utf-8")
            atomic_write_text(self.path, text)
            return len(text.encode("utf-8"))
        except OSError as exc:
            raise storage_error(self.path, exc) from exc
        start = size
        try:
            start = os.fstat(fd).st_size
            if start > size:
                os.ftruncate(fd, size)
                start = size
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # shrinking needs no space, so this works on a full disk
                os.ftruncate(fd, start)
            raise storage_error(self.path, exc) from exc
        finally:
            os.close(fd)
        return start + len(data)
