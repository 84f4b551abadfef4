"""The numpy copies of the networks' forward passes (used for acting) against the Gluon blocks."""
import numpy as np
import pytest
from mxnet import nd

from rlframe.networks.blocks import ACTIVATIONS, MLP, ActorCritic
from rlframe.networks.parameters import Dense, FCMiddlewareParameters, InputEmbedderParameters

pytestmark = pytest.mark.unit


def _initialised(block, input_size, seed):
    block.initialize()
    block(nd.zeros((1, input_size)))
    rng = np.random.default_rng(seed)
    for p in block.collect_params().values():  # non-trivial weights, biases and log-std
        p.set_data(nd.array(rng.normal(scale=0.7, size=p.shape)))
    block.hybridize()
    return block


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_numpy_forward_matches_gluon_for_every_activation(activation):
    embedder = InputEmbedderParameters(activation_function=activation, scheme=[Dense(8)])
    embedder.input_offset, embedder.input_rescaling, embedder.input_clipping = {"vector": 0.5}, {"vector": 2.0}, (-1.5, 1.5)
    middleware = FCMiddlewareParameters(activation_function=activation, scheme=[Dense(6)])
    mlp = _initialised(MLP(embedder, middleware, 3, 4, prefix=f"mlp_{activation}_"), 4, 0)
    x = np.random.default_rng(1).normal(scale=3.0, size=(16, 4)).astype(np.float32)
    np.testing.assert_allclose(mlp.numpy_forward()(x), mlp(nd.array(x)).asnumpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("continuous", [False, True])
def test_actor_critic_numpy_policy_matches_gluon_and_is_a_snapshot(continuous):
    net = _initialised(ActorCritic(InputEmbedderParameters(activation_function="tanh"), FCMiddlewareParameters(activation_function="tanh"),
                                   2, continuous, 3, prefix=f"ac{int(continuous)}_"), 3, 2)
    x = np.random.default_rng(3).normal(size=(5, 3)).astype(np.float32)
    policy = net.numpy_policy()
    expected = [o.asnumpy() for o in net(nd.array(x))[1:]]
    for got, want in zip(policy(x), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)  # float32 sums in another order
    before = policy(x)[0].copy()
    for p in net.collect_params().values():
        p.set_data(p.data() + 1.0)
    np.testing.assert_array_equal(policy(x)[0], before)  # a snapshot: later weight changes do not leak in
