"""DDQN+BCQ: the action mask inside the Double-DQN target, checked through the loss graph on a hand-built batch
against values worked out by hand, and what building the agent leaves of the preset."""
from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon, nd

from rlframe.agents.ddqn_bcq import DDQNBCQAgentParameters, NNImitationModelParameters
from rlframe.agents.dqn import QLoss, transition_columns
from rlframe.memories.memory import MemoryGranularity
from rlframe.spaces import DiscreteActionSpace, RewardSpace, SpacesDefinition, StateSpace, VectorObservationSpace

pytestmark = pytest.mark.unit


def _linear(scale: float) -> gluon.nn.Dense:
    """Q(s) = scale * s for 3-dimensional states and 3 actions: the state is its own Q-values."""
    layer = gluon.nn.Dense(3, in_units=3, use_bias=False, weight_initializer=mx.init.Constant(scale * np.eye(3)))
    layer.initialize()
    return layer


def test_the_masked_target_takes_the_best_allowed_next_action():
    online, target = _linear(1.0), _linear(2.0)  # the target network values every action twice as high
    layout = transition_columns(3, num_masked_actions=3)
    loss = QLoss(online, target, layout, double=True, use_huber=False)
    next_obs = np.array([[5.0, 2.0, 3.0], [5.0, 2.0, 3.0], [5.0, 2.0, 3.0], [5.0, 2.0, 3.0]])
    packed = layout.pack(
        obs=np.zeros((4, 3)),  # Q(s, .) = 0, so each loss is the target squared
        next_obs=next_obs,
        action=np.zeros(4),
        reward=np.ones(4),
        discount=np.array([0.9, 0.9, 0.9, 0.0]),  # the last transition terminated
        next_allowed=np.array([[0, 1, 1], [1, 0, 0], [1, 1, 1], [0, 1, 0]]),
    )
    targets = np.sqrt(loss(nd.array(packed)).asnumpy())
    # Online Q(s') = (5, 2, 3); the target network's = (10, 4, 6).
    # row 0: action 0 (online's best) dropped -> best allowed by the online network is 2 -> 1 + 0.9 * 6 = 6.4
    # row 1: only action 0 allowed -> 1 + 0.9 * 10 = 10; row 2: all allowed -> action 0 -> 10
    # row 3: terminated -> 1 whatever is allowed
    np.testing.assert_allclose(targets, [6.4, 10.0, 10.0, 1.0], rtol=1e-6)


def test_without_a_mask_the_target_is_double_dqns():
    online, target = _linear(1.0), _linear(2.0)
    layout = transition_columns(3)
    loss = QLoss(online, target, layout, double=True, use_huber=False)
    packed = layout.pack(obs=np.zeros((1, 3)), next_obs=np.array([[5.0, 2.0, 3.0]]), action=np.zeros(1),
                         reward=np.ones(1), discount=np.full(1, 0.9))
    np.testing.assert_allclose(np.sqrt(loss(nd.array(packed)).asnumpy()), [10.0], rtol=1e-6)


def test_building_the_agent_leaves_the_presets_networks_as_they_are():
    params = DDQNBCQAgentParameters()
    params.algorithm.action_drop_method_parameters = NNImitationModelParameters()
    params.memory.max_size = (MemoryGranularity.Transitions, 1000)
    spaces = SpacesDefinition(StateSpace({"observation": VectorObservationSpace(4)}), None, DiscreteActionSpace(2),
                              RewardSpace(1))
    agent = params.agent_class(params, spaces, np.random.default_rng(0))
    assert "imitation_model" in agent.networks  # saved in checkpoints under that name
    assert list(params.network_wrappers) == ["main"]
