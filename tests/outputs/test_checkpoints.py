"""Damaged or missing checkpoint files get a one-line error naming the file and what is wrong; the CSV logger
resumes without duplicates; a sync folder mirrors every checkpoint, and a run resumed from it in a new experiment
folder continues the CSV saved with the checkpoint."""
import filecmp
import json
import os
import re
import shutil

import pandas as pd
import pytest

from rlframe.cli import prepare, train_main
from rlframe.outputs.checkpoints import checkpoint_id
from rlframe.outputs.csv_logger import CsvLogger

pytestmark = pytest.mark.integration

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
    (".csv", _truncate, "(the copy of the run's CSV) is 100 bytes"),
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


def test_a_checkpoint_carries_the_csv_up_to_itself(checkpoint):
    name = (checkpoint / ".coach_checkpoint").read_text().strip()
    state = json.loads((checkpoint / f"{name}.state.json").read_text())
    assert f"{name}.csv" in state["files"]
    assert (checkpoint / f"{name}.csv").read_text() == (checkpoint.parent / CSV_NAME).read_text()


def _sync_run(experiment, sync, improve_steps, *extra):
    """A DQN run whose checkpoints are also copied into ``sync`` (SageMaker's managed checkpoint folder)."""
    graph_manager, task, _ = prepare(["-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(experiment), "-s", "0.05",
                                      "--keep-checkpoints", "2", "-cp", f"{SHORT};improve_steps=TrainingSteps({improve_steps})",
                                      *extra])
    task.checkpoint_sync_dir = str(sync)
    graph_manager.run(task)
    return graph_manager


def _checkpoint_files(directory):
    return sorted(f for f in os.listdir(directory) if not f.startswith(".tmp-"))


def test_the_sync_folder_mirrors_each_checkpoint_and_a_run_on_a_fresh_machine_continues_from_it(tmp_path, capsys):
    sync = tmp_path / "checkpoints" / "algo-1"
    _sync_run(tmp_path / "first", sync, 300)
    saved = re.findall(r"^Checkpoint> Saving in path=\['.*/([^/]+\.ckpt)\.main_level\.agent'\]$", capsys.readouterr().out,
                       re.MULTILINE)
    assert len(saved) >= 3, "retention was not exercised"
    # The same files (same names, same bytes), the same retention, the marker naming the newest.
    assert _checkpoint_files(sync) == _checkpoint_files(tmp_path / "first" / "checkpoint")
    assert (sync / ".coach_checkpoint").read_text().strip() == saved[-1]
    assert len([f for f in os.listdir(sync) if f.endswith(".state.json")]) == 2
    for name in os.listdir(sync):
        assert filecmp.cmp(sync / name, tmp_path / "first" / "checkpoint" / name, shallow=False), name
    first = pd.read_csv(tmp_path / "first" / CSV_NAME)

    # A spot restart: a new experiment folder (no CSV), restored from the synced folder.
    _sync_run(tmp_path / "second", sync, 450, "-crd", str(sync))
    out = capsys.readouterr().out
    assert f"Checkpoint> Restored {saved[-1]} from {sync}" in out
    second = pd.read_csv(tmp_path / "second" / CSV_NAME)
    pd.testing.assert_frame_equal(second.iloc[:len(first)], first, check_dtype=False)  # the first run's rows
    episodes = second[second["Evaluation Reward"].isna()]["Episode #"].tolist()
    assert episodes == list(range(1, len(episodes) + 1)) and len(episodes) > len(first), "no episode twice or missing"
    latest = (sync / ".coach_checkpoint").read_text().strip()
    assert checkpoint_id(latest) > checkpoint_id(saved[-1]) and latest == (tmp_path / "second" / "checkpoint" / ".coach_checkpoint").read_text().strip()
    assert _checkpoint_files(sync) == _checkpoint_files(tmp_path / "second" / "checkpoint")
