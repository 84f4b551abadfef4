"""The dueling Q head: its forward is V + A - mean(A) of its own streams, its folded description computes the same,
a Coach preset that imports it builds a DDQN agent with it, and a head no Q network can use is one line."""
import textwrap

import numpy as np
import pytest
from mxnet import nd

from rlframe.agents.ddqn import DDQNAgent
from rlframe.errors import ParameterValueError
from rlframe.networks.blocks import MLP, ActivationLayer, DenseLayer, numpy_activation, q_head_output
from rlframe.networks.dueling import STREAM_UNITS, DuelingQHeadParameters, DuelingQOutput
from rlframe.networks.parameters import Dense, FCMiddlewareParameters, InputEmbedderParameters
from rlframe.presets import load_preset

pytestmark = pytest.mark.unit

WHERE = "network_wrappers['main'].heads_parameters[0]"


def write_preset_text(agent: str) -> str:
    """A small CartPole-v1 preset whose agent lines are ``agent`` (indented as in the tests)."""
    return textwrap.dedent(agent) + textwrap.dedent("""\
        from rl_coach.environments.gym_environment import GymVectorEnvironment
        from rl_coach.graph_managers.basic_rl_graph_manager import BasicRLGraphManager
        from rl_coach.graph_managers.graph_manager import ScheduleParameters
        graph_manager = BasicRLGraphManager(agent_params=agent_params, env_params=GymVectorEnvironment(level='CartPole-v1'),
                                            schedule_params=ScheduleParameters())
        """)


def _randomised(block, input_size, seed):
    """``block`` initialised, with non-trivial weights and biases (so a wrong sign or mean shows), hybridized."""
    block.initialize()
    block(nd.zeros((1, input_size)))
    rng = np.random.default_rng(seed)
    for p in block.collect_params().values():
        p.set_data(nd.array(rng.normal(scale=0.3, size=p.shape)))
    block.hybridize()
    return block


def _weights(dense):
    return dense.weight.data().asnumpy().astype(np.float64), dense.bias.data().asnumpy().astype(np.float64)


def test_output_is_value_plus_advantage_minus_its_mean_from_the_blocks_own_streams():
    head = _randomised(DuelingQOutput(6, 3, "tanh", WHERE), 6, 0)
    h = np.random.default_rng(1).normal(size=(5, 6))
    q = head(nd.array(h)).asnumpy()
    assert q.shape == (5, 3)
    (wvh, bvh), (wv, bv) = _weights(head.value_hidden), _weights(head.value)
    (wah, bah), (wa, ba) = _weights(head.advantage_hidden), _weights(head.advantage)
    assert wvh.shape == wah.shape == (STREAM_UNITS, 6)
    value = np.tanh(h @ wvh.T + bvh) @ wv.T + bv  # (5, 1)
    advantage = np.tanh(h @ wah.T + bah) @ wa.T + ba  # (5, 3)
    np.testing.assert_allclose(q, value + advantage - advantage.mean(axis=1, keepdims=True), rtol=1e-4, atol=1e-4)
    # V is the mean of Q over actions: the split is identifiable
    np.testing.assert_allclose(q.mean(axis=1, keepdims=True), value, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "elu", "none"])
def test_the_folded_description_computes_the_networks_forward(activation):
    embedder = InputEmbedderParameters(scheme=[Dense(8)])
    embedder.input_offset, embedder.input_rescaling = {"vector": 0.5}, {"vector": 2.0}
    output = q_head_output(DuelingQHeadParameters(activation_function=activation), 4, WHERE)
    net = _randomised(MLP(embedder, FCMiddlewareParameters(scheme=[Dense(6)]), 4, 3, output=output,
                          prefix=f"duel_{activation}_"), 3, 2)
    layers = net.describe().layers
    # embedder and middleware (Dense, relu each), then the head as plain layers: Dense(1024) [, activation], Dense(A)
    head = layers[4:]
    assert [type(layer) for layer in head] == [DenseLayer, *([ActivationLayer] if activation != "none" else []), DenseLayer]
    assert head[0].weight.shape == (2 * STREAM_UNITS, 6) and head[-1].weight.shape == (4, 2 * STREAM_UNITS)
    x = np.random.default_rng(3).normal(scale=3.0, size=(64, 3)).astype(np.float32)
    want = net(nd.array(x)).asnumpy()
    np.testing.assert_allclose(net.numpy_forward()(x), want, rtol=1e-5, atol=1e-5)
    # and the layers alone, as an exporter reads them
    y = (x - 0.5) / 2.0
    for layer in layers:
        y = y @ layer.weight.T + layer.bias if isinstance(layer, DenseLayer) else numpy_activation(layer)(y)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_a_coach_preset_importing_the_dueling_head_builds_a_ddqn_agent_with_it(write_preset):
    preset = write_preset("dueling", text=write_preset_text("""\
        from rl_coach.agents.ddqn_agent import DDQNAgentParameters
        from rl_coach.architectures.head_parameters import DuelingQHeadParameters
        agent_params = DDQNAgentParameters()
        agent_params.network_wrappers['main'].heads_parameters = [DuelingQHeadParameters(activation_function='tanh')]
        """))
    agent = load_preset(str(preset)).build_agent()
    assert isinstance(agent, DDQNAgent)
    for network in (agent.network.online, agent.network.target):
        assert isinstance(network.output, DuelingQOutput)
    obs = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    q_values, = agent.policy_outputs(obs)
    assert q_values.shape == (7, 2)
    np.testing.assert_allclose(q_values, agent.network.online(nd.array(obs)).asnumpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("head", "message"), [
    ("VHeadParameters()", f"{WHERE} = VHeadParameters() is not a Q head; use one of: QHeadParameters(), DuelingQHeadParameters()"),
    ("DuelingQHeadParameters(activation_function='rleu')", f"{WHERE}.activation_function = 'rleu' is not a known activation."),
])
def test_a_head_the_q_network_cannot_use_is_one_line_naming_the_parameter(write_preset, head, message):
    preset = write_preset("bad_head", text=write_preset_text(f"""\
        from rl_coach.agents.dqn_agent import DQNAgentParameters
        from rl_coach.architectures.head_parameters import DuelingQHeadParameters, VHeadParameters
        agent_params = DQNAgentParameters()
        agent_params.network_wrappers['main'].heads_parameters = [{head}]
        """))
    with pytest.raises(ParameterValueError) as error:
        load_preset(str(preset)).build_agent()
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
