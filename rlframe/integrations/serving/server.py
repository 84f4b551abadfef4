"""``rlframe-serve MODEL_DIR``: a trained policy behind SageMaker's hosting contract (contracts §2), with uvicorn.

``rlframe-serve MODEL_DIR [--port N] [--host H] [--workers N] [--entry-point FILE]``

- port: ``--port``, else ``SAGEMAKER_BIND_TO_PORT``, else 8080; host ``0.0.0.0`` unless ``--host``;
- workers: ``--workers``, else ``SAGEMAKER_MODEL_SERVER_WORKERS``, else one per CPU (as SageMaker's model server
  did). Each is a process with its own model and one inference thread; uvicorn's supervisor shares the socket
  between them and replaces a worker that dies. One worker serves in this process;
- the handler: the built-in one on ``model.onnx``, or a user's module (:mod:`.handlers`).

Everything that can be wrong with the model directory, the handler module (its requirements, its import, its
``model_fn``), the ``SAGEMAKER_*`` variables or the port is found before the server answers, and ends the command
with one line and a non-zero status, no traceback: the model is loaded once here before the port is bound (with
several workers each loads it again). A request the model or handler fails is a 500 with one line, also logged
(with its traceback when ``RLFRAME_TRACEBACK=1``). SIGTERM or SIGINT stop the server gracefully (requests in progress get
:data:`GRACE_SECONDS` to finish, inside SageMaker's 30 s before SIGKILL) and the status is 0.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Sequence

from rlframe.cli import run_cli
from rlframe.errors import RlframeError, describe_os_error
from rlframe.stopping import STOP_SIGNALS

if TYPE_CHECKING:
    import uvicorn

PORT_VARIABLE = "SAGEMAKER_BIND_TO_PORT"
WORKERS_VARIABLE = "SAGEMAKER_MODEL_SERVER_WORKERS"
DEFAULT_PORT = 8080
#: seconds requests in progress may take to finish after SIGTERM (SageMaker sends SIGKILL 30 s after it)
GRACE_SECONDS = 20
#: seconds an idle keep-alive connection stays open: longer than the 60 s idle timeout of the load balancers and
#: proxies in front of a server, so the server is not the one to close a connection they are about to reuse
KEEP_ALIVE_SECONDS = 75
#: the exit status uvicorn gives a worker whose start-up failed
_STARTUP_FAILURE = 3


class ServeError(RlframeError):
    """A server that cannot start as asked (bad arguments or variables)."""


class PortError(ServeError):
    """The address cannot be listened on: a condition of the machine, not of the command."""

    exit_code = 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlframe-serve", allow_abbrev=False,
        description="Serve a model directory (rlframe-export's) over HTTP as a SageMaker inference container does: "
        "GET /ping, POST /invocations (application/json, application/jsonlines, text/csv, application/x-npy), "
        "GET /execution-parameters.")
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="the model directory (model.onnx, rlframe-model.json, "
                        "optionally code/inference.py)")
    parser.add_argument("--port", type=int, help=f"port (default ${PORT_VARIABLE}, else {DEFAULT_PORT})")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0, every interface)")
    parser.add_argument("--workers", type=int, help=f"worker processes (default ${WORKERS_VARIABLE}, else one per CPU)")
    parser.add_argument("--entry-point", metavar="FILE", help="a handler module (model_fn and transform_fn, or "
                        "input_fn/predict_fn/output_fn) to use instead of MODEL_DIR/code/inference.py or the "
                        "built-in handler")
    return parser


def _number(given: int | None, variable: str, option: str, default: int, maximum: int | None = None) -> int:
    """The command line's value, else the variable's, else ``default``; a value that is not a whole number from 1
    (to ``maximum``) is one line naming where it came from."""
    from rlframe.integrations.serving.app import whole_number

    if given is not None:
        return whole_number(str(given), f"{option} {given}", 1, maximum)
    text = os.environ.get(variable, "").strip()
    return whole_number(text, f"{variable}={text!r}", 1, maximum) if text else default


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (uvicorn listens on it, in every worker); one line when it cannot be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"--host {host!r} is not an address of this machine ({exc.strerror}): give an IP address "
                         "such as 0.0.0.0 or 127.0.0.1.") from None
    family, kind, protocol, _, address = infos[0]
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = (f"stop what uses it, or pass --port (or set {PORT_VARIABLE})" if exc.errno == 98
                else "choose another address or port")
        raise PortError(f"Cannot listen on {host}:{port}: {describe_os_error(exc)}; {hint}.") from None
    sock.set_inheritable(True)
    return sock


#: the import names of what the ``serve`` extra installs
SERVE_EXTRA = ("onnxruntime", "uvicorn", "httptools", "uvloop", "orjson")


def _require_serve_extra() -> None:
    """Refuse, in one line, an installation without the ``serve`` extra (``pip install rlframe`` alone)."""
    missing = []
    for name in SERVE_EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ServeError(f"rlframe-serve needs {', '.join(missing)}, which the serve extra installs: "
                         "pip install \"rlframe[serve]\" (in a clone: pip install -e \".[serve]\").")


def _serve(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    _require_serve_extra()
    from rlframe.integrations.serving.app import ServingApp, ServingSettings
    from rlframe.integrations.serving.handlers import HandlerSource

    port = _number(args.port, PORT_VARIABLE, "--port", DEFAULT_PORT, 65535)
    workers = _number(args.workers, WORKERS_VARIABLE, "--workers", len(os.sched_getaffinity(0)))
    model_dir = Path(args.model_dir).absolute()
    settings = ServingSettings.from_env(workers)
    source = HandlerSource.find(model_dir, args.entry_point, settings.default_accept)
    settings.check_accept(source)
    source.install_requirements()
    handler = source.load()  # every worker loads it again; this one finds what is wrong before the port is bound
    sock = bind(args.host, port)
    import uvicorn  # the serve extra, imported once the rest is known to be right
    from uvicorn.supervisors import Multiprocess

    # One worker serves with what was loaded here; several load their own, so this process keeps nothing of it.
    app = ServingApp(settings, source, handler if workers == 1 else None)
    del handler
    config = uvicorn.Config(
        app, workers=workers,
        loop="uvloop", http="httptools", interface="asgi3", lifespan="on", log_level="warning", access_log=False,
        proxy_headers=False, server_header=False, timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACE_SECONDS)
    print(f"rlframe-serve: {model_dir} with {source.describe()}, on http://{args.host}:{port} ({workers} worker"
          f"{'s' if workers > 1 else ''})", flush=True)
    if workers == 1:
        server = uvicorn.Server(config)
        with _StopQuietly(server):
            server.run(sockets=[sock])
        return 0
    supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
    if any(process.exitcode == _STARTUP_FAILURE for process in supervisor.processes):
        return 1  # the worker printed why
    return 0


class _StopQuietly:
    """While uvicorn serves in this process, SIGTERM and SIGINT stop it with exit status 0.

    uvicorn handles both while it runs (a graceful shutdown), then raises the signal again with the handler that
    was there before it: this one, which only asks the server to stop (that also covers a signal that comes before
    uvicorn installs its own), so the process ends normally.
    """

    def __init__(self, server: "uvicorn.Server") -> None:
        self.server = server

    def __enter__(self) -> "_StopQuietly":
        self._previous = {signum: signal.signal(signum, self._stop) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.server.should_exit = True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rlframe-serve``."""
    return run_cli(_serve, argv)


if __name__ == "__main__":
    sys.exit(main())
