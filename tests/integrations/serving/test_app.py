"""The ASGI application called directly, as any ASGI server calls it: ``/ping`` is 503 until the lifespan start-up
has loaded the handler, and a handler that cannot load fails the start-up with its one line."""
from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rlframe.integrations.serving.app import INLINE_BODY_BYTES, ServingApp, ServingSettings
from rlframe.integrations.serving.handlers import HandlerSource

pytestmark = pytest.mark.unit


async def call(app: ServingApp, method: str, path: str, body: bytes = b"",
               headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, bytes]:
    sent = await exchange(app, method, path, body, headers)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def exchange(app: ServingApp, method: str, path: str, body: bytes = b"",
                   headers: list[tuple[bytes, bytes]] | None = None) -> list[dict[str, Any]]:
    """The ASGI messages the app sends for one request."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers or []}
    await app(scope, receive, send)
    return sent


async def lifespan(app: ServingApp, event: str) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []
    events = [{"type": f"lifespan.{event}"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return events.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    return sent[0]


def test_ping_is_503_until_the_lifespan_start_up_has_loaded_the_model(exported_model_dirs):
    settings = ServingSettings.from_env(1, {})
    app = ServingApp(settings, HandlerSource.find(exported_model_dirs["dqn"], None, settings.default_accept, {}))

    async def scenario() -> None:
        assert await call(app, "GET", "/ping") == (503, b'{"error": "The model is loading."}')
        status, body = await call(app, "POST", "/invocations", b"[0, 0, 2, 2]")
        assert status == 503 and json.loads(body)["error"].startswith("The model is loading")
        assert (await lifespan(app, "startup"))["type"] == "lifespan.startup.complete"
        assert await call(app, "GET", "/ping") == (200, b"")
        status, body = await call(app, "POST", "/invocations", b"[0, 0, 2, 2]",
                                  [(b"content-type", b"application/json")])
        assert status == 200 and len(json.loads(body)["predictions"][0]) == 2

    asyncio.run(scenario())


def test_a_model_that_cannot_load_fails_the_lifespan_start_up_with_its_line(exported_model_dirs, tmp_path, capsys):
    model = Path(shutil.copytree(exported_model_dirs["dqn"], tmp_path / "model"))
    (model / "model.onnx").unlink()  # gone after the server checked it: a worker finds out as it starts
    settings = ServingSettings.from_env(1, {})
    app = ServingApp(settings, HandlerSource.find(model, None, settings.default_accept, {}))
    message = asyncio.run(lifespan(app, "startup"))
    assert message == {"type": "lifespan.startup.failed",
                       "message": f"{model} has no model.onnx: export the model again with rlframe-export."}
    assert capsys.readouterr().err == f"error: {message['message']}\n"


def test_the_connection_of_a_large_request_is_closed_after_its_answer(exported_model_dirs):
    """uvicorn's workers share one listening socket: connections are spread over them, not requests. A large
    request's answer closes its connection, so the client's next large request goes to whichever worker accepts
    it; small requests keep their connections alive."""
    settings = ServingSettings.from_env(1, {})
    app = ServingApp(settings, HandlerSource.find(exported_model_dirs["dqn"], None, settings.default_accept, {}))
    line = b"[0.01, -0.02, 0.03, 0.04]\n"
    large = line * (INLINE_BODY_BYTES // len(line) + 1)
    jsonlines = [(b"content-type", b"application/jsonlines"), (b"accept", b"application/jsonlines")]

    async def scenario() -> None:
        assert (await lifespan(app, "startup"))["type"] == "lifespan.startup.complete"
        small, big = [await exchange(app, "POST", "/invocations", body, jsonlines) for body in (line * 100, large)]
        assert small[0]["status"] == big[0]["status"] == 200
        assert (b"connection", b"close") not in small[0]["headers"]
        assert (b"connection", b"close") in big[0]["headers"]
        assert b"".join(m.get("body", b"") for m in big[1:]).count(b"\n") == large.count(b"\n")

    asyncio.run(scenario())
