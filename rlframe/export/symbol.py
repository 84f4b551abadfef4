"""A :class:`~rlframe.export.graph.PolicyGraph` as an MXNet symbol and its parameters: rlframe's own model.

``policy-symbol.json`` and ``policy-0000.params`` are what ``HybridBlock.export`` writes (parameter keys
``arg:<name>``), so ``gluon.nn.SymbolBlock.imports(symbol, ["observation"], params)`` loads them. The symbol computes
what the agent computes, with MXNet's own operators (FullyConnected, Activation, LeakyReLU, softmax, broadcast_like).
"""
from __future__ import annotations

from typing import Any

import mxnet as mx
import numpy as np

from rlframe.export.graph import PolicyGraph, build
from rlframe.networks.blocks import ActivationLayer
from rlframe.outputs.atomic import atomic_path, atomic_write_text


class _SymbolOps:
    """:class:`~rlframe.export.graph.GraphOps` building an MXNet symbol; handles are symbols."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}

    def input(self, name: str, shape: tuple[int, ...]) -> mx.sym.Symbol:
        return mx.sym.var(name)

    def constant(self, name: str, value: np.ndarray) -> mx.sym.Symbol:
        value = np.asarray(value, dtype=np.float32)
        self.params[name] = value.reshape(1) if value.ndim == 0 else value  # MXNet 1.x arrays have one dimension or more
        return mx.sym.var(name, shape=self.params[name].shape)

    def flatten(self, x: mx.sym.Symbol, name: str) -> mx.sym.Symbol:
        return mx.sym.flatten(x, name=name)

    def sub(self, x: mx.sym.Symbol, y: mx.sym.Symbol, name: str) -> mx.sym.Symbol:
        return mx.sym.broadcast_sub(x, y, name=name)

    def div(self, x: mx.sym.Symbol, y: mx.sym.Symbol, name: str) -> mx.sym.Symbol:
        return mx.sym.broadcast_div(x, y, name=name)

    def clip(self, x: mx.sym.Symbol, low: float, high: float, name: str) -> mx.sym.Symbol:
        return mx.sym.clip(x, low, high, name=name)

    def dense(self, x: mx.sym.Symbol, weight: mx.sym.Symbol, bias: mx.sym.Symbol, units: int, name: str) -> mx.sym.Symbol:
        return mx.sym.FullyConnected(x, weight=weight, bias=bias, num_hidden=units, flatten=True, name=name)

    def activation(self, x: mx.sym.Symbol, layer: ActivationLayer, name: str) -> mx.sym.Symbol:
        if layer.kind in ("leaky", "elu"):
            return mx.sym.LeakyReLU(x, act_type=layer.kind, slope=layer.alpha, name=name)
        if layer.kind == "selu":
            return mx.sym.LeakyReLU(x, act_type="selu", name=name)
        return mx.sym.Activation(x, act_type=layer.kind, name=name)

    def squeeze(self, x: mx.sym.Symbol, name: str) -> mx.sym.Symbol:
        return mx.sym.reshape(x, shape=(-1,), name=name)

    def softmax(self, x: mx.sym.Symbol, name: str) -> mx.sym.Symbol:
        return mx.sym.softmax(x, axis=1, name=name)

    def std(self, mean: mx.sym.Symbol, log_std: mx.sym.Symbol, name: str) -> mx.sym.Symbol:
        row = mx.sym.reshape(mx.sym.exp(log_std, name=f"{name}_exp"), shape=(1, -1), name=f"{name}_row")
        return mx.sym.broadcast_like(row, mean, name=name)


def policy_to_symbol(graph: PolicyGraph) -> tuple[mx.sym.Symbol, dict[str, np.ndarray]]:
    """The MXNet symbol of ``graph`` (input ``observation``, outputs in model order) and its parameters by name."""
    ops = _SymbolOps()
    outputs = build(graph, ops)
    return mx.sym.Group([outputs[o.name] for o in graph.outputs]), ops.params


def write_symbol(symbol: mx.sym.Symbol, params: dict[str, np.ndarray], symbol_path: str, params_path: str) -> None:
    """Write the symbol JSON and the ``arg:<name>`` parameter file, each atomically."""
    atomic_write_text(symbol_path, symbol.tojson())
    arrays: dict[str, Any] = {f"arg:{name}": mx.nd.array(value, dtype=np.float32) for name, value in params.items()}
    with atomic_path(params_path) as tmp:
        mx.nd.save(tmp, arrays)
