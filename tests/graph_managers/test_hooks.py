"""Hooks follow real runs: the events arrive in order, with the numbers the run's own CSV and checkpoints show."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pandas as pd
import pytest

from rlframe.cli import train_main
from rlframe.core_types import RunPhase
from rlframe.graph_managers.hooks import EpisodeEnd, Epoch, Evaluation, RunHooks, TrainingStart, Update
from rlframe.outputs.checkpoints import CheckpointFiles
from rlframe.outputs.csv_logger import csv_file_name

pytestmark = pytest.mark.integration

SHORT = "improve_steps=TrainingSteps(400);heatup_steps=EnvironmentSteps(200);" \
        "steps_between_evaluation_periods=EnvironmentSteps(200);evaluation_steps=EnvironmentEpisodes(2)"


RUN_END = "run end"


class Recorder(RunHooks):
    def __init__(self) -> None:
        self.events: list[object] = []

    def on_training_start(self, event: TrainingStart) -> None:
        self.events.append(event)

    def on_run_end(self) -> None:
        self.events.append(RUN_END)

    def on_episode_end(self, event: EpisodeEnd) -> None:
        self.events.append(event)

    def on_update(self, event: Update) -> None:
        self.events.append(event)

    def on_evaluation(self, event: Evaluation) -> None:
        self.events.append(event)

    def on_epoch(self, event: Epoch) -> None:
        self.events.append(event)

    def on_checkpoint(self, files: CheckpointFiles) -> None:
        self.events.append(files)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def test_an_online_run_reports_its_episodes_updates_evaluations_and_checkpoints(tmp_path: Path):
    recorder = Recorder()
    experiment = tmp_path / "exp"
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "3", "-ep", str(experiment), "-cp", SHORT,
                       "--progress", "lines"], hooks=[recorder]) == 0
    assert recorder.events[0] == TrainingStart(400, "step", 0)
    updates = recorder.of(Update)
    assert sum(u.env_steps for u in updates) == 400  # improve_steps of training steps, one event per iteration
    assert [u.done for u in updates] == list(itertools.accumulate(u.env_steps for u in updates))  # improve_steps' unit
    assert updates[-1].training_iteration == sum(u.updates for u in updates) > 0
    assert [u.total_steps for u in updates] == sorted(u.total_steps for u in updates)
    assert all(u.acting_seconds > 0 for u in updates)  # where each iteration's time went
    assert all(u.learning_seconds > 0 for u in updates if u.updates) and sum(u.learning_seconds for u in updates) > 0

    frame = pd.read_csv(experiment / "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv")
    evaluations = recorder.of(Evaluation)
    assert [e.mean_reward for e in evaluations] == pytest.approx(frame["Evaluation Reward"].dropna().tolist())
    assert all(e.episodes == 2 and e.seconds > 0 for e in evaluations)
    played = [e for e in recorder.of(EpisodeEnd) if e.phase != RunPhase.TEST]
    rows = frame[frame["Evaluation Reward"].isna()]
    assert [e.number for e in played] == rows["Episode #"].tolist()
    assert [e.total_reward for e in played if e.phase == RunPhase.TRAIN] == pytest.approx(rows["Training Reward"].dropna().tolist())
    assert len([e for e in recorder.of(EpisodeEnd) if e.phase == RunPhase.TEST]) == 4

    checkpoints = recorder.of(CheckpointFiles)
    assert checkpoints and recorder.events[-2] is checkpoints[-1]  # the final checkpoint, then the run's end
    assert recorder.events[-1] == RUN_END
    assert (experiment / "checkpoint" / ".coach_checkpoint").read_text().strip() == checkpoints[-1].name


def test_a_batch_run_reports_each_epoch(tmp_path: Path, dataset: Path):
    recorder = Recorder()
    assert train_main(["-p", "preset-cartpole-ddqnbcq", "--seed", "0", "-ep", str(tmp_path / "run"), "--progress",
                       "lines", "-cp", "reward_model_num_epochs=2", "--improve_steps", "3"], hooks=[recorder]) == 0
    assert recorder.events[0] == TrainingStart(3, "epoch", 0) and recorder.events[-1] == RUN_END
    epochs = recorder.of(Epoch)
    frame = pd.read_csv(tmp_path / "run" / csv_file_name("batch_rl_graph"))
    assert [e.epoch for e in epochs] == frame["Epoch"].tolist() == [1, 2, 3]
    assert [e.row["Training Iter"] for e in epochs] == frame["Training Iter"].tolist()
    assert all(0 < e.seconds <= e.elapsed for e in epochs)
    assert all(e.updates > 0 and len(e.training_split) == e.row["ER #Transitions"] for e in epochs)
    assert len(recorder.of(CheckpointFiles)) == 3  # one per epoch


def test_the_progress_bar_is_a_hook_that_stays_below_the_log_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "3", "-ep", str(tmp_path / "exp"), "-cp", SHORT,
                       "--progress", "bar"]) == 0
    out = capsys.readouterr().out
    assert "400/400" in out  # the bar counted improve_steps to the end
    # What a terminal shows of each line is what follows its last carriage return: the log lines whole, the bar
    # cleared out of their way.
    shown = [line.rsplit("\r", 1)[-1] for line in out.split("\n")]
    assert any(re.match(r"Training> Name=main_level/agent, Worker=0, Episode=\d+, Total reward=", line) for line in shown)
    assert any(line.startswith("Testing> ") for line in shown)
    capsys.readouterr()
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "3", "-ep", str(tmp_path / "lines"), "-cp", SHORT,
                       "--progress", "lines"]) == 0
    assert "400/400" not in capsys.readouterr().out
