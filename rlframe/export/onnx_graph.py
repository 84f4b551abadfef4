"""A :class:`~rlframe.export.graph.PolicyGraph` as an ONNX model, written with ``onnx.helper``.

The model is what MXNet 1.9.1's importer (``mxnet.contrib.onnx.import_model``, the SageMaker notebooks' deploy
script) and onnxruntime both load: opset 11, IR version 6, every initializer also listed in ``graph.input`` (MXNet's
importer looks parameters up among the inputs), only operators its importer translates (Gemm, Sub, Div, Clip with
constant bounds, Reshape with a constant shape, Softmax on axis 1, Exp, Mul, Add, Flatten and the activations), and
no operator whose form changed after opset 11 (no Squeeze: the notebooks' ``fix_onnx_model`` re-saves the graph at
onnx's newest opset, where Squeeze takes its axes as an input). The batch dimension is symbolic ("batch").
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rlframe import __version__
from rlframe.export.graph import INPUT_NAME, PolicyGraph, build
from rlframe.networks.blocks import ActivationLayer
from rlframe.outputs.atomic import atomic_write_bytes

OPSET = 11
IR_VERSION = 6
_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softrelu": "Softplus", "softsign": "Softsign",
                "leaky": "LeakyRelu", "elu": "Elu", "selu": "Selu"}


class _OnnxOps:
    """:class:`~rlframe.export.graph.GraphOps` collecting ONNX nodes and initializers; handles are tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, np.ndarray] = {}
        self.inputs: list[onnx.ValueInfoProto] = []

    def _node(self, op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def input(self, name: str, shape: tuple[int, ...]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *shape]))
        return name

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers[name] = np.asarray(value)
        return name

    def flatten(self, x: str, name: str) -> str:
        return self._node("Flatten", [x], name, axis=1)

    def sub(self, x: str, y: str, name: str) -> str:
        return self._node("Sub", [x, y], name)

    def div(self, x: str, y: str, name: str) -> str:
        return self._node("Div", [x, y], name)

    def clip(self, x: str, low: float, high: float, name: str) -> str:
        bounds = [self.constant(f"{name}_min", np.array(low, np.float32)),
                  self.constant(f"{name}_max", np.array(high, np.float32))]
        return self._node("Clip", [x, *bounds], name)

    def dense(self, x: str, weight: str, bias: str, units: int, name: str) -> str:
        return self._node("Gemm", [x, weight, bias], name, transB=1)  # weight is (out, in), as Gluon keeps it

    def activation(self, x: str, layer: ActivationLayer, name: str) -> str:
        # Selu keeps ONNX's default alpha and gamma (MXNet's constants): MXNet's importer passes attributes on to
        # its operator, which has no 'gamma'.
        alpha = {"alpha": float(layer.alpha)} if layer.kind in ("leaky", "elu") and layer.alpha is not None else {}
        return self._node(_ACTIVATIONS[layer.kind], [x], name, **alpha)

    def squeeze(self, x: str, name: str) -> str:
        return self._node("Reshape", [x, self.constant(f"{name}_shape", np.array([-1], np.int64))], name)

    def softmax(self, x: str, name: str) -> str:
        return self._node("Softmax", [x], name, axis=1)

    def std(self, mean: str, log_std: str, name: str) -> str:
        # MXNet's importer has no Expand: mean * 0 + exp(log_std) broadcasts the (K,) std to the rows of mean.
        zeros = self._node("Mul", [mean, self.constant(f"{name}_zero", np.array(0.0, np.float32))], f"{name}_zeros")
        return self._node("Add", [zeros, self._node("Exp", [log_std], f"{name}_exp")], name)


def policy_to_onnx(graph: PolicyGraph, policy_first: bool = False) -> onnx.ModelProto:
    """The ONNX model of ``graph``: input ``observation`` (batch, *observation shape) float32; outputs in model order
    (:attr:`PolicyGraph.outputs`), or with ``policy_first`` in the order of Coach's per-checkpoint files
    (:attr:`PolicyGraph.policy_first_outputs`). Checked with ``onnx.checker``."""
    ops = _OnnxOps()
    build(graph, ops)
    outputs = graph.policy_first_outputs if policy_first else graph.outputs
    initializers = [numpy_helper.from_array(value, name) for name, value in ops.initializers.items()]
    # MXNet's importer finds parameters among the graph's inputs (the IR 3 convention), so each is listed there too.
    inputs = ops.inputs + [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in initializers]
    onnx_graph = helper.make_graph(
        ops.nodes, f"rlframe_{graph.kind}", inputs,
        [helper.make_tensor_value_info(o.onnx_name, TensorProto.FLOAT, o.shape) for o in outputs], initializers,
        doc_string=f"{graph.agent} policy: raw observations in ('{INPUT_NAME}'); outputs "
                   + ", ".join(f"{o.name} ({o.onnx_name})" for o in outputs),
    )
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rlframe",
                              producer_version=__version__)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def write_onnx(model: onnx.ModelProto, path: str) -> None:
    """Write ``model`` to ``path`` atomically."""
    atomic_write_bytes(path, model.SerializeToString())
