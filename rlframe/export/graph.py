"""A policy as a framework-neutral computation: what an exported model computes, in the order it computes it.

An agent describes its policy as a :class:`PolicyGraph` (``Agent.policy_graph``): the observation filters that run
before its network (``input_filter`` then ``pre_network_filter``, each an :class:`Normalization`), and one of
three heads, each made of :class:`~rlframe.networks.blocks.MLPDescription` towers with a snapshot of the weights:

- :class:`QValues` (DQN, DDQN, DDQN+BCQ): one output, the Q-values (B, A);
- :class:`DiscretePolicy` (Clipped PPO, discrete actions): the value (B,) and the action probabilities
  softmax(logits) (B, A);
- :class:`ContinuousPolicy` (Clipped PPO, box actions): the value (B,), the mean (B, K) and the std
  exp(log_std) (B, K), the same for every observation.

The writers (:mod:`rlframe.export.onnx_graph`, :mod:`rlframe.export.symbol`) turn it into an ONNX graph and an MXNet
symbol. Output names are the node names of Coach's MXNet networks, which the SageMaker notebooks' ``onnx_utils``
looks for; :attr:`PolicyGraph.outputs` gives them with their friendly names and shapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Union

import numpy as np

from rlframe.errors import RlframeError
from rlframe.filters.filter import InputFilter
from rlframe.filters.observation import ObservationNormalizationFilter
from rlframe.networks.blocks import ActivationLayer, DenseLayer, MLPDescription
from rlframe.spaces import ActionSpace, DiscreteActionSpace, Space

#: the name of every exported model's one input
INPUT_NAME = "observation"
#: the ``kind`` of each head, as the model directory's metadata names it
Q_VALUES, DISCRETE_POLICY, CONTINUOUS_POLICY = "q_values", "discrete_policy", "continuous_policy"

# Coach's MXNet node names: tower 0 holds the value (or Q) head, tower 1 the policy head.
_VALUE_TOWER = "generalmodel0_singlemodel0_"
_POLICY_TOWER = "generalmodel0_singlemodel1_"
Q_HEAD = _VALUE_TOWER + "scaledgradhead0_qhead0_"
V_HEAD = _VALUE_TOWER + "scaledgradhead0_vhead0_"
DISCRETE_HEAD = _POLICY_TOWER + "scaledgradhead0_discreteppohead0_"
CONTINUOUS_HEAD = _POLICY_TOWER + "scaledgradhead0_continuousppohead0_"
Q_OUTPUT = Q_HEAD + "dense0_fwd"
VALUE_OUTPUT = V_HEAD + "squeeze0"
PROBABILITIES_OUTPUT = DISCRETE_HEAD + "softmax0"
MEAN_OUTPUT = CONTINUOUS_HEAD + "dense0_fwd"
STD_OUTPUT = CONTINUOUS_HEAD + "broadcast_mul0"
LOG_STD = CONTINUOUS_HEAD + "log_std"


class ExportError(RlframeError):
    """A policy, checkpoint or output folder that cannot be exported (one line saying why and what to do)."""


@dataclass(frozen=True)
class Normalization:
    """An :class:`~rlframe.filters.observation.ObservationNormalizationFilter` with its statistics:
    ``clip((x - mean) / std, clip_min, clip_max)`` on the flattened observation, mean and std (D,) float32."""

    stage: str
    name: str
    mean: np.ndarray
    std: np.ndarray
    clip_min: float
    clip_max: float


@dataclass(frozen=True)
class QValues:
    """Q-values (B, A) from one tower; ``softmax_temperature`` is T of the policy softmax(Q / T)."""

    network: MLPDescription
    softmax_temperature: float


@dataclass(frozen=True)
class DiscretePolicy:
    """The value tower (output (B, 1)) and the policy tower (logits (B, A))."""

    value: MLPDescription
    policy: MLPDescription


@dataclass(frozen=True)
class ContinuousPolicy:
    """The value tower (output (B, 1)), the policy tower (mean (B, K)) and the learned log-std (K,)."""

    value: MLPDescription
    policy: MLPDescription
    log_std: np.ndarray


Head = Union[QValues, DiscretePolicy, ContinuousPolicy]


@dataclass(frozen=True)
class Output:
    """One model output: ``name`` (friendly), ``onnx_name`` (the graph's), ``shape`` with "batch" first."""

    name: str
    onnx_name: str
    shape: list[Any]


@dataclass(frozen=True)
class PolicyGraph:
    """Raw observations (B, *observation.shape) -> ``filters`` in order -> ``head``.

    :param agent: the agent's class name.
    :param observation: the observation space (its shape is the model input's, after the batch dimension).
    :param action: the action space.
    """

    agent: str
    observation: Space
    action: ActionSpace
    filters: tuple[Normalization, ...]
    head: Head

    @property
    def kind(self) -> str:
        return {QValues: Q_VALUES, DiscretePolicy: DISCRETE_POLICY, ContinuousPolicy: CONTINUOUS_POLICY}[type(self.head)]

    @property
    def num_outputs(self) -> int:
        """A (actions) or K (action dimensions): the width of the policy's outputs."""
        if isinstance(self.action, DiscreteActionSpace):
            return int(self.action.num_actions)
        return int(np.prod(self.action.shape))

    @property
    def outputs(self) -> list[Output]:
        """The model's outputs in model order (the SageMaker notebooks' order: the value first)."""
        width = ["batch", self.num_outputs]
        if isinstance(self.head, QValues):
            return [Output("q_values", Q_OUTPUT, width)]
        value = Output("value", VALUE_OUTPUT, ["batch"])
        if isinstance(self.head, DiscretePolicy):
            return [value, Output("action_probabilities", PROBABILITIES_OUTPUT, width)]
        return [value, Output("mean", MEAN_OUTPUT, width), Output("std", STD_OUTPUT, width)]

    @property
    def policy_first_outputs(self) -> list[Output]:
        """The outputs in the order of Coach's per-checkpoint ONNX files, the policy head's first (the value
        last), which the notebooks' ``onnx_utils.fix_onnx_model`` recognises by the first output's name."""
        outputs = self.outputs
        return outputs if len(outputs) == 1 else outputs[1:] + outputs[:1]

    @property
    def distribution(self) -> dict[str, Any]:
        """How the action distribution follows from the outputs (the model directory's ``distribution``)."""
        if isinstance(self.head, QValues):
            return {"kind": "softmax", "output": "q_values", "temperature": float(self.head.softmax_temperature)}
        if isinstance(self.head, DiscretePolicy):
            return {"kind": "probabilities", "output": "action_probabilities"}
        return {"kind": "mean", "output": "mean", "std": "std"}


def normalization_steps(
    input_filter: InputFilter, pre_network_filter: InputFilter, observation_size: int
) -> tuple[Normalization, ...]:
    """The observation filters of both stages, in the order an agent applies them, as :class:`Normalization`
    steps. A filter of another type cannot be written as a graph: :class:`ExportError` names it."""
    steps = []
    for stage, stage_filter in (("input_filter", input_filter), ("pre_network_filter", pre_network_filter)):
        for name, obs_filter in stage_filter.observation_filters.get(INPUT_NAME, {}).items():
            if not isinstance(obs_filter, ObservationNormalizationFilter):
                raise ExportError(
                    f"agent_params.{stage} has observation filter {name!r} of type {type(obs_filter).__name__}, which "
                    "cannot be exported (rlframe exports ObservationNormalizationFilter only): remove it from the "
                    "preset, or apply it to observations before they reach the exported model."
                )
            mean, std = obs_filter.scale
            steps.append(Normalization(stage, name, np.broadcast_to(mean, (observation_size,)).astype(np.float32),
                                       np.broadcast_to(std, (observation_size,)).astype(np.float32),
                                       float(obs_filter.clip_min), float(obs_filter.clip_max)))
    return tuple(steps)


class GraphOps(Protocol):
    """What a writer provides to :func:`build` a graph in its framework; a handle is its name for a tensor
    (an ONNX tensor name, an MXNet symbol). ``name`` is the name the result gets in the graph."""

    def input(self, name: str, shape: tuple[int, ...]) -> Any: ...
    def constant(self, name: str, value: np.ndarray) -> Any: ...
    def flatten(self, x: Any, name: str) -> Any: ...
    def sub(self, x: Any, y: Any, name: str) -> Any: ...
    def div(self, x: Any, y: Any, name: str) -> Any: ...
    def clip(self, x: Any, low: float, high: float, name: str) -> Any: ...
    def dense(self, x: Any, weight: Any, bias: Any, units: int, name: str) -> Any: ...
    def activation(self, x: Any, layer: ActivationLayer, name: str) -> Any: ...
    def squeeze(self, x: Any, name: str) -> Any:
        """(B, 1) -> (B,)."""
    def softmax(self, x: Any, name: str) -> Any:
        """Along axis 1 of (B, A)."""
    def std(self, mean: Any, log_std: Any, name: str) -> Any:
        """exp(log_std (K,)) repeated for every row of ``mean`` (B, K)."""


def _tower(ops: GraphOps, x: Any, network: MLPDescription, prefix: str, head: str) -> Any:
    """One tower: the embedder's input scaling, then its layers. Hidden layers are named ``<prefix>dense<j>`` and
    ``<prefix><activation><j>``, the last layer ``<head>dense0`` (its output ``<head>dense0_fwd``), as Coach's."""
    if network.offset != 0.0 or network.rescale != 1.0:
        offset = ops.constant(prefix + "input_offset", np.array(network.offset, np.float32))
        x = ops.sub(x, offset, prefix + "input_sub0")
        rescaling = ops.constant(prefix + "input_rescaling", np.array(network.rescale, np.float32))
        x = ops.div(x, rescaling, prefix + "input_div0")
    if network.clip is not None:
        x = ops.clip(x, float(network.clip[0]), float(network.clip[1]), prefix + "input_clip0")
    dense = [i for i, layer in enumerate(network.layers) if isinstance(layer, DenseLayer)]
    counts: dict[str, int] = {}
    for i, layer in enumerate(network.layers):
        if isinstance(layer, DenseLayer):
            base = head + "dense0_" if i == dense[-1] else f"{prefix}dense{dense.index(i)}_"
            x = ops.dense(x, ops.constant(base + "weight", layer.weight), ops.constant(base + "bias", layer.bias),
                          int(layer.bias.shape[0]), base + "fwd")
        else:
            count = counts[layer.kind] = counts.get(layer.kind, -1) + 1
            x = ops.activation(x, layer, f"{prefix}{layer.kind}{count}")
    return x


def build(graph: PolicyGraph, ops: GraphOps) -> dict[str, Any]:
    """Build ``graph`` with ``ops``; returns each output's handle by its friendly name (see :attr:`PolicyGraph.outputs`)."""
    x = ops.input(INPUT_NAME, tuple(graph.observation.shape))
    if len(graph.observation.shape) > 1:
        x = ops.flatten(x, INPUT_NAME + "_flatten0")
    for k, step in enumerate(graph.filters):
        prefix = f"{step.stage}{k}_"
        x = ops.sub(x, ops.constant(prefix + "mean", step.mean), prefix + "sub0")
        x = ops.div(x, ops.constant(prefix + "std", step.std), prefix + "div0")
        x = ops.clip(x, step.clip_min, step.clip_max, prefix + "clip0")
    head = graph.head
    if isinstance(head, QValues):
        return {"q_values": _tower(ops, x, head.network, _VALUE_TOWER, Q_HEAD)}
    value = ops.squeeze(_tower(ops, x, head.value, _VALUE_TOWER, V_HEAD), VALUE_OUTPUT)
    if isinstance(head, DiscretePolicy):
        logits = _tower(ops, x, head.policy, _POLICY_TOWER, DISCRETE_HEAD)
        return {"value": value, "action_probabilities": ops.softmax(logits, PROBABILITIES_OUTPUT)}
    mean = _tower(ops, x, head.policy, _POLICY_TOWER, CONTINUOUS_HEAD)
    return {"value": value, "mean": mean, "std": ops.std(mean, ops.constant(LOG_STD, head.log_std), STD_OUTPUT)}
