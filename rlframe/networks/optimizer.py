"""Adam and RMSProp over a list of Gluon parameters, one fused MXNet update operator per flat buffer.

``gluon.Trainer`` spends about 1 ms of Python bookkeeping per step on a 3-layer MLP on the project machine,
and one ``adam_update`` call per parameter array still costs about 35 us each (0.45 ms for the 13 arrays of
an actor-critic). So the optimiser rebinds the parameters it trains as views of one flat weight buffer and
one flat gradient buffer per weight-decay value (see :func:`rebind_as_flat_views`): a step is one or two
``adam_update`` calls (26 us measured) whatever the number of layers. The state (moments and step count) is
saved per parameter, so a resumed run continues exactly.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from mxnet import autograd, gluon, nd

from rlframe.errors import ParameterValueError, closest
from rlframe.networks.parameters import NetworkParameters

OPTIMIZERS = ("Adam", "RMSProp")
#: Without clipping, the global gradient norm (the CSV's ``Grads (unclipped)``) is measured on every this
#: many updates: reading it back stalls the update pipeline.
GRAD_NORM_EVERY = 10
#: Moment entries smaller than this are set to zero every ``FLUSH_EVERY`` updates (see ``_flush_tiny_moments``).
FLUSH_BELOW = 1e-30
FLUSH_EVERY = 50


class Slot(NamedTuple):
    """Where one parameter lives in its group's flat buffers."""

    param: gluon.Parameter
    begin: int
    end: int


class FlatGroup:
    """Parameters that share one weight decay, stored contiguously: weight, gradient and moments (P,)."""

    def __init__(self, params: list[gluon.Parameter], weight_decay: float) -> None:
        self.weight, self.grad, self.slots = rebind_as_flat_views(params)
        self.weight_decay = weight_decay
        self.moments = [nd.zeros_like(self.weight), nd.zeros_like(self.weight)]


def rebind_as_flat_views(params: list[gluon.Parameter]) -> tuple[nd.NDArray, nd.NDArray, list[Slot]]:
    """Move ``params`` (initialised, on one context) into one flat weight and one flat gradient buffer.

    Each parameter's data and gradient become reshaped views of a slice of the buffers, so the network's
    forward and backward read and write the buffers directly, and an update of a buffer updates every
    parameter in it. Gluon has no public way to place a parameter in caller-owned memory; this sets
    ``Parameter._data``/``_grad`` and re-marks the autograd variables, exactly what
    ``Parameter._init_grad`` does with fresh arrays (MXNet 1.9.1, the last 1.x release).
    ``load_parameters`` and ``set_data`` copy into the views, so they keep working.
    """
    total = sum(int(np.prod(p.shape)) for p in params)
    dtype = params[0].data().dtype if params else np.float32
    weight, grad = nd.zeros(total, dtype=dtype), nd.zeros(total, dtype=dtype)
    slots, offset = [], 0
    for p in params:
        size = int(np.prod(p.shape))
        weight_view = weight[offset:offset + size].reshape(p.shape)
        grad_view = grad[offset:offset + size].reshape(p.shape)
        weight_view[:] = p.data()
        if p.grad_req != "null":
            grad_view[:] = p.grad()
        p._data, p._grad = [weight_view], [grad_view]
        autograd.mark_variables([weight_view], [grad_view], p.grad_req)
        slots.append(Slot(p, offset, offset + size))
        offset += size
    return weight, grad, slots


class Optimizer:
    """Updates ``params`` from their gradients (gradients are summed over the batch by the caller's loss)."""

    def __init__(self, net_params: NetworkParameters, params: list[gluon.Parameter], where: str) -> None:
        if net_params.optimizer_type not in OPTIMIZERS:
            raise ParameterValueError(
                f"{where}.optimizer_type = {net_params.optimizer_type!r} is not supported."
                f"{closest(str(net_params.optimizer_type), OPTIMIZERS)} Use 'Adam' or 'RMSProp'."
            )
        self.config = net_params
        # L2 regularisation applies to layer weights, not biases (as Coach's TensorFlow kernels regulariser).
        l2 = float(net_params.l2_regularization)
        decayed = [p for p in params if l2 and p.name.endswith("weight")]
        plain = [p for p in params if not (l2 and p.name.endswith("weight"))]
        self.groups = [FlatGroup(group, decay) for group, decay in ((decayed, l2), (plain, 0.0)) if group]
        self.num_updates = 0

    @property
    def learning_rate(self) -> float:
        cfg = self.config
        lr = float(cfg.learning_rate)
        if cfg.learning_rate_decay_rate and cfg.learning_rate_decay_steps:
            lr *= cfg.learning_rate_decay_rate ** (self.num_updates / cfg.learning_rate_decay_steps)
        return lr

    def step(self) -> nd.NDArray | None:
        """Apply one update without waiting for it. Returns the global gradient norm before clipping, as a (1,)
        NDArray that may still be being computed (reading it waits), or None on updates where it is not
        measured (see ``GRAD_NORM_EVERY``).

        Clipping by global norm stays on the device, so a clipped update needs no read back (reading the factor
        as a float made Python wait for every backward pass): each flat gradient buffer is divided in place by
        max(norm, clip), and the update operator's ``rescale_grad`` multiplies by clip, which together scale the
        gradient by min(1, clip / norm). That is two MXNet calls on top of the norm's (each call costs more than
        the arithmetic on these buffers: ``nd.norm`` of one buffer measured several times slower than
        ``multi_sum_sq`` plus ``sqrt``). ``adamw_update``, which takes a factor as an array, is not used: in MXNet
        1.9.1 it writes the rescaled gradient back into its gradient input, which it declares read-only.
        """
        cfg = self.config
        grad_norm = None
        if cfg.clip_gradients or self.num_updates % GRAD_NORM_EVERY == 0:
            grads = [g.grad for g in self.groups]
            squares = nd.multi_sum_sq(*grads, num_arrays=len(grads))
            grad_norm = nd.sqrt(squares if len(grads) == 1 else squares.sum())
        rescale = 1.0
        if cfg.clip_gradients:
            rescale = float(cfg.clip_gradients)
            divisor = nd.maximum(grad_norm, rescale)
        self.num_updates += 1
        lr = self.learning_rate
        for group in self.groups:
            w, g, (m, v), wd = group.weight, group.grad, group.moments, group.weight_decay
            if cfg.clip_gradients:
                nd.broadcast_div(g, divisor, out=g)
            if cfg.optimizer_type == "Adam":
                b1, b2 = float(cfg.adam_optimizer_beta1), float(cfg.adam_optimizer_beta2)
                corrected = lr * math.sqrt(1.0 - b2**self.num_updates) / (1.0 - b1**self.num_updates)
                nd.adam_update(w, g, m, v, out=w, lr=corrected, beta1=b1, beta2=b2,
                               epsilon=float(cfg.optimizer_epsilon), wd=wd, rescale_grad=rescale)
            else:
                nd.rmsprop_update(w, g, m, out=w, lr=lr, gamma1=float(cfg.rms_prop_optimizer_decay),
                                  epsilon=float(cfg.optimizer_epsilon), wd=wd, rescale_grad=rescale)
        if self.num_updates % FLUSH_EVERY == 0:
            self._flush_tiny_moments()
        return grad_norm

    def _flush_tiny_moments(self) -> None:
        """Set moments below ``FLUSH_BELOW`` to zero before they decay into subnormal floats.

        Weights whose gradient is exactly zero (dead ReLU units) have moments that decay geometrically; in
        the subnormal range (< 1.2e-38) every operation on them is ~50x slower on x86, which made Adam
        steps 3x slower after a few thousand updates. A moment of 1e-30 changes no update measurably.
        """
        for group in self.groups:
            for moment in group.moments:
                nd.elemwise_mul(moment, nd.abs(moment) >= FLUSH_BELOW, out=moment)

    def state(self) -> dict[str, np.ndarray]:
        out = {"num_updates": np.asarray(self.num_updates)}
        for group in self.groups:
            for k, moment in enumerate(group.moments):
                values = moment.asnumpy()
                for slot in group.slots:
                    out[f"moment{k}.{slot.param.name}"] = values[slot.begin:slot.end].reshape(slot.param.shape)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.num_updates = int(state["num_updates"])
        for group in self.groups:
            for k, moment in enumerate(group.moments):
                moment[:] = np.concatenate([np.asarray(state[f"moment{k}.{slot.param.name}"]).ravel()
                                            for slot in group.slots])
