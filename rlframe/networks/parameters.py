"""Network description parameters: layers, embedders, middleware, heads and the network as a whole.

These only describe a network; ``networks/blocks.py`` turns them into Gluon blocks.
"""
from __future__ import annotations

from enum import Enum
from typing import Any

from rlframe.parameters import EmbedderScheme, MiddlewareScheme, Parameters


class Dense(Parameters):
    """A fully connected layer of ``units`` outputs (framework-agnostic, as Coach's ``Dense``).

    :param units: the layer's number of outputs.
    """

    def __init__(self, units: int) -> None:
        self.units = units

    def __repr__(self) -> str:
        return f"Dense({self.units})"


class GradientClippingMethod(Enum):
    ClipByGlobalNorm = 0
    ClipByNorm = 1
    ClipByValue = 2


class EmbeddingMergerType(Enum):
    Concat = 0
    Sum = 1


EMBEDDER_SCHEMES: dict[EmbedderScheme, list[Dense]] = {
    EmbedderScheme.Empty: [],
    EmbedderScheme.Shallow: [Dense(128)],
    EmbedderScheme.Medium: [Dense(256)],
    EmbedderScheme.Deep: [Dense(128), Dense(128), Dense(128)],
}

MIDDLEWARE_SCHEMES: dict[MiddlewareScheme, list[Dense]] = {
    MiddlewareScheme.Empty: [],
    MiddlewareScheme.Shallow: [Dense(64)],
    MiddlewareScheme.Medium: [Dense(512)],
    MiddlewareScheme.Deep: [Dense(128), Dense(128), Dense(128)],
}


class InputEmbedderParameters(Parameters):
    """The layers that embed one observation input.

    :param activation_function: activation of every layer ('relu', 'tanh', 'sigmoid', 'elu', 'selu',
        'leaky_relu', 'softrelu', 'none').
    :param scheme: an ``EmbedderScheme`` or an explicit list such as ``[Dense(64)]``.
    :param input_rescaling: divide vector inputs by ``input_rescaling['vector']``.
    :param input_offset: subtract ``input_offset['vector']`` before rescaling.
    :param input_clipping: ``(low, high)`` to clip the input to, or None.
    :param batchnorm: accepted for Coach compatibility, not used (no batch normalisation layers).
    :param dropout_rate: accepted for Coach compatibility, not used (no dropout layers).
    :param name: accepted for Coach compatibility, not used.
    :param dense_layer: accepted for Coach compatibility, not used (layers are MXNet Gluon ``Dense``).
    :param is_training: accepted for Coach compatibility, not used.
    :param flatten: accepted for Coach compatibility, not used (observations are always flattened to D values).
    """

    def __init__(
        self,
        activation_function: str = "relu",
        scheme: Any = EmbedderScheme.Medium,
        batchnorm: bool = False,
        dropout_rate: float = 0.0,
        name: str = "embedder",
        input_rescaling: dict | None = None,
        input_offset: dict | None = None,
        input_clipping: tuple | None = None,
        dense_layer: Any = None,
        is_training: bool = False,
        flatten: bool = True,
    ) -> None:
        self.activation_function = activation_function
        self.scheme = scheme
        self.batchnorm = batchnorm
        self.dropout_rate = dropout_rate
        self.name = name
        self.input_rescaling = (input_rescaling if input_rescaling is not None
                                else {"image": 255.0, "vector": 1.0, "tensor": 1.0})
        self.input_offset = input_offset if input_offset is not None else {"image": 0.0, "vector": 0.0, "tensor": 0.0}
        self.input_clipping = input_clipping
        self.dense_layer = dense_layer
        self.is_training = is_training
        self.flatten = flatten


class FCMiddlewareParameters(Parameters):
    """Fully connected layers after the embedders.

    :param activation_function: activation of every layer.
    :param scheme: a ``MiddlewareScheme`` or an explicit list such as ``[Dense(64)]``.
    :param batchnorm: accepted for Coach compatibility, not used (no batch normalisation layers).
    :param dropout_rate: accepted for Coach compatibility, not used (no dropout layers).
    :param name: accepted for Coach compatibility, not used.
    :param dense_layer: accepted for Coach compatibility, not used (layers are MXNet Gluon ``Dense``).
    :param is_training: accepted for Coach compatibility, not used.
    :param num_streams: accepted for Coach compatibility, not used (one stream).
    """

    def __init__(
        self,
        activation_function: str = "relu",
        scheme: Any = MiddlewareScheme.Medium,
        batchnorm: bool = False,
        dropout_rate: float = 0.0,
        name: str = "middleware_fc_embedder",
        dense_layer: Any = None,
        is_training: bool = False,
        num_streams: int = 1,
    ) -> None:
        self.activation_function = activation_function
        self.scheme = scheme
        self.batchnorm = batchnorm
        self.dropout_rate = dropout_rate
        self.name = name
        self.dense_layer = dense_layer
        self.is_training = is_training
        self.num_streams = num_streams


class HeadParameters(Parameters):
    """What every head shares.

    :param activation_function: accepted for Coach compatibility, not used (rlframe's heads are one Dense
        output layer without an activation).
    :param name: accepted for Coach compatibility, not used.
    :param num_output_head_copies: accepted for Coach compatibility (1).
    :param rescale_gradient_from_head_by_factor: accepted for Coach compatibility.
    :param loss_weight: accepted for Coach compatibility, not used (each agent weighs its losses itself).
    :param dense_layer: accepted for Coach compatibility.
    """

    def __init__(
        self,
        activation_function: str = "relu",
        name: str = "head",
        num_output_head_copies: int = 1,
        rescale_gradient_from_head_by_factor: float = 1.0,
        loss_weight: float = 1.0,
        dense_layer: Any = None,
    ) -> None:
        self.activation_function = activation_function
        self.name = name
        self.num_output_head_copies = num_output_head_copies
        self.rescale_gradient_from_head_by_factor = rescale_gradient_from_head_by_factor
        self.loss_weight = loss_weight
        self.dense_layer = dense_layer


class QHeadParameters(HeadParameters):
    """One Q-value per discrete action.

    :param output_bias_initializer: a number to initialise the output bias with (None = zeros).
    """

    def __init__(self, activation_function: str = "relu", name: str = "q_head_params",
                 output_bias_initializer: float | None = None, **kwargs: Any) -> None:
        super().__init__(activation_function=activation_function, name=name, **kwargs)
        self.output_bias_initializer = output_bias_initializer


class VHeadParameters(HeadParameters):
    """A state value.

    :param output_bias_initializer: accepted for Coach compatibility, not used (Clipped PPO's value output
        bias starts at zero).
    """

    def __init__(self, activation_function: str = "relu", name: str = "v_head_params",
                 output_bias_initializer: float | None = None, **kwargs: Any) -> None:
        super().__init__(activation_function=activation_function, name=name, **kwargs)
        self.output_bias_initializer = output_bias_initializer


class PPOHeadParameters(HeadParameters):
    """A policy head: categorical for discrete actions, diagonal Gaussian for Box actions."""

    def __init__(self, activation_function: str = "tanh", name: str = "ppo_head_params", **kwargs: Any) -> None:
        super().__init__(activation_function=activation_function, name=name, **kwargs)


class ClassificationHeadParameters(HeadParameters):
    """Class probabilities over the discrete actions (BCQ's imitation model)."""

    def __init__(self, activation_function: str = "relu", name: str = "classification_head", **kwargs: Any) -> None:
        super().__init__(activation_function=activation_function, name=name, **kwargs)


class NetworkParameters(Parameters):
    """One network (``agent_params.network_wrappers['main']``), with Coach's defaults (coach.md section 1.7).

    Optimiser: ``optimizer_type`` 'Adam' (``adam_optimizer_beta1/2``, ``optimizer_epsilon``) or 'RMSProp'
    (``rms_prop_optimizer_decay``, ``optimizer_epsilon``). ``l2_regularization`` adds
    ``l2 * 0.5 * ||W||^2`` over the layer weights (not biases). ``clip_gradients`` clips by global norm.
    ``learning_rate_decay_rate``/``steps`` decay the rate as ``lr * rate ** (step / steps)``.

    :param force_cpu: accepted for Coach compatibility, not used (rlframe runs on the CPU).
    :param async_training: accepted for Coach compatibility, not used (one process).
    :param shared_optimizer: accepted for Coach compatibility, not used (one process).
    :param scale_down_gradients_by_number_of_workers_for_sync_training: accepted for Coach compatibility, not
        used (one worker).
    :param clip_gradients: rescale the gradient so that its global norm is at most this before each update;
        None or 0: no clipping.
    :param gradients_clipping_method: accepted for Coach compatibility, not used (clipping is always by
        global norm).
    :param l2_regularization: coefficient of ``0.5 * ||W||^2`` over the layer weights (not biases), applied as
        weight decay in each update; 0: none.
    :param learning_rate: the optimiser's step size.
    :param learning_rate_decay_rate: with ``learning_rate_decay_steps``, the rate becomes
        ``learning_rate * rate ** (updates / steps)``; 0: no decay.
    :param learning_rate_decay_steps: the decay's time constant (gradient updates).
    :param input_embedders_parameters: dict input name -> ``InputEmbedderParameters``; rlframe reads
        ``'observation'``.
    :param embedding_merger_type: accepted for Coach compatibility, not used (one input, nothing to merge).
    :param middleware_parameters: ``FCMiddlewareParameters`` for the layers after the embedder, or None.
    :param heads_parameters: the output heads; the DQN family takes its head from the first entry, Clipped PPO
        always builds a value and a policy head.
    :param use_separate_networks_per_head: accepted for Coach compatibility, not used (Clipped PPO always
        gives its value and policy heads separate towers; the DQN family has one head).
    :param optimizer_type: ``'Adam'`` or ``'RMSProp'``.
    :param optimizer_epsilon: the epsilon added to the optimiser's denominator.
    :param adam_optimizer_beta1: Adam's decay of the gradient average.
    :param adam_optimizer_beta2: Adam's decay of the squared-gradient average.
    :param rms_prop_optimizer_decay: RMSProp's decay of the squared-gradient average.
    :param batch_size: samples in each minibatch of a gradient update (transitions).
    :param replace_mse_with_huber_loss: the DQN family's TD loss is Huber (delta 1) instead of the squared error.
    :param create_target_network: keep a target copy of the network (the DQN family needs one; Clipped PPO
        uses none).
    :param softmax_temperature: temperature of the softmax over Q-values that gives a DQN policy's action
        probabilities (exported models, batch RL's off-policy evaluation).
    :param should_get_softmax_probabilities: accepted for Coach compatibility, not used.
    :param framework: accepted for Coach compatibility, not used (always MXNet Gluon).
    """

    def __init__(self, force_cpu: bool = False) -> None:
        self.force_cpu = force_cpu
        self.async_training = False
        self.shared_optimizer = True
        self.scale_down_gradients_by_number_of_workers_for_sync_training = True
        self.clip_gradients: float | None = None
        self.gradients_clipping_method = GradientClippingMethod.ClipByGlobalNorm
        self.l2_regularization = 0.0
        self.learning_rate = 0.00025
        self.learning_rate_decay_rate = 0.0
        self.learning_rate_decay_steps = 0
        self.input_embedders_parameters: dict[str, InputEmbedderParameters] = {}
        self.embedding_merger_type = EmbeddingMergerType.Concat
        self.middleware_parameters: Any = None
        self.heads_parameters: list[HeadParameters] = []
        self.use_separate_networks_per_head = False
        self.optimizer_type = "Adam"
        self.optimizer_epsilon = 0.0001
        self.adam_optimizer_beta1 = 0.9
        self.adam_optimizer_beta2 = 0.99
        self.rms_prop_optimizer_decay = 0.9
        self.batch_size = 32
        self.replace_mse_with_huber_loss = False
        self.create_target_network = False
        self.softmax_temperature = 1.0
        self.should_get_softmax_probabilities = False
        self.framework: Any = None
