"""The fused-operator optimiser against Adam written out in numpy, and L2 on weights only."""
import numpy as np
import pytest
from mxnet import gluon, nd

from rlframe.networks.optimizer import FLUSH_EVERY, Optimizer
from rlframe.networks.parameters import NetworkParameters

pytestmark = pytest.mark.unit


def _dense(seed):
    layer = gluon.nn.Dense(3, in_units=2, prefix=f"d{seed}_")
    layer.initialize()
    layer.weight.set_data(nd.array(np.random.default_rng(seed).normal(size=(3, 2))))
    layer.bias.set_data(nd.array([0.5, -0.5, 1.0]))
    return layer


def _set_grads(layer, weight_grad, bias_grad):
    layer.weight.grad()[:] = weight_grad
    layer.bias.grad()[:] = bias_grad


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_adam_matches_the_textbook_update(l2):
    params = NetworkParameters()
    params.learning_rate, params.adam_optimizer_beta1, params.adam_optimizer_beta2 = 0.01, 0.9, 0.99
    params.optimizer_epsilon, params.l2_regularization = 1e-4, l2
    layer = _dense(0)
    optimizer = Optimizer(params, [layer.weight, layer.bias], "test")
    w, b = layer.weight.data().asnumpy().astype(np.float64), layer.bias.data().asnumpy().astype(np.float64)
    moments = {"w": [np.zeros_like(w), np.zeros_like(w)], "b": [np.zeros_like(b), np.zeros_like(b)]}
    rng = np.random.default_rng(1)
    for t in range(1, 4):
        gw, gb = rng.normal(size=w.shape), rng.normal(size=b.shape)
        _set_grads(layer, gw, gb)
        optimizer.step()
        for key, value, grad, _decay in (("w", w, gw + l2 * w, l2), ("b", b, gb, 0.0)):
            m, v = moments[key]
            m[:] = 0.9 * m + 0.1 * grad
            v[:] = 0.99 * v + 0.01 * grad**2
            step = 0.01 * np.sqrt(1 - 0.99**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-4)
            value -= step
    np.testing.assert_allclose(layer.weight.data().asnumpy(), w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(layer.bias.data().asnumpy(), b, rtol=1e-4, atol=1e-6)


def test_optimizer_state_round_trip_continues_identically():
    params = NetworkParameters()
    first, second = _dense(2), _dense(2)
    opt_a = Optimizer(params, [first.weight, first.bias], "a")
    opt_b = Optimizer(params, [second.weight, second.bias], "b")
    for _ in range(3):
        _set_grads(first, np.ones((3, 2)), np.ones(3))
        opt_a.step()
    second.weight.set_data(first.weight.data())
    second.bias.set_data(first.bias.data())
    opt_b.load_state(opt_a.state())
    for opt, layer in ((opt_a, first), (opt_b, second)):
        _set_grads(layer, np.full((3, 2), 0.3), np.full(3, -0.2))
        opt.step()
    np.testing.assert_allclose(first.weight.data().asnumpy(), second.weight.data().asnumpy())


def test_unknown_optimizer_type_is_named():
    params = NetworkParameters()
    params.optimizer_type = "Adamm"
    layer = _dense(3)
    with pytest.raises(Exception, match="optimizer_type = 'Adamm' is not supported. Did you mean 'Adam'"):
        Optimizer(params, [layer.weight, layer.bias], "network_wrappers['main']")


def test_clipping_by_global_norm_rescales_the_gradient_and_reports_the_unclipped_norm():
    params = NetworkParameters()
    params.clip_gradients = 1.0
    clipped, reference = _dense(4), _dense(4)
    weight_grad, bias_grad = np.full((3, 2), 3.0), np.full(3, 4.0)
    norm = np.sqrt((weight_grad**2).sum() + (bias_grad**2).sum())
    _set_grads(clipped, weight_grad, bias_grad)
    _set_grads(reference, weight_grad / norm, bias_grad / norm)
    assert float(Optimizer(params, [clipped.weight, clipped.bias], "a").step().asscalar()) == pytest.approx(norm, rel=1e-5)
    params_plain = NetworkParameters()
    Optimizer(params_plain, [reference.weight, reference.bias], "b").step()
    np.testing.assert_allclose(clipped.weight.data().asnumpy(), reference.weight.data().asnumpy(), rtol=1e-5)


def test_moments_decaying_towards_subnormal_floats_are_flushed_to_zero():
    params = NetworkParameters()
    layer = _dense(5)
    optimizer = Optimizer(params, [layer.weight, layer.bias], "test")
    _set_grads(layer, np.full((3, 2), 1e-32), np.zeros(3))
    for _ in range(FLUSH_EVERY):
        optimizer.step()
    moments = [optimizer.state()[f"moment{k}.{layer.weight.name}"] for k in (0, 1)]
    assert (moments[0] == 0).all()  # |m| ~ 1e-32 < FLUSH_BELOW
    tiny = np.finfo(np.float32).tiny
    assert not any(((m != 0) & (np.abs(m) < tiny)).any() for m in moments)


def test_a_hybridized_block_trains_and_loads_through_the_flat_buffers(tmp_path):
    """Backward writes into the optimiser's buffers, the update reaches the block, and loading parameters
    from a file lands in the buffers the optimiser updates."""
    net = gluon.nn.HybridSequential(prefix="net_")
    net.add(gluon.nn.Dense(4, activation="tanh", in_units=2), gluon.nn.Dense(1, in_units=4))
    net.initialize()
    net.hybridize(static_alloc=True, static_shape=True)
    x = nd.array(np.random.default_rng(0).normal(size=(8, 2)))
    net(x)
    net.save_parameters(str(tmp_path / "start.params"))
    optimizer = Optimizer(NetworkParameters(), list(net.collect_params().values()), "test")
    before = net(x).asnumpy()
    from mxnet import autograd
    with autograd.record():
        loss = net(x).mean()
    loss.backward()
    assert float(optimizer.step().asscalar()) > 0  # the norm of the gradient backward wrote into the flat buffer
    assert not np.allclose(net(x).asnumpy(), before)
    net.load_parameters(str(tmp_path / "start.params"))
    np.testing.assert_allclose(net(x).asnumpy(), before, rtol=1e-6)
    np.testing.assert_allclose(optimizer.groups[0].weight.asnumpy()[:8], net[0].weight.data().asnumpy().ravel())
