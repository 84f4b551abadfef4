"""Corrupt checkpoints get a one-line error naming the file; the CSV logger resumes without duplicates."""
import shutil

import pandas as pd
import pytest

from rlframe.cli import train_main
from rlframe.outputs.csv_logger import CsvLogger

SHORT = "improve_steps=TrainingSteps(150);heatup_steps=EnvironmentSteps(50);evaluation_steps=EnvironmentEpisodes(0)"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    experiment = tmp_path_factory.mktemp("run") / "exp"
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(experiment), "-cp", SHORT]) == 0
    return experiment / "checkpoint"


@pytest.mark.parametrize("suffix, damage, message", [
    (".main_level.agent.main.online", b"not a parameter file", "could not be loaded"),
    (".main_level.agent.state.npz", b"PK\x03\x04 truncated zip", "is corrupt or unreadable"),
    (".state.json", b"{not json", "is corrupt"),
])
def test_a_corrupt_checkpoint_file_is_named(checkpoint, tmp_path, capsys, suffix, damage, message):
    copy = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, copy)
    name = (copy / ".coach_checkpoint").read_text().strip()
    (copy / f"{name}{suffix}").write_bytes(damage)
    code = train_main(["-p", "preset-cartpole-dqn", "-crd", str(copy), "--evaluate", "10", "-ep", str(tmp_path / "eval")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert message in err[0] and name in err[0]


def test_csv_resume_drops_rows_after_the_checkpoint_and_keeps_the_file_whole(tmp_path):
    path = str(tmp_path / "log.csv")
    logger = CsvLogger(path, "Episode #", ["Loss/Mean"], flush_every=2)
    for episode in range(1, 6):
        logger.add_row({"Episode #": episode, "Training Reward": float(episode), "Loss/Mean": 0.5})
    logger.flush()
    resumed = CsvLogger(path, "Episode #", ["Loss/Mean"], flush_every=2)
    resumed.resume(3)
    resumed.add_row({"Episode #": 4, "Training Reward": 40.0})
    resumed.flush()
    frame = pd.read_csv(path)
    assert frame["Episode #"].tolist() == [1, 2, 3, 4]
    assert frame["Training Reward"].tolist() == [1.0, 2.0, 3.0, 40.0]
    assert pd.isna(frame["Loss/Mean"].iloc[-1])


def test_csv_rows_are_written_as_given_and_flushes_are_throttled(tmp_path, monkeypatch):
    import rlframe.outputs.csv_logger as csv_logger

    path = tmp_path / "log.csv"
    clock = [100.0]
    monkeypatch.setattr(csv_logger.time, "monotonic", lambda: clock[0])
    logger = CsvLogger(str(path), "Episode #", ["Loss/Mean"], flush_every=1)
    logger.add_row({"Episode #": 1, "In Heatup": 1, "Training Reward": 12.5})
    assert not path.exists()  # due, but the last flush (construction) was under MIN_SECONDS_BETWEEN_FLUSHES ago
    clock[0] += csv_logger.MIN_SECONDS_BETWEEN_FLUSHES
    logger.add_row({"Episode #": 2, "In Heatup": 0, "Loss/Mean": 0.25})
    lines = path.read_text().splitlines()
    assert lines[0].split(",")[:4] == ["Episode #", "Training Iter", "Epoch", "In Heatup"]
    rows = [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    assert [(r["Episode #"], r["In Heatup"], r["Training Reward"], r["Loss/Mean"]) for r in rows] == [
        ("1", "1", "12.5", ""), ("2", "0", "", "0.25")]
