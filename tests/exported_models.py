"""Trained policies of every exportable kind, exported into model directories: shared by the export, serving and
transform tests (registered in conftest.py).

``export_trained(kind, folder, normalise=False)`` trains a tiny run of ``kind`` (a few hundred steps, seed 0) from a
preset written into ``folder`` (with ``export_onnx_graph``, so its checkpoints carry ``.onnx`` files), then exports
its newest checkpoint with :func:`rlframe.export.export_checkpoint`, as ``rlframe-export`` does, into
``folder/model``, and returns that model directory. Kinds: ``"dqn"`` (CartPole-v1), ``"ddqn_bcq"`` (batch RL on 400
random CartPole-v0 steps), ``"ppo_discrete"`` (CartPole-v1), ``"ppo_continuous"`` (Pendulum-v1, one action). With
``normalise``, an ``ObservationNormalizationFilter`` learns statistics while training (in the ``input_filter`` for
the DQN family, the ``pre_network_filter`` for Clipped PPO). The networks differ in activations and in the
embedder's input offset, rescaling and clipping, so an export that drops one of them is caught. Evaluation epsilon
is 0, so ``act(raw_obs, RunPhase.TEST)`` is the greedy action.

Runners of the exported forms, each ``(model, observations (B, *shape) float32) -> outputs in model order``:
:func:`onnxruntime_outputs`, :func:`mxnet_import_outputs` (the SageMaker notebooks' deploy script's way) and
:func:`symbol_outputs` (rlframe's own model).

Session fixtures: ``trained_runs`` (name -> :class:`TrainedRun`, with the agent as it ended training, which equals
its final checkpoint) and ``exported_model_dirs`` (name -> model directory), for the four kinds and
``"dqn_normalised"``, ``"ppo_continuous_normalised"``. Together they take about 3 s.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
import numpy as np
import onnxruntime as ort
import pytest

from rlframe.export import export_checkpoint
from rlframe.export.graph import INPUT_NAME
from rlframe.graph_managers.graph_manager import GraphManager
from rlframe.parameters import TaskParameters
from rlframe.presets import load_preset

KINDS = ("dqn", "ddqn_bcq", "ppo_discrete", "ppo_continuous")
NORMALISED = ("dqn", "ppo_continuous")

_IMPORTS = """\
from rl_coach.agents.clipped_ppo_agent import ClippedPPOAgentParameters
from rl_coach.agents.ddqn_bcq_agent import DDQNBCQAgentParameters, KNNParameters
from rl_coach.agents.dqn_agent import DQNAgentParameters
from rl_coach.architectures.layers import Dense
from rl_coach.core_types import EnvironmentEpisodes, EnvironmentSteps, TrainingSteps
from rl_coach.environments.gym_environment import GymVectorEnvironment
from rl_coach.filters.filter import InputFilter
from rl_coach.filters.observation.observation_normalization_filter import ObservationNormalizationFilter
from rl_coach.graph_managers.basic_rl_graph_manager import BasicRLGraphManager
from rl_coach.graph_managers.batch_rl_graph_manager import BatchRLGraphManager
from rl_coach.graph_managers.graph_manager import ScheduleParameters
from rl_coach.memories.episodic import EpisodicExperienceReplayParameters

schedule_params = ScheduleParameters()
schedule_params.evaluation_steps = EnvironmentEpisodes(1)
"""

_NORMALISE = """
agent_params.{stage} = InputFilter()
agent_params.{stage}.add_observation_filter('observation', 'normalize', ObservationNormalizationFilter(clip_min=-4, clip_max=4))
"""

# Clipped PPO: two updates of 256 steps each; ``{network}`` and ``{level}`` differ by kind.
_PPO = """
schedule_params.heatup_steps = EnvironmentSteps(0)
schedule_params.improve_steps = EnvironmentSteps(512)
schedule_params.steps_between_evaluation_periods = EnvironmentSteps(100000)
agent_params = ClippedPPOAgentParameters()
main = agent_params.network_wrappers['main']
main.input_embedders_parameters['observation'].scheme = [Dense(16)]
main.middleware_parameters.scheme = [Dense(16)]
main.learning_rate = 0.003
{network}
agent_params.algorithm.num_consecutive_playing_steps = EnvironmentSteps(256)
agent_params.algorithm.act_for_full_episodes = False
agent_params.algorithm.optimization_epochs = 2
{normalise}
graph_manager = BasicRLGraphManager(agent_params=agent_params, env_params=GymVectorEnvironment(level='{level}'),
                                    schedule_params=schedule_params)
"""

_PRESETS = {
    "dqn": """
schedule_params.heatup_steps = EnvironmentSteps(100)
schedule_params.improve_steps = EnvironmentSteps(300)
schedule_params.steps_between_evaluation_periods = EnvironmentSteps(100000)
agent_params = DQNAgentParameters()
main = agent_params.network_wrappers['main']
main.input_embedders_parameters['observation'].scheme = [Dense(16)]
main.input_embedders_parameters['observation'].input_offset = {'vector': 0.25}
main.input_embedders_parameters['observation'].input_rescaling = {'vector': 2.0}
main.input_embedders_parameters['observation'].input_clipping = (-1.5, 1.5)
main.middleware_parameters.scheme = [Dense(16)]
main.learning_rate = 0.001
main.softmax_temperature = 0.5
agent_params.exploration.evaluation_epsilon = 0
{normalise}
graph_manager = BasicRLGraphManager(agent_params=agent_params, env_params=GymVectorEnvironment(level='CartPole-v1'),
                                    schedule_params=schedule_params)
""",
    "ddqn_bcq": """
schedule_params.heatup_steps = EnvironmentSteps(400)
schedule_params.improve_steps = TrainingSteps(2)
schedule_params.steps_between_evaluation_periods = TrainingSteps(100)
agent_params = DDQNBCQAgentParameters()
main = agent_params.network_wrappers['main']
main.input_embedders_parameters['observation'].scheme = [Dense(16)]
main.input_embedders_parameters['observation'].activation_function = 'leaky_relu'
main.middleware_parameters.scheme = [Dense(16)]
main.middleware_parameters.activation_function = 'selu'
main.batch_size = 32
main.softmax_temperature = 0.2
agent_params.algorithm.action_drop_method_parameters = KNNParameters()
agent_params.memory = EpisodicExperienceReplayParameters()
agent_params.exploration.evaluation_epsilon = 0
{normalise}
graph_manager = BatchRLGraphManager(agent_params=agent_params, env_params=GymVectorEnvironment(level='CartPole-v0'),
                                    schedule_params=schedule_params, reward_model_num_epochs=2, train_to_eval_ratio=0.8)
""",
    "ppo_discrete": _PPO.replace("{level}", "CartPole-v1").replace("{network}", """\
main.input_embedders_parameters['observation'].input_rescaling = {'vector': 0.5}
main.middleware_parameters.activation_function = 'softrelu'"""),
    "ppo_continuous": _PPO.replace("{level}", "Pendulum-v1").replace(
        "{network}", "main.input_embedders_parameters['observation'].activation_function = 'elu'"),
}


@dataclass
class TrainedRun:
    """A trained run: its graph manager (whose agent ended training as its final checkpoint), the checkpoint
    directory and the exported model directory."""

    graph_manager: GraphManager
    checkpoint_dir: Path
    model_dir: Path


def write_preset(kind: str, folder: Path, normalise: bool = False) -> Path:
    """Write the tiny preset of ``kind`` into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    stage = "input_filter" if kind in ("dqn", "ddqn_bcq") else "pre_network_filter"
    preset = folder / f"export_{kind}{'_normalised' if normalise else ''}.py"
    normaliser = _NORMALISE.replace("{stage}", stage) if normalise else ""
    preset.write_text(_IMPORTS + _PRESETS[kind].replace("{normalise}", normaliser), encoding="utf-8")
    return preset


def train_and_export(kind: str, folder: Path, normalise: bool = False) -> TrainedRun:
    """Train ``kind`` in ``folder`` (preset file, ``experiment/``) and export its checkpoint into ``folder/model``."""
    graph_manager = load_preset(str(write_preset(kind, folder, normalise)))
    experiment = folder / "experiment"
    graph_manager.run(TaskParameters(experiment_path=str(experiment), seed=0, export_onnx_graph=True))
    model_dir = export_checkpoint(experiment / "checkpoint", folder / "model")
    return TrainedRun(graph_manager, experiment / "checkpoint", model_dir)


def export_trained(kind: str, folder: Path, normalise: bool = False) -> Path:
    """Train a tiny run of ``kind`` in ``folder`` and return its exported model directory (see the module docstring)."""
    return train_and_export(kind, folder, normalise).model_dir


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainedRun]:
    """The four kinds, and ``dqn_normalised`` and ``ppo_continuous_normalised``, trained and exported once."""
    runs = {kind: train_and_export(kind, tmp_path_factory.mktemp(kind)) for kind in KINDS}
    for kind in NORMALISED:
        runs[f"{kind}_normalised"] = train_and_export(kind, tmp_path_factory.mktemp(f"{kind}_normalised"), normalise=True)
    return runs


@pytest.fixture(scope="session")
def exported_model_dirs(trained_runs: dict[str, TrainedRun]) -> dict[str, Path]:
    """name -> model directory (``model.onnx``, ``rlframe-model.json``, ``policy-symbol.json``, ``policy-0000.params``)."""
    return {name: run.model_dir for name, run in trained_runs.items()}


def onnxruntime_outputs(path: Path, obs: np.ndarray) -> list[np.ndarray]:
    """The outputs of the ONNX file ``path`` under onnxruntime."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # initializers listed as inputs (for MXNet's importer) are warned about
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: obs})


def mxnet_import_outputs(path: Path, obs: np.ndarray) -> list[np.ndarray]:
    """As the notebooks' deploy-mxnet-coach.py's model_fn: import the ONNX file, take the input names from its
    metadata, build a SymbolBlock and load every parameter it has; then call it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        symbol, arg_params, aux_params = mx.contrib.onnx.import_model(str(path))
        names = [name for name, *_ in mx.contrib.onnx.get_model_metadata(str(path))["input_tensor_data"]]
        net = mx.gluon.nn.SymbolBlock(outputs=symbol, inputs=[mx.sym.var(n) for n in names])
    params = net.collect_params()
    for name in params:
        if name in arg_params:
            params[name]._load_init(arg_params[name], ctx=mx.cpu())
        elif name in aux_params:
            params[name]._load_init(aux_params[name], ctx=mx.cpu())
    net.hybridize()
    outputs = net(mx.nd.array(obs))
    return [o.asnumpy() for o in (outputs if isinstance(outputs, list) else [outputs])]


def symbol_outputs(model_dir: Path, obs: np.ndarray) -> list[np.ndarray]:
    """The outputs of rlframe's own model in ``model_dir`` (``SymbolBlock.imports``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = mx.gluon.nn.SymbolBlock.imports(str(model_dir / "policy-symbol.json"), [INPUT_NAME],
                                              str(model_dir / "policy-0000.params"))
    outputs = net(mx.nd.array(obs))
    return [o.asnumpy() for o in (outputs if isinstance(outputs, list) else [outputs])]
