"""Acceptance: rlframe-export of a dueling DDQN checkpoint gives models that compute the agent's Q-values.

The dueling head describes itself as plain Dense and activation layers (its combination folded into them), so the
exporters need nothing of their own for it; this checks the folded form through every exported form, as
test_export_parity.py does for the other kinds.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from rlframe.core_types import RunPhase
from rlframe.export.cli import main as export_main
from rlframe.networks.dueling import DuelingQOutput
from rlframe.parameters import TaskParameters
from rlframe.presets import load_preset

from exported_models import mxnet_import_outputs, onnxruntime_outputs, symbol_outputs, write_preset

pytestmark = pytest.mark.integration

TOLERANCE = 1e-5  # as test_export_parity.py


def test_exported_dueling_ddqn_computes_the_agents_q_values_and_actions(tmp_path, capsys):
    # The export tests' tiny DQN preset (input offset, rescaling and clipping, a learned normaliser), made a DDQN
    # with the dueling head.
    preset = write_preset("dqn", tmp_path, normalise=True)
    text = preset.read_text(encoding="utf-8").replace("DQNAgentParameters()", "DDQNAgentParameters()").replace(
        "graph_manager = ", "main.heads_parameters = [DuelingQHeadParameters(activation_function='tanh')]\ngraph_manager = ")
    preset.write_text("from rl_coach.agents.ddqn_agent import DDQNAgentParameters\n"
                      "from rl_coach.architectures.head_parameters import DuelingQHeadParameters\n" + text, encoding="utf-8")
    graph_manager = load_preset(str(preset))
    experiment = tmp_path / "experiment"
    graph_manager.run(TaskParameters(experiment_path=str(experiment), seed=0))
    assert export_main([str(experiment / "checkpoint"), "-o", str(tmp_path / "model")]) == 0, capsys.readouterr().out
    model = tmp_path / "model"

    agent = graph_manager.agent
    assert isinstance(agent.network.online.output, DuelingQOutput)
    obs = np.random.default_rng(0).normal(scale=5.0, size=(1000, 4)).astype(np.float32)
    expected, = agent.policy_outputs(obs)
    assert json.loads((model / "rlframe-model.json").read_text())["outputs"][0]["name"] == "q_values"
    for form, got in [("onnxruntime", onnxruntime_outputs(model / "model.onnx", obs)),
                      ("mxnet-import", mxnet_import_outputs(model / "model.onnx", obs)),
                      ("rlframe-symbol", symbol_outputs(model, obs))]:
        assert [o.shape for o in got] == [expected.shape], form
        assert np.abs(got[0] - expected).max() <= TOLERANCE, f"{form}: max difference {np.abs(got[0] - expected).max():g}"
        np.testing.assert_array_equal(got[0].argmax(axis=1), agent.act(obs, RunPhase.TEST))
