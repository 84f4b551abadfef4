"""Coach's dueling Q head (Wang et al. 2016, "Dueling Network Architectures for Deep Reinforcement Learning").

After the middleware's output h (B, H) the head splits into two streams, each with a hidden Dense(512) and the
head's activation, as Coach's dueling head:

    V = Dense(1)(act(Dense(512)(h)))            state value          (B, 1)
    A = Dense(A)(act(Dense(512)(h)))            action advantages    (B, A)
    Q = V + A - mean over actions of A                                (B, A)

Subtracting the mean advantage makes the split identifiable (V is the mean of Q over actions), and the value
stream learns from every action's TD error, not only the taken one's. The agent (DQN, DDQN) is unchanged: it
trains Q with its own loss. A preset selects the head with
``network_wrappers['main'].heads_parameters = [DuelingQHeadParameters()]``; importing this module registers it.

For numpy acting and export, :meth:`DuelingQOutput.describe_layers` folds the head into plain layers: Q is linear in
the concatenated hidden streams [h_v | h_a] (B, 1024), so the head equals

    Dense(1024) over h, with the two hidden layers' weights stacked,
    the activation,
    Dense(A) with weight [w_v repeated for every action | W_a - mean over actions of W_a]
             and bias   b_v + b_a - mean(b_a),

and the exporters, which know only Dense and activation layers, need nothing new.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from mxnet import gluon

from rlframe.networks.blocks import (
    DenseLayer,
    Layer,
    OutputBlock,
    OutputBuilder,
    activation_block,
    describe_block,
    initialised_dense,
    register_q_head,
)
from rlframe.networks.parameters import HeadParameters

#: Units of each stream's hidden layer (Coach's).
STREAM_UNITS = 512


class DuelingQHeadParameters(HeadParameters):
    """Q-values split into a state value and mean-centred action advantages (see the module docstring).

    :param activation_function: activation of each stream's hidden Dense(512) layer ('relu', 'tanh', ...,
        'none').
    :param name: the head's name.
    :param num_output_head_copies: accepted for Coach compatibility (1).
    :param rescale_gradient_from_head_by_factor: accepted for Coach compatibility and not applied. Coach's
        CartPole_Dueling_DDQN sets 1/sqrt(2), which scales the gradient reaching the layers below the head; with
        one head that scales every such gradient alike, which Adam's per-parameter normalisation undoes.
    :param loss_weight: accepted for Coach compatibility (the DQN family's loss has one term).
    :param dense_layer: accepted for Coach compatibility.
    """

    def __init__(self, activation_function: str = "relu", name: str = "dueling_q_head_params",
                 num_output_head_copies: int = 1, rescale_gradient_from_head_by_factor: float = 1.0,
                 loss_weight: float = 1.0, dense_layer: Any = None) -> None:
        super().__init__(activation_function=activation_function, name=name, num_output_head_copies=num_output_head_copies,
                         rescale_gradient_from_head_by_factor=rescale_gradient_from_head_by_factor,
                         loss_weight=loss_weight, dense_layer=dense_layer)


class DuelingQOutput(OutputBlock):
    """The dueling head's block: the middleware's output (B, H) -> Q-values (B, A).

    :param fan_in: H, the middleware's output width.
    :param num_actions: A.
    :param activation: the streams' hidden activation (a Coach activation name).
    :param where: the head's parameter path, for the error of an unknown activation.
    """

    def __init__(self, fan_in: int, num_actions: int, activation: str, where: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.value_hidden = initialised_dense(STREAM_UNITS, fan_in)
            self.value = initialised_dense(1, STREAM_UNITS)
            self.advantage_hidden = initialised_dense(STREAM_UNITS, fan_in)
            self.advantage = initialised_dense(num_actions, STREAM_UNITS)
            self.activation = activation_block(activation, where)

    def _stream(self, hidden: gluon.nn.Dense, out: gluon.nn.Dense, x: Any) -> Any:
        h = hidden(x)
        return out(self.activation(h) if self.activation is not None else h)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        value = self._stream(self.value_hidden, self.value, x)  # (B, 1)
        advantage = self._stream(self.advantage_hidden, self.advantage, x)  # (B, A)
        return F.broadcast_add(value, F.broadcast_sub(advantage, F.mean(advantage, axis=1, keepdims=True)))

    def describe_layers(self) -> tuple[Layer, ...]:
        """Dense(1024), the activation, Dense(A): the folding of the module docstring, computed in float64 and
        stored as float32."""
        (w_vh, b_vh), (w_ah, b_ah) = _weights(self.value_hidden), _weights(self.advantage_hidden)  # (512, H), (512,)
        hidden = DenseLayer(np.concatenate([w_vh, w_ah]).astype(np.float32), np.concatenate([b_vh, b_ah]).astype(np.float32))
        (w_v, b_v), (w_a, b_a) = _weights(self.value), _weights(self.advantage)  # (1, 512), (1,); (A, 512), (A,)
        weight = np.concatenate([np.repeat(w_v, len(b_a), axis=0), w_a - w_a.mean(axis=0, keepdims=True)], axis=1)
        out = DenseLayer(weight.astype(np.float32), (b_v + b_a - b_a.mean()).astype(np.float32))
        activation = describe_block(self.activation) if self.activation is not None else ()
        return (hidden, *activation, out)


def _weights(dense: gluon.nn.Dense) -> tuple[np.ndarray, np.ndarray]:
    """A snapshot of a Dense layer's weight (out, in) and bias (out,), in float64."""
    return dense.weight.data().asnumpy().astype(np.float64), dense.bias.data().asnumpy().astype(np.float64)


def _dueling_q_head(head: DuelingQHeadParameters, num_actions: int, where: str) -> OutputBuilder:
    return lambda fan_in: DuelingQOutput(fan_in, num_actions, head.activation_function, where)


register_q_head(DuelingQHeadParameters, _dueling_q_head)
