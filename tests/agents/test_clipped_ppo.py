"""The pieces that silently break PPO, checked against numbers derived by hand."""
import math

import numpy as np
import pytest
from mxnet import autograd, nd

from rlframe.agents.clipped_ppo import clipped_surrogate_loss, compute_gae
from rlframe.networks.distributions import categorical_log_prob_entropy, gaussian_log_prob_entropy

pytestmark = pytest.mark.unit


def _reference_gae(reward, value, next_value, terminated, segment_end, gamma, lam):
    # Written out per step, independently of the implementation's vectorised delta.
    advantage = [0.0] * len(reward)
    for t in reversed(range(len(reward))):
        bootstrap = 0.0 if terminated[t] else gamma * next_value[t]
        delta = reward[t] + bootstrap - value[t]
        carry = 0.0 if segment_end[t] else gamma * lam * advantage[t + 1]
        advantage[t] = delta + carry
    return np.array(advantage)


def test_gae_hand_example_with_terminal_truncation_and_cut():
    gamma, lam = 0.9, 0.5
    # Episode 1: two steps, terminated. Episode 2: two steps, truncated by a time limit. Then a cut segment.
    reward = np.array([1.0, 2.0, 0.5, 1.0, 3.0], np.float32)
    value = np.array([0.5, 1.0, 2.0, 4.0, 1.0], np.float32)
    next_value = np.array([1.0, 9.0, 4.0, 10.0, 2.0], np.float32)
    terminated = np.array([False, True, False, False, False])
    segment_end = np.array([False, True, False, True, True])
    advantage, target = compute_gae(reward, value, next_value, terminated, segment_end, gamma, lam)
    # t=1: terminal, delta = 2 - 1 = 1                         -> A = 1
    # t=0: delta = 1 + 0.9*1 - 0.5 = 1.4;  A = 1.4 + 0.45*1   -> 1.85
    # t=3: truncated, bootstraps: delta = 1 + 0.9*10 - 4 = 6  -> A = 6
    # t=2: delta = 0.5 + 0.9*4 - 2 = 2.1;  A = 2.1 + 0.45*6   -> 4.8
    # t=4: cut, bootstraps: delta = 3 + 0.9*2 - 1 = 3.8       -> A = 3.8
    np.testing.assert_allclose(advantage, [1.85, 1.0, 4.8, 6.0, 3.8], rtol=1e-6)
    np.testing.assert_allclose(target, advantage + value, rtol=1e-6)


@pytest.mark.parametrize("gamma, lam", [(1.0, 1.0), (0.99, 0.95), (0.9, 0.0)])
def test_gae_matches_reference_on_random_rollouts(gamma, lam):
    rng = np.random.default_rng(0)
    n = 50
    data = [rng.normal(size=n).astype(np.float32) for _ in range(3)]
    terminated = rng.random(n) < 0.1
    segment_end = terminated | (rng.random(n) < 0.1)
    segment_end[-1] = True
    advantage, _ = compute_gae(*data, terminated, segment_end, gamma, lam)
    np.testing.assert_allclose(advantage, _reference_gae(*data, terminated, segment_end, gamma, lam), rtol=1e-5, atol=1e-5)


def test_gae_with_lambda_one_gives_discounted_returns():
    reward = np.ones(4, np.float32)
    zeros = np.zeros(4, np.float32)
    terminated = np.array([False, False, False, True])
    advantage, target = compute_gae(reward, zeros, zeros, terminated, terminated, 0.5, 1.0)
    np.testing.assert_allclose(target, [1.875, 1.75, 1.5, 1.0])


def test_surrogate_with_ratio_one_is_minus_the_advantage():
    advantage = nd.array([1.0, -2.0, 0.5])
    log_prob = nd.array([-1.0, -0.3, -2.0])
    loss, ratio, clipped = clipped_surrogate_loss(nd, log_prob, log_prob, advantage, nd.array([0.2] * 3))
    np.testing.assert_allclose(loss.asnumpy(), [-1.0, 2.0, -0.5], rtol=1e-6)
    np.testing.assert_allclose(ratio.asnumpy(), 1.0)


def test_surrogate_gradient_vanishes_past_the_clip_and_points_the_right_way():
    old = nd.array([0.0, 0.0, 0.0, 0.0])
    # ratios e^0.5 > 1.2 (clipped for A > 0), e^0.05 (inside), e^-0.5 < 0.8 (clipped for A < 0), e^0.05 with A < 0
    log_prob = nd.array([0.5, 0.05, -0.5, 0.05])
    advantage = nd.array([1.0, 1.0, -1.0, -1.0])
    log_prob.attach_grad()
    with autograd.record():
        loss, _, _ = clipped_surrogate_loss(nd, log_prob, old, advantage, nd.array([0.2] * 4))
        total = loss.sum()
    total.backward()
    grad = log_prob.grad.asnumpy()
    assert grad[0] == 0.0 and grad[2] == 0.0
    assert grad[1] < 0  # positive advantage: raising the probability lowers the loss
    assert grad[3] > 0  # negative advantage: raising it raises the loss


def test_policy_moving_towards_high_advantage_has_lower_loss():
    old_logits = nd.array([[0.0, 0.0]])
    action = nd.array([0.0])
    advantage = nd.array([1.0])
    old_log_prob, _ = categorical_log_prob_entropy(nd, old_logits, action)
    toward, _ = categorical_log_prob_entropy(nd, nd.array([[0.1, 0.0]]), action)
    away, _ = categorical_log_prob_entropy(nd, nd.array([[0.0, 0.1]]), action)
    eps = nd.array([0.2])
    loss_toward = clipped_surrogate_loss(nd, toward, old_log_prob, advantage, eps)[0].asscalar()
    loss_away = clipped_surrogate_loss(nd, away, old_log_prob, advantage, eps)[0].asscalar()
    assert loss_toward < loss_away


def test_gaussian_log_prob_and_entropy_match_closed_forms():
    mean = nd.array([[0.5, -1.0]])
    log_std = nd.array([[math.log(2.0), 0.0]])
    action = nd.array([[1.5, 0.0]])
    log_prob, entropy = gaussian_log_prob_entropy(nd, mean, log_std, action)
    # Each dimension: -0.5 ((a - mu) / s)^2 - log s - 0.5 log 2 pi
    expected = (-0.5 * 0.25 - math.log(2.0) - 0.5 * math.log(2 * math.pi)) + (-0.5 * 1.0 - 0.0 - 0.5 * math.log(2 * math.pi))
    assert log_prob.asscalar() == pytest.approx(expected, rel=1e-6)
    # Entropy of N(mu, s^2) is 0.5 log(2 pi e s^2) per dimension.
    expected_entropy = 0.5 * math.log(2 * math.pi * math.e * 4.0) + 0.5 * math.log(2 * math.pi * math.e)
    assert entropy.asscalar() == pytest.approx(expected_entropy, rel=1e-6)


def test_categorical_log_prob_and_entropy():
    logits = nd.array([[math.log(0.2), math.log(0.8)]])
    log_prob, entropy = categorical_log_prob_entropy(nd, logits, nd.array([1.0]))
    assert log_prob.asscalar() == pytest.approx(math.log(0.8), abs=1e-5)
    assert entropy.asscalar() == pytest.approx(-(0.2 * math.log(0.2) + 0.8 * math.log(0.8)), abs=1e-5)
