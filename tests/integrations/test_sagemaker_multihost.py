"""Multi-instance SageMaker jobs on Ray (rlframe/integrations/sagemaker/ray_cluster.py, contracts §4.4, item 16).

Unit tests: node addresses from the machine's real interfaces and real name resolution, and the retries over real
sockets. Integration tests: ``rlframe-sagemaker train`` processes, one per simulated host, each with its own
``/opt/ml`` tree, on this one machine. The hosts are ``localhost`` (the leader) and ``127.0.0.2``/``127.0.0.3``:
names that resolve without a DNS server and give each Ray node an address of its own (Ray tells the nodes of a
cluster apart by address), with a ``network_interface_name`` the machine lacks so each host's address is its name
resolved. Each host's Ray gets its own ``--temp-dir`` (``RLFRAME_RAY_TEMP_DIR``) and the head a free port.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from rlframe.integrations.sagemaker.entrypoint import JobError, StepFailed, StopForwarding
from rlframe.integrations.sagemaker.environment import TrainingEnvironment
from rlframe.integrations.sagemaker.paths import SageMakerPaths
from rlframe.integrations.sagemaker.ray_cluster import (
    interface_address,
    node_address,
    port_open,
    ray_port,
    resolve,
    retry,
    wait_seconds,
)

ENTRYPOINT = [sys.executable, "-m", "rlframe.integrations.sagemaker.entrypoint", "train"]
LEADER, OTHER, THIRD = "localhost", "127.0.0.2", "127.0.0.3"
NO_INTERFACE = "rlframe-none0"

#: the leader's script: joins the cluster, runs one task pinned to each node, writes where each ran into the model
CLUSTER_SCRIPT = """\
import json, os
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

ray.init(address=os.environ["RLFRAME_RAY_ADDRESS"], log_to_driver=False)
nodes = [node for node in ray.nodes() if node["Alive"]]
assert len(nodes) == 2, nodes


@ray.remote(num_cpus=1)
def where():
    return {"node": ray.get_runtime_context().get_node_id(), "host": os.environ["SM_CURRENT_HOST"],
            "path": os.environ["PYTHONPATH"].split(os.pathsep)[0], "cwd": os.getcwd()}


pinned = [where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote()
          for node in nodes]
seen = ray.get(pinned)
assert sorted(s["node"] for s in seen) == sorted(node["NodeID"] for node in nodes), seen
with open(os.path.join(os.environ["SM_MODEL_DIR"], "ok"), "w") as handle:
    json.dump(seen, handle)
"""


def _linux_loopback_aliases() -> bool:
    """Whether 127.0.0.2 and 127.0.0.3 are this machine's (Linux routes all of 127/8 to lo; macOS does not)."""
    for ip in (OTHER, THIRD):
        with socket.socket() as probe:
            try:
                probe.bind((ip, 0))
            except OSError:
                return False
    return sys.platform.startswith("linux")


needs_hosts = pytest.mark.skipif(not _linux_loopback_aliases(), reason="needs Linux and the 127.0.0.x loopback aliases")


def _environment(tmp_path: Path, current_host: str, hosts: list[str], interface: str = NO_INTERFACE) -> TrainingEnvironment:
    return TrainingEnvironment(
        paths=SageMakerPaths(tmp_path), hyperparameters={}, sagemaker_parameters={},
        resource_config={"current_host": current_host, "hosts": hosts, "network_interface_name": interface},
        input_data_config={}, user_entry_point=None, job_name=None, num_cpus=1, num_gpus=0)


# ---- unit: addresses and retries ------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux interfaces")
def test_interface_addresses_are_the_machines_own():
    assert interface_address("lo") == "127.0.0.1"
    assert interface_address(NO_INTERFACE) is None
    assert interface_address("") is None and interface_address("x" * 16) is None  # longer than Linux allows
    for _, name in socket.if_nameindex():
        ip = interface_address(name)
        if ip is not None:  # an address of this machine: one can listen on it
            with socket.socket() as probe:
                probe.bind((ip, 0))


@pytest.mark.unit
@needs_hosts
def test_the_node_address_is_the_interfaces_else_the_host_name_resolved(tmp_path):
    assert node_address(_environment(tmp_path, OTHER, [LEADER, OTHER], interface="lo"), 1) == "127.0.0.1"
    assert node_address(_environment(tmp_path, OTHER, [LEADER, OTHER]), 1) == OTHER
    assert node_address(_environment(tmp_path, LEADER, [LEADER, OTHER]), 1) == "127.0.0.1"


@pytest.mark.unit
def test_a_host_name_that_never_resolves_fails_after_the_wait_in_one_line():
    started = time.monotonic()
    with pytest.raises(StepFailed) as raised:
        resolve("algo-9.invalid", 0.5)
    assert 0.5 <= time.monotonic() - started < 10
    assert raised.value.reason == ("Host algo-9.invalid of resourceconfig.json did not resolve to an address within "
                                   "0.5 s; the job's hosts must reach one another by these names.")
    assert raised.value.exit_code == 1


@pytest.mark.unit
def test_retry_tries_again_until_a_port_opens_and_gives_up_after_its_seconds():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused until listen()
        port = server.getsockname()[1]
        tries = []

        def attempt() -> bool | None:
            tries.append(time.monotonic())
            return port_open("127.0.0.1", port, timeout=1) or None

        assert retry(attempt, 0.3, interval=0.1) is None
        assert 3 <= len(tries) <= 5 and tries[-1] - tries[0] >= 0.29
        tries.clear()
        threading.Timer(0.5, server.listen).start()
        assert retry(attempt, 10, interval=0.1) is True
        assert tries[-1] - tries[0] >= 0.45 and len(tries) >= 3


@pytest.mark.unit
def test_a_stop_signal_ends_a_wait():
    with StopForwarding() as stop:
        os.kill(os.getpid(), signal.SIGTERM)  # recorded by the handler, not forwarded (no child)
        started = time.monotonic()
        with pytest.raises(StepFailed) as raised:
            retry(lambda: None, 60, stop)
    assert time.monotonic() - started < 5
    assert raised.value.reason == "Stopped by SIGTERM before the training script started."
    assert raised.value.exit_code == 128 + signal.SIGTERM


@pytest.mark.unit
def test_port_and_wait_settings_that_are_no_numbers_are_one_line_errors(monkeypatch):
    monkeypatch.delenv("RLFRAME_RAY_PORT", raising=False)
    monkeypatch.delenv("RLFRAME_RAY_WAIT_SECONDS", raising=False)
    assert (ray_port(), wait_seconds()) == (6379, 600.0)
    monkeypatch.setenv("RLFRAME_RAY_PORT", "80")
    with pytest.raises(JobError, match=r"^RLFRAME_RAY_PORT='80' is not a port of the Ray head: give a number from 1024"):
        ray_port()
    monkeypatch.setenv("RLFRAME_RAY_WAIT_SECONDS", "ten")
    with pytest.raises(JobError, match=r"^RLFRAME_RAY_WAIT_SECONDS='ten' is not a number of seconds"):
        wait_seconds()


# ---- integration: hosts as processes --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ray_root() -> Iterator[Path]:
    """A short folder for the hosts' Ray temp dirs (Ray's socket paths must stay under 108 characters); Ray
    processes still running from it at the end are killed, so no test leaves a node behind."""
    root = Path(tempfile.mkdtemp(prefix="rf-ray-", dir="/tmp"))
    yield root
    for pid in _pids_using(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(root, ignore_errors=True)


def _pids_using(root: Path) -> list[int]:
    """Processes whose command line names ``root`` (the Ray processes of the hosts' temp dirs)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(root).encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _host(base: Path, current_host: str, hosts: list[str], files: dict[str, str] | None = None,
          hyperparameters: dict[str, str] | None = None) -> SageMakerPaths:
    paths = SageMakerPaths(base)
    paths.input_config.mkdir(parents=True)
    paths.code.mkdir()
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters or {}))
    paths.resource_config_file.write_text(json.dumps(
        {"current_host": current_host, "hosts": hosts, "network_interface_name": NO_INTERFACE}))
    for name, text in (files or {}).items():
        (paths.code / name).write_text(text)
    return paths


def _start(paths: SageMakerPaths, ray_root: Path, port: int, wait: float, **env: str) -> subprocess.Popen:
    """``rlframe-sagemaker train`` as one host; its stdout and stderr in ``<base>/stdout`` and ``<base>/stderr``."""
    host = json.loads(paths.resource_config_file.read_text())["current_host"]
    environ = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "RLFRAME_RAY_ADDRESS")}
    environ.update({"SAGEMAKER_BASE_DIR": str(paths.base), "RLFRAME_RAY_PORT": str(port),
                    "RLFRAME_RAY_WAIT_SECONDS": f"{wait:g}", "RLFRAME_RAY_TEMP_DIR": str(ray_root / host),
                    "RAY_gcs_rpc_server_reconnect_timeout_s": "3", **env})
    with open(paths.base / "stdout", "w") as out, open(paths.base / "stderr", "w") as err:
        return subprocess.Popen(ENTRYPOINT, env=environ, stdout=out, stderr=err, stdin=subprocess.DEVNULL)


def _output(paths: SageMakerPaths) -> str:
    return (paths.base / "stdout").read_text() + (paths.base / "stderr").read_text()


def _finish(*jobs: subprocess.Popen, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [job.wait(timeout=max(1.0, deadline - time.monotonic())) for job in jobs]
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()


def _wait_for_line(paths: SageMakerPaths, text: str, job: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in _output(paths):
        assert job.poll() is None, f"the host ended ({job.returncode}) before printing {text!r}:\n{_output(paths)}"
        assert time.monotonic() < deadline, f"{text!r} not printed within {timeout} s:\n{_output(paths)}"
        time.sleep(0.1)


@pytest.mark.integration
@needs_hosts
def test_two_hosts_form_one_cluster_the_leader_trains_on_both_and_both_exit_0(tmp_path, ray_root):
    pytest.importorskip("ray")
    hosts, port = [LEADER, OTHER], _free_port()
    leader = _host(tmp_path / "leader", LEADER, hosts, {"cluster.py": CLUSTER_SCRIPT}, {"sagemaker_program": "cluster.py"})
    other = _host(tmp_path / "other", OTHER, hosts, {"cluster.py": CLUSTER_SCRIPT}, {"sagemaker_program": "cluster.py"})
    jobs = [_start(other, ray_root, port, 60), _start(leader, ray_root, port, 60)]  # the other host may come first
    codes = _finish(*jobs, timeout=180)
    assert codes == [0, 0], f"leader:\n{_output(leader)}\nother:\n{_output(other)}"

    seen = json.loads((leader.model / "ok").read_text())
    assert {s["host"]: (s["path"], s["cwd"]) for s in seen} == {
        LEADER: (str(leader.code), str(leader.code)), OTHER: (str(other.code), str(other.code))}, \
        "one task ran on each host's node, with that host's environment and code folder"
    assert list(other.model.iterdir()) == [], "only the leader writes the model"
    for paths in (leader, other):
        assert paths.success_file.exists() and not paths.failure_file.exists()
    assert (leader.output_data / f"ray-{LEADER}.log").is_file() and (other.output_data / f"ray-{OTHER}.log").is_file()

    said = _output(leader)
    assert f"Ray> head started on 127.0.0.1:{port} ({LEADER}); waiting for 2 hosts" in said
    assert f"Ray> {OTHER} joined as node {OTHER} (2 of 2 nodes)" in said
    assert f"training with RLFRAME_RAY_ADDRESS=127.0.0.1:{port}" in said
    assert f"Ray> Ray stopped on {LEADER}" in said
    assert f"Ray> the head on {LEADER} (127.0.0.1:{port}) is gone (training ended there); {OTHER} is done" in _output(other)
    assert _pids_using(ray_root) == [], "each host stopped the Ray it started"


#: the job without a script: rlframe's launcher trains a shipped Clipped PPO preset on two rollout workers, briefly
LAUNCHER_HYPERPARAMETERS = {
    "RLCOACH_PRESET": '"CartPole_ClippedPPO"', "num_workers": "2", "improve_steps": "256",
    "rl.evaluation_steps:EnvironmentEpisodes": "1", "rl.steps_between_evaluation_periods:EnvironmentSteps": "512",
    "rl.agent_params.algorithm.num_steps_between_copying_online_weights_to_target:EnvironmentSteps": "256",
}
WORKERS_LINE = re.compile(r"^Workers> 2 rollout workers on 2 nodes: worker 1 pid \d+ on (\S+), worker 2 pid \d+ on (\S+)$",
                          re.MULTILINE)


@pytest.mark.integration
@needs_hosts
def test_the_launchers_rollout_workers_spread_over_both_hosts_and_both_write_episodes(tmp_path, ray_root):
    pytest.importorskip("ray")
    hosts, port = [LEADER, OTHER], _free_port()
    leader = _host(tmp_path / "leader", LEADER, hosts, hyperparameters=LAUNCHER_HYPERPARAMETERS)
    other = _host(tmp_path / "other", OTHER, hosts, hyperparameters=LAUNCHER_HYPERPARAMETERS)
    jobs = [_start(leader, ray_root, port, 60), _start(other, ray_root, port, 60)]
    codes = _finish(*jobs, timeout=300)
    assert codes == [0, 0], f"leader:\n{_output(leader)}\nother:\n{_output(other)}"

    placed = WORKERS_LINE.search(_output(leader))
    assert placed is not None, _output(leader)
    assert OTHER in placed.groups() and len(set(placed.groups())) == 2, "one worker on each host's node"
    for worker in (1, 2):  # each worker, so each node, played episodes the leader recorded
        (csv_file,) = leader.intermediate.glob(f"worker_{worker}.*.csv")
        with open(csv_file, newline="") as handle:
            assert len(list(csv.DictReader(handle))) >= 1, csv_file
    assert list(other.intermediate.iterdir()) == [] and list(other.model.iterdir()) == []
    assert list((leader.output_data / "checkpoint").glob("*.ckpt*")), "the leader checkpoints as a one-host job does"
    assert _pids_using(ray_root) == []


@pytest.mark.integration
@needs_hosts
def test_hosts_that_never_join_fail_the_leader_in_one_line_and_a_stopped_host_exits_0(tmp_path, ray_root):
    pytest.importorskip("ray")
    hosts, port = [LEADER, OTHER, THIRD], _free_port()
    leader = _host(tmp_path / "leader", LEADER, hosts, {"cluster.py": CLUSTER_SCRIPT}, {"sagemaker_program": "cluster.py"})
    other = _host(tmp_path / "other", OTHER, hosts, {"cluster.py": CLUSTER_SCRIPT}, {"sagemaker_program": "cluster.py"})
    leader_job = _start(leader, ray_root, port, 20)
    other_job = _start(other, ray_root, port, 20)
    try:
        _wait_for_line(leader, f"Ray> {OTHER} joined as node {OTHER} (2 of 3 nodes)", leader_job, timeout=60)
        other_job.send_signal(signal.SIGTERM)  # SageMaker's stop reaches a host whose node runs
        assert _finish(other_job, timeout=40) == [0], _output(other)
        assert _finish(leader_job, timeout=60) == [1], _output(leader)
    finally:
        _finish(leader_job, other_job, timeout=1)

    assert f"Ray> stopped by SIGTERM: {OTHER} leaves the cluster" in _output(other)
    assert other.success_file.exists() and not other.failure_file.exists()
    reason = leader.failure_file.read_text().splitlines()[0]
    assert THIRD in reason and reason.endswith(
        f"did not join the Ray cluster at 127.0.0.1:{port} within 20 s: each host must run the same image and reach "
        f"port {port} of 127.0.0.1.")
    assert f"error: {reason}" in _output(leader)
    assert not (leader.model / "ok").exists(), "the script never ran"
    assert _pids_using(ray_root) == []


@pytest.mark.integration
@needs_hosts
def test_a_host_waiting_for_the_head_exits_0_on_sigterm_and_a_taken_port_fails_the_leader(tmp_path, ray_root):
    pytest.importorskip("ray")  # no Ray process starts here, but a job of several hosts refuses to run without Ray
    hosts, port = [LEADER, OTHER], _free_port()
    other = _host(tmp_path / "other", OTHER, hosts, {"cluster.py": CLUSTER_SCRIPT}, {"sagemaker_program": "cluster.py"})
    job = _start(other, ray_root, port, 60)
    try:
        _wait_for_line(other, f"Ray> {OTHER} waits for the head on {LEADER} (port {port})", job, timeout=30)
        job.send_signal(signal.SIGTERM)
        assert _finish(job, timeout=30) == [0], _output(other)
    finally:
        _finish(job, timeout=1)
    assert f"Ray> stopped by SIGTERM: {OTHER} leaves the cluster" in _output(other)
    assert other.success_file.exists()

    leader = _host(tmp_path / "leader", LEADER, hosts, {"cluster.py": CLUSTER_SCRIPT}, {"sagemaker_program": "cluster.py"})
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        codes = _finish(_start(leader, ray_root, taken, 60), timeout=30)
    assert codes == [1]
    assert leader.failure_file.read_text().splitlines()[0] == (
        f"Port {taken} of {LEADER} (127.0.0.1) is taken, so the Ray head cannot listen there: free it or set "
        "RLFRAME_RAY_PORT to another port.")
    assert _pids_using(ray_root) == []
