"""Damaged or missing checkpoint files get a one-line error naming the file and what is wrong; the CSV logger
resumes without duplicates."""
import json
import shutil

import pandas as pd
import pytest

from rlframe.cli import train_main
from rlframe.outputs.csv_logger import CsvLogger

SHORT = "improve_steps=TrainingSteps(150);heatup_steps=EnvironmentSteps(50);evaluation_steps=EnvironmentEpisodes(0)"
SHORT_RUN = ["-cp", "improve_steps=TrainingSteps(300);evaluation_steps=EnvironmentEpisodes(0)"]
CSV_NAME = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    experiment = tmp_path_factory.mktemp("run") / "exp"
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(experiment), "-cp", SHORT]) == 0
    return experiment / "checkpoint"


def _damage_copy(checkpoint, tmp_path):
    copy = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, copy)
    return copy, (copy / ".coach_checkpoint").read_text().strip()


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _flip_middle_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix, damage, message", [
    (".main_level.agent.main.online", _truncate, "(network parameters) is 100 bytes but was written with"),
    (".main_level.agent.main.online", _flip_middle_byte, "(network parameters) is damaged: its SHA-256 differs"),
    (".main_level.agent.main.target", _flip_middle_byte, "(target-network parameters) is damaged"),
    (".main_level.agent.state.npz", _truncate, "(the optimizer and filter state) is 100 bytes"),
    (".main_level.agent.memory.npz", _flip_middle_byte, "(the replay memory) is damaged"),
    (".main_level.agent.main.online", lambda p: p.unlink(), "(network parameters) is missing"),
    (".state.json", lambda p: p.write_bytes(b"{not json"), "is corrupt"),
])
def test_a_damaged_or_missing_checkpoint_file_is_named(checkpoint, tmp_path, capsys, suffix, damage, message):
    copy, name = _damage_copy(checkpoint, tmp_path)
    damage(copy / f"{name}{suffix}")
    code = train_main(["-p", "preset-cartpole-dqn", "-crd", str(copy), "-ep", str(tmp_path / "resume")] + SHORT_RUN)
    line = _one_error_line(capsys)
    assert code == 2 and message in line and name in line


def test_a_missing_replay_memory_is_an_error_unless_the_user_accepts_an_empty_one(checkpoint, tmp_path, capsys):
    copy, name = _damage_copy(checkpoint, tmp_path)
    (copy / f"{name}.main_level.agent.memory.npz").unlink()
    assert train_main(["-p", "preset-cartpole-dqn", "-crd", str(copy)] + SHORT_RUN) == 2
    line = _one_error_line(capsys)
    assert f"{name}.main_level.agent.memory.npz (the replay memory) is not there" in line and "--no-restore-memory" in line
    assert train_main(["-p", "preset-cartpole-dqn", "-crd", str(copy), "--no-restore-memory"] + SHORT_RUN) == 0
    frame = pd.read_csv(copy.parent / CSV_NAME)
    assert frame["ER #Transitions"].dropna().iloc[-1] < frame["Total steps"].dropna().iloc[-1]  # it started empty


def test_evaluating_needs_no_replay_memory(checkpoint, tmp_path, capsys):
    copy, name = _damage_copy(checkpoint, tmp_path)
    (copy / f"{name}.main_level.agent.memory.npz").unlink()
    assert train_main(["-p", "preset-cartpole-dqn", "-crd", str(copy), "--evaluate", "10", "-ep", str(tmp_path / "eval")]) == 0


def test_a_checkpoint_without_a_manifest_names_mxnets_reason_not_its_traceback(checkpoint, tmp_path, capsys):
    """Checkpoints written before manifests existed are still read; MXNet's error is reduced to its last line."""
    copy, name = _damage_copy(checkpoint, tmp_path)
    state = json.loads((copy / f"{name}.state.json").read_text())
    del state["files"]
    (copy / f"{name}.state.json").write_text(json.dumps(state))
    (copy / f"{name}.main_level.agent.main.online").write_bytes(b"not a parameter file")
    code = train_main(["-p", "preset-cartpole-dqn", "-crd", str(copy), "--evaluate", "10", "-ep", str(tmp_path / "eval")])
    line = _one_error_line(capsys)
    assert code == 2 and name in line and "Invalid NDArray file format" in line


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
