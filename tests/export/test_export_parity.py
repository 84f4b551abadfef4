"""Acceptance: every exported form of every kind of policy computes what the agent computes.

On 1,000 random observations, wide enough that every clip (the normaliser's, the embedder's) is hit, the outputs of
``model.onnx`` under onnxruntime, of ``model.onnx`` imported by MXNet's ``mxnet.contrib.onnx.import_model`` the way
the SageMaker notebooks' deploy script does it, of rlframe's own symbol (``SymbolBlock.imports``), and of the
checkpoint's own ``.onnx`` after the notebooks' ``fix_onnx_model`` rewrite, all equal ``agent.policy_outputs`` (the
agent's filters and networks) to 1e-5, and the actions they imply are the agent's ``act(obs, RunPhase.TEST)``.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from rlframe.core_types import RunPhase
from rlframe.outputs.checkpoints import STATE_FILE

from exported_models import mxnet_import_outputs, onnxruntime_outputs, symbol_outputs

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sagemaker"
RUNS = ["dqn", "ddqn_bcq", "ppo_discrete", "ppo_continuous", "dqn_normalised", "ppo_continuous_normalised"]
TOLERANCE = 1e-5


def load_onnx_utils() -> Any:
    """The user's sagemaker_rl/onnx_utils.py of the shipped-launcher fixture."""
    path = FIXTURES / "shipped_launcher_src" / "sagemaker_rl" / "onnx_utils.py"
    spec = importlib.util.spec_from_file_location("fixture_onnx_utils", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fixed_checkpoint_onnx(run: Any, folder: Path) -> Path:
    """The exported checkpoint's own .onnx, copied and rewritten by the notebooks' fix_onnx_model."""
    name = (run.checkpoint_dir / STATE_FILE).read_text().strip()
    path = Path(shutil.copy(run.checkpoint_dir / f"{name}.onnx", folder / "model.onnx"))
    load_onnx_utils().fix_onnx_model(str(path))
    return path


@pytest.fixture(scope="module")
def observations(trained_runs) -> dict[str, np.ndarray]:
    """1,000 observations per run, five times wider than the environment's usual values."""
    rng = np.random.default_rng(0)
    return {name: rng.normal(scale=5.0, size=(1000, *run.graph_manager.agent.spaces.state["observation"].shape))
            .astype(np.float32) for name, run in trained_runs.items()}


FORMS: dict[str, Callable[[Any, Path, np.ndarray], list[np.ndarray]]] = {
    "onnxruntime": lambda run, tmp, obs: onnxruntime_outputs(run.model_dir / "model.onnx", obs),
    "mxnet-import": lambda run, tmp, obs: mxnet_import_outputs(run.model_dir / "model.onnx", obs),
    "rlframe-symbol": lambda run, tmp, obs: symbol_outputs(run.model_dir, obs),
    "checkpoint-onnx-fixed-onnxruntime": lambda run, tmp, obs: onnxruntime_outputs(fixed_checkpoint_onnx(run, tmp), obs),
    "checkpoint-onnx-fixed-mxnet-import": lambda run, tmp, obs: mxnet_import_outputs(fixed_checkpoint_onnx(run, tmp), obs),
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("name", RUNS)
def test_every_exported_form_computes_the_agents_outputs_and_actions(trained_runs, observations, tmp_path, name, form):
    run, obs = trained_runs[name], observations[name]
    agent = run.graph_manager.agent
    expected = agent.policy_outputs(obs)
    got = FORMS[form](run, tmp_path, obs)
    assert [o.shape for o in got] == [e.shape for e in expected]
    for output, want, have in zip(json.loads((run.model_dir / "rlframe-model.json").read_text())["outputs"], expected, got):
        assert np.abs(have - want).max() <= TOLERANCE, f"{output['name']}: max difference {np.abs(have - want).max():g}"
    actions = agent.act(obs, RunPhase.TEST)
    if agent.spaces.action.__class__.__name__ == "DiscreteActionSpace":
        np.testing.assert_array_equal(got[-1].argmax(axis=1), actions)  # Q-values or probabilities are last
    else:
        assert np.abs(got[1] - actions).max() <= TOLERANCE  # the mean
