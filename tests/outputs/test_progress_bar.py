"""The progress bar hook draws what the events say: resumed position, count, episode, evaluation reward."""
from __future__ import annotations

import io

import pytest

from rlframe.graph_managers.hooks import Epoch, Evaluation, TrainingStart, Update
from rlframe.outputs.progress_bar import ProgressBar

pytestmark = pytest.mark.unit


def test_an_online_bar_resumes_where_the_run_was_and_shows_the_last_evaluation():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar.on_training_start(TrainingStart(10, "step", 4))
    bar.on_update(Update(env_steps=2, updates=1, total_steps=106, training_iteration=3, done=6, episodes=7,
                         last_evaluation_reward=None))
    bar.on_evaluation(Evaluation(mean_reward=12.5, success_rate=float("nan"), episodes=2, total_steps=106, seconds=0.1))
    bar.on_update(Update(2, 1, 108, 4, 8, 8, 12.5))
    bar.on_run_end()
    out = stream.getvalue()
    assert "4/10" in out and "8/10" in out
    assert "episode=8, evaluation_reward=12.50" in out


def test_a_batch_bar_counts_epochs_and_an_unbounded_one_has_no_total():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar.on_training_start(TrainingStart(None, "epoch", 0))
    for epoch in (1, 2):
        bar.on_epoch(Epoch(epoch, 10, {"Evaluation Reward": 20.0 * epoch}, 0.1, 0.2, None))
    bar.on_run_end()
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("2epoch [")  # a count without a total
    assert "evaluation_reward=40.00" in last
