"""Named column layouts of packed float32 minibatches.

An update copies one (B, C) float32 array into MXNet instead of one array per quantity (each copy costs a call
into the engine); the loss block then slices it back apart. :class:`Columns` names the slices once, so the numpy
packer, the loss graph and whoever reads diagnostics back agree by name instead of by offsets written in three
places::

    layout = Columns(obs=4, next_obs=4, action=1, reward=1, discount=1)
    packed = layout.pack(obs=obs, next_obs=next_obs, action=action, reward=reward, discount=discount)  # (B, 11)
    # in hybrid_forward(self, F, packed):
    reward = layout.column(F, packed, "reward")          # (B,)
    obs = layout.slice(F, packed, "obs")                 # (B, 4)

The same class names a vector of statistics (``Columns(policy_loss=1, value_loss=1, ...)``): :meth:`stack`
builds it in the graph, :meth:`read` reads it back as a dict.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class Columns:
    """An ordered layout ``name -> width`` of the columns of a (B, :attr:`width`) float32 array.

    :param widths: the columns in order, each with its width (1 for a scalar per row).
    """

    def __init__(self, **widths: int) -> None:
        if not widths or any(not isinstance(w, int) or w < 1 for w in widths.values()):
            raise ValueError(f"Columns needs positive integer widths, got {widths}")
        self.widths = dict(widths)
        self.spans: dict[str, tuple[int, int]] = {}
        start = 0
        for name, width in widths.items():
            self.spans[name] = (start, start + width)
            start += width
        self.width = start

    def __repr__(self) -> str:
        return f"Columns({', '.join(f'{k}={v}' for k, v in self.widths.items())})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.widths)

    # ---- numpy side -------------------------------------------------------------------------------------
    def pack(self, **arrays: np.ndarray) -> np.ndarray:
        """One (B, width) float32 array from every column by name: (B,) arrays for width-1 columns, (B, w)
        otherwise (booleans and integers become 0/1 and exact floats)."""
        if set(arrays) != set(self.widths):
            raise ValueError(f"{self!r}.pack got {sorted(arrays)}; it needs exactly {list(self.widths)}")
        parts = []
        for name, width in self.widths.items():
            array = np.asarray(arrays[name])
            parts.append(array.reshape(len(array), width))
        return np.concatenate(parts, axis=1, dtype=np.float32)

    def read(self, row: np.ndarray) -> dict[str, float | np.ndarray]:
        """A packed row (width,) back as ``{name: value}``: floats for width-1 columns, arrays otherwise."""
        row = np.asarray(row).reshape(-1)
        return {name: (float(row[a]) if b - a == 1 else row[a:b].copy()) for name, (a, b) in self.spans.items()}

    # ---- graph side (F = mxnet.nd or mxnet.sym) -----------------------------------------------------------
    def slice(self, F: Any, packed: Any, name: str) -> Any:
        """Column ``name`` of ``packed`` (B, width) as (B, w)."""
        begin, end = self.spans[name]
        return F.slice_axis(packed, axis=1, begin=begin, end=end)

    def column(self, F: Any, packed: Any, name: str) -> Any:
        """Width-1 column ``name`` of ``packed`` (B, width) as (B,)."""
        if self.widths[name] != 1:
            raise ValueError(f"column {name!r} of {self!r} is {self.widths[name]} wide; use slice()")
        return self.slice(F, packed, name).reshape((-1,))

    def stack(self, F: Any, **values: Any) -> Any:
        """The (B, width) array of per-row values (B,) given by name, in this layout's order (width-1 columns only)."""
        if set(values) != set(self.widths) or self.width != len(self.widths):
            raise ValueError(f"{self!r}.stack needs exactly one (B,) value per width-1 column, got {sorted(values)}")
        return F.stack(*(values[name] for name in self.widths), axis=1)
