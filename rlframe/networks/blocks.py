"""Gluon blocks built from embedder / middleware / head parameters. Blocks compute outputs only; losses
live with their algorithms."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Union

import mxnet as mx
import numpy as np
from mxnet import gluon, nd

from rlframe.errors import ParameterValueError, closest
from rlframe.networks.parameters import (
    EMBEDDER_SCHEMES,
    MIDDLEWARE_SCHEMES,
    Dense,
    FCMiddlewareParameters,
    HeadParameters,
    InputEmbedderParameters,
    NetworkParameters,
    QHeadParameters,
)

ACTIVATIONS: dict[str, str | None] = {
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "softrelu": "softrelu",
    "softsign": "softsign",
    "elu": "elu",
    "selu": "selu",
    "leaky_relu": "leaky",
    "none": None,
    "linear": None,
}


def activation_block(name: str, where: str) -> Activation | None:
    """The activation block for a Coach activation name (None for 'none')."""
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ParameterValueError(
            f"{where}.activation_function = {name!r} is not a known activation.{closest(str(name), ACTIVATIONS)}"
            f" Use one of: {', '.join(ACTIVATIONS)}."
        )
    kind = ACTIVATIONS[name.lower()]
    if kind is None:
        return None
    # The slopes rlframe's networks have always had: 0.01 below zero for leaky ReLU, Gluon's default 1.0 for ELU.
    return Activation(ActivationLayer(kind, {"leaky": 0.01, "elu": 1.0}.get(kind)))


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


@dataclass(frozen=True)
class DenseLayer:
    """A fully connected layer's weights: ``y = x @ weight.T + bias``, weight (out, in) and bias (out,), float32
    (Gluon's layout)."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class ActivationLayer:
    """An element-wise activation: ``kind`` is one of 'relu', 'tanh', 'sigmoid', 'softrelu' (log(1 + e^x)),
    'softsign', 'leaky' (slope ``alpha`` below 0), 'elu' (``alpha``), 'selu'."""

    kind: str
    alpha: float | None = None


Layer = Union[DenseLayer, ActivationLayer]


@dataclass(frozen=True)
class MLPDescription:
    """What an :class:`MLP` computes, with a snapshot of its weights, in no framework's terms: observations
    (B, D) -> ``(x - offset) / rescale``, clipped to ``clip`` = (low, high) when not None -> ``layers`` in order.
    """

    offset: float
    rescale: float
    clip: tuple[float, float] | None
    layers: tuple[Layer, ...]


class Activation(gluon.HybridBlock):
    """An element-wise activation that carries its own :class:`ActivationLayer` description, so numpy acting and
    export read what it computes from it rather than from MXNet's internals. The operators are those of Gluon's
    ``Activation``, ``LeakyReLU``, ``ELU`` and ``SELU`` blocks."""

    def __init__(self, layer: ActivationLayer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layer = layer

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        kind = self.layer.kind
        if kind in ("leaky", "elu"):
            return F.LeakyReLU(x, act_type=kind, slope=self.layer.alpha)
        if kind == "selu":
            return F.LeakyReLU(x, act_type="selu")
        return F.Activation(x, act_type=kind)


def describe_block(block: gluon.HybridBlock) -> tuple[Layer, ...]:
    """The layers of one block of an :class:`MLP`: a Dense layer (a snapshot of its weights), an activation made
    by :func:`activation_block`, or an :class:`OutputBlock`'s own description."""
    if isinstance(block, gluon.nn.Dense):
        return (DenseLayer(block.weight.data().asnumpy(), block.bias.data().asnumpy()),)
    if isinstance(block, OutputBlock):
        return block.describe_layers()
    if isinstance(block, Activation):
        return (block.layer,)
    raise TypeError(f"{type(block).__name__} is not a block an MLP is made of")


def numpy_activation(layer: ActivationLayer) -> Callable[[np.ndarray], np.ndarray]:
    """The numpy function of an activation (as MXNet computes it)."""
    alpha = layer.alpha
    functions: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "leaky": lambda x: np.where(x > 0, x, alpha * x),
        "elu": lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
        "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0))),
        "relu": lambda x: np.maximum(x, 0),
        "tanh": np.tanh,
        "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
        "softrelu": lambda x: np.logaddexp(0, x),
        "softsign": lambda x: x / (1.0 + np.abs(x)),
    }
    return functions[layer.kind]


def layer_sizes(scheme: Any, schemes: dict, where: str) -> list[int]:
    """Units of each Dense layer of a scheme: a named scheme or a list of ``Dense``."""
    if not isinstance(scheme, (list, tuple)) and scheme in schemes:
        return [layer.units for layer in schemes[scheme]]
    if isinstance(scheme, (list, tuple)) and all(isinstance(layer, Dense) for layer in scheme):
        return [int(layer.units) for layer in scheme]
    names = ", ".join(f"{type(s).__name__}.{s.name}" for s in schemes)
    raise ParameterValueError(
        f"{where}.scheme = {scheme!r} is not a scheme: use one of {names}, or a list such as [Dense(64)].")


def initialised_dense(units: int, fan_in: int, weight_scale: float | None = None,
                      bias: float | None = None) -> gluon.nn.Dense:
    """A Dense layer initialised as PyTorch's default: weights and biases uniform in +-1/sqrt(fan_in).

    On CartPole DQN this kept late evaluations stable where Glorot weights with zero biases (Coach's
    TensorFlow default) let them collapse (benchmarks/dqn_cartpole.py). ``weight_scale`` draws the weights
    from N(0, weight_scale) instead; ``bias`` sets a constant bias.
    """
    bound = 1.0 / math.sqrt(fan_in)
    weight_init = mx.init.Normal(weight_scale) if weight_scale else mx.init.Uniform(bound)
    bias_init = mx.init.Constant(bias) if bias is not None else mx.init.Uniform(bound)
    return gluon.nn.Dense(units, in_units=fan_in, flatten=True, weight_initializer=weight_init, bias_initializer=bias_init)


class OutputBlock(gluon.HybridBlock):
    """An output layer that is more than one Dense layer: the middleware's output (B, H) -> (B, outputs).

    :meth:`describe_layers` states what it computes as plain Dense and activation layers, with a snapshot of its
    weights; numpy acting and export read only that, so it must equal the block's forward (to float32 rounding).
    """

    def describe_layers(self) -> tuple[Layer, ...]:
        raise NotImplementedError


#: Builds a network's output layer from its input width H (the middleware's output): a ``gluon.nn.Dense`` or an
#: :class:`OutputBlock`. Called inside the network's name scope, once per copy (online, target).
OutputBuilder = Callable[[int], gluon.HybridBlock]
#: Turns a Q head's parameters, the number of actions A and the parameter's path (for error messages, e.g.
#: ``network_wrappers['main'].heads_parameters[0]``) into the :data:`OutputBuilder` of its output (B, A).
QHeadBuilder = Callable[[Any, int, str], OutputBuilder]

_Q_HEADS: dict[type, QHeadBuilder] = {}


def register_q_head(params_class: type[HeadParameters], builder: QHeadBuilder) -> None:
    """Make ``params_class`` (and its subclasses) a head that the DQN family accepts in ``heads_parameters``.

    A head's module registers itself when it is imported, which a preset does to construct its parameters.
    """
    _Q_HEADS[params_class] = builder


def q_head_output(head: HeadParameters, num_actions: int, where: str) -> OutputBuilder:
    """The output layer of the Q head ``head`` (Q-values (B, A) from the middleware's output); ``where``, the
    head's parameter path, names it in errors (a head no Q network can use, a bad value in the head)."""
    for cls in type(head).__mro__:
        if cls in _Q_HEADS:
            return _Q_HEADS[cls](head, num_actions, where)
    raise ParameterValueError(
        f"{where} = {type(head).__name__}() is not a Q head; use one of: "
        f"{', '.join(f'{cls.__name__}()' for cls in _Q_HEADS)}."
    )


def _plain_q_head(head: QHeadParameters, num_actions: int, where: str) -> OutputBuilder:
    """One Dense(A), its bias initialised to ``output_bias_initializer`` when set."""
    return lambda fan_in: initialised_dense(num_actions, fan_in, bias=head.output_bias_initializer)


register_q_head(QHeadParameters, _plain_q_head)


class MLP(gluon.HybridBlock):
    """Observation (B, D) -> embedder layers -> middleware layers -> output layer (B, num_outputs).

    The output layer is Dense(num_outputs), or what ``output`` builds (e.g. :func:`q_head_output`'s, whose width
    must then be ``num_outputs``). With ``num_outputs=0`` and no ``output`` there is no output layer (the
    middleware output is returned).
    """

    def __init__(
        self,
        embedder: InputEmbedderParameters,
        middleware: FCMiddlewareParameters | None,
        num_outputs: int,
        input_size: int,
        output_bias: float | None = None,
        output_weight_scale: float | None = None,
        output: OutputBuilder | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = "input_embedders_parameters['observation']"
        self._offset = float(embedder.input_offset.get("vector", 0.0))
        self._rescale = float(embedder.input_rescaling.get("vector", 1.0))
        self._clip = embedder.input_clipping
        with self.name_scope():
            self.body = gluon.nn.HybridSequential()
            stages = [(layer_sizes(embedder.scheme, EMBEDDER_SCHEMES, where), embedder.activation_function, where)]
            if middleware is not None:
                stages.append(
                    (layer_sizes(middleware.scheme, MIDDLEWARE_SCHEMES, "middleware_parameters"),
                     middleware.activation_function, "middleware_parameters")
                )
            fan_in = input_size
            for sizes, activation, stage_where in stages:
                for units in sizes:
                    self.body.add(initialised_dense(units, fan_in))
                    fan_in = units
                    act = activation_block(activation, stage_where)
                    if act is not None:
                        self.body.add(act)
            self.output = None
            if output is not None:
                self.output = output(fan_in)
            elif num_outputs:
                self.output = initialised_dense(num_outputs, fan_in, output_weight_scale, output_bias)

    def _scale_input(self, F: Any, x: Any) -> Any:
        if self._offset != 0.0 or self._rescale != 1.0:
            x = (x - self._offset) / self._rescale
        return F.clip(x, self._clip[0], self._clip[1]) if self._clip is not None else x

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        x = self.body(self._scale_input(F, x))
        return self.output(x) if self.output is not None else x

    def hidden(self, x: nd.NDArray) -> nd.NDArray:
        """The last hidden layer's activations (B, H) for observations (B, D)."""
        return self.body(self._scale_input(nd, x))

    def describe(self) -> MLPDescription:
        """This block's computation with a snapshot of its current weights (for numpy acting and for export)."""
        layers = tuple(layer for block in [*self.body, *([self.output] if self.output is not None else [])]
                       for layer in describe_block(block))
        return MLPDescription(self._offset, self._rescale, self._clip, layers)

    def numpy_forward(self) -> Callable[[np.ndarray], np.ndarray]:
        """This block's forward in numpy with a snapshot of its current weights: (B, D) -> (B, outputs).

        For acting on a few environments between updates, where an MXNet call (~300-450 us with the copies
        in and out) costs ten times the arithmetic; take a new snapshot after the weights change.
        """
        description = self.describe()
        layers = [(layer.weight.T, layer.bias) if isinstance(layer, DenseLayer) else numpy_activation(layer)
                  for layer in description.layers]
        offset, rescale, clip = description.offset, description.rescale, description.clip

        def forward(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x, dtype=np.float32)
            if offset != 0.0 or rescale != 1.0:
                x = (x - offset) / rescale
            if clip is not None:
                x = np.clip(x, clip[0], clip[1])
            for layer in layers:
                x = x @ layer[0] + layer[1] if isinstance(layer, tuple) else layer(x)
            return x

        return forward


def observation_embedder(params: NetworkParameters) -> InputEmbedderParameters:
    """The embedder of the ``'observation'`` input (rlframe's agents read one vector observation)."""
    embedders = params.input_embedders_parameters
    if "observation" not in embedders:
        raise ParameterValueError(
            "network_wrappers['main'].input_embedders_parameters has no 'observation' entry "
            f"(it has {sorted(embedders)}); rlframe's agents embed the 'observation' input."
        )
    return embedders["observation"]


class ActorCritic(gluon.HybridBlock):
    """Two towers on one observation (B, D): a value (B,) and a policy.

    Discrete policies output logits (B, A). Box policies output a mean (B, K) and a log-std (B, K) that is a
    learned, state-independent parameter broadcast over the batch (initialised to 0, so std = 1).
    """

    def __init__(self, embedder: InputEmbedderParameters, middleware: FCMiddlewareParameters | None,
                 num_policy_outputs: int, continuous: bool, input_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._continuous = continuous
        with self.name_scope():
            self.value = MLP(embedder, middleware, 1, input_size, prefix="value_")
            self.policy = MLP(embedder, middleware, num_policy_outputs, input_size, output_weight_scale=0.01,
                              prefix="policy_")
            if continuous:
                self.log_std = self.params.get("log_std", shape=(1, num_policy_outputs), init=mx.init.Zero())

    def hybrid_forward(self, F: Any, x: Any, log_std: Any = None) -> Any:
        value = self.value(x).reshape((-1,))
        policy = self.policy(x)
        if self._continuous:
            return value, policy, F.broadcast_like(log_std, policy)
        return value, policy

    def numpy_policy(self) -> Callable[[np.ndarray], tuple[np.ndarray, ...]]:
        """The policy outputs of :meth:`hybrid_forward` in numpy with a snapshot of the current weights:
        observations (B, D) -> (logits (B, A),) or (mean (B, K), log_std (B, K))."""
        policy = self.policy.numpy_forward()
        if not self._continuous:
            return lambda x: (policy(x),)
        log_std = self.log_std.data().asnumpy()

        def forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mean = policy(x)
            return mean, np.broadcast_to(log_std, mean.shape)

        return forward

    def describe(self) -> tuple[MLPDescription, MLPDescription, np.ndarray | None]:
        """The value tower (its output is (B, 1), reshaped to (B,) by :meth:`hybrid_forward`), the policy tower
        (logits (B, A), or the mean (B, K)) and, for a box policy, the log-std (K,); a snapshot of the weights."""
        log_std = self.log_std.data().asnumpy().reshape(-1) if self._continuous else None
        return self.value.describe(), self.policy.describe(), log_std
