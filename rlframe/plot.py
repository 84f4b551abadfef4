"""``rlframe-plot CSV [--y COLUMN ...] [-o out.png]``: draw an rlframe (Coach-format) CSV with matplotlib.

The x axis is the CSV's first column (``Episode #``, ``Epoch``, or whatever another CSV starts with). Each
y column is drawn against it over the rows where it has a value, since rlframe leaves a cell empty when a
row has nothing to say (a training column on an evaluation row, a signal with no samples).

Without ``--y``:

* an ``Episode #`` CSV (and any CSV not indexed by ``Epoch``) draws ``Training Reward`` as a line and
  ``Evaluation Reward`` as markers, both on the one y axis (they share units: an episode's total reward);
* an ``Epoch`` (batch-RL) CSV draws ``Weighted Importance Sampling`` on the left y axis and
  ``Sequential Doubly Robust`` on a second, right y axis, as SageMaker's batch-RL notebook does (their
  scales can differ widely), and ``Evaluation Reward`` as markers on the left axis: like WIS it estimates
  the policy's episode return, and a third y axis would be hard to read.

Columns of the default that have no values are left out; a y axis is labelled with the names of its lines
(of its markers when it has no line), and a legend under the axes names every series. The image is
written atomically, in the format its extension names (PNG when it has none).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rlframe.cli import run_cli
from rlframe.errors import ParameterValueError, closest
from rlframe.outputs.atomic import atomic_path

TRAINING_REWARD = "Training Reward"
EVALUATION_REWARD = "Evaluation Reward"
WEIGHTED_IMPORTANCE_SAMPLING = "Weighted Importance Sampling"
SEQUENTIAL_DOUBLY_ROBUST = "Sequential Doubly Robust"

#: Where the user can find the names to pass to ``--y``.
WHERE_TO_LOOK = "The CSV's first line lists its columns; docs/metrics.md says what each means."


@dataclass(frozen=True)
class Series:
    """One column to draw: on which y axis (0 left, 1 right) and as a line or as markers only."""

    column: str
    axis: int = 0
    markers: bool = False


def default_output(csv_path: str) -> str:
    """The CSV path with ``.png`` instead of ``.csv`` (``.png`` appended to any other name, so an input
    that is not a ``.csv`` is never overwritten)."""
    stem, extension = os.path.splitext(csv_path)
    return (stem if extension.lower() == ".csv" else csv_path) + ".png"


def read_csv(csv_path: str) -> pd.DataFrame:
    """Read ``csv_path``; a missing, unreadable, empty or non-numeric file raises ParameterValueError.

    A last line without its newline is left out: a running job's logger may be halfway through appending it (or
    a killed one was), and read as a row it would be one with values missing."""
    try:
        with open(csv_path, "rb") as file:
            data = file.read()
        if data and not data.endswith(b"\n") and b"\n" in data:
            data = data[:data.rindex(b"\n") + 1]
        frame = pd.read_csv(io.BytesIO(data))
    except FileNotFoundError as exc:
        raise ParameterValueError(
            f"CSV file {csv_path!r} does not exist: pass an agent CSV such as "
            "<experiment>/worker_0.simple_rl_graph.main_level.main_level.agent_0.csv."
        ) from exc
    except IsADirectoryError as exc:
        raise ParameterValueError(f"{csv_path!r} is a directory: pass one of the CSV files in it.") from exc
    except OSError as exc:
        raise ParameterValueError(f"Cannot read CSV file {csv_path!r}: {exc.strerror or exc}.") from exc
    except pd.errors.EmptyDataError as exc:
        raise ParameterValueError(f"{csv_path!r} is empty (not even a header line): it is not an rlframe CSV.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ParameterValueError(f"{csv_path!r} is not a readable CSV file ({str(exc).splitlines()[0]}).") from exc
    if frame.empty:
        raise ParameterValueError(f"{csv_path!r} has a header but no rows yet: plot it once the run has written some.")
    if not any(pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes):
        raise ParameterValueError(f"{csv_path!r} has no numeric column: it is not an rlframe CSV.")
    return frame


def _has_values(frame: pd.DataFrame, column: str) -> bool:
    return column in frame.columns and bool(frame[column].notna().any())


def _columns_with_values(frame: pd.DataFrame) -> str:
    names = [c for c in frame.columns[1:] if _has_values(frame, c) and pd.api.types.is_numeric_dtype(frame[c])]
    return ", ".join(repr(c) for c in names) or "(none)"


def default_series(frame: pd.DataFrame, name: str) -> list[Series]:
    """The series drawn without ``--y`` (see the module docstring); raises when none of them has values."""
    if frame.columns[0] == "Epoch":
        wanted = [Series(WEIGHTED_IMPORTANCE_SAMPLING), Series(SEQUENTIAL_DOUBLY_ROBUST, axis=1),
                  Series(EVALUATION_REWARD, markers=True)]
    else:
        wanted = [Series(TRAINING_REWARD), Series(EVALUATION_REWARD, markers=True)]
    present = [s for s in wanted if _has_values(frame, s.column)]
    if not present:
        raise ParameterValueError(
            f"{name} has no values in the default columns ({', '.join(repr(s.column) for s in wanted)}): "
            f"pass --y with columns that have values: {_columns_with_values(frame)}."
        )
    if all(s.axis for s in present):
        # A right axis beside an empty left one: draw on the left instead.
        present = [replace(s, axis=0) for s in present]
    return present


def requested_series(frame: pd.DataFrame, columns: Sequence[str], name: str) -> list[Series]:
    """``columns`` as lines on one y axis; an unknown or empty column raises ParameterValueError."""
    for column in columns:
        if column not in frame.columns:
            raise ParameterValueError(
                f"Column {column!r} is not in {name}.{closest(column, frame.columns)} {WHERE_TO_LOOK}"
            )
        if not _has_values(frame, column):
            raise ParameterValueError(
                f"Column {column!r} of {name} has no values (every cell is empty); "
                f"columns with values: {_columns_with_values(frame)}."
            )
    return [Series(column) for column in columns]


def _points(frame: pd.DataFrame, column: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not pd.api.types.is_numeric_dtype(frame[column]):
        raise ParameterValueError(f"Column {column!r} of {name} is not numeric: pick a column of numbers. {WHERE_TO_LOOK}")
    x = frame.columns[0]
    rows = frame[column].notna() & frame[x].notna()
    return frame.loc[rows, x].to_numpy(), frame.loc[rows, column].to_numpy()


def build_figure(frame: pd.DataFrame, columns: Sequence[str] | None = None, name: str = "CSV") -> Figure:
    """Draw ``columns`` of ``frame`` (the defaults when None or empty) against its first column.

    :param frame: the CSV, as :func:`read_csv` returns it.
    :param columns: the y columns, drawn as lines on one axis; None for the default plot.
    :param name: the title, and the CSV's name in error messages.
    """
    series = requested_series(frame, columns, name) if columns else default_series(frame, name)
    # No pyplot: a canvas of its own keeps the figure out of any global state or interactive backend.
    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    left = figure.add_subplot()
    axes = [left, left.twinx()] if any(s.axis for s in series) else [left]
    handles = []
    for i, s in enumerate(series):
        xs, ys = _points(frame, s.column, name)
        style = {"linestyle": "none", "marker": "o", "markersize": 5} if s.markers else {"linewidth": 1.2}
        # Colours are numbered across all axes: each twinx axis would otherwise restart at the first colour.
        handles += axes[s.axis].plot(xs, ys, color=f"C{i}", label=s.column, **style)
    for index, ax in enumerate(axes):
        on_axis = [i for i, s in enumerate(series) if s.axis == index]
        labelled = [i for i in on_axis if not series[i].markers] or on_axis
        ax.set_ylabel(", ".join(series[i].column for i in labelled))
        if len(axes) > 1:
            # With two y axes the label's colour tells which axis a line is read against.
            ax.yaxis.label.set_color(f"C{labelled[0]}")
    left.set_xlabel(str(frame.columns[0]))
    left.set_title(name)
    left.grid(alpha=0.3)
    if len(series) > 1:
        # Below the axes, so it never hides the data (loc="best" is also slow on long runs).
        figure.legend(handles=handles, loc="outside lower center", ncols=min(len(series), 4), frameon=False)
    return figure


def save_figure(figure: Figure, output: str) -> None:
    """Write ``figure`` to ``output`` atomically, in the format its extension names (PNG without one)."""
    extension = os.path.splitext(output)[1].lstrip(".").lower() or "png"
    supported = figure.canvas.get_supported_filetypes()
    if extension not in supported:
        raise ParameterValueError(
            f"Cannot write {output!r}: matplotlib has no {extension!r} format; use one of {', '.join(sorted(supported))}."
        )
    try:
        with atomic_path(output) as tmp:
            # The temporary name has no extension, so the format is given explicitly.
            figure.savefig(tmp, format=extension)
    except OSError as exc:
        raise ParameterValueError(f"Cannot write {output!r}: {exc.strerror or exc}.") from exc


def plot_csv(csv_path: str, columns: list[str] | None = None, output: str | None = None) -> str:
    """Plot ``csv_path`` (``columns``, or the default plot when None) to ``output``; returns the path written.

    ``output`` defaults to the CSV path with ``.png`` instead of ``.csv``.
    """
    frame = read_csv(csv_path)
    figure = build_figure(frame, columns, name=os.path.basename(csv_path))
    output = output or default_output(csv_path)
    save_figure(figure, output)
    return output


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlframe-plot", allow_abbrev=False,
        description="Plot an rlframe (Coach-format) CSV against its first column (Episode # or Epoch). "
        "By default: Training Reward and Evaluation Reward, or for a batch-RL CSV Weighted Importance Sampling "
        "(left axis) and Sequential Doubly Robust (right axis).",
    )
    parser.add_argument("csv", help="the agent CSV (worker_0.*.csv in an experiment directory)")
    parser.add_argument("--y", nargs="+", action="extend", dest="columns", metavar="COLUMN",
                        help="columns to plot instead of the defaults, on one axis (quote names with spaces: "
                        "--y 'Loss/Mean' 'Training Reward')")
    parser.add_argument("-o", "--output", help="image to write; its extension picks the format "
                        "(default: the CSV path with .png instead of .csv)")
    return parser


def _plot(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    print(f"wrote {plot_csv(args.csv, args.columns, args.output)}")
    return 0


def plot_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rlframe-plot``."""
    return run_cli(_plot, argv)


if __name__ == "__main__":
    sys.exit(plot_main())
