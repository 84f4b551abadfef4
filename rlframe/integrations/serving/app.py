"""The ASGI application of ``rlframe-serve``: SageMaker's hosting contract over a :class:`Handler`.

- ``GET /ping``: 200 once the handler (the model) is loaded, 503 before; never waits for inference.
- ``POST /invocations``: the body through the handler. Errors are ``{"error": "<one line>"}`` with 415
  (Content-Type), 406 (Accept), 400 (body), 413 (over ``SAGEMAKER_MAX_PAYLOAD_IN_MB``, checked against
  Content-Length before reading and counted while reading a chunked body), 503 (not loaded) or 500 (the model or
  handler failed; the server goes on). ``X-Amzn-SageMaker-Custom-Attributes`` comes back on every answer.
- ``GET /execution-parameters``: ``{"MaxConcurrentTransforms", "BatchStrategy", "MaxPayloadInMB"}`` for batch
  transform (contracts §3).
- Anything else: 404, or 405 for a known path with another method.

A plain ASGI callable rather than a framework: the request path is a dozen lines, and a single-observation
request costs the HTTP parsing (httptools), one JSON parse, one onnxruntime call and one string format. Built-in
requests with small bodies run on the event loop (a thread hand-off would cost more than the inference); large ones
and every call into a user's handler run on one inference thread per worker, so ``/ping`` answers while they run.
A large request's answer closes its connection, so that a batch transform's requests spread over the workers.
"""
from __future__ import annotations

import asyncio
import json
import os
import queue
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from rlframe.errors import RlframeError
from rlframe.integrations import TRACEBACK_VARIABLE
from rlframe.integrations.serving.codecs import CONTENT_TYPES, JSON, RequestError
from rlframe.integrations.serving.handlers import Handler, HandlerSource, Request
from rlframe.integrations.serving.model import one_line

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MEGABYTE = 1024 * 1024
#: built-in requests up to this size run on the event loop: a few milliseconds at most
INLINE_BODY_BYTES = 64 * 1024
_ATTRIBUTES_HEADER = b"x-amzn-sagemaker-custom-attributes"
#: sent with the answer to a large request. uvicorn's workers share one listening socket, so connections, not
#: requests, are spread over them, and a worker's event loop accepts while its inference thread computes: a client's
#: kept-alive connections could all end at one worker while the others idle. Reconnecting costs a fraction of a
#: millisecond, nothing beside a large request, and each next large request goes to a worker free to accept it.
_CLOSE = [(b"connection", b"close")]
_JSON = JSON.encode()


class SettingsError(RlframeError):
    """A SAGEMAKER_* serving variable the server cannot use."""


def whole_number(text: str, subject: str, minimum: int, maximum: int | None = None) -> int:
    """``text`` as an integer from ``minimum`` (to ``maximum``); otherwise :class:`SettingsError` saying that
    ``subject`` (where the text came from, e.g. ``SAGEMAKER_BIND_TO_PORT='x'``) is not one."""
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum or (maximum is not None and value > maximum):
        limits = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise SettingsError(f"{subject} is not a whole number {limits}: fix it.")
    return value


def _variable(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    text = environ.get(name, "").strip()
    return whole_number(text, f"{name}={text!r}", minimum) if text else default


@dataclass(frozen=True)
class ServingSettings:
    """The serving variables of SageMaker's contract (contracts §2.4, §3), read once at start-up.

    :param max_payload_bytes: the largest request body, 0 for no limit.
    :param execution_parameters: the JSON answer of ``GET /execution-parameters``.
    :param batch: ``SAGEMAKER_BATCH`` (a batch transform): every refused request is also logged, so the job's log
        says why a record failed.
    """

    default_accept: str
    max_payload_bytes: int
    execution_parameters: bytes
    batch: bool

    @classmethod
    def from_env(cls, workers: int, environ: Mapping[str, str] = os.environ) -> "ServingSettings":
        """Read ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (default application/json), ``SAGEMAKER_MAX_PAYLOAD_IN_MB``
        (default 6; 0: no limit), ``SAGEMAKER_BATCH`` (true/false, any case), ``SAGEMAKER_BATCH_STRATEGY``
        (MULTI_RECORD or SINGLE_RECORD; default MULTI_RECORD) and ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS`` (default:
        the workers, lowered so that it times MaxPayloadInMB stays within SageMaker's 100)."""
        accept = environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").strip() or JSON
        payload_mb = _variable(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, 0)
        batch_text = environ.get("SAGEMAKER_BATCH", "").strip()
        if batch_text.lower() not in ("", "true", "false"):
            raise SettingsError(f"SAGEMAKER_BATCH={batch_text!r} is not true or false: fix it.")
        strategy_text = environ.get("SAGEMAKER_BATCH_STRATEGY", "").strip()
        strategy = strategy_text.upper().replace("_", "") or "MULTIRECORD"
        if strategy not in ("MULTIRECORD", "SINGLERECORD"):
            raise SettingsError(f"SAGEMAKER_BATCH_STRATEGY={strategy_text!r} is not MULTI_RECORD or SINGLE_RECORD: fix "
                                "it.")
        concurrency = max(1, min(workers, 100 // payload_mb)) if payload_mb else workers
        concurrency = _variable(environ, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", concurrency, 1)
        parameters = {"MaxConcurrentTransforms": concurrency, "BatchStrategy": strategy.replace("RECORD", "_RECORD"),
                      "MaxPayloadInMB": payload_mb}
        return cls(accept, payload_mb * MEGABYTE, json.dumps(parameters).encode(), batch_text.lower() == "true")

    def check_accept(self, source: HandlerSource) -> None:
        """The built-in handler writes only :data:`CONTENT_TYPES`: another default Accept is refused at start-up."""
        if source.user_module is None and self.default_accept not in CONTENT_TYPES:
            raise SettingsError(f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={self.default_accept!r} is not a type the "
                                f"built-in handler writes: use one of {', '.join(CONTENT_TYPES)}.")


class _InferenceThread:
    """Runs calls off the event loop, one at a time, on a daemon thread (a call that never returns cannot keep
    a worker from exiting after its graceful shutdown, as a ThreadPoolExecutor's joined threads would)."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, function: Callable[..., Any], *args: Any) -> "asyncio.Future[Any]":
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="rlframe-inference", daemon=True)
            self._thread.start()
        self._calls.put((loop, future, function, args))
        return future

    def _serve(self) -> None:
        while True:
            loop, future, function, args = self._calls.get()
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the request's coroutine, which answers it
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: "asyncio.Future[Any]", result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _header_text(header: bytes | None) -> str | None:
    return header.decode("latin-1") if header is not None else None


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class ServingApp:
    """The ASGI application (see the module docstring).

    :param source: where the handler comes from; a worker process loads it at its lifespan start-up.
    :param handler: the handler already loaded (a single-process server loaded it before binding its port).
    """

    def __init__(self, settings: ServingSettings, source: HandlerSource, handler: Handler | None = None) -> None:
        self.settings = settings
        self.source = source
        self.handler = handler
        self._inference = _InferenceThread()

    def __getstate__(self) -> dict[str, Any]:
        # Sent to spawned workers: the settings and where to load the handler from, not a loaded model.
        return {"settings": self.settings, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["settings"], state["source"])  # type: ignore[misc]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.handler is None:
                        self.handler = self.source.load()
                except RlframeError as exc:
                    print(f"error: {exc}", file=sys.stderr, flush=True)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        method = scope["method"]
        content_type = accept = length = attributes = None
        for name, value in scope["headers"]:  # names come lower-cased
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
            elif name == b"content-length":
                length = value
            elif name == _ATTRIBUTES_HEADER:
                attributes = value
        echo = [(_ATTRIBUTES_HEADER, attributes)] if attributes is not None else []
        if path == "/invocations":
            if method != "POST":
                await _answer(send, 405, _error_body("/invocations takes POST."), echo + [(b"allow", b"POST")])
                return
            request = (content_type, accept, attributes)
            status, body, response_type, large = await self._invoke(receive, length,
                                                                    *(_header_text(v) for v in request))
            await _answer(send, status, body, echo + _CLOSE if large else echo, response_type)
        elif path == "/ping":
            if method not in ("GET", "HEAD"):
                await _answer(send, 405, _error_body("/ping takes GET."), echo + [(b"allow", b"GET")])
            elif self.handler is None:
                await _answer(send, 503, _error_body("The model is loading."), echo)
            else:
                await _answer(send, 200, b"", echo, b"text/plain")
        elif path == "/execution-parameters":
            if method not in ("GET", "HEAD"):
                await _answer(send, 405, _error_body("/execution-parameters takes GET."), echo + [(b"allow", b"GET")])
            else:
                await _answer(send, 200, self.settings.execution_parameters, echo)
        else:
            await _answer(send, 404, _error_body(f"No such path {path!r}: the server answers /ping, /invocations "
                                                 "and /execution-parameters."), echo)

    async def _invoke(self, receive: Receive, length: bytes | None, content_type: str | None, accept: str | None,
                      attributes: str | None) -> tuple[int, bytes, bytes, bool]:
        """(status, body, content type, whether the body was over :data:`INLINE_BODY_BYTES`) of one
        ``POST /invocations``."""
        large = False
        try:
            body = await self._read_body(receive, int(length) if length is not None else None)
            large = len(body) > INLINE_BODY_BYTES
            if self.handler is None:
                raise RequestError(503, "The model is loading: wait until /ping answers 200.")
            request = Request(body, content_type, accept, attributes)
            handler = self.handler
            if handler.inline and not large:
                response = handler.invoke(request)
            else:
                response = await self._inference.run(handler.invoke, request)
            return 200, response.body, response.content_type.encode("latin-1"), large
        except RequestError as exc:
            if self.settings.batch:
                print(f"rlframe-serve: POST /invocations answered {exc.status}: {exc.message}", file=sys.stderr,
                      flush=True)
            return exc.status, _error_body(exc.message), _JSON, large
        except _Disconnected:
            return 400, b"", _JSON, large  # nobody reads it; uvicorn drops the connection
        except Exception as exc:  # the model or the user's handler failed: answer 500 and keep serving
            status = getattr(exc, "status_code", None)
            status = status if isinstance(status, int) and 400 <= status <= 599 else 500
            message = one_line(exc)
            print(f"rlframe-serve: POST /invocations answered {status}: {message}", file=sys.stderr, flush=True)
            if os.environ.get(TRACEBACK_VARIABLE) == "1":
                traceback.print_exc()
            return status, _error_body(f"Inference failed: {message}"), _JSON, large

    async def _read_body(self, receive: Receive, length: int | None) -> bytes:
        """The whole request body; 413 as soon as it is known to pass the limit (from Content-Length, or while a
        chunked body arrives), without reading the rest."""
        limit = self.settings.max_payload_bytes
        if limit and length is not None and length > limit:
            raise _too_large(length, limit)
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if limit and size > limit:
                raise _too_large(None, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Disconnected(Exception):
    """The client went away before its body arrived."""


def _too_large(length: int | None, limit: int) -> RequestError:
    size = f"{length} bytes" if length is not None else "more"
    return RequestError(413, f"The body is {size}, over the limit of {limit} bytes ({limit // MEGABYTE} MB, "
                             "SAGEMAKER_MAX_PAYLOAD_IN_MB): send fewer observations per request.")


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]],
                  content_type: bytes = _JSON) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
