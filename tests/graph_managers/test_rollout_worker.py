"""A rollout worker in this process (no Ray): what it plays per request, and that an agent built from the same
parameters acts as the learner does once it loads the learner's acting state."""
from __future__ import annotations

import numpy as np
import pytest

from rlframe.core_types import RunPhase
from rlframe.graph_managers.rollout_worker import RolloutWorker, WorkerSpec
from rlframe.presets import load_preset

pytestmark = pytest.mark.unit


def _worker(preset: str, index: int = 1, num_envs: int = 2) -> RolloutWorker:
    graph_manager = load_preset(preset)
    spec = WorkerSpec(graph_manager.agent_params, graph_manager.env_params, [], None, num_envs, seed=3,
                      evaluation_seed_offset=10000, discount=0.99)
    return RolloutWorker(spec, index)


def test_a_training_request_plays_its_share_in_steps_of_every_copy():
    worker = _worker("CartPole_ClippedPPO")
    rollout = worker.play(None, RunPhase.TRAIN, steps=51)
    steps = rollout.steps()
    assert rollout.num_steps == 52 and [len(step[0]) for step in steps] == [2] * 26  # 2 copies, none idle
    assert sum(len(step[0]) for step in steps) == rollout.num_steps == len(rollout.transitions.obs)
    # each step's observation is the copy's next observation of its previous step, unless an episode ended there
    for (index, _, _, _, next_obs, terminated, truncated), (index2, obs2, *_) in zip(steps, steps[1:]):
        for j, i in enumerate(index):
            if not (terminated[j] or truncated[j]) and i in index2:
                np.testing.assert_array_equal(next_obs[j], obs2[list(index2).index(i)])
    worker.close()


def test_a_heatup_request_finishes_its_episodes_and_the_next_request_starts_new_ones():
    worker = _worker("CartPole_DQN")
    rollout = worker.play(None, RunPhase.HEATUP, steps=30, finish_episodes=True)
    ends = sum(int((step[5] | step[6]).sum()) for step in rollout.steps())
    assert rollout.num_steps >= 30 and ends >= 2  # both copies played their episodes to the end
    last_steps = {}
    for index, *_, terminated, truncated in rollout.steps():
        for j, i in enumerate(index):
            last_steps[int(i)] = bool(terminated[j] or truncated[j])
    assert all(last_steps.values())  # no copy stopped in the middle of an episode
    assert worker.play(None, RunPhase.HEATUP, steps=1).num_steps == 2  # both copies play again
    worker.close()


def test_evaluation_plays_exactly_the_episodes_asked_for():
    worker = _worker("CartPole_ClippedPPO", num_envs=2)
    episodes = worker.evaluate(None, 3, by_episodes=True)
    assert len(episodes) == 3
    assert all(e.length == e.total_reward for e in episodes)  # CartPole: a reward of 1 per step
    worker.close()


def test_a_worker_that_loaded_the_learners_acting_state_computes_the_learners_policy():
    learner = _worker("CartPole_DQN", index=0).agent
    worker = _worker("CartPole_DQN", index=2)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    assert not np.allclose(worker.agent.policy_outputs(obs)[0], learner.policy_outputs(obs)[0])  # other weights
    learner.acted_elsewhere(5000)  # the exploration schedule moved with actions played elsewhere
    worker.load(learner.acting_state())
    np.testing.assert_allclose(worker.agent.policy_outputs(obs)[0], learner.policy_outputs(obs)[0], rtol=1e-6)
    assert worker.agent.exploration_value(RunPhase.TRAIN) == learner.exploration_value(RunPhase.TRAIN) < 1.0
