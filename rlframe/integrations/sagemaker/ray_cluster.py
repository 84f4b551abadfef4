"""A multi-instance SageMaker training job as one Ray cluster of its hosts (contracts §4.4, checklist item 16).

In a job with several instances every host runs the same image with ``rlframe-sagemaker train``. The hosts find
each other with nothing but what ``resourceconfig.json`` gives them, the host names and a port on the leader:
SageMaker's own Ray launcher posted the head's address in S3, which needs S3 write access and does not work in
network isolation or without AWS (contracts §4.4).

- The leader, ``hosts[0]``, finds its node address (the IPv4 address of ``network_interface_name`` when the
  machine has that interface, else its host name resolved), starts a Ray head there on port ``RLFRAME_RAY_PORT``
  (6379), waits until every host's node is alive, runs the training script with ``RLFRAME_RAY_ADDRESS=<ip>:<port>``
  added to its environment (rlframe's launcher joins that cluster and spreads its rollout workers over the nodes),
  and stops its Ray once the script has ended, however it ended. Only the leader trains, so only it writes
  ``/opt/ml/model``.
- Every other host resolves the leader's name, waits until the head's port answers, and runs a Ray node joined to
  it instead of the script. When the head goes away (training ended on the leader) the node stops too, and the
  host exits 0 after writing its success file, as SageMaker needs of every host. A stop signal stops the node and
  exits 0 as well; the leader's outcome is the job's.

Host names may resolve late (hosts come up in any order), so every name is resolved again every 2 s, and every
wait (a name, the head's port, all nodes alive) lasts ``RLFRAME_RAY_WAIT_SECONDS`` (600) before the job fails with
one line that says what never came.

Each host's Ray runs as ``ray start --block``, a child of this process that takes the node's processes down with it
when it gets SIGTERM (and when this process dies): ``ray stop`` would stop every Ray process of the machine, another
job's too where several share one, as the simulated hosts of the tests do. ``ray start`` writes its output to
``/opt/ml/output/data/ray-<host>.log`` (a host-unique name: every host's ``output/data`` goes into the one
``output.tar.gz``). Its nodes get the training script's environment (``PYTHONPATH`` with ``/opt/ml/code``, the
``SM_*`` variables) and run in ``/opt/ml/code``, so rollout workers on any host import what the script imports.
``RAY_gcs_rpc_server_reconnect_timeout_s`` is 10 (unless set): a node whose head is gone stops after 10 s, not 60.
``RAY_AUTH_MODE`` is ``disabled`` (unless set) for every Ray process of the job, the script included: the hosts share
no secret, and Ray 2.60 would otherwise turn token authentication on for a head whose machine holds a token file
(``~/.ray/auth_token``, which a local ``ray.init()`` writes), which no other host could then join. A job that
wants authentication sets ``RAY_AUTH_MODE=token`` and one ``RAY_AUTH_TOKEN`` in its environment (the estimator's
``environment``), the same on every host.
``RLFRAME_RAY_TEMP_DIR``, when set, is each node's ``--temp-dir`` (several hosts on one machine need one each).

The leader waits for the nodes from a short-lived child (``python -m`` this module ``watch ...``) that connects
with ``ray.init``: this process never imports Ray, and a one-host job never reaches this module.
"""
from __future__ import annotations

import collections
import fcntl
import importlib.util
import json
import logging
import os
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar

from rlframe.integrations.sagemaker.entrypoint import JobError, StepFailed, StopForwarding, _child_setup
from rlframe.integrations.sagemaker.environment import TrainingEnvironment
from rlframe.stopping import STOP_SIGNALS

#: what the training script (rlframe's launcher) reads to join the cluster: ``<ip>:<port>`` of the head
ADDRESS_VARIABLE = "RLFRAME_RAY_ADDRESS"
PORT_VARIABLE = "RLFRAME_RAY_PORT"
WAIT_VARIABLE = "RLFRAME_RAY_WAIT_SECONDS"
TEMP_DIR_VARIABLE = "RLFRAME_RAY_TEMP_DIR"
#: seconds a raylet waits for a head that is gone before it exits (Ray's default is 60)
RECONNECT_VARIABLE = "RAY_gcs_rpc_server_reconnect_timeout_s"
RECONNECT_SECONDS = "10"
#: Ray's token authentication: off unless the job's environment sets it (with the same RAY_AUTH_TOKEN on every host)
AUTH_MODE_VARIABLE = "RAY_AUTH_MODE"
DEFAULT_PORT = 6379
DEFAULT_WAIT_SECONDS = 600.0
#: pause between two tries of a name, a port, a node
RETRY_SECONDS = 2.0
#: seconds ``ray start --block`` gets to stop its node's processes before they are killed
STOP_SECONDS = 30.0
#: times a host's node is started while the head still runs (a node that stops early joins again)
JOIN_ATTEMPTS = 5
LOG_TAIL_LINES = 20
_SIOCGIFADDR = 0x8915  # Linux's ioctl that reads an interface's IPv4 address

T = TypeVar("T")


def say(text: str) -> None:
    """One progress line of the cluster's setup, flushed."""
    print(f"Ray> {text}", flush=True)


# ---- addresses ------------------------------------------------------------------------------------------------
def interface_address(name: str) -> str | None:
    """The IPv4 address of network interface ``name``; None when the machine has no such interface (or it has no
    IPv4 address), and on other systems than Linux."""
    encoded = name.encode()
    if not sys.platform.startswith("linux") or not encoded or len(encoded) > 15:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack("256s", encoded))
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def resolve_once(host: str) -> str | None:
    """``host``'s IPv4 address, or None when it does not resolve (yet)."""
    try:
        return socket.gethostbyname(host)
    except (OSError, UnicodeError):
        return None


def port_open(ip: str, port: int, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections on ``ip:port``."""
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def retry(attempt: Callable[[], T | None], seconds: float, stop: StopForwarding | None = None,
          interval: float = RETRY_SECONDS) -> T | None:
    """Call ``attempt`` until it returns something other than None, every ``interval`` seconds for ``seconds``;
    None when it never did. A stop signal (``stop``) ends the wait with StepFailed."""
    deadline = time.monotonic() + seconds
    while True:
        result = attempt()
        if result is not None:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        _sleep(min(interval, left), stop)


def resolve(host: str, seconds: float, stop: StopForwarding | None = None) -> str:
    """``host``'s address, trying again every 2 s for ``seconds``; StepFailed (one line) when it never resolves."""
    address = retry(lambda: resolve_once(host), seconds, stop)
    if address is None:
        raise _failure(f"Host {host} of resourceconfig.json did not resolve to an address within {seconds:g} s; the "
                       "job's hosts must reach one another by these names.")
    return address


def node_address(job: TrainingEnvironment, seconds: float, stop: StopForwarding | None = None) -> str:
    """This host's node address: the IPv4 address of ``network_interface_name`` when the machine has it, else
    ``current_host`` resolved (with :func:`resolve`'s retries)."""
    return interface_address(job.network_interface_name) or resolve(job.current_host, seconds, stop)


# ---- settings -------------------------------------------------------------------------------------------------
def ray_port() -> int:
    text = os.environ.get(PORT_VARIABLE) or str(DEFAULT_PORT)
    if not text.isdigit() or not 1024 <= int(text) <= 65535:
        raise JobError(f"{PORT_VARIABLE}={text!r} is not a port of the Ray head: give a number from 1024 to 65535.")
    return int(text)


def wait_seconds() -> float:
    text = os.environ.get(WAIT_VARIABLE) or str(DEFAULT_WAIT_SECONDS)
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise JobError(f"{WAIT_VARIABLE}={text!r} is not a number of seconds: give how long hosts wait for one another.")
    return seconds


def _node_options(job: TrainingEnvironment, ip: str) -> list[str]:
    options = [f"--node-ip-address={ip}", f"--num-cpus={job.num_cpus}", "--disable-usage-stats", "--block"]
    temp_dir = os.environ.get(TEMP_DIR_VARIABLE)
    return options + ([f"--temp-dir={temp_dir}"] if temp_dir else [])


def _node_environment(env: Mapping[str, str]) -> dict[str, str]:
    return {RECONNECT_VARIABLE: RECONNECT_SECONDS, **env}


# ---- the job on a cluster -------------------------------------------------------------------------------------
def run_on_cluster(job: TrainingEnvironment, env: dict[str, str], stop: StopForwarding,
                   train: Callable[[dict[str, str]], None]) -> None:
    """Run a job with several hosts: the leader (``hosts[0]``) calls ``train`` with the script's environment plus
    ``RLFRAME_RAY_ADDRESS`` on a cluster of every host; another host serves as one of its nodes until the head
    goes away. Raises StepFailed (one line, the Ray log's last lines as details) when the cluster cannot form."""
    if importlib.util.find_spec("ray") is None:
        raise JobError(f"This job runs on {len(job.hosts)} hosts ({', '.join(job.hosts)}), which rlframe joins into "
                       "a Ray cluster, and Ray is not installed in the image: pip install 'rlframe[distributed]', or "
                       "train on one instance.")
    port, seconds = ray_port(), wait_seconds()
    env = {AUTH_MODE_VARIABLE: "disabled", **env}
    if job.current_host == job.hosts[0]:
        _lead(job, env, stop, train, port, seconds)
    else:
        _join(job, env, stop, port, seconds)


def _lead(job: TrainingEnvironment, env: dict[str, str], stop: StopForwarding,
          train: Callable[[dict[str, str]], None], port: int, seconds: float) -> None:
    host = job.current_host
    ip = node_address(job, seconds, stop)
    address = f"{ip}:{port}"
    if port_open(ip, port):
        raise _failure(f"Port {port} of {host} ({ip}) is taken, so the Ray head cannot listen there: free it or set "
                       f"{PORT_VARIABLE} to another port.")
    log = _log_path(job)
    say(f"starting the head on {address} ({host}); its log is {log}")
    head = _launch(["start", "--head", f"--port={port}", "--include-dashboard=false", *_node_options(job, ip)],
                   _node_environment(env), job.paths.code, log, stop)
    try:
        _await_head(head, ip, port, host, log, seconds, stop)
        say(f"head started on {address} ({host}); waiting for {len(job.hosts)} hosts")
        _await_nodes(head, job, address, env, log, seconds, stop)
        say(f"all {len(job.hosts)} hosts are nodes of the cluster; training with {ADDRESS_VARIABLE}={address}")
        train({**env, ADDRESS_VARIABLE: address})
    finally:
        _stop_node(head)
        say(f"Ray stopped on {host}")


def _join(job: TrainingEnvironment, env: dict[str, str], stop: StopForwarding, port: int, seconds: float) -> None:
    """Serve as a node of the leader's cluster until its head goes away; a stop signal, whenever it comes, ends
    this host's part without a failure (the leader's outcome is the job's)."""
    try:
        _serve(job, env, stop, port, seconds)
    except _Stopped:
        pass
    if stop.signum is not None:
        say(f"stopped by {signal.Signals(stop.signum).name}: {job.current_host} leaves the cluster")


def _serve(job: TrainingEnvironment, env: dict[str, str], stop: StopForwarding, port: int, seconds: float) -> None:
    host, leader = job.current_host, job.hosts[0]
    say(f"{host} waits for the head on {leader} (port {port})")
    leader_ip = resolve(leader, seconds, stop)
    ip = node_address(job, seconds, stop)
    address = f"{leader_ip}:{port}"
    if retry(lambda: port_open(leader_ip, port) or None, seconds, stop) is None:
        raise _failure(f"The Ray head on {leader} ({address}) did not answer within {seconds:g} s; the leader starts "
                       f"it once its source folder and requirements are ready (see its log).")
    log = _log_path(job)
    for attempt in range(1, JOIN_ATTEMPTS + 1):
        say(f"{host} joins the cluster at {address} ({leader}) as node {ip}; its log is {log}")
        node = _launch(["start", f"--address={address}", *_node_options(job, ip)], _node_environment(env),
                       job.paths.code, log, stop, forward=True)
        try:
            status = _wait_node(node, stop)
        finally:
            stop.child = None
            _kill_group(node)  # a worker process its raylet left behind
        if stop.signum is not None:
            return
        if not port_open(leader_ip, port):
            say(f"the head on {leader} ({address}) is gone (training ended there); {host} is done")
            return
        if attempt < JOIN_ATTEMPTS:
            say(f"the Ray node on {host} ended (exit code {status}) while the head on {leader} runs; joining again")
            _sleep(RETRY_SECONDS, stop)
    raise _failure(f"The Ray node on {host} ended {JOIN_ATTEMPTS} times while the head on {leader} ({address}) still "
                   f"ran: {_last_line(log)}", _tail(log))


# ---- children -------------------------------------------------------------------------------------------------
def _launch(args: list[str], env: dict[str, str], cwd: Path, log: Path, stop: StopForwarding,
            forward: bool = False) -> subprocess.Popen[bytes]:
    """Start ``ray <args>`` in its own process group (killed when this process dies), its output appended to
    ``log``; with ``forward``, stop signals are passed on to it."""
    argv = [sys.executable, "-m", "ray.scripts.scripts", *args]
    print(f"rlframe-sagemaker: running ray {shlex.join(args)} in {cwd}", flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # a signal from now on finds the child known
    try:
        _check(stop)
        with open(log, "ab") as output:
            child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                     stderr=subprocess.STDOUT, process_group=0, preexec_fn=_child_setup)
        if forward:
            stop.child = child
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return child


def _await_head(head: subprocess.Popen[bytes], ip: str, port: int, host: str, log: Path, seconds: float,
                stop: StopForwarding) -> None:
    deadline = time.monotonic() + seconds
    while not port_open(ip, port, timeout=1.0):
        if head.poll() is not None:
            raise _failure(f"ray start --head on {host} exited with code {head.returncode}: {_last_line(log)}",
                           _tail(log))
        if time.monotonic() > deadline:
            raise _failure(f"The Ray head on {host} did not listen on {ip}:{port} within {seconds:g} s.", _tail(log))
        _sleep(0.5, stop)


def _await_nodes(head: subprocess.Popen[bytes], job: TrainingEnvironment, address: str, env: Mapping[str, str],
                 log: Path, seconds: float, stop: StopForwarding) -> None:
    """Until every host's node is alive, through a child that connects to the cluster (:func:`watch`)."""
    others = {host: resolve_once(host) or "" for host in job.hosts[1:]}
    argv = [sys.executable, "-m", __name__, "watch", address, f"{seconds:g}", json.dumps(others)]
    lines: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    watcher_env = {**os.environ, AUTH_MODE_VARIABLE: env[AUTH_MODE_VARIABLE]}
    watcher = subprocess.Popen(argv, env=watcher_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, process_group=0, preexec_fn=_child_setup)
    relay = threading.Thread(target=_relay_lines, args=(watcher, lines), daemon=True)
    relay.start()
    try:
        while watcher.poll() is None:
            if head.poll() is not None:
                raise _failure(f"ray start --head on {job.current_host} exited with code {head.returncode} while the "
                               f"hosts joined: {_last_line(log)}", _tail(log))
            _sleep(0.2, stop)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        watcher.wait()
        relay.join(timeout=5)
    if watcher.returncode != 0:
        verdicts = [line[len("Ray> "):] for line in lines if line.startswith("Ray> ")]
        reason = verdicts[-1] if verdicts else (
            f"Waiting for the hosts to join the Ray cluster failed (exit code {watcher.returncode}).")
        raise _failure(reason, "".join(lines))


def _relay_lines(child: subprocess.Popen[bytes], lines: collections.deque[str]) -> None:
    assert child.stdout is not None
    for raw in iter(child.stdout.readline, b""):
        text = raw.decode("utf-8", "replace")
        sys.stdout.write(text)
        sys.stdout.flush()
        lines.append(text)
    child.stdout.close()


def _wait_node(node: subprocess.Popen[bytes], stop: StopForwarding) -> int:
    """The node's exit status; after a stop signal (forwarded to it), its processes are killed once the grace
    period is over."""
    while True:
        try:
            return node.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if stop.since is not None and time.monotonic() - stop.since >= min(stop.grace_seconds(), STOP_SECONDS):
            _kill_group(node)
            return node.wait()


def _stop_node(node: subprocess.Popen[bytes]) -> None:
    """Stop one ``ray start --block`` and the processes of its node (``ray stop`` for the Ray this host started)."""
    if node.poll() is None:
        node.terminate()
        try:
            node.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    _kill_group(node)
    node.wait()


def _kill_group(node: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(node.pid, signal.SIGKILL)  # anything of its node still running
    except (ProcessLookupError, PermissionError):
        pass


def _sleep(seconds: float, stop: StopForwarding | None) -> None:
    deadline = time.monotonic() + seconds
    while True:
        _check(stop)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(0.2, left))


class _Stopped(StepFailed):
    """A stop signal came while the cluster formed."""


def _check(stop: StopForwarding | None) -> None:
    if stop is not None and stop.signum is not None:
        raise _Stopped(f"Stopped by {signal.Signals(stop.signum).name} before the training script started.",
                         128 + stop.signum, "")


def _failure(reason: str, details: str = "") -> StepFailed:
    print(f"error: {reason}", file=sys.stderr, flush=True)
    return StepFailed(reason, 1, details)


def _log_path(job: TrainingEnvironment) -> Path:
    return job.paths.output_data / f"ray-{job.current_host}.log"


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "".join(f"{line}\n" for line in lines[-LOG_TAIL_LINES:])


def _last_line(log: Path) -> str:
    lines = [line for line in _tail(log).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"nothing in {log}"


# ---- the watcher: a child of the leader -----------------------------------------------------------------------
def watch(address: str, seconds: float, others: Mapping[str, str]) -> int:
    """Connect to the cluster at ``address`` and print a line as each host's node comes alive; 0 once the head and
    a node per host of ``others`` (host name -> its resolved address, ``""`` when unknown) are alive, 1 with a last
    ``Ray>`` line naming the hosts that never joined after ``seconds``."""
    import ray  # the watcher's own process: the entrypoint never imports Ray

    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except Exception as exc:  # a head that went away, a port that is not Ray's: one line whatever Ray raised
        say(f"Cannot connect to the Ray head at {address}: {type(exc).__name__}: {' '.join(str(exc).split())}")
        return 1
    try:
        deadline = time.monotonic() + seconds
        seen: set[str] = set()
        by_ip = {ip: host for host, ip in others.items() if ip}
        while True:
            alive = [node for node in ray.nodes() if node.get("Alive")]
            workers = [node for node in alive if "node:__internal_head__" not in node.get("Resources", {})]
            for node in workers:
                if node["NodeID"] not in seen:
                    seen.add(node["NodeID"])
                    ip = node.get("NodeManagerAddress", "?")
                    say(f"{by_ip.get(ip, 'a host')} joined as node {ip} ({len(alive)} of {len(others) + 1} nodes)")
            if len(alive) >= len(others) + 1:
                return 0
            if time.monotonic() > deadline:
                joined = {node.get("NodeManagerAddress") for node in workers}
                missing = [host for host, ip in others.items() if ip not in joined]
                if len(missing) != len(others) - len(workers):
                    missing = [f"{len(others) - len(workers)} of {', '.join(others)}"]
                say(f"{', '.join(missing)} did not join the Ray cluster at {address} within {seconds:g} s: each host "
                    f"must run the same image and reach port {address.rpartition(':')[2]} of {address.rpartition(':')[0]}.")
                return 1
            time.sleep(1.0)
    finally:
        ray.shutdown()


def _watch_main(argv: Sequence[str]) -> int:
    if len(argv) != 4 or argv[0] != "watch":
        print("usage: python -m rlframe.integrations.sagemaker.ray_cluster watch ADDRESS SECONDS HOSTS_JSON",
              file=sys.stderr)
        return 2
    return watch(argv[1], float(argv[2]), json.loads(argv[3]))


if __name__ == "__main__":
    sys.exit(_watch_main(sys.argv[1:]))
