"""The agent's side of the contract: what is stored is what was acted on, and building and running an agent leaves
the preset's parameter objects as they were."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from rlframe.agents.dqn import DQNAgentParameters
from rlframe.core_types import EnvironmentSteps, RunPhase, TrainingSteps
from rlframe.environments.gym_environment import GymVectorEnvironment
from rlframe.filters.filter import InputFilter
from rlframe.filters.observation import ObservationNormalizationFilter
from rlframe.graph_managers.basic_rl import BasicRLGraphManager
from rlframe.graph_managers.graph_manager import ScheduleParameters
from rlframe.presets import load_preset

pytestmark = pytest.mark.unit


def normalised_dqn() -> BasicRLGraphManager:
    agent_params = DQNAgentParameters()
    agent_params.input_filter = InputFilter()
    agent_params.input_filter.add_observation_filter("observation", "normalize", ObservationNormalizationFilter())
    schedule = ScheduleParameters()
    schedule.heatup_steps, schedule.improve_steps = EnvironmentSteps(0), TrainingSteps(10)
    return BasicRLGraphManager(agent_params, GymVectorEnvironment(level="CartPole-v1"), schedule)


def step(agent, raw_obs, phase):
    """act then observe, as the loop does; returns what the input filter made of raw_obs before the step."""
    before = agent.input_filter.filter_observation(raw_obs, update=False)
    actions = agent.act(raw_obs, phase)
    k = len(raw_obs)
    agent.observe(np.arange(k), raw_obs, actions, np.ones(k, np.float32), raw_obs + 1, np.zeros(k, bool),
                  np.zeros(k, bool), phase)
    return before


@pytest.mark.parametrize("phase", [RunPhase.HEATUP, RunPhase.TRAIN])
def test_the_stored_observations_are_those_acted_on(phase):
    agent = normalised_dqn().build_agent()
    rng = np.random.default_rng(0)
    acted = [step(agent, (rng.normal(size=(3, 4)) * 10 + 100).astype(np.float32), phase) for _ in range(3)]
    stored = agent.memory_state()["obs"]
    # Before this fix the stored copy was filtered again with statistics that already included it.
    np.testing.assert_allclose(stored, np.concatenate(acted), rtol=1e-6)


def test_building_and_running_an_agent_leaves_the_presets_objects_unchanged():
    graph_manager = normalised_dqn()
    preset = copy.deepcopy(graph_manager.agent_params)
    agent = graph_manager.build_agent()
    for _ in range(50):
        step(agent, np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32), RunPhase.TRAIN)
    assert agent.exploration_value(RunPhase.TRAIN) < 1.0  # the agent's own schedule moved
    params = graph_manager.agent_params
    assert params.exploration.epsilon_schedule.current_value == preset.exploration.epsilon_schedule.current_value == 1.0
    unchanged, learnt = params.input_filter.state(), agent.input_filter.state()
    assert unchanged.keys() == preset.input_filter.state().keys()
    for key, value in unchanged.items():
        np.testing.assert_array_equal(value, preset.input_filter.state()[key])
    assert learnt["observation_filters.observation.normalize._count"] > unchanged["observation_filters.observation.normalize._count"]
    assert graph_manager.env_params.num_envs is None  # build_agent's one copy is not written into the preset


def test_a_batch_graph_adds_its_reward_model_to_a_copy_not_to_the_preset():
    graph_manager = load_preset("preset-cartpole-ddqnbcq")
    agent = graph_manager.build_agent()
    assert "reward_model" not in graph_manager.agent_params.network_wrappers
    assert agent.softmax_temperature == graph_manager.agent_params.network_wrappers["main"].softmax_temperature


def test_a_batch_graph_refuses_an_agent_that_cannot_learn_from_a_dataset():
    from rlframe.agents.clipped_ppo import ClippedPPOAgentParameters
    from rlframe.errors import ParameterValueError
    from rlframe.graph_managers.batch_rl import BatchRLGraphManager
    from rlframe.spaces import DiscreteActionSpace, RewardSpace, SpacesDefinition, StateSpace, VectorObservationSpace

    spaces = SpacesDefinition(state=StateSpace({"observation": VectorObservationSpace(shape=4)}), goal=None,
                              action=DiscreteActionSpace(2), reward=RewardSpace(1))
    schedule = ScheduleParameters()
    schedule.improve_steps = TrainingSteps(1)
    graph_manager = BatchRLGraphManager(ClippedPPOAgentParameters(), None, schedule, spaces_definition=spaces)
    with pytest.raises(ParameterValueError, match=r"^BatchRLGraphManager trains agents that learn from a dataset "
                                                  r"\(DQN, DDQN, DDQN\+BCQ\); the preset's agent is "
                                                  r"ClippedPPOAgentParameters\.$"):
        graph_manager.build_agent()


def test_an_exploration_that_does_not_fit_the_policy_is_one_line():
    from rlframe.agents.clipped_ppo import ClippedPPOAgentParameters
    from rlframe.errors import ParameterValueError
    from rlframe.exploration.parameters import AdditiveNoiseParameters

    agent_params = ClippedPPOAgentParameters()
    agent_params.exploration = AdditiveNoiseParameters()
    schedule = ScheduleParameters()
    schedule.heatup_steps, schedule.improve_steps = EnvironmentSteps(0), TrainingSteps(10)
    graph_manager = BasicRLGraphManager(agent_params, GymVectorEnvironment(level="CartPole-v1"), schedule)
    with pytest.raises(ParameterValueError, match=r"^agent_params.exploration is AdditiveNoiseParameters; Clipped PPO "
                                                  r"on a DiscreteActionSpace uses CategoricalParameters or "
                                                  r"EGreedyParameters\.$"):
        graph_manager.build_agent()
