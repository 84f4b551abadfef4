"""Actor-critic (A2C): its advantages against numbers derived by hand, the direction of one gradient step, acting on
both kinds of action space, its refusals, its state through a checkpoint, its exported policy, and the Coach and
SageMaker presets that name it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mxnet import nd

from rlframe.agents.actor_critic import (
    ActorCriticAgent,
    ActorCriticAgentParameters,
    ContinuousEntropyParameters,
    numpy_towers,
)
from rlframe.agents.clipped_ppo import PolicyGradientRescaler
from rlframe.cli import prepare
from rlframe.core_types import EnvironmentSteps, RunPhase
from rlframe.errors import ParameterValueError
from rlframe.exploration.parameters import EGreedyParameters
from rlframe.export import export_checkpoint
from rlframe.networks.distributions import softmax
from rlframe.networks.parameters import Dense
from rlframe.parameters import TaskParameters
from rlframe.presets import load_preset
from rlframe.spaces import (
    BoxActionSpace,
    DiscreteActionSpace,
    RewardSpace,
    SpacesDefinition,
    StateSpace,
    VectorObservationSpace,
)

from exported_models import mxnet_import_outputs, onnxruntime_outputs, symbol_outputs

pytestmark = pytest.mark.unit

AUTOSCALING = Path(__file__).resolve().parents[1] / "fixtures" / "sagemaker" / "autoscaling"
TOLERANCE = 1e-5


def small_params() -> ActorCriticAgentParameters:
    params = ActorCriticAgentParameters()
    main = params.network_wrappers["main"]
    main.input_embedders_parameters["observation"].scheme = [Dense(16)]
    main.middleware_parameters.scheme = [Dense(16)]
    main.learning_rate = 0.01
    return params


def spaces(action: DiscreteActionSpace | BoxActionSpace, observation_size: int = 4) -> SpacesDefinition:
    return SpacesDefinition(StateSpace({"observation": VectorObservationSpace(observation_size)}), None, action,
                            RewardSpace(1))


def agent_for(action: DiscreteActionSpace | BoxActionSpace, params: ActorCriticAgentParameters | None = None) -> ActorCriticAgent:
    return ActorCriticAgent(params or small_params(), spaces(action), np.random.default_rng(0))


# Two copies of three steps, gamma = 0.5. Copy 0 plays on past the rollout (cut after its third step, bootstrapped
# from V(s') = 4). Copy 1's first episode terminates (V(s') = 10 is ignored), its second is cut by a time limit
# (bootstraps from 2), and its third is cut by the rollout (bootstraps from 8).
REWARD = np.array([1, 2, 3, 1, 1, 1], np.float32)
VALUE = np.array([1, 1, 1, 0, 0, 0], np.float32)
NEXT_VALUE = np.array([1, 1, 4, 10, 2, 8], np.float32)
TERMINATED = np.array([False, False, False, True, False, False])
SEGMENT_END = np.array([False, False, True, True, True, True])
# n-step returns: copy 0 R2 = 3 + 0.5*4 = 5, R1 = 2 + 0.5*5 = 4.5, R0 = 1 + 0.5*4.5 = 3.25;
#                 copy 1 R0 = 1 (terminal), R1 = 1 + 0.5*2 = 2, R2 = 1 + 0.5*8 = 5.
N_STEP_RETURN = [3.25, 4.5, 5.0, 1.0, 2.0, 5.0]


def advantages(rescaler: PolicyGradientRescaler, gae_lambda: float, gae_targets: bool) -> tuple[np.ndarray, np.ndarray]:
    params = small_params()
    params.algorithm.discount = 0.5
    params.algorithm.policy_gradient_rescaler = rescaler
    params.algorithm.gae_lambda = gae_lambda
    params.algorithm.estimate_state_value_using_gae = gae_targets
    return agent_for(DiscreteActionSpace(2), params).advantages(REWARD, VALUE, NEXT_VALUE, TERMINATED, SEGMENT_END)


def test_the_n_step_advantage_by_hand():
    advantage, target = advantages(PolicyGradientRescaler.A_VALUE, 0.96, True)
    np.testing.assert_allclose(target, N_STEP_RETURN, rtol=1e-6)
    np.testing.assert_allclose(advantage, [2.25, 3.5, 4.0, 1.0, 2.0, 5.0], rtol=1e-6)


def test_gae_by_hand():
    # lambda = 0.5, so gamma * lambda = 0.25. Copy 0's one-step errors: 1 + 0.5 - 1 = 0.5, 2 + 0.5 - 1 = 1.5,
    # 3 + 0.5*4 - 1 = 4: A2 = 4, A1 = 1.5 + 0.25*4 = 2.5, A0 = 0.5 + 0.25*2.5 = 1.125. Copy 1's segments are one
    # step long: A = its one-step errors, 1, 2 and 5.
    advantage, target = advantages(PolicyGradientRescaler.GAE, 0.5, False)
    np.testing.assert_allclose(advantage, [1.125, 2.5, 4.0, 1.0, 2.0, 5.0], rtol=1e-6)
    np.testing.assert_allclose(target, N_STEP_RETURN, rtol=1e-6)
    _, gae_target = advantages(PolicyGradientRescaler.GAE, 0.5, True)
    np.testing.assert_allclose(gae_target, [2.125, 3.5, 5.0, 1.0, 2.0, 5.0], rtol=1e-6)


def one_step(agent: ActorCriticAgent, obs: np.ndarray, action: np.ndarray, advantage: np.ndarray) -> None:
    packed = agent.layout.pack(obs=obs, action=action.reshape(len(obs), -1), advantage=advantage,
                               value_target=np.zeros(len(obs), np.float32))
    agent.network.update(agent.loss, packed)


def test_one_step_makes_a_positive_advantage_action_more_likely_and_a_negative_one_less():
    agent = agent_for(DiscreteActionSpace(3))
    obs = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)

    def probabilities() -> np.ndarray:
        return softmax(agent.network.online(nd.array(obs))[1].asnumpy().astype(np.float64))

    before = probabilities()
    one_step(agent, obs, np.array([0, 2]), np.array([1.0, -1.0], np.float32))
    after = probabilities()
    assert after[0, 0] > before[0, 0] and after[1, 2] < before[1, 2]


def test_one_step_moves_the_gaussian_mean_towards_a_positive_advantage_action():
    agent = agent_for(BoxActionSpace(2, -1.0, 1.0))
    obs = np.zeros((4, 4), np.float32)
    mean_before = agent.network.online(nd.array(obs))[1].asnumpy()
    one_step(agent, obs, mean_before + np.array([1.0, -1.0], np.float32), np.ones(4, np.float32))
    moved = agent.network.online(nd.array(obs))[1].asnumpy() - mean_before
    assert (moved[:, 0] > 0).all() and (moved[:, 1] < 0).all()


def test_discrete_acting_samples_in_training_and_is_greedy_in_evaluation():
    agent = agent_for(DiscreteActionSpace(3))
    obs = np.random.default_rng(2).normal(size=(400, 4)).astype(np.float32)
    logits = agent.network.online(nd.array(obs))[1].asnumpy()
    np.testing.assert_array_equal(agent.act(obs, RunPhase.TEST), logits.argmax(axis=1))
    training = agent.act(obs, RunPhase.TRAIN)
    assert training.shape == (400,) and training.dtype == np.int64 and set(training.tolist()) == {0, 1, 2}
    np.testing.assert_allclose(agent.last_action_probabilities, softmax(logits.astype(np.float64)), atol=1e-5)


def test_continuous_acting_samples_the_networks_gaussian_and_takes_its_mean_in_evaluation():
    agent = agent_for(BoxActionSpace(2, -2.0, 2.0))
    obs = np.zeros((2000, 4), np.float32)
    mean = agent.network.online(nd.array(obs[:1]))[1].asnumpy()[0]
    np.testing.assert_allclose(agent.act(obs, RunPhase.TEST), np.tile(mean, (2000, 1)), atol=1e-6)
    noisy = agent.act(obs, RunPhase.TRAIN)
    assert noisy.shape == (2000, 2)
    np.testing.assert_allclose(noisy.std(axis=0), [1.0, 1.0], atol=0.05)  # log-std starts at 0
    assert agent.exploration_value(RunPhase.TRAIN) == pytest.approx(1.0)


def test_a_rollout_is_num_steps_between_gradient_updates_steps_of_every_copy_and_heatup_is_not_learned_from():
    params = small_params()
    params.algorithm.num_steps_between_gradient_updates = 3
    agent = agent_for(DiscreteActionSpace(2), params)
    rng = np.random.default_rng(3)
    index = np.arange(4)

    def step(phase: RunPhase) -> None:
        obs = rng.normal(size=(4, 4)).astype(np.float32)
        actions = agent.act(obs, phase)
        done = np.zeros(4, bool)
        agent.observe(index, obs, actions, np.ones(4, np.float32), obs + 0.1, done, done, phase)

    for _ in range(5):
        step(RunPhase.HEATUP)
    assert agent.memory_sizes() == (0, 0) and agent.train() == 0
    for expected in (0, 0, 1):
        step(RunPhase.TRAIN)
        assert agent.train() == expected
    assert agent.training_iteration == 1 and agent.memory_sizes() == (0, 0)
    assert agent.total_steps == 32


@pytest.mark.parametrize("rescaler", [PolicyGradientRescaler.FUTURE_RETURN, PolicyGradientRescaler.Q_VALUE, "gae"])
def test_a_rescaler_it_does_not_implement_is_one_line(rescaler):
    params = small_params()
    params.algorithm.policy_gradient_rescaler = rescaler
    shown = f"PolicyGradientRescaler.{rescaler.name}" if isinstance(rescaler, PolicyGradientRescaler) else "'gae'"
    with pytest.raises(ParameterValueError) as info:
        agent_for(DiscreteActionSpace(2), params)
    assert str(info.value) == (
        f"agent_params.algorithm.policy_gradient_rescaler = {shown}: rlframe's actor-critic supports "
        "PolicyGradientRescaler.A_VALUE (n-step advantage) and PolicyGradientRescaler.GAE.")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("num_steps_between_gradient_updates", 0, "agent_params.algorithm.num_steps_between_gradient_updates = 0: use "),
    ("gae_lambda", 1.5, "agent_params.algorithm.gae_lambda = 1.5: use "),
    ("beta_entropy", -0.01, "agent_params.algorithm.beta_entropy = -0.01: use "),
])
def test_an_out_of_range_value_is_refused(field, value, message):
    params = small_params()
    setattr(params.algorithm, field, value)
    with pytest.raises(ParameterValueError, match="^" + message.replace(".", r"\.")):
        agent_for(DiscreteActionSpace(2), params)


def test_exploration_that_does_not_fit_the_action_space_is_refused():
    params = small_params()
    params.exploration = ContinuousEntropyParameters()
    with pytest.raises(ParameterValueError, match="^agent_params.exploration is ContinuousEntropyParameters; "
                       "actor-critic on a DiscreteActionSpace uses CategoricalParameters or EGreedyParameters.$"):
        agent_for(DiscreteActionSpace(2), params)


# ---- through runs ---------------------------------------------------------------------------------------------
PRESET = """\
from rl_coach.agents.actor_critic_agent import ActorCriticAgentParameters
from rl_coach.agents.policy_optimization_agent import PolicyGradientRescaler
from rl_coach.architectures.layers import Dense
from rl_coach.core_types import EnvironmentEpisodes, EnvironmentSteps
from rl_coach.environments.gym_environment import GymVectorEnvironment
from rl_coach.filters.filter import InputFilter
from rl_coach.filters.observation.observation_normalization_filter import ObservationNormalizationFilter
from rl_coach.graph_managers.basic_rl_graph_manager import BasicRLGraphManager
from rl_coach.graph_managers.graph_manager import ScheduleParameters

schedule_params = ScheduleParameters()
schedule_params.heatup_steps = EnvironmentSteps(0)
schedule_params.improve_steps = EnvironmentSteps(400)
schedule_params.steps_between_evaluation_periods = EnvironmentSteps(100000)
schedule_params.evaluation_steps = EnvironmentEpisodes(1)
agent_params = ActorCriticAgentParameters()
agent_params.algorithm.policy_gradient_rescaler = PolicyGradientRescaler.GAE
agent_params.algorithm.num_steps_between_gradient_updates = 5
agent_params.algorithm.beta_entropy = 0.01
main = agent_params.network_wrappers['main']
main.input_embedders_parameters['observation'].scheme = [Dense(16)]
main.input_embedders_parameters['observation'].activation_function = 'tanh'
main.middleware_parameters.scheme = [Dense(16)]
main.learning_rate = 0.003
agent_params.pre_network_filter = InputFilter()
agent_params.pre_network_filter.add_observation_filter('observation', 'normalize', ObservationNormalizationFilter())
agent_params.algorithm.update_pre_network_filters_state_on_train = True
env_params = GymVectorEnvironment(level='{level}')
env_params.num_envs = 2
graph_manager = BasicRLGraphManager(agent_params=agent_params, env_params=env_params, schedule_params=schedule_params)
"""
LEVELS = {"discrete": "CartPole-v1", "continuous": "Pendulum-v1"}


@pytest.fixture(scope="module", params=sorted(LEVELS))
def trained(request, tmp_path_factory):
    """A tiny A2C run (2 copies x 200 steps, 40 gradient steps) of each kind, its checkpoint exported into a model directory."""
    folder = tmp_path_factory.mktemp(f"a2c_{request.param}")
    preset = folder / f"a2c_{request.param}.py"
    preset.write_text(PRESET.replace("{level}", LEVELS[request.param]))
    graph_manager = load_preset(str(preset))
    graph_manager.run(TaskParameters(experiment_path=str(folder / "experiment"), seed=0, export_onnx_graph=True))
    model_dir = export_checkpoint(folder / "experiment" / "checkpoint", folder / "model")
    return graph_manager, preset, folder, model_dir


def test_a_run_logs_coachs_signals_and_round_trips_through_a_checkpoint(trained):
    graph_manager, preset, folder, _ = trained
    agent = graph_manager.agent
    assert agent.training_iteration == 40
    table = pd.read_csv(graph_manager.csv_path)
    for signal in ("Loss", "Entropy", "Advantages", "Values", "Value Loss", "Policy Loss"):
        assert table[f"{signal}/Mean"].notna().any(), signal
    restored, task, _ = prepare(["-p", str(preset), "-crd", str(folder / "experiment" / "checkpoint"),
                                 "--evaluate", "1", "-ep", str(folder / "evaluate")])
    restored.create_graph(task)
    try:
        probe = np.random.default_rng(0).normal(size=(20, agent.spaces.observation_size)).astype(np.float32)
        for mine, theirs in zip(agent.policy_outputs(probe), restored.agent.policy_outputs(probe)):
            np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_array_equal(agent.act(probe, RunPhase.TEST), restored.agent.act(probe, RunPhase.TEST))
        assert restored.agent.counters() == agent.counters()
    finally:
        restored.close()


@pytest.mark.parametrize("form", ["onnxruntime", "mxnet-import", "rlframe-symbol"])
def test_every_exported_form_computes_the_agents_outputs_and_actions(trained, form):
    graph_manager, _, _, model_dir = trained
    agent = graph_manager.agent
    obs = np.random.default_rng(0).normal(scale=5.0, size=(1000, agent.spaces.observation_size)).astype(np.float32)
    run = {"onnxruntime": lambda: onnxruntime_outputs(model_dir / "model.onnx", obs),
           "mxnet-import": lambda: mxnet_import_outputs(model_dir / "model.onnx", obs),
           "rlframe-symbol": lambda: symbol_outputs(model_dir, obs)}[form]
    expected, got = agent.policy_outputs(obs), run()
    assert [o.shape for o in got] == [e.shape for e in expected]
    for want, have in zip(expected, got):
        assert np.abs(have - want).max() <= TOLERANCE
    # The snapshot the agent acts on computes the same policy as the network it exports.
    value, policy = agent.network.online_snapshot(numpy_towers)
    filtered = agent.pre_network_filter.filter_observation(obs, update=False)
    np.testing.assert_allclose(value(filtered).reshape(-1), expected[0], atol=TOLERANCE)
    actions = agent.act(obs, RunPhase.TEST)
    if isinstance(agent.spaces.action, DiscreteActionSpace):
        np.testing.assert_array_equal(got[1].argmax(axis=1), actions)
    else:
        assert np.abs(got[1] - actions).max() <= TOLERANCE


# ---- the presets that name it ------------------------------------------------------------------------------------
def test_coachs_cartpole_a3c_preset_loads_with_coachs_values():
    graph_manager = load_preset("CartPole_A3C")
    params = graph_manager.agent_params
    assert isinstance(params, ActorCriticAgentParameters) and params.agent_class is ActorCriticAgent
    algorithm = params.algorithm
    assert algorithm.policy_gradient_rescaler == PolicyGradientRescaler.GAE
    assert (algorithm.num_steps_between_gradient_updates, algorithm.gae_lambda, algorithm.beta_entropy) == (5, 1, 0.01)
    assert params.network_wrappers["main"].learning_rate == 0.0001
    assert graph_manager.env_params.level == "CartPole-v0"
    assert graph_manager.preset_validation_params.max_episodes_to_achieve_reward == 300


def test_the_autoscaling_notebooks_a3c_preset_loads_and_trains_on_box_actions(tmp_path):
    preset = AUTOSCALING / "preset-autoscale-a3c.py"
    graph_manager = load_preset(str(preset))
    params = graph_manager.agent_params
    assert isinstance(params, ActorCriticAgentParameters) and isinstance(params.exploration, EGreedyParameters)
    assert (params.algorithm.num_steps_between_gradient_updates, params.algorithm.beta_entropy) == (20, 0.05)
    assert params.algorithm.estimate_state_value_using_gae is True
    assert graph_manager.heatup_steps == EnvironmentSteps(150000)
    # A short run of the stand-in environment: 200 heatup steps, then 2 rollouts of 2 copies x 20 steps.
    trained, task, _ = prepare(["-p", str(preset), "--seed", "0", "-ep", str(tmp_path / "exp"), "--num-envs", "2",
                                "-cp", "heatup_steps=EnvironmentSteps(200);improve_steps=EnvironmentSteps(80);"
                                "steps_between_evaluation_periods=EnvironmentSteps(1000000)"])
    trained.run(task)
    agent = trained.agent
    assert isinstance(agent.spaces.action, BoxActionSpace) and agent.spaces.observation_size == 25
    assert agent.training_iteration == 2
    assert agent.act(np.zeros((3, 25), np.float32), RunPhase.TEST).shape == (3, 2)
