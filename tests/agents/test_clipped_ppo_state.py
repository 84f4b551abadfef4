"""Clipped PPO's own state: what building an agent leaves of the preset, the clip schedule's position, the
normaliser's statistics before the first rollout, and the adaptive KL coefficient.

Agents are built from real parameter objects and spaces and driven through ``act``/``observe``/``train`` on real
gymnasium environments, as the graph manager drives them, for a few dozen steps.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlframe.agents.clipped_ppo import ClippedPPOAgent, ClippedPPOAgentParameters, adapted_kl_coefficient
from rlframe.core_types import EnvironmentSteps, RunPhase
from rlframe.exploration.parameters import EGreedyParameters
from rlframe.filters.filter import InputFilter
from rlframe.filters.observation import ObservationNormalizationFilter
from rlframe.schedules import LinearSchedule
from rlframe.spaces import spaces_from_gymnasium

pytestmark = pytest.mark.unit

NUM_ENVS = 4


def _params(normalise: bool = False, rollout_steps: int = 2048) -> ClippedPPOAgentParameters:
    params = ClippedPPOAgentParameters()
    network = params.network_wrappers["main"]
    network.batch_size = 16
    params.algorithm.optimization_epochs = 1
    params.algorithm.num_consecutive_playing_steps = EnvironmentSteps(rollout_steps)
    params.algorithm.act_for_full_episodes = False
    if normalise:
        params.pre_network_filter = InputFilter()
        params.pre_network_filter.add_observation_filter("observation", "normalize_observation",
                                                         ObservationNormalizationFilter(name="normalize_observation"))
    return params


class _Envs:
    """NUM_ENVS copies of a gymnasium environment stepped side by side, each reset when its episode ends."""

    def __init__(self, level: str) -> None:
        self.envs = [gym.make(level) for _ in range(NUM_ENVS)]
        self.spaces = spaces_from_gymnasium(self.envs[0].observation_space, self.envs[0].action_space, level)
        self.obs = np.stack([env.reset(seed=i)[0] for i, env in enumerate(self.envs)]).astype(np.float32)

    def play(self, agent: ClippedPPOAgent, steps: int, phase: RunPhase) -> np.ndarray:
        """``steps`` batched steps through ``act`` and ``observe``; returns the observations stored (steps * N, D)."""
        stored = []
        for _ in range(steps):
            obs = self.obs
            action = agent.act(obs, phase)
            results = [env.step(a) for env, a in zip(self.envs, action)]
            next_obs = np.stack([r[0] for r in results]).astype(np.float32)
            reward = np.array([r[1] for r in results], np.float32)
            terminated = np.array([r[2] for r in results])
            truncated = np.array([r[3] for r in results])
            agent.observe(np.arange(NUM_ENVS), obs, action, reward, next_obs, terminated, truncated, phase)
            stored.append(obs)
            self.obs = next_obs.copy()
            for i in np.flatnonzero(terminated | truncated):
                self.obs[i] = self.envs[i].reset()[0]
        return np.concatenate(stored)


def _agent(params: ClippedPPOAgentParameters, envs: _Envs, seed: int = 0) -> ClippedPPOAgent:
    return ClippedPPOAgent(params, envs.spaces, np.random.default_rng(seed))


# ---- the preset is left as written --------------------------------------------------------------------------
def test_building_an_agent_leaves_the_presets_network_parameters_alone():
    params = _params()
    assert params.network_wrappers["main"].create_target_network
    agent = _agent(params, _Envs("CartPole-v1"))
    assert agent.network.target is None  # PPO needs no target copy...
    assert params.network_wrappers["main"].create_target_network  # ...and the preset still says what it said


def test_two_agents_from_one_preset_keep_their_own_clip_schedule():
    params = _params()
    params.algorithm.clipping_decay_schedule = LinearSchedule(1.0, 0.0, 1000)
    envs = _Envs("CartPole-v1")
    first, second = _agent(params, envs), _agent(params, envs, seed=1)
    first.act(envs.obs, RunPhase.TRAIN)
    assert first.schedules()["clipping_decay_schedule"].current_value == pytest.approx(1.0 - NUM_ENVS / 1000)
    assert second.schedules()["clipping_decay_schedule"].current_value == 1.0
    assert params.algorithm.clipping_decay_schedule.current_value == 1.0


def test_two_agents_from_one_preset_keep_their_own_epsilon_schedule():
    params = _params()
    params.exploration = EGreedyParameters()
    params.exploration.epsilon_schedule = LinearSchedule(1.0, 0.0, 1000)
    envs = _Envs("CartPole-v1")
    first, second = _agent(params, envs), _agent(params, envs, seed=1)
    first.act(envs.obs, RunPhase.TRAIN)
    assert first.schedules()["epsilon_schedule"].current_value == pytest.approx(1.0 - NUM_ENVS / 1000)
    assert second.schedules()["epsilon_schedule"].current_value == 1.0
    assert params.exploration.epsilon_schedule.current_value == 1.0


# ---- the clip schedule moves with training actions only -------------------------------------------------
def test_evaluation_actions_leave_the_clip_schedule_where_it_is():
    params = _params()
    params.algorithm.clipping_decay_schedule = LinearSchedule(1.0, 0.0, 1000)
    envs = _Envs("CartPole-v1")
    agent = _agent(params, envs)
    schedule = agent.schedules()["clipping_decay_schedule"]
    for _ in range(50):
        agent.act(envs.obs, RunPhase.TEST)
    assert schedule.current_value == 1.0 and schedule.state() == 0
    for _ in range(5):
        agent.act(envs.obs, RunPhase.TRAIN)
    assert schedule.current_value == pytest.approx(1.0 - 5 * NUM_ENVS / 1000)


# ---- the first rollout acts on normalised observations --------------------------------------------------
def test_first_training_action_acts_on_observations_normalised_by_the_first_batch():
    envs = _Envs("MountainCarContinuous-v0")  # positions around -0.5: raw and normalised inputs differ
    agent = _agent(_params(normalise=True), envs)
    obs = envs.obs
    noise = np.random.default_rng()
    noise.bit_generator.state = agent.rng.bit_generator.state  # the draws act() is about to make
    action = agent.act(obs, RunPhase.TRAIN)
    normalised = agent.pre_network_filter.filter_observation(obs, update=False)
    # the statistics are those of the batch: its positions are centred, not merely clipped
    np.testing.assert_allclose(normalised[:, 0].mean(), 0.0, atol=1e-5)
    assert not np.allclose(normalised, np.clip(obs, -5, 5), atol=1e-2)
    # and the action was drawn from the policy at the normalised observations
    _, mean, std = agent.policy_outputs(obs)
    np.testing.assert_allclose(action, mean + std * noise.standard_normal(mean.shape), rtol=1e-4, atol=1e-6)


def test_heatup_observations_start_the_statistics_and_the_first_update_counts_each_once():
    envs = _Envs("MountainCarContinuous-v0")
    agent = _agent(_params(normalise=True, rollout_steps=8 * NUM_ENVS), envs)
    heatup = envs.play(agent, 6, RunPhase.HEATUP)
    first = envs.obs.copy()
    agent.act(first, RunPhase.TRAIN)
    fitted = ObservationNormalizationFilter()
    fitted.filter(np.concatenate([heatup, first]), update=True)
    probe = np.random.default_rng(0).normal([-0.5, 0.0], [0.3, 0.03], size=(32, 2)).astype(np.float32)
    np.testing.assert_allclose(agent.pre_network_filter.filter_observation(probe, update=False),
                               fitted.filter(probe, update=False), rtol=1e-5, atol=1e-5)

    training = envs.play(agent, 8, RunPhase.TRAIN)  # the acts of the first step are repeated by play(): no refit
    assert agent.train() > 0
    # after the update: exactly a filter fitted once to the whole rollout (heatup and training observations)
    fitted = ObservationNormalizationFilter()
    fitted.filter(np.concatenate([heatup, training]), update=True)
    np.testing.assert_allclose(agent.pre_network_filter.filter_observation(probe, update=False),
                               fitted.filter(probe, update=False), rtol=1e-5, atol=1e-5)


# ---- the adaptive KL penalty ----------------------------------------------------------------------------
@pytest.mark.parametrize("measured, expected", [
    (0.0151, 2.0),   # > 1.5 x target: doubled
    (0.0149, 1.0),   # inside the band: unchanged
    (0.0100, 1.0),   # on target
    (0.0067, 1.0),   # just above target / 1.5
    (0.0066, 0.5),   # < target / 1.5: halved
    (0.0, 0.5),
])
def test_kl_coefficient_doubles_above_and_halves_below_the_band_around_the_target(measured, expected):
    assert adapted_kl_coefficient(1.0, measured, 0.01) == expected


@pytest.mark.parametrize("target, factor", [(1e-12, 2.0), (1e3, 0.5)])
def test_an_update_adapts_the_kl_coefficient_to_the_kl_it_measured_and_checkpoints_it(target, factor):
    params = _params(rollout_steps=8 * NUM_ENVS)
    params.algorithm.use_kl_regularization = True
    params.algorithm.optimization_epochs = 3  # the last epoch's KL is measured after the policy has moved
    params.algorithm.initial_kl_coefficient = 0.3
    params.algorithm.target_kl_divergence = target
    envs = _Envs("CartPole-v1")
    agent = _agent(params, envs)
    envs.play(agent, 8, RunPhase.TRAIN)
    assert agent.train() > 0
    measured = [values["KL divergence"] for prefix, values in agent.drain_reports() if prefix == "Policy training"][-1]
    assert agent.kl_coefficient == adapted_kl_coefficient(0.3, measured, target) == pytest.approx(0.3 * factor)
    restored = _agent(params, envs, seed=1)
    restored.load_counters(agent.counters())
    assert restored.kl_coefficient == agent.kl_coefficient
