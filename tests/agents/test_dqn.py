"""DQN / DDQN targets and loss, checked against values worked out by hand."""
import numpy as np
import pytest
from mxnet import autograd, nd

from rlframe.agents.dqn import td_loss, td_target

pytestmark = pytest.mark.unit


def _batch():
    # Three transitions: an ordinary one, a terminated one, a truncated one (time limit, not terminal).
    reward = nd.array([1.0, 2.0, 3.0])
    gamma = 0.9
    terminated = np.array([0.0, 1.0, 0.0])
    discount = nd.array(gamma * (1.0 - terminated))
    # Online and target disagree about the best next action in rows 0 and 2.
    next_q_target = nd.array([[1.0, 5.0], [7.0, 3.0], [4.0, 2.0]])
    next_q_online = nd.array([[9.0, 0.0], [0.0, 9.0], [0.0, 1.0]])
    return reward, discount, next_q_target, next_q_online


def test_td_target_dqn_uses_target_argmax_and_bootstraps_when_truncated():
    reward, discount, next_q_target, _ = _batch()
    target = td_target(nd, reward, discount, next_q_target).asnumpy()
    # row 0: 1 + 0.9 * max(1, 5) = 5.5; row 1: terminated -> 2; row 2: truncated still bootstraps: 3 + 0.9 * 4 = 6.6
    np.testing.assert_allclose(target, [5.5, 2.0, 6.6], rtol=1e-6)


def test_td_target_ddqn_selects_with_online_and_values_with_target():
    reward, discount, next_q_target, next_q_online = _batch()
    target = td_target(nd, reward, discount, next_q_target, next_q_online).asnumpy()
    # row 0: online picks action 0 -> target value 1: 1 + 0.9 * 1 = 1.9; row 1: terminated -> 2;
    # row 2: online picks action 1 -> target value 2: 3 + 0.9 * 2 = 4.8
    np.testing.assert_allclose(target, [1.9, 2.0, 4.8], rtol=1e-6)


@pytest.mark.parametrize("use_huber, expected", [(False, [0.25, 9.0]), (True, [0.125, 2.5])])
def test_td_loss_squared_and_huber(use_huber, expected):
    q = nd.array([1.5, -2.0])
    target = nd.array([1.0, 1.0])
    np.testing.assert_allclose(td_loss(nd, q, target, use_huber).asnumpy(), expected, rtol=1e-6)


def test_td_loss_gradient_flows_only_through_prediction():
    q = nd.array([2.0])
    target = nd.array([1.0])
    q.attach_grad()
    target.attach_grad()
    with autograd.record():
        loss = td_loss(nd, q, target, use_huber=False)
    loss.backward()
    assert q.grad.asscalar() == pytest.approx(2.0)  # d/dq (q - y)^2 = 2 (q - y)
    assert target.grad.asscalar() == 0.0
