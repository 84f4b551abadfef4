"""Acceptance, the server's part: for every kind of policy, with and without observation normalisation, what
``rlframe-serve`` answers over HTTP for 1,000 random observations equals the agent's own outputs (max abs difference
1e-5), its actions are the agent's ``act(obs, RunPhase.TEST)``, and its distribution is the policy's (softmax(Q / T)
for the DQN family)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlframe.core_types import RunPhase
from rlframe.integrations.serving.model import SLICE_ROWS, PolicyModel

from serving_processes import Server

pytestmark = pytest.mark.integration

RUNS = ["dqn", "ddqn_bcq", "ppo_discrete", "ppo_continuous", "dqn_normalised", "ppo_continuous_normalised"]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def servers(exported_model_dirs: dict[str, Path], start_server) -> dict[str, Server]:
    started = {name: start_server(exported_model_dirs[name], "--workers", "1") for name in RUNS}
    return {name: server.wait() for name, server in started.items()}


@pytest.mark.parametrize("content_type", ["application/json", "application/jsonlines"])
@pytest.mark.parametrize("name", RUNS)
def test_the_server_answers_what_the_agent_computes(servers, trained_runs, name, content_type):
    agent = trained_runs[name].graph_manager.agent
    metadata = json.loads((trained_runs[name].model_dir / "rlframe-model.json").read_text())
    # Five times wider than the environment's usual values, so every clip (normaliser, embedder) is hit.
    observations = np.random.default_rng(0).normal(scale=5.0, size=(1000, *metadata["observation"]["shape"]))
    observations = observations.astype(np.float32)
    if content_type == "application/json":
        body = json.dumps(observations.tolist())
    else:
        body = "".join(json.dumps(row) + "\n" for row in observations.tolist())
    status, _, answer = servers[name].invoke(body, content_type, accept="application/json")
    assert status == 200
    document = json.loads(answer)
    expected = agent.policy_outputs(observations)
    for output, want in zip(metadata["outputs"], expected):
        have = np.float32(document["outputs"][output["name"]])
        assert have.shape == want.shape and np.abs(have - want).max() <= TOLERANCE, output["name"]
    actions = agent.act(observations, RunPhase.TEST)
    if metadata["action"]["type"] == "discrete":
        np.testing.assert_array_equal(np.asarray(document["actions"]), actions)
    else:  # the mean, as the model computes it
        assert np.abs(np.float32(document["actions"]) - actions).max() <= TOLERANCE
    distribution = metadata["distribution"]
    predictions = np.float32(document["predictions"])
    if distribution["kind"] == "softmax":
        q = expected[0].astype(np.float64) / distribution["temperature"]
        softmax = np.exp(q - q.max(axis=1, keepdims=True))
        softmax /= softmax.sum(axis=1, keepdims=True)
        assert np.abs(predictions - softmax).max() <= TOLERANCE
    else:
        position = [o["name"] for o in metadata["outputs"]].index(distribution["output"])
        assert np.abs(predictions - expected[position]).max() <= TOLERANCE


@pytest.mark.parametrize("name", RUNS)
def test_an_observations_outputs_are_the_same_bits_in_any_batch(exported_model_dirs, name):
    """What makes SingleRecord and MultiRecord transforms write the same bytes: a large batch (run in slices),
    small batches and observations alone give each observation bit-identical outputs."""
    model = PolicyModel(exported_model_dirs[name])
    rows = 2 * SLICE_ROWS + SLICE_ROWS // 2 + 1  # two slices and a remainder
    observations = np.random.default_rng(1).normal(size=(rows, *model.metadata.observation_shape)).astype(np.float32)
    whole = model.forward(observations)
    bounds = [0, 1, 3, 4, 1000, SLICE_ROWS + 7, rows - 1, rows]  # batches of 1, 2, 1, ..., 1
    pieces = [model.forward(observations[start:stop]) for start, stop in zip(bounds, bounds[1:])]
    for position, output in enumerate(whole):
        np.testing.assert_array_equal(output, np.concatenate([piece[position] for piece in pieces]))
