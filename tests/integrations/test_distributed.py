"""Rollout workers on a local Ray instance (``--num-workers N``): reproducible PPO rounds, per-worker outputs, a worker
killed by its pid, resuming with another number of workers, a user's environment module on the workers, and the
one-line errors. The learning tests (PPO and DQN with 2 workers) are in tests/test_golden.py."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rlframe.cli import train_main

pytestmark = pytest.mark.integration

CSV = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
SHORT_PPO = ["-p", "CartPole_ClippedPPO", "--progress", "lines", "-cp",
             "improve_steps=TrainingSteps(2500);agent_params.algorithm.num_consecutive_playing_steps=EnvironmentSteps(1024);"
             "agent_params.algorithm.optimization_epochs=2"]


def _worker_csv(folder: Path, worker: int) -> Path:
    return folder / CSV.replace("worker_0", f"worker_{worker}")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """Two runs with the same seed and 2 workers (the second also asks for GIFs, which changes nothing but a line);
    returns their folders and outputs."""
    root = tmp_path_factory.mktemp("two_runs")
    outputs = []
    for name, gifs in (("a", []), ("b", ["-dg"])):
        command = [sys.executable, "-m", "rlframe.cli", *SHORT_PPO, *gifs, "-n", "2", "--seed", "4", "-ep",
                   str(root / name)]
        result = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(result.stdout)
    return root / "a", root / "b", outputs


def test_the_same_seed_and_worker_count_give_the_same_csv_and_each_worker_writes_its_own(two_runs):
    a, b, outputs = two_runs
    first, second = (pd.read_csv(folder / CSV).drop(columns=["Wall-Clock Time"]) for folder in (a, b))
    pd.testing.assert_frame_equal(first, second)
    assert first["Training Reward"].notna().sum() > 10 and first["Evaluation Reward"].notna().any()
    assert re.search(r"^Workers> 2 rollout workers on 1 node: worker 1 pid \d+ on .*, worker 2 pid \d+", outputs[0], re.M)
    assert "Workers> no GIFs: they are recorded when training in one process" in outputs[1]
    training = first[first["Training Reward"].notna()].set_index("Episode #")
    for worker in (1, 2):
        assert f"Training> Name=main_level/agent, Worker={worker}, " in outputs[0]
        rows = pd.read_csv(_worker_csv(a, worker))
        assert len(rows) > 3 and rows["Training Reward"].notna().all()
        # a worker's rows are the learner's rows of the episodes it played
        assert training.loc[rows["Episode #"], "Training Reward"].tolist() == rows["Training Reward"].tolist()
    assert sum(len(pd.read_csv(_worker_csv(a, w))) for w in (1, 2)) == len(training)


def test_a_run_resumes_from_its_checkpoint_with_another_number_of_workers(two_runs, tmp_path, capsys):
    experiment = tmp_path / "exp"
    shutil.copytree(two_runs[0], experiment)
    before = pd.read_csv(experiment / CSV)
    resumed = [*SHORT_PPO[:-1], SHORT_PPO[-1].replace("TrainingSteps(2500)", "TrainingSteps(4000)")]
    assert train_main([*resumed, "-n", "3", "--seed", "1", "-crd", str(experiment / "checkpoint")]) == 0
    out = capsys.readouterr().out
    assert "Workers> 3 rollout workers" in out and "Checkpoint> Restored 0_Step-" in out
    after = pd.read_csv(experiment / CSV)
    training = after[after["Training Reward"].notna()]
    assert training["Episode #"].tolist() == list(range(1, len(training) + 1))  # no episode counted twice
    assert after["Total steps"].max() > before["Total steps"].max()
    assert after.iloc[:len(before)]["Training Reward"].equals(before["Training Reward"])  # continued, not rewritten
    assert "Worker=3," in out and len(pd.read_csv(_worker_csv(experiment, 3))) > 0


def _wait_for(pattern: str, log: Path, process: subprocess.Popen, timeout: float = 240.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended with {process.returncode}:\n{log.read_text()[-3000:]}"
        match = re.search(pattern, log.read_text(), re.M)
        if match:
            return match
        time.sleep(0.1)
    raise AssertionError(f"no line matching {pattern!r} in {log} within {timeout} s")


def test_a_worker_killed_by_its_pid_is_replaced_and_the_run_completes(tmp_path):
    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rlframe.cli", *SHORT_PPO[:-1],
             SHORT_PPO[-1].replace("TrainingSteps(2500)", "TrainingSteps(6000)"), "-n", "2", "--seed", "2",
             "-ep", str(tmp_path / "exp")], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        pid = int(_wait_for(r"worker 1 pid (\d+)", log, process).group(1))
        _wait_for(r"^Training> .*Worker=1, Episode=10,", log, process)
        os.kill(pid, signal.SIGKILL)
        assert process.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert re.search(rf"^Workers> worker 1 was lost \(pid {pid} on \S+ died; Ray restarted it as pid (?!{pid}\b)\d+ ",
                     text, re.M), text[-3000:]
    evaluations = pd.read_csv(tmp_path / "exp" / CSV)["Evaluation Reward"].dropna()
    assert len(evaluations) >= 2  # evaluations went on after the loss
    assert re.search(r"^Training> .*Worker=1, ", text[text.index("was lost"):], re.M)  # the new worker 1 plays


USER_ENV = '''\
import gymnasium as gym


class FlakyCartPole(gym.Wrapper):
    """CartPole that fails after {fail_after} steps (the workers must import this module beside the preset)."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps > {fail_after}:
            raise RuntimeError("the simulator lost its licence server")
        return self.env.step(action)
'''


def test_a_users_environment_module_beside_the_preset_runs_on_the_workers_and_its_error_is_one_line(tmp_path,
                                                                                                  write_preset):
    folder = tmp_path / "src"
    (folder / "flaky_env.py").parent.mkdir()
    (folder / "flaky_env.py").write_text(USER_ENV.format(fail_after=150))
    preset = write_preset("my_preset", folder=folder)
    result = subprocess.run([sys.executable, "-m", "rlframe.cli", "-p", str(preset), "-lvl", "flaky_env:FlakyCartPole",
                             "-n", "2", "--num-envs", "1", "--seed", "0", "-ep", str(folder / "exp"), "--progress",
                             "lines", "-cp", "weight_sync_steps=EnvironmentSteps(64)"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    # DQN streams: requests of 16 steps (one copy each), the policy every 64 steps as configured
    assert "Workers> each plays 16 steps a request; the policy goes to them every 64 environment steps" in result.stdout
    # the workers played their first episodes (the module imported there), then a worker's copy failed
    assert re.search(r"^Heatup> .*Worker=1, Episode=1,", result.stdout, re.M), result.stdout[-2000:]
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[-1]] and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert re.fullmatch(r"error: Rollout worker [12] failed: RuntimeError: the simulator lost its licence server",
                        errors[0]), errors


@pytest.mark.parametrize(("args", "message"), [
    (["-n", "2", "-cp", "weight_sync_steps=TrainingSteps(5)"],
     "error: weight_sync_steps = TrainingSteps(5): use a step unit, one of EnvironmentSteps, for example "
     "EnvironmentSteps(1000)."),
    (["-n", "0"], "error: num_workers = 0 (-n/--num-workers): use 1 to act in this process, or 2 or more for "
                  "rollout workers on Ray."),
    (["--ray-address", "10.0.0.1:6379"], "error: --ray-address 10.0.0.1:6379 without --num-workers: a run in one "
                                         "process uses no Ray cluster; add --num-workers N (2 or more)."),
    (["-p", "CartPole_DDQN_BatchRL", "-n", "2"], "error: num_workers = 2: rollout workers act in online training "
                                                 "(BasicRLGraphManager); BatchRLGraphManager trains in one process, use 1."),
])
def test_a_wrong_worker_setting_is_one_line(args, message, tmp_path, capsys):
    preset = [] if "-p" in args else ["-p", "CartPole_ClippedPPO"]
    code = train_main([*preset, *args, "-ep", str(tmp_path / "exp")])
    err = capsys.readouterr().err
    assert code != 0 and err.strip() == message
    assert not (tmp_path / "exp" / CSV).exists()


def test_without_ray_installed_more_workers_is_one_line_and_one_worker_never_imports_ray(tmp_path):
    program = ("import sys; sys.modules['ray'] = None\n"
               "from rlframe.cli import train_main\n"
               "sys.exit(train_main(sys.argv[1:]))")
    base = [sys.executable, "-c", program, "-p", "CartPole_ClippedPPO", "-ep", str(tmp_path / "exp"), "--progress",
            "lines", "-cp", "improve_steps=TrainingSteps(300)"]
    result = subprocess.run([*base, "-n", "2"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip().startswith("error: num_workers = 2 needs Ray, which is not installed (")
    assert result.stderr.strip().endswith("pip install 'rlframe[distributed]'.")
    result = subprocess.run(base, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]  # importing ray would have failed


def test_losing_a_host_leaves_the_run_going_with_the_other_hosts_workers(tmp_path):
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    # a CPU per node, so each of the 2 workers lands on its own node and the lost one has nowhere else to go
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        other = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        log = tmp_path / "out.txt"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "rlframe.cli", *SHORT_PPO[:-1],
                 SHORT_PPO[-1].replace("TrainingSteps(2500)", "TrainingSteps(5000)"), "-n", "2", "--seed", "3",
                 "--ray-address", cluster.address, "-ep", str(tmp_path / "exp")],
                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            _wait_for(r"^Workers> 2 rollout workers on 2 nodes: ", log, process)
            _wait_for(r"^Training> .*Episode=30,", log, process)
            cluster.remove_node(other)
            assert process.wait(timeout=300) == 0, log.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
    finally:
        cluster.shutdown()
    text = log.read_text()
    lost = re.search(r"^Workers> worker ([12]) was lost \(.*the cluster has 1 CPUs for 2 workers\); dropped what it "
                     r"was playing; the run goes on with 1 workers \(1 lost so far\)$", text, re.M)
    assert lost, text[-3000:]
    after = text[lost.end():]
    survivor = 3 - int(lost.group(1))
    assert re.search(rf"^Training> .*Worker={survivor}, ", after, re.M)
    assert not re.search(rf"^Training> .*Worker={lost.group(1)}, ", after, re.M)
    assert "Checkpoint> Saving" in after


def test_more_workers_than_the_clusters_cpus_is_one_line(tmp_path, capsys):
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        code = train_main([*SHORT_PPO, "-n", "2", "--ray-address", cluster.address, "-ep", str(tmp_path / "exp")])
    finally:
        cluster.shutdown()
    err = capsys.readouterr().err
    assert code == 2 and re.fullmatch(r"error: --num-workers 2: the Ray cluster at \S+ has 1 CPUs and each worker "
                                      r"takes one; add nodes, or train in one process \(-n 1\)\.", err.strip()), err
