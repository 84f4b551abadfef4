"""Shared fixtures: every test runs in its own empty working directory.

The CLI writes ``./experiments/...`` by default and ``--preset NAME`` looks in the current directory first,
so running each test inside ``tmp_path`` keeps the repository clean and keeps stray ``*.py`` files in the
caller's directory out of preset lookup.
"""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Callable

import pytest

# Imported here, at collection, so the first test that builds a network does not pay MXNet's import time.
import rlframe.agents.ddqn  # noqa: F401
import rlframe.graph_managers.basic_rl  # noqa: F401

# trained_runs and exported_model_dirs: trained policies of every kind exported into model directories (session-wide);
# tiers: every test carries exactly one of the tiers unit, integration, golden; pytester: tests of that check
pytest_plugins = ["exported_models", "tiers", "pytester"]

#: A minimal Coach-style preset body; ``{extra}`` is inserted before ``graph_manager`` is made.
MINIMAL_PRESET = '''\
from rl_coach.agents.dqn_agent import DQNAgentParameters
from rl_coach.core_types import EnvironmentEpisodes, EnvironmentSteps, TrainingSteps
from rl_coach.environments.gym_environment import GymVectorEnvironment
from rl_coach.graph_managers.basic_rl_graph_manager import BasicRLGraphManager
from rl_coach.graph_managers.graph_manager import ScheduleParameters

schedule_params = ScheduleParameters()
schedule_params.improve_steps = TrainingSteps(1000)
schedule_params.steps_between_evaluation_periods = EnvironmentEpisodes(10)
schedule_params.evaluation_steps = EnvironmentEpisodes(1)
schedule_params.heatup_steps = EnvironmentSteps(100)
agent_params = DQNAgentParameters()
{extra}
graph_manager = BasicRLGraphManager(agent_params=agent_params, env_params=GymVectorEnvironment(level='CartPole-v1'),
                                    schedule_params=schedule_params)
'''


@pytest.fixture(autouse=True)
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in ``tmp_path`` with no preset path inherited from the caller."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RLFRAME_PRESET_PATH", raising=False)
    return tmp_path


@pytest.fixture
def write_preset(tmp_path: Path) -> Callable[..., Path]:
    """Write a preset file: ``write_preset('name', extra='agent_params.algorithm.discount = 0.5')`` or
    ``write_preset('name', text='...')`` for a body of your own; returns its path."""

    def write(name: str, extra: str = "", text: str | None = None, folder: Path | None = None) -> Path:
        directory = folder or tmp_path
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.py"
        body = text if text is not None else MINIMAL_PRESET.format(extra=textwrap.dedent(extra))
        path.write_text(body, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def cartpole_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A uniform-random CartPole-v0 dataset in the batch notebook's format (20 environments x 5 episodes), made once."""
    from rlframe.data import VectoredGymEnvironment

    path = tmp_path_factory.mktemp("data") / "cartpole_dataset.csv"
    with VectoredGymEnvironment("CartPole-v0", num_of_envs=20, seed=0) as envs:
        envs.collect_rollouts_with_given_action_probs(num_episodes=5, action_probs=[0.5, 0.5]).to_csv(path, index=False)
    return path


@pytest.fixture
def dataset(cartpole_dataset: Path, tmp_path: Path) -> Path:
    """That dataset copied into the test's working directory as ``cartpole_dataset.csv``, where the notebook's
    batch preset looks for it (the test may change or move its copy)."""
    return Path(shutil.copy(cartpole_dataset, tmp_path / "cartpole_dataset.csv"))
