"""DQN / DDQN targets and loss, checked against values worked out by hand; the agent's exploration state,
acting on its current weights and its batched updates, driven as the graph manager drives it."""
import gymnasium as gym
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd

from rlframe.agents.dqn import DQNAgentParameters, td_loss, td_target
from rlframe.core_types import EnvironmentSteps, RunPhase
from rlframe.memories.memory import MemoryGranularity
from rlframe.networks.parameters import Dense
from rlframe.outputs import signals
from rlframe.schedules import LinearSchedule
from rlframe.spaces import spaces_from_gymnasium

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


# ---- the agent: its own exploration state, acting on current weights, batched updates ------------------------
def _agent_params(learning_rate: float = 0.00025):
    params = DQNAgentParameters()
    network = params.network_wrappers["main"]
    network.input_embedders_parameters["observation"].scheme = [Dense(16)]
    network.middleware_parameters.scheme = [Dense(16)]
    network.batch_size = 8
    network.learning_rate = learning_rate
    params.memory.max_size = (MemoryGranularity.Transitions, 1000)
    params.exploration.epsilon_schedule = LinearSchedule(1.0, 0.0, 100)
    params.exploration.evaluation_epsilon = 0.0
    return params


def _cartpole_agent(params, seed: int = 0):
    env = gym.make("CartPole-v1")
    return params.agent_class(params, spaces_from_gymnasium(env.observation_space, env.action_space, "CartPole-v1"),
                              np.random.default_rng(seed))


def _fill(agent, count: int = 200, seed: int = 0) -> None:
    """``count`` transitions of a random CartPole policy, stored through ``observe``."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    for _ in range(count):
        action = int(env.action_space.sample())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(np.zeros(1, np.int64), obs[None].astype(np.float32), np.array([action]), np.array([reward]),
                      next_obs[None].astype(np.float32), np.array([terminated]), np.array([truncated]), RunPhase.HEATUP)
        obs = env.reset()[0] if terminated or truncated else next_obs


def test_two_agents_from_one_preset_do_not_share_an_epsilon_schedule():
    params = _agent_params()
    first, second = _cartpole_agent(params), _cartpole_agent(params)
    first.act(np.zeros((10, 4), np.float32), RunPhase.TRAIN)
    assert first.exploration_value(RunPhase.TRAIN) == pytest.approx(0.9)
    assert second.exploration_value(RunPhase.TRAIN) == 1.0
    assert params.exploration.epsilon_schedule.state() == 0
    # the schedule a checkpoint saves and loads is the agent's own
    assert first.schedules()["epsilon_schedule"].state() == 10


def test_greedy_actions_follow_the_weights_after_every_update():
    mx.random.seed(1)  # initial weights independent of the tests before (some never flip an action in 5 updates)
    agent = _cartpole_agent(_agent_params(learning_rate=0.05))  # large steps: one update changes many choices
    _fill(agent)
    obs = np.random.default_rng(1).normal(0.0, 1.0, (256, 4)).astype(np.float32)
    changed = 0
    for _ in range(5):
        before = agent.act(obs, RunPhase.TEST)
        agent.learn()
        after = agent.act(obs, RunPhase.TEST)
        np.testing.assert_array_equal(after, agent.network_outputs(obs)[0].argmax(axis=1))
        changed += int((after != before).sum())
    assert changed  # the check above compared against weights that moved


def test_a_training_call_runs_the_updates_due_and_records_each():
    params = _agent_params()
    params.algorithm.num_consecutive_playing_steps = EnvironmentSteps(4)
    params.algorithm.num_consecutive_training_steps = 3
    agent = _cartpole_agent(params)
    _fill(agent, count=20)  # heatup: nothing due
    assert agent.train() == 0
    agent.act(np.zeros((8, 4), np.float32), RunPhase.TRAIN)
    agent.observe(np.arange(8), *_steps(8), RunPhase.TRAIN)
    assert agent.train() == 6  # 8 steps: two phases of 3 updates
    assert agent.train() == 0
    assert agent.training_iteration == 6
    assert agent.signals[signals.LOSS].count == 6
    assert np.isfinite(agent.signals[signals.LOSS].total)


def test_batched_updates_equal_the_same_updates_one_by_one():
    params = _agent_params(learning_rate=0.01)
    params.network_wrappers["main"].clip_gradients = 0.5  # clipping on every update (norms ~1-10 here)
    agents = []
    for _ in range(2):
        mx.random.seed(0)  # the same initial weights
        agents.append(_cartpole_agent(params))
        _fill(agents[-1])
    batched, one_by_one = agents
    size = int(params.network_wrappers["main"].batch_size)
    packed = batched.pack(batched.memory.sample(6 * size, np.random.default_rng(3)))
    batched.update_on(packed, 6, check_target=True)
    losses = [one_by_one.network.train_step(one_by_one.loss, packed[i * size:(i + 1) * size]).loss for i in range(6)]
    loss = batched.signals[signals.LOSS]
    assert loss.count == 6
    assert (loss.low, loss.high) == pytest.approx((min(losses), max(losses)), rel=1e-5)
    for mine, theirs in zip(batched.network.optimizer.groups, one_by_one.network.optimizer.groups):
        np.testing.assert_allclose(mine.weight.asnumpy(), theirs.weight.asnumpy(), rtol=1e-5, atol=1e-6)


def _steps(count: int):
    """``count`` made-up training transitions (obs, action, reward, next_obs, terminated, truncated)."""
    rng = np.random.default_rng(count)
    obs = rng.normal(size=(count, 4)).astype(np.float32)
    return (obs, rng.integers(0, 2, count), np.ones(count, np.float32), obs + 0.1, np.zeros(count, bool),
            np.zeros(count, bool))
