"""Checkpoint retention: ``--keep-checkpoints K`` keeps the newest K complete checkpoints (0: all; default 5),
deleting an older one only once a newer one is complete; batch RL also keeps the best checkpoint by off-policy
evaluation, which restores once ``.coach_checkpoint`` names it. Only the newest checkpoint keeps the replay memory.

The first test watches the checkpoint directory of a real run from outside, as often as it can, so a moment
with one checkpoint too many would be seen.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlframe.cli import train_main

pytestmark = pytest.mark.integration

FILE = re.compile(r"\A(?P<name>(?P<id>[0-9]+)_Step-[0-9]+\.ckpt)\.")
BEST = re.compile(r"^Checkpoint> best by off-policy evaluation so far \((?P<estimate>[^)]*)\): (?P<name>\S+)$", re.MULTILINE)
MXNET_LOG = re.compile(r"^\[\d\d:\d\d:\d\d\] \.\./src/\S+:\d+: ")
DQN_SCHEDULE = "heatup_steps=EnvironmentSteps(100);evaluation_steps=EnvironmentEpisodes(1)"


def _checkpoint_id(name: str) -> int:
    return int(name.split("_", 1)[0])


def _names(files: list[str]) -> set[str]:
    """Checkpoint names among the ``<id>_Step-<n>.ckpt.*`` files."""
    return {m.group("name") for m in map(FILE.match, files) if m}


def _complete(files: list[str]) -> list[str]:
    """Names of the checkpoints whose ``<name>.state.json`` is there, oldest first."""
    names = [f[:-len(".state.json")] for f in files if f.endswith(".state.json") and FILE.match(f)]
    return sorted(names, key=_checkpoint_id)



def _batch_args(experiment: Path, dataset: Path, epochs: int, *extra: str) -> list[str]:
    return ["-p", "preset-cartpole-ddqnbcq", "--seed", "0", "-ep", str(experiment), "--progress", "lines",
            "--dataset", str(dataset), "-cp", "reward_model_num_epochs=2", "--improve_steps", str(epochs), *extra]


def _watch(command: list[str], checkpoint: Path, out_path: Path) -> tuple[int, int, int, list]:
    """Run ``command`` and look at ``checkpoint`` thousands of times a second until it ends; returns the number of
    looks, the most checkpoint names and the most complete checkpoints seen at once, and every look at which
    ``.coach_checkpoint`` named a checkpoint that was not complete."""
    marker = checkpoint / ".coach_checkpoint"
    with open(out_path, "w") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True)
    observations, most_names, most_complete, problems = 0, 0, 0, []
    try:
        while True:
            running = process.poll() is None
            try:
                # the marker first: the checkpoint it names is deleted only after `keep` newer ones are complete
                latest = marker.read_text().strip() if marker.exists() else None
                files = os.listdir(checkpoint)
            except FileNotFoundError:
                files, latest = [], None
            observations += 1
            most_names, most_complete = max(most_names, len(_names(files))), max(most_complete, len(_complete(files)))
            if latest is not None and f"{latest}.state.json" not in files:
                problems.append((".coach_checkpoint names a checkpoint that is not there", latest, sorted(files)))
            if not running:
                break
            time.sleep(0.0002)  # thousands of looks a second, leaving the run most of a core
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert observations >= 1000, f"only {observations} observations of the checkpoint directory"
    return observations, most_names, most_complete, problems


def test_a_run_never_holds_more_than_k_checkpoints_plus_the_one_being_written(tmp_path):
    keep = 3
    experiment = tmp_path / "exp"
    _, most_names, most_complete, problems = _watch(
        [sys.executable, "-m", "rlframe.cli", "-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(experiment),
         "-s", "0.05", "--keep-checkpoints", str(keep), "-cp", DQN_SCHEDULE + ";improve_steps=TrainingSteps(1500)"],
        experiment / "checkpoint", tmp_path / "run.out")
    assert not problems, problems[:3]
    assert keep <= most_names <= keep + 1 and most_complete <= keep + 1  # the newest K, and one being written
    assert len(_complete(os.listdir(experiment / "checkpoint"))) == keep


def test_batch_rl_never_holds_more_than_k_checkpoints_plus_the_one_being_written_and_the_best(dataset, tmp_path, capsys):
    keep, epochs = 3, 20
    experiment = tmp_path / "exp"
    checkpoint = experiment / "checkpoint"
    out_path = tmp_path / "run.out"
    _, most_names, most_complete, problems = _watch(
        [sys.executable, "-m", "rlframe.cli", *_batch_args(experiment, dataset, epochs, "--keep-checkpoints", str(keep))],
        checkpoint, out_path)
    assert not problems, problems[:3]
    assert most_names >= keep
    out = out_path.read_text()

    files = os.listdir(checkpoint)
    final = (checkpoint / ".coach_checkpoint").read_text().strip()
    assert final.startswith(f"{epochs - 1}_Step-{epochs}.ckpt")
    best_lines = BEST.findall(out)
    assert best_lines, out
    best = best_lines[-1][1]
    state = json.loads((checkpoint / f"{final}.state.json").read_text())
    assert state["graph"]["best_checkpoint"]["name"] == best
    newest = [f"{i}_Step-{i + 1}.ckpt" for i in range(epochs - keep, epochs)]
    assert _complete(files) == sorted(set(newest) | {best}, key=_checkpoint_id)
    assert _names(files) == set(newest) | {best}, "no file of a deleted checkpoint is left"
    assert most_names <= keep + 2 and most_complete <= keep + 2

    # The best checkpoint restores once .coach_checkpoint names it, as the error messages tell users to do.
    copy = tmp_path / "copy"
    shutil.copytree(checkpoint, copy / "checkpoint")
    (copy / "checkpoint" / ".coach_checkpoint").write_text(best + "\n")
    capsys.readouterr()
    assert train_main(["-p", "preset-cartpole-ddqnbcq-env", "-crd", str(copy / "checkpoint"), "--evaluate",
                       "-ep", str(tmp_path / "evaluation"), "-cp", "evaluation_steps=EnvironmentEpisodes(1)"]) == 0
    out = capsys.readouterr().out
    assert f"Checkpoint> Restored {best} from {copy / 'checkpoint'}" in out
    assert "## agent: Finished evaluation phase." in out


@pytest.mark.parametrize("flag, kept", [([], 5), (["--keep-checkpoints", "0"], 7), (["--keep-checkpoints", "2"], 2)],
                         ids=["default-5", "zero-keeps-all", "two"])
def test_keep_checkpoints_zero_keeps_all_and_the_default_keeps_five(dataset, tmp_path, capsys, flag, kept):
    epochs = 7
    experiment = tmp_path / "exp"
    assert train_main(_batch_args(experiment, dataset, epochs, *flag)) == 0
    best = BEST.findall(capsys.readouterr().out)[-1][1]
    files = os.listdir(experiment / "checkpoint")
    newest = {f"{i}_Step-{i + 1}.ckpt" for i in range(epochs - kept, epochs)}
    assert set(_complete(files)) == newest | {best}
    assert _names(files) == newest | {best}
    memories = [f for f in files if f.endswith(".memory.npz")]
    assert memories == [f"{epochs - 1}_Step-{epochs}.ckpt.main_level.agent.memory.npz"]


@pytest.mark.parametrize("args, flag", [
    (["-s", "0"], "(-s)"),
    (["-s", "-5"], "(-s)"),
    (["--keep-checkpoints", "-1"], "(--keep-checkpoints)"),
])
def test_bad_checkpoint_settings_are_one_line_errors(tmp_path, capsys, args, flag):
    experiment = tmp_path / "exp"
    code = train_main(["-p", "preset-cartpole-dqn", "-ep", str(experiment), "-cp", DQN_SCHEDULE, *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip() and not MXNET_LOG.match(line)]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert flag in lines[0] and repr(float(args[1]) if args[0] == "-s" else int(args[1])) in lines[0]
    assert not experiment.exists(), "a refused setting writes nothing"


def test_only_the_newest_checkpoint_keeps_the_replay_memory(tmp_path, capsys):
    experiment = tmp_path / "exp"
    assert train_main(["-p", "preset-cartpole-dqn", "--seed", "0", "-ep", str(experiment), "-s", "0.05",
                       "--keep-checkpoints", "3", "-cp", DQN_SCHEDULE + ";improve_steps=TrainingSteps(300)"]) == 0
    saved = re.findall(r"^Checkpoint> Saving in path=\['.*/([^/]+\.ckpt)\.main_level\.agent'\]$", capsys.readouterr().out,
                       re.MULTILINE)
    assert len(saved) >= 4, f"only {len(saved)} checkpoints: retention was not exercised"
    files = os.listdir(experiment / "checkpoint")
    latest = (experiment / "checkpoint" / ".coach_checkpoint").read_text().strip()
    assert latest == saved[-1]
    assert _complete(files) == saved[-3:]
    assert [f for f in files if f.endswith(".memory.npz")] == [f"{latest}.main_level.agent.memory.npz"]
    assert not [f for f in files if f.startswith(".tmp-")]
