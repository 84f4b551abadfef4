"""Online/target copies: soft and hard target updates, parameter files round trip."""
import numpy as np
import pytest

from rlframe.errors import ParameterValueError
from rlframe.networks.blocks import MLP
from rlframe.networks.network_wrapper import NetworkWrapper
from rlframe.networks.parameters import Dense, FCMiddlewareParameters, InputEmbedderParameters, NetworkParameters

pytestmark = pytest.mark.unit


def _wrapper(activation="relu", bias=None):
    params = NetworkParameters()
    params.create_target_network = True
    embedder = InputEmbedderParameters(activation_function=activation, scheme=[Dense(8)])
    middleware = FCMiddlewareParameters(scheme=[Dense(4)])

    def build(prefix):
        return MLP(embedder, middleware, 3, 2, output_bias=bias, prefix=prefix)

    return NetworkWrapper("main", params, build, input_size=2)


def test_target_update_mixes_with_rate_and_copies_at_one():
    net = _wrapper()
    obs = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    old_target = [p.data().asnumpy() for p in net.target.collect_params().values()]
    for p in net.online.collect_params().values():
        p.set_data(p.data() + 1.0)
    online = [p.data().asnumpy() for p in net.online.collect_params().values()]
    net.update_target(0.25)
    for new, o, t in zip(net.target.collect_params().values(), online, old_target):
        np.testing.assert_allclose(new.data().asnumpy(), 0.25 * o + 0.75 * t, rtol=1e-6)
    net.update_target(1.0)
    np.testing.assert_allclose(net.predict_target(obs), net.predict(obs), rtol=1e-6)


def test_saved_parameters_restore_identical_predictions(tmp_path):
    first, second = _wrapper(), _wrapper()
    obs = np.random.default_rng(1).normal(size=(4, 2)).astype(np.float32)
    files = first.save(str(tmp_path / "0_Step-0.ckpt.main_level.agent"))
    assert files == ["0_Step-0.ckpt.main_level.agent.main.online", "0_Step-0.ckpt.main_level.agent.main.target"]
    second.load(str(tmp_path / "0_Step-0.ckpt.main_level.agent"))
    np.testing.assert_array_equal(first.predict(obs), second.predict(obs))


def test_output_bias_initializer_is_a_number():
    net = _wrapper(bias=-100.0)
    assert (net.predict(np.zeros((1, 2), np.float32)) < -50).all()


def test_unknown_activation_is_named():
    with pytest.raises(ParameterValueError, match="activation_function = 'rellu' is not a known activation. Did you mean 'relu'"):
        _wrapper(activation="rellu")
