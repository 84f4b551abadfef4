"""Clipped PPO through a run: its CSV signals, and its state through a checkpoint (normaliser, policy)."""
import numpy as np
import pandas as pd
import pytest

from rlframe.cli import prepare
from rlframe.core_types import RunPhase

pytestmark = pytest.mark.integration

SHORT = "improve_steps=TrainingSteps(2500);steps_between_evaluation_periods=EnvironmentSteps(100000)"


def test_normaliser_and_policy_round_trip_through_a_checkpoint(tmp_path):
    trained, task, _ = prepare(["-p", "CartPole_ClippedPPO", "--seed", "1", "-ep", str(tmp_path / "train"), "-cp", SHORT])
    trained.run(task)
    assert trained._agent.training_iteration >= 1
    columns = pd.read_csv(trained.csv_path).columns
    for signal in ("Entropy", "Advantages", "Values", "Value Loss", "Policy Loss", "Value Targets", "KL Divergence",
                   "Likelihood Ratio", "Clipped Likelihood Ratio"):
        assert f"{signal}/Mean" in columns and pd.read_csv(trained.csv_path)[f"{signal}/Mean"].notna().any()
    restored, task, _ = prepare(["-p", "CartPole_ClippedPPO", "-crd", str(tmp_path / "train" / "checkpoint"),
                                 "--evaluate", "10", "-ep", str(tmp_path / "eval")])
    restored.create_graph(task)
    try:
        probe = np.random.default_rng(0).normal(scale=[1.0, 2.0, 0.1, 1.5], size=(20, 4)).astype(np.float32)
        before = trained._agent.pre_network_filter.filter_observation(probe, update=False)
        after = restored._agent.pre_network_filter.filter_observation(probe, update=False)
        np.testing.assert_array_equal(before, after)
        assert not np.allclose(before, np.clip(probe, -5, 5)), "the normaliser must have learned statistics"
        np.testing.assert_array_equal(trained._agent.act(probe, RunPhase.TEST), restored._agent.act(probe, RunPhase.TEST))
    finally:
        restored.close()
