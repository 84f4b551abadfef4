"""The Coach-compatible agent CSV (coach.md section 3.2).

Columns: the index (``Episode #`` for online RL, ``Epoch`` for batch RL), Coach's fixed columns in order,
then ``<signal>/Mean|Stdev|Max|Min`` for each signal of the agent. Missing values are written empty
(pandas reads them as NaN).

Rows are well defined (unlike Coach's, which could overwrite or shift): one row per finished heatup or
training episode, and one row per evaluation phase whose ``Episode #`` is the number of episodes finished
before it and whose training columns are empty.

The file is rewritten atomically on every flush, so a killed run leaves a whole CSV behind. A flush happens
at every checkpoint, at the end, and after ``dump_signals_to_csv_every_x_episodes`` new rows once at least
``MIN_SECONDS_BETWEEN_FLUSHES`` have passed since the last one: on CartPole, with episodes of ~20 steps, a
rewrite every 5 episodes cost more than the training itself, and rows after the last checkpoint are dropped
on resume anyway (so no episode row is duplicated or missing).
"""
from __future__ import annotations

import io
import os
import time
from typing import Any, Iterable

import pandas as pd

from rlframe.errors import CheckpointError
from rlframe.outputs.atomic import atomic_write_text

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
    """Collects rows and keeps ``path`` an atomically written CSV of all of them.

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
        self._lines: list[str] = []  # formatted rows, in chunks
        self._pending: list[list[Any]] = []  # rows not formatted yet
        self._unwritten = True  # the file lacks some of the lines (or does not exist yet)
        self._last_flush = time.monotonic()

    def resume(self, last_index: int, checkpoint_copy: str | None = None) -> None:
        """Keep the rows of an existing file up to ``last_index`` (inclusive); drop the rest.

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
            existing = pd.read_csv(source)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"Cannot resume the CSV {source}: it is not readable ({exc}). Move it away to start a new one.") from exc
        if list(existing.columns) != self.columns:
            raise CheckpointError(
                f"Cannot resume the CSV {source}: its columns differ from this run's (was it written by another "
                "preset?). Pass --experiment-path to write to a new directory."
            )
        kept = existing[existing[self.index] <= last_index]
        self._lines = [kept.to_csv(index=False, header=False)] if len(kept) else []
        self._unwritten = source != self.path or len(kept) < len(existing)
        self.flush()

    def add_row(self, values: dict[str, Any]) -> None:
        unknown = set(values) - set(self.columns)
        assert not unknown, f"CSV row has columns that are not in the header: {unknown}"
        self._pending.append([values.get(c, float("nan")) for c in self.columns])
        if len(self._pending) >= self.flush_every and time.monotonic() - self._last_flush >= MIN_SECONDS_BETWEEN_FLUSHES:
            self.flush()

    def flush(self, create: bool = True) -> None:
        """Rewrite the file if it lacks rows. ``create=False``: never write a file with no rows (a run that
        failed before its first row leaves no CSV)."""
        if self._pending:
            # object dtype: every value is written as itself (an int stays an int in a column with gaps)
            rows = pd.DataFrame(self._pending, columns=self.columns, dtype=object)
            self._lines.append(rows.to_csv(index=False, header=False))
            self._pending = []
            self._unwritten = True
        if self._unwritten and (create or self._lines):
            atomic_write_text(self.path, self._header + "".join(self._lines))
            self._unwritten = False
        self._last_flush = time.monotonic()
