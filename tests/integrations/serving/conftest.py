"""Fixtures of the serving tests: servers started per module (see :mod:`serving_processes`)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from serving_processes import Server


@pytest.fixture(scope="module")
def start_server() -> Iterator[Callable[..., Server]]:
    """``start_server(model_dir, *args, env=...)`` starts a server (without waiting for it); every server it started
    is killed, with its workers, after the module."""
    servers: list[Server] = []

    def start(model_dir: Path | str | None, *args: str, **kwargs: object) -> Server:
        server = Server(model_dir, *args, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
