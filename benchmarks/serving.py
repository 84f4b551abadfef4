"""Serving and batch-transform speed: rlframe-serve against the notebooks' own deploy path and onnxruntime
in-process, under a load generator nobody here wrote (``wrk``, a Debian package), on loopback.

Run by hand (``apt-get install wrk``; a few minutes)::

    python benchmarks/serving.py                  # 10 s per load point, 1,000,000-line batch transform
    python benchmarks/serving.py --quick          # 3 s per point, 100,000 lines (smoke test)

What is compared, on one CartPole Clipped PPO policy (4 observations in; value and 2 action probabilities out)
trained for a few thousand steps by ``rlframe-train`` and written by ``rlframe-export``:

- **rlframe-serve**: the built-in handler (onnxruntime on ``model.onnx``), ``--workers`` worker processes.
- **notebook path**: the same server with ``--entry-point`` set to the notebooks' ``deploy-mxnet-coach.py``
  (the test fixture written from the notebooks' description): ``model.onnx`` imported by
  ``mxnet.contrib.onnx.import_model`` into a Gluon ``SymbolBlock``, one observation per request, as the MXNet
  serving container ran it. Same number of workers.
- **onnxruntime in-process**: ``InferenceSession.run`` called in a loop from Python (no HTTP): the floor.

Loads: single-observation JSON requests at 1, 8 and 64 connections (p50, p99, requests/s as wrk reports them);
1,000-observation JSON requests at 8 connections (observations/s); a batch transform of a JSON Lines file of
CartPole states (MultiRecord, Line split and assembly) by ``rlframe-transform`` end to end, including its
server's start (observations/s), beside the notebook path (SingleRecord: its handler takes one observation) on a
smaller file, and onnxruntime in-process decoding the same lines and running them in 10,000-row batches.
wrk and the server share the machine's cores, as they do on a 2-core CI machine.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from common import markdown_table

REPO = Path(__file__).resolve().parent.parent
DEPLOY_SCRIPT = REPO / "tests" / "fixtures" / "sagemaker" / "deploy" / "deploy-mxnet-coach.py"
BIN = Path(sys.executable).parent
OBSERVATION = [0.01, -0.02, 0.03, 0.04]
#: every process of the benchmark computes on one thread, so workers and wrk divide the cores between them
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {result.returncode}: {(result.stderr or result.stdout).strip()[-500:]}")
    return result


def train_and_export(work: Path, steps: int) -> Path:
    """A CartPole Clipped PPO policy, trained briefly (speed does not depend on how well it plays), exported."""
    experiment = work / "experiment"
    run([str(BIN / "rlframe-train"), "-p", "CartPole_ClippedPPO", "-ep", str(experiment), "--seed", "0",
         "--progress", "lines", "--improve_steps", str(steps)])
    model = work / "model"
    run([str(BIN / "rlframe-export"), str(experiment / "checkpoint"), "-o", str(model)])
    return model


class Server:
    """``rlframe-serve`` in a subprocess on a free loopback port, stopped with SIGTERM."""

    def __init__(self, model: Path, workers: int, entry_point: Path | None = None) -> None:
        self.port = free_port()
        command = [str(BIN / "rlframe-serve"), str(model), "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(workers)]
        if entry_point is not None:
            command += ["--entry-point", str(entry_point)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, **ONE_THREAD})
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                sys.exit(f"rlframe-serve exited {self.process.returncode}: {self.process.stderr.read().strip()[-500:]}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("rlframe-serve did not answer /ping within 120 s")
            time.sleep(0.2)

    def invoke(self, body: str) -> list:
        request = urllib.request.Request(self.url + "/invocations", data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, body: str, connections: int, seconds: int) -> dict[str, float]:
    """wrk's p50 and p99 latency (ms) and requests/s for POSTs of ``body`` at ``connections`` connections."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                     f"wrk.body = {json.dumps(body)}\n")
    try:
        threads = 1 if connections == 1 else 2
        output = run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name,
                      url + "/invocations"]).stdout
    finally:
        os.unlink(script.name)
    if re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        sys.exit(f"wrk saw error responses from {url}:\n{output}")
    latency = {p: float(v) * _UNITS[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return {"p50": latency["50"], "p99": latency["99"], "rps": rate}


def in_process(model: Path, seconds: float) -> dict[str, float]:
    """onnxruntime called from Python on one observation at a time: p50/p99 (ms) and calls/s."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # no warning per initializer listed as a graph input (MXNet's importer needs them)
    session = onnxruntime.InferenceSession(str(model / "model.onnx"), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    durations = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        session.run(None, {name: np.asarray([OBSERVATION], dtype=np.float32)})
        durations.append(time.perf_counter() - start)
    ms = np.asarray(durations) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "rps": len(ms) / seconds}


def in_process_batch(model: Path, lines: list[bytes]) -> float:
    """onnxruntime in-process over JSON Lines: decode, run in 10,000-row batches; observations/s."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # no warning per initializer listed as a graph input (MXNet's importer needs them)
    session = onnxruntime.InferenceSession(str(model / "model.onnx"), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    start = time.perf_counter()
    for i in range(0, len(lines), 10000):
        batch = np.asarray(json.loads(b"[" + b",".join(lines[i:i + 10000]) + b"]"), dtype=np.float32)
        session.run(None, {name: batch})
    return len(lines) / (time.perf_counter() - start)


def transform(model: Path, lines: list[bytes], folder: Path, strategy: str, workers: int,
              entry_point: Path | None = None) -> float:
    """``rlframe-transform`` over one JSON Lines file, end to end (server start included); observations/s."""
    source = folder / "input"
    source.mkdir(parents=True)
    (source / "states.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    command = [str(BIN / "rlframe-transform"), str(model), str(source), "-o", str(folder / "output"),
               "--split-type", "Line", "--strategy", strategy, "--assemble-with", "Line", "--workers", str(workers),
               "--content-type", "application/jsonlines", "--accept", "application/jsonlines"]
    if entry_point is not None:
        command += ["--entry-point", str(entry_point)]
    start = time.perf_counter()
    run(command, env={**os.environ, **ONE_THREAD})
    seconds = time.perf_counter() - start
    written = (folder / "output" / "states.jsonl.out").read_bytes().count(b"\n")
    if written != len(lines):
        sys.exit(f"rlframe-transform wrote {written} lines for {len(lines)}")
    return len(lines) / seconds


def states(count: int, seed: int = 0) -> list[bytes]:
    """JSON Lines of CartPole-like states, as the batch notebook's dump_environment_states writes them."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-0.05, 0.05, (count, 4)).round(8)
    return [json.dumps(row).encode() for row in values.tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per load point, 100,000 transform lines")
    parser.add_argument("--seconds", type=int, help="seconds per wrk load point (default 10, --quick 3)")
    parser.add_argument("--lines", type=int, help="lines of the batch-transform file (default 1,000,000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server workers (default: CPUs)")
    parser.add_argument("--train-steps", type=int, default=2000, help="environment steps of the policy's training")
    args = parser.parse_args()
    seconds = args.seconds or (3 if args.quick else 10)
    line_count = args.lines or (100_000 if args.quick else 1_000_000)
    for tool in ("wrk",):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            sys.exit(f"{tool} is not installed: apt-get install {tool}")
    if not DEPLOY_SCRIPT.is_file():
        sys.exit(f"{DEPLOY_SCRIPT} is missing: run from a checkout of the repository")

    with tempfile.TemporaryDirectory(prefix="rlframe-serving-bench-") as tmp:
        work = Path(tmp)
        model = train_and_export(work, args.train_steps)
        single = json.dumps(OBSERVATION)
        batch = json.dumps(np.random.default_rng(1).uniform(-0.05, 0.05, (1000, 4)).round(6).tolist())
        rows: list[list[str]] = []

        def load_rows(label: str, server: Server, batches: bool) -> None:
            for connections in (1, 8, 64):
                result = wrk(server.url, single, connections, seconds)
                rows.append([label, f"1 obs, {connections} conn", f"{result['p50']:.2f}", f"{result['p99']:.2f}",
                             f"{result['rps']:,.0f}", f"{result['rps']:,.0f}"])
            if batches:
                result = wrk(server.url, batch, 8, seconds)
                rows.append([label, "1,000 obs, 8 conn", f"{result['p50']:.2f}", f"{result['p99']:.2f}",
                             f"{result['rps']:,.0f}", f"{result['rps'] * 1000:,.0f}"])

        server = Server(model, args.workers)
        try:
            answer = server.invoke(single)
            if not isinstance(answer, dict) or "predictions" not in answer:
                sys.exit(f"rlframe-serve answered {answer!r}")
            load_rows(f"rlframe-serve ({args.workers} workers)", server, batches=True)
        finally:
            server.stop()
        notebook = Server(model, args.workers, DEPLOY_SCRIPT)
        try:
            notebook.invoke(single)
            load_rows(f"notebook deploy-mxnet-coach.py ({args.workers} workers)", notebook, batches=False)
        finally:
            notebook.stop()
        result = in_process(model, seconds)
        rows.append(["onnxruntime in-process", "1 obs, 1 thread", f"{result['p50']:.3f}", f"{result['p99']:.3f}",
                     f"{result['rps']:,.0f}", f"{result['rps']:,.0f}"])
        print(markdown_table(["server", "load", "p50 ms", "p99 ms", "requests/s", "observations/s"], rows))
        print()

        lines = states(line_count)
        notebook_lines = lines[: max(1, line_count // 50)]
        batch_rows = [
            [f"rlframe-transform MultiRecord ({args.workers} workers)", f"{len(lines):,}",
             f"{transform(model, lines, work / 'multi', 'MultiRecord', args.workers):,.0f}"],
            [f"notebook deploy-mxnet-coach.py, SingleRecord ({args.workers} workers)", f"{len(notebook_lines):,}",
             f"{transform(model, notebook_lines, work / 'notebook', 'SingleRecord', args.workers, DEPLOY_SCRIPT):,.0f}"],
            ["onnxruntime in-process (decode + run)", f"{len(lines):,}", f"{in_process_batch(model, lines):,.0f}"],
        ]
        print(markdown_table(["batch transform", "lines", "observations/s"], batch_rows))


if __name__ == "__main__":
    main()
