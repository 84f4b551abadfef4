"""``rlframe-serve`` as a real subprocess on a free loopback port, and an HTTP client for it (keep-alive
``http.client`` connections, one per thread). Imported by the serving tests and their conftest."""
from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Mapping

from rlframe.integrations.serving.transform import free_port

SERVE = [sys.executable, "-c", "import sys; from rlframe.integrations.serving.server import main; sys.exit(main())"]
#: a safety net only: start-ups take about a second here
START_TIMEOUT = 120


class Server:
    """``rlframe-serve MODEL_DIR --host 127.0.0.1 --port <free> [args]`` with ``env`` added to this process's
    environment; :meth:`wait` until ``/ping`` answers 200."""

    def __init__(self, model_dir: Path | str | None, *args: str, env: Mapping[str, str] | None = None,
                 command: list[str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.command = command or [*SERVE, str(model_dir), "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, **(env or {})}, start_new_session=True)
        self._local = threading.local()

    def wait(self) -> "Server":
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"rlframe-serve exited {self.process.returncode}: {self.process.stderr.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=5) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"rlframe-serve did not answer /ping within {START_TIMEOUT} s")

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-cased names, body) over this thread's keep-alive connection (opened again
        once when the server has closed it, as it does after 5 s without a request)."""
        data = body.encode() if isinstance(body, str) else body
        for _attempt in range(2):
            connection = getattr(self._local, "connection", None)
            fresh = connection is None
            if fresh:
                connection = self._local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            connection.timeout = timeout
            try:
                connection.request(method, path, body=data, headers=dict(headers or {}))
                answer = connection.getresponse()
                return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if fresh:
                    raise
        raise AssertionError("unreachable")

    def invoke(self, body: bytes | str, content_type: str = "application/json", accept: str | None = None,
               **headers: str) -> tuple[int, dict[str, str], bytes]:
        sent = {"Content-Type": content_type, **({"Accept": accept} if accept else {}), **headers}
        return self.request("POST", "/invocations", body, sent)

    def stop(self, signum: int = signal.SIGTERM, group: bool = False, timeout: float = 60) -> tuple[int, str, float]:
        """Send ``signum`` to the server (``group``: to its workers too, as a terminal's Ctrl-C does); (exit status,
        stderr, seconds until it exited)."""
        if self.process.poll() is None:
            start = time.monotonic()
            if group:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)
            _, stderr = self.process.communicate(timeout=timeout)
            return self.process.returncode, stderr, time.monotonic() - start
        _, stderr = self.process.communicate()
        return self.process.returncode, stderr, 0.0

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: its workers too
        self.process.communicate()


def run_serve(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``rlframe-serve ARGS`` run to its end (a server that cannot start)."""
    return subprocess.run([*SERVE, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=timeout)
