"""Short real runs of preset-cartpole-dqn through the CLI: outputs, evaluation boundaries, determinism."""
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from rlframe.cli import train_main
from rlframe.outputs.csv_logger import FIXED_COLUMNS

pytestmark = pytest.mark.integration

CSV_NAME = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
SHORT = "improve_steps=TrainingSteps(400);heatup_steps=EnvironmentSteps(200);" \
        "steps_between_evaluation_periods=EnvironmentSteps(200);evaluation_steps=EnvironmentEpisodes(2)"


def _train(tmp_path: Path, name: str, *extra: str) -> Path:
    experiment = tmp_path / name
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "3", "-ep", str(experiment), "-cp", SHORT, *extra]) == 0
    return experiment


def test_run_writes_coach_csv_checkpoint_gifs_and_parameters(tmp_path, capsys):
    experiment = _train(tmp_path, "exp", "--dump-gifs")
    out = capsys.readouterr().out
    assert f"CSV: {experiment / CSV_NAME}" in out
    frame = pd.read_csv(experiment / CSV_NAME)
    signals = [f"{s}/{stat}" for s in ("Loss", "Learning Rate", "Grads (unclipped)", "Discounted Return", "Q")
               for stat in ("Mean", "Stdev", "Max", "Min")]
    assert list(frame.columns) == ["Episode #"] + [c for c in FIXED_COLUMNS if c != "Episode #"] + signals
    episodes = frame[frame["Evaluation Reward"].isna()]
    assert episodes["Episode #"].tolist() == list(range(1, len(episodes) + 1))
    assert episodes["In Heatup"].iloc[0] == 1 and episodes["In Heatup"].iloc[-1] == 0
    assert episodes.loc[episodes["In Heatup"] == 0, "Training Reward"].notna().all()
    assert episodes.loc[episodes["In Heatup"] == 1, "Training Reward"].isna().all()
    assert frame["Loss/Mean"].notna().any() and frame["Inverse Propensity Score"].isna().all()
    evaluations = frame[frame["Evaluation Reward"].notna()]
    assert len(evaluations) == 2 and evaluations["Training Reward"].isna().all()

    checkpoint = experiment / "checkpoint"
    latest = (checkpoint / ".coach_checkpoint").read_text().strip()
    assert latest.startswith("0_Step-") and latest.endswith(".ckpt")
    assert (checkpoint / f"{latest}.main_level.agent.main.online").is_file()
    state = json.loads((checkpoint / f"{latest}.state.json").read_text())
    assert state["graph"]["episodes"] == len(episodes)

    gifs = sorted((experiment / "gifs").glob("*_episode-*_score-*.gif"))
    assert gifs, "the default dump filters record the best evaluation episode"
    with Image.open(gifs[0]) as gif:
        assert gif.info["duration"] == 100  # milliseconds: 10 frames per second
    params = yaml.safe_load((experiment / "parameters.yaml").read_text())
    assert params["agent_params"]["network_wrappers"]["main"]["learning_rate"] == 0.00025
    assert params["improve_steps"] == "TrainingSteps(400)"


def test_training_episodes_survive_evaluation_boundaries(tmp_path):
    # One environment copy and an evaluation every 5 steps: every CartPole episode (>= 8 steps) spans an
    # evaluation. Coach abandoned the episode in progress there; rlframe must finish it.
    cp = ("improve_steps=TrainingSteps(300);heatup_steps=EnvironmentSteps(0);"
          "steps_between_evaluation_periods=EnvironmentSteps(5);evaluation_steps=EnvironmentEpisodes(1)")
    experiment = tmp_path / "exp"
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "0", "--num-envs", "1", "-ep", str(experiment), "-cp", cp]) == 0
    frame = pd.read_csv(experiment / CSV_NAME)
    training = frame.dropna(subset=["Training Reward"])
    assert len(training) >= 5
    # With one copy, the steps of the finished episodes add up to the step counter at each row.
    assert training["Episode Length"].cumsum().tolist() == training["Total steps"].tolist()


def test_same_seed_gives_identical_rows(tmp_path):
    first = pd.read_csv(_train(tmp_path, "a") / CSV_NAME).drop(columns=["Wall-Clock Time"])
    second = pd.read_csv(_train(tmp_path, "b") / CSV_NAME).drop(columns=["Wall-Clock Time"])
    pd.testing.assert_frame_equal(first, second)


def test_evaluate_only_restores_and_never_writes_into_the_restore_dir(tmp_path, capsys):
    experiment = _train(tmp_path, "exp")
    checkpoint = experiment / "checkpoint"
    before = {p.name: p.stat().st_mtime_ns for p in checkpoint.iterdir()}
    evaluation = tmp_path / "eval"
    assert train_main(["-p", "preset-cartpole-dqn", "-crd", str(checkpoint), "--evaluate", "300", "-ep", str(evaluation)]) == 0
    out = capsys.readouterr().out
    assert "Checkpoint> Restored 0_Step-" in out
    assert {p.name: p.stat().st_mtime_ns for p in checkpoint.iterdir()} == before
    rows = pd.read_csv(evaluation / CSV_NAME)
    assert rows["Evaluation Reward"].notna().all() and rows["Episode Length"].sum() >= 300
    assert not (evaluation / "checkpoint").exists()
