"""``rlframe-transform``: a SageMaker batch transform run on this machine against ``rlframe-serve``.

``rlframe-transform MODEL_DIR INPUT... -o OUT`` does what SageMaker's batch-transform agent does with a serving
container (``sagemaker-contracts.md`` §3), with the server as a subprocess on 127.0.0.1 instead of a container:

1. start ``rlframe-serve MODEL_DIR`` on a free port with ``SAGEMAKER_BATCH=true`` (and
   ``SAGEMAKER_MAX_PAYLOAD_IN_MB``, ``SAGEMAKER_BATCH_STRATEGY``, ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS`` for the
   values given on the command line), wait until ``GET /ping`` answers 200;
2. ``GET /execution-parameters`` (404 is fine): each of ``MaxConcurrentTransforms``, ``MaxPayloadInMB`` and
   ``BatchStrategy`` comes from the command line, else from that answer, else SageMaker's defaults (1, 6 and
   MultiRecord);
3. cut every input file into requests and ``POST /invocations`` them, ``MaxConcurrentTransforms`` at a time, each
   with the file's Content-Type and Accept headers:

   - ``--split-type None`` (the default): the whole file is one request (it must fit in ``MaxPayloadInMB``);
   - ``--split-type Line``: a record is a line (empty lines are skipped); ``SingleRecord`` sends one record per
     request, ``MultiRecord`` as many whole records as fit in ``MaxPayloadInMB`` (MB = 2**20 bytes); a record that
     does not fit fails its file;

4. write ``OUT/<input's relative path>.out`` for each input file, in input order, atomically: a file that fails
   gets no ``.out`` at all. ``--assemble-with Line`` writes each record's answer less one trailing newline, then a
   newline; ``None`` concatenates the answers as they came. With ``MultiRecord`` and ``--split-type Line``, and
   whenever the input is joined, the answer to a request of N lines must have exactly N lines, or the file fails.
   ``--join-source Input`` joins each input line with its answer: JSON and JSON Lines give
   ``{"SageMakerInput": <input>, "SageMakerOutput": <answer>}``, or the input object with ``"SageMakerOutput"``
   added when the input is an object; CSV gives the input row with the answer's columns appended.

An answer other than 2xx fails its file with one line naming the file, the record's line (a failed request of
several records is halved until one record is found that fails alone) and the server's message; the other files
continue, and the exit status is 1 if any file failed. The server is stopped (SIGTERM, then SIGKILL) however the
run ends, Ctrl-C included; it also gets SIGTERM if this process dies (Linux).

Inputs are files or folders; a folder stands for every file under it, in S3 key order, and keeps its relative
paths (as an ``S3Prefix`` does). Without ``--content-type`` each file's type follows its extension (``.csv``,
``.json``/``.jsonl``/``.jsonlines``, ``.npy``); without ``--accept`` the answer is asked in the input's type (SageMaker
would send no Accept, and the server would answer JSON, which has no line per record).

Speed: this side must leave the CPU to the server (two cores). Files are read as bytes, requests cut at
newlines by byte count (numpy finds the newlines) and joins made on bytes: nothing is parsed here unless a joined
input line is itself a JSON object that already has ``SageMakerOutput``. Requests go over keep-alive
``http.client`` connections, one per thread, ``MaxConcurrentTransforms`` threads; single records are handed to the
threads 64 at a time. Answers are written in request order as they come, so memory holds about two requests per
thread.

:class:`BatchTransform` is the same transform against a server that is already running.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ctypes
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, BinaryIO, Callable, Iterator, NoReturn, Sequence

import numpy as np

from rlframe.cli import run_cli
from rlframe.errors import RlframeError
from rlframe.outputs.atomic import atomic_path, storage_error
from rlframe.stopping import RunStopped, StoppedAtOnce, StopSignals, signal_name

PROG = "rlframe-transform"
NEWLINE = ord("\n")
MEGABYTE = 1 << 20
#: SageMaker's defaults when neither the job nor the container's /execution-parameters sets a value
DEFAULT_MAX_CONCURRENT_TRANSFORMS = 1
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_STRATEGY = "MultiRecord"
#: SageMaker's bound on MaxPayloadInMB and on MaxConcurrentTransforms x MaxPayloadInMB
MAX_PAYLOAD_MB_LIMIT = 100
#: SageMaker's default InvocationsTimeoutInSeconds
INVOCATION_TIMEOUT_S = 600.0
#: a bound on waiting for /ping (loading a model takes seconds; this only ends a wait on a server that hangs)
STARTUP_TIMEOUT_S = 120.0
#: how long a stopped server gets to exit after SIGTERM before SIGKILL (SageMaker gives containers 30 s)
STOP_TIMEOUT_S = 30.0
#: what /ping may take before it counts as not answering (SageMaker's per-ping timeout)
PING_TIMEOUT_S = 2.0
#: what a stopped transform keeps, whether it stops after a signal or at once after a second one
KEPT_WHEN_STOPPED = "the finished .out files are kept, no unfinished one was written"

SPLIT_TYPES = ("None", "Line")
STRATEGIES = ("SingleRecord", "MultiRecord")
ASSEMBLE_WITH = ("None", "Line")
JOIN_SOURCES = ("None", "Input")
#: /execution-parameters' BatchStrategy values and the strategy names of the job request
_STRATEGY_OF_CONTAINER = {"SINGLE_RECORD": "SingleRecord", "MULTI_RECORD": "MultiRecord"}

JSON_TYPE = "application/json"
JSON_LINES_TYPE = "application/jsonlines"
CSV_TYPE = "text/csv"
NPY_TYPE = "application/x-npy"
#: content types whose body is one record per line
LINE_TYPES = (JSON_LINES_TYPE, CSV_TYPE)
#: a file's content type by extension when --content-type is not given (``.json`` is JSON Lines when split by line)
_TYPE_OF_SUFFIX = {".csv": CSV_TYPE, ".jsonl": JSON_LINES_TYPE, ".jsonlines": JSON_LINES_TYPE, ".npy": NPY_TYPE}
#: the join each input type allows, and the answer types it can join
_JOIN_OF_TYPE = {JSON_TYPE: "json", JSON_LINES_TYPE: "json", CSV_TYPE: "csv"}
_JOINABLE_ANSWERS = {"json": (JSON_TYPE, JSON_LINES_TYPE), "csv": (CSV_TYPE,)}

_JSON_INPUT_HEAD = b'{"SageMakerInput": '
_JSON_OUTPUT_KEY = b'"SageMakerOutput"'
_JSON_OUTPUT_HEAD = b', "SageMakerOutput": '


class TransformArgumentError(RlframeError):
    """A command line ``rlframe-transform`` cannot run (nothing has been started or written when it is raised)."""


class ServerFailure(RlframeError):
    """The server could not be started, or stopped answering; ``exit_code`` is its own when it refused the model
    directory as a user mistake (2), else 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class FileFailed(Exception):
    """One input file cannot be transformed. Raised with what follows the file's name in its line (`` line 7: the
    server answered 400: ...``), and again with the name in front once it is known."""


# ---------------------------------------------------------------------------------------------------------------
# Inputs and settings


@dataclass(frozen=True)
class InputFile:
    """One input object: ``path`` on disk, ``name`` as messages show it, ``output`` the ``.out`` it becomes."""

    path: Path
    name: str
    output: Path


def _key_order(root: Path) -> list[Path]:
    """Every file under ``root`` in the order S3 lists their keys (by the relative path's characters)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        found += [Path(folder, name) for name in files]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def discover_inputs(inputs: Sequence[str], out: Path) -> list[InputFile]:
    """The input files of ``inputs`` (files, and folders standing for every file under them) with their outputs.

    A file's output is ``out/<its name>.out``; a folder's files keep their path relative to the folder.
    Raises :class:`TransformArgumentError` for an input that does not exist, a folder without files, ``out``
    inside an input folder (its outputs would be inputs of the next run) and two inputs with one output.
    """
    resolved_out = out.resolve()
    if out.exists() and not out.is_dir():
        raise TransformArgumentError(f"-o {out} is a file: give a folder for the .out files.")
    files: list[InputFile] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            root = path.resolve()
            if _is_within(resolved_out, root):
                raise TransformArgumentError(
                    f"-o {out} is inside the input folder {given}: its .out files would be read as inputs next "
                    "time; give an output folder outside it.")
            found = _key_order(path)
            if not found:
                raise TransformArgumentError(f"Input folder {given} holds no files: give a folder with input files.")
            files += [InputFile(p, str(p), out / (p.relative_to(path).as_posix() + ".out")) for p in found]
        elif path.is_file():
            files.append(InputFile(path, given, out / (path.name + ".out")))
        elif path.exists():
            raise TransformArgumentError(f"Input {given} is neither a file nor a folder: give files or folders.")
        else:
            raise TransformArgumentError(f"Input {given} does not exist: give input files or folders.")
    by_output: dict[Path, InputFile] = {}
    for item in files:
        other = by_output.setdefault(item.output.resolve(), item)
        if other is not item:
            raise TransformArgumentError(
                f"Inputs {other.name} and {item.name} would both be written to {item.output}: give one of them "
                "inside a folder (a folder's files keep their relative paths), or run them separately.")
    return files


def _media_type(content_type: str) -> str:
    """``application/jsonlines`` of ``Application/JSONLines; charset=utf-8``."""
    return content_type.split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class Settings:
    """What a transform job sets (None: not set; the container's answer or SageMaker's default applies)."""

    split_type: str = "None"
    strategy: str | None = None
    max_payload_mb: int | None = None
    max_concurrent_transforms: int | None = None
    content_type: str | None = None
    accept: str | None = None
    assemble_with: str = "None"
    join_source: str = "None"

    def check(self) -> None:
        """Raise :class:`TransformArgumentError` for a combination SageMaker refuses."""
        if self.strategy == "SingleRecord" and self.split_type == "None":
            raise TransformArgumentError(
                "--strategy SingleRecord needs records: give --split-type Line (with --split-type None the whole file "
                "is one request, which is --strategy MultiRecord).")
        if self.max_payload_mb is not None and not 1 <= self.max_payload_mb <= MAX_PAYLOAD_MB_LIMIT:
            raise TransformArgumentError(
                f"--max-payload-mb {self.max_payload_mb}: give 1 to {MAX_PAYLOAD_MB_LIMIT} (MB per request; SageMaker's 0, "
                "unlimited with chunked requests, is not supported).")
        if self.max_concurrent_transforms is not None and self.max_concurrent_transforms < 1:
            raise TransformArgumentError(
                f"--max-concurrent-transforms {self.max_concurrent_transforms}: give 1 or more requests at a time.")

    def resolved(self, container: "ContainerParameters") -> "Settings":
        """These settings with the unset values taken from ``container`` (the server's /execution-parameters),
        else SageMaker's defaults; raises :class:`TransformArgumentError` over SageMaker's 100 MB bound."""
        strategy = self.strategy or container.strategy or DEFAULT_STRATEGY
        payload = self.max_payload_mb or container.max_payload_mb or DEFAULT_MAX_PAYLOAD_MB
        concurrency = self.max_concurrent_transforms or container.max_concurrent_transforms \
            or DEFAULT_MAX_CONCURRENT_TRANSFORMS
        if payload * concurrency > MAX_PAYLOAD_MB_LIMIT:
            raise TransformArgumentError(
                f"MaxConcurrentTransforms {concurrency} x MaxPayloadInMB {payload} = {payload * concurrency} MB is over "
                f"SageMaker's {MAX_PAYLOAD_MB_LIMIT} MB: lower --max-concurrent-transforms or --max-payload-mb.")
        return replace(self, strategy=strategy, max_payload_mb=payload, max_concurrent_transforms=concurrency)

    def describe(self) -> str:
        return (f"MaxConcurrentTransforms {self.max_concurrent_transforms}, MaxPayloadInMB {self.max_payload_mb}, "
                f"{self.strategy}, SplitType {self.split_type}, AssembleWith {self.assemble_with}, "
                f"JoinSource {self.join_source}")


@dataclass(frozen=True)
class FilePlan:
    """How one input file is sent: its headers, whether its records are lines answered line for line
    (``line_records``), and the join of its answers with it (``join``: None, ``"json"`` or ``"csv"``)."""

    input: InputFile
    content_type: str
    accept: str
    line_records: bool
    join: str | None


def plan_file(item: InputFile, settings: Settings) -> FilePlan:
    """The :class:`FilePlan` of ``item`` under ``settings``; raises :class:`TransformArgumentError` when its content
    type cannot be told or cannot be joined."""
    content_type = settings.content_type
    if content_type is None:
        suffix = item.path.suffix.lower()
        if suffix == ".json":
            content_type = JSON_LINES_TYPE if settings.split_type == "Line" else JSON_TYPE
        elif suffix in _TYPE_OF_SUFFIX:
            content_type = _TYPE_OF_SUFFIX[suffix]
        else:
            raise TransformArgumentError(
                f"Cannot tell the content type of {item.name} from its extension: give --content-type "
                f"({JSON_LINES_TYPE}, {CSV_TYPE}, {JSON_TYPE} or {NPY_TYPE}).")
    accept = settings.accept or content_type
    join = None
    if settings.join_source == "Input":
        join = _JOIN_OF_TYPE.get(_media_type(content_type))
        if join is None:
            raise TransformArgumentError(
                f"--join-source Input joins JSON, JSON Lines or CSV input; {item.name} is sent as {content_type}: "
                "give --join-source None, or input of one of those types.")
        if _media_type(accept) not in _JOINABLE_ANSWERS[join]:
            raise TransformArgumentError(
                f"--join-source Input with {content_type} input needs answers of type "
                f"{' or '.join(_JOINABLE_ANSWERS[join])} to join with it, not {accept}: change --accept.")
    by_line = _media_type(content_type) in LINE_TYPES
    line_records = (settings.split_type == "Line" and settings.strategy == "MultiRecord") or \
        (settings.split_type == "None" and join is not None and by_line)
    return FilePlan(item, content_type, accept, line_records, join)


# ---------------------------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class Payload:
    """One request's body and the records in it: ``count`` records starting at line ``first_line``, or at the
    lines ``line_numbers`` when empty lines were left out; ``whole_file`` when the body is a whole file."""

    body: bytes
    first_line: int
    count: int
    line_numbers: tuple[int, ...] | None = None
    whole_file: bool = False

    def line(self, index: int) -> int:
        """The input line of record ``index``."""
        return self.line_numbers[index] if self.line_numbers else self.first_line + index

    def where(self) -> str:
        """`` line 7``, `` lines 7-12``, or '' for a whole file (to follow the file's name)."""
        if self.whole_file:
            return ""
        last = self.line(self.count - 1)
        return f" line {self.first_line}" if last == self.first_line else f" lines {self.first_line}-{last}"


def _newlines(body: bytes) -> np.ndarray:
    """The offsets of the newlines in ``body``. numpy finds them 3x faster than ``bytes.count`` counts them, and
    their gaps show empty lines without a second search."""
    return np.flatnonzero(np.frombuffer(body, np.uint8) == NEWLINE)


def _has_empty_line(body: bytes, newlines: np.ndarray) -> bool:
    """Whether ``body`` (whose newline offsets are ``newlines``) has an empty line (or one of a lone ``\\r``)."""
    if newlines.size and (newlines[0] == 0 or bool((np.diff(newlines) == 1).any())):
        return True
    # Searching for a single byte is a memchr; line ends of two bytes are only looked for where they occur.
    return b"\r" in body and (body.startswith(b"\r\n") or body.endswith(b"\n\r") or b"\n\r\n" in body)


def _line_count(body: bytes) -> int:
    """Lines of ``body``, the last one with or without its newline."""
    newlines = int(np.count_nonzero(np.frombuffer(body, np.uint8) == NEWLINE))
    return newlines + (0 if not body or body.endswith(b"\n") else 1)


def text_lines(body: bytes) -> list[bytes]:
    """The records of ``body``: its lines without their line ends, empty lines left out."""
    lines = body.split(b"\n")
    if b"\r" in body:
        lines = [line.rstrip(b"\r") for line in lines]
    if _has_empty_line(body, _newlines(body)):
        return [line for line in lines if line]
    if not lines[-1]:
        lines.pop()
    return lines


def _answer_lines(answer: bytes) -> list[bytes]:
    """The lines of an answer without their line ends, empty ones kept (each answers a record)."""
    lines = answer.split(b"\n")
    if answer.endswith(b"\n"):
        lines.pop()
    return [line.rstrip(b"\r") for line in lines] if b"\r" in answer else lines


def _records_payload(body: bytes, first_line: int) -> Payload | None:
    """The payload of the lines of ``body`` (the first is ``first_line``), without its empty lines (None when
    all are empty)."""
    newlines = _newlines(body)
    if not _has_empty_line(body, newlines):
        return Payload(body, first_line, newlines.size + (0 if body.endswith(b"\n") else 1))
    numbered = [(first_line + i, line) for i, line in enumerate(body.split(b"\n")) if line.rstrip(b"\r")]
    if not numbered:
        return None
    numbers = tuple(number for number, _ in numbered)
    return Payload(b"".join(line + b"\n" for _, line in numbered), numbers[0], len(numbers), numbers)


def _too_large(line: int, max_bytes: int) -> FileFailed:
    return FileFailed(f" line {line} is longer than MaxPayloadInMB ({max_bytes // MEGABYTE} MB): a record must fit "
                       "in one request; give a larger --max-payload-mb")


def line_payloads(handle: BinaryIO, max_bytes: int, multi_record: bool) -> Iterator[Payload]:
    """Cut the lines of ``handle`` into payloads of at most ``max_bytes``: one record each, or (``multi_record``) as
    many whole lines as fit. Reads one payload ahead at most; raises :class:`FileFailed` at a line that does not
    fit."""
    if not multi_record:
        for number, text in enumerate(handle, start=1):
            record = text.rstrip(b"\r\n")
            if not record:
                continue
            if len(record) > max_bytes:
                raise _too_large(number, max_bytes)
            yield Payload(record, number, 1)
        return
    line, carry = 1, b""
    while True:
        wanted = max_bytes - len(carry)
        block = handle.read(wanted)
        buffer = carry + block if carry else block
        if len(block) < wanted:  # a buffered read returns less only at the end of the file
            payload = _records_payload(buffer, line) if buffer else None
            if payload is not None:
                yield payload
            return
        cut = buffer.rfind(b"\n") + 1
        if not cut:
            raise _too_large(line, max_bytes)
        body, carry = buffer[:cut], buffer[cut:]
        payload = _records_payload(body, line)
        if payload is not None:
            yield payload
        line += payload.count if payload is not None and payload.line_numbers is None else body.count(b"\n")


def file_payloads(plan: FilePlan, handle: BinaryIO, settings: Settings) -> Iterator[Payload]:
    """The payloads of one input file under (resolved) ``settings``."""
    assert settings.max_payload_mb is not None
    max_bytes = settings.max_payload_mb * MEGABYTE
    if settings.split_type == "Line":
        yield from line_payloads(handle, max_bytes, settings.strategy == "MultiRecord")
        return
    body = handle.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise FileFailed(f" is larger than MaxPayloadInMB ({settings.max_payload_mb} MB), and with SplitType None the "
                          "whole file is one request: give --split-type Line, or a larger --max-payload-mb")
    if body:
        yield Payload(body, 1, len(text_lines(body)) if plan.line_records else 1, whole_file=True)


# ---------------------------------------------------------------------------------------------------------------
# Answers


def _one_record(answer: bytes) -> bytes:
    """A single record's answer less one trailing line end."""
    if answer.endswith(b"\n"):
        answer = answer[:-2] if answer.endswith(b"\r\n") else answer[:-1]
    return answer


def join_json(record: bytes, answer: bytes) -> bytes:
    """SageMaker's JSON join of one input record and its (JSON) answer: ``{"SageMakerInput": record,
    "SageMakerOutput": answer}``, or the record's object with ``"SageMakerOutput": answer`` added. Nothing is parsed
    unless the record is an object that already has ``SageMakerOutput``, whose value the answer then replaces."""
    record = record.strip()
    if not (record.startswith(b"{") and record.endswith(b"}")):
        return _JSON_INPUT_HEAD + record + _JSON_OUTPUT_HEAD + answer + b"}"
    if _JSON_OUTPUT_KEY in record:
        with contextlib.suppress(ValueError):
            merged = json.loads(record)
            if isinstance(merged, dict) and "SageMakerOutput" in merged:
                merged["SageMakerOutput"] = json.loads(answer)
                return json.dumps(merged).encode()
    if not record[1:-1].strip():
        return b"{" + _JSON_OUTPUT_HEAD[2:] + answer + b"}"
    return record[:-1] + _JSON_OUTPUT_HEAD + answer + b"}"


def join_csv(record: bytes, answer: bytes) -> bytes:
    """The input row with the answer's columns appended."""
    return record.rstrip(b"\r\n") + b"," + answer


def _join_lines(kind: str, body: bytes, answer: bytes) -> bytes:
    """Each record of ``body`` joined with its line of ``answer`` (as many, checked), each followed by a newline.

    One ``bytes.join`` of the pieces in order: a third faster than concatenating each line and joining the lines."""
    rows, answers = text_lines(body), _answer_lines(answer)
    if kind == "csv":
        return b"".join([piece for row, line in zip(rows, answers) for piece in (row, b",", line, b"\n")])
    if b"{" not in body:  # no record is an object: none needs looking at
        return b"".join([piece for row, line in zip(rows, answers)
                         for piece in (_JSON_INPUT_HEAD, row, _JSON_OUTPUT_HEAD, line, b"}\n")])
    return b"".join([join_json(row, line) + b"\n" for row, line in zip(rows, answers)])


def assemble(plan: FilePlan, settings: Settings, payload: Payload, answer: bytes) -> bytes:
    """What ``answer`` (the 2xx answer to ``payload``) adds to the output file; raises :class:`FileFailed` when an
    answer of lines does not have one line per record."""
    by_line = settings.assemble_with == "Line"
    if plan.line_records and (by_line or plan.join):
        answered = _line_count(answer)
        if answered != payload.count:
            raise FileFailed(
                f"{payload.where()}: the server answered {answered} lines for {payload.count} records; with "
                f"{'JoinSource Input' if plan.join else 'AssembleWith Line'} each record needs one line of answer "
                "(give --strategy SingleRecord, or an --accept type that answers one line per record)")
        if plan.join:
            lines = _join_lines(plan.join, payload.body, answer)
            return lines if by_line else lines[:-1]
        return answer if answer.endswith(b"\n") else answer + b"\n"
    if plan.join:
        joined = join_csv(payload.body, _one_record(answer)) if plan.join == "csv" \
            else join_json(payload.body, _one_record(answer))
        return joined + b"\n" if by_line else joined
    return _one_record(answer) + b"\n" if by_line else answer


def _alone(message: str) -> str:
    """A server message about a request of one record, without its "Line 1: " (the record's own line in the file
    is named by the caller)."""
    return re.sub(r"\A(Line|Row) 1: ", "", message)


def server_message(body: bytes, limit: int = 300) -> str:
    """The server's error message on one line: a JSON answer's ``message``/``error`` text, else the body's text."""
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        if isinstance(data, dict):
            for key in ("message", "error", "errorMessage", "detail"):
                if isinstance(data.get(key), str):
                    text = data[key]
                    break
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------------------
# HTTP


class ConnectionLost(ConnectionError):
    """The server closed a connection before a whole answer came, or answered something that is not HTTP/1.x."""


#: Linux's socket option that holds back partial segments until it is cleared (None where there is none)
_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)


def _lost(exc: http.client.HTTPException) -> ConnectionLost:
    """``exc`` of ``http.client`` as the :class:`ConnectionLost` (an ``OSError``, as every other failure to reach
    the server is) whose text says what the server did."""
    if isinstance(exc, http.client.IncompleteRead):
        received = len(exc.partial)
        of = f" of {received + exc.expected}" if exc.expected is not None else ""
        return ConnectionLost(f"the server closed the connection after {received}{of} bytes")
    if isinstance(exc, http.client.RemoteDisconnected):
        return ConnectionLost("the server closed the connection before answering")
    said = " ".join(str(exc).split())[:80]  # a status line quoted as it came would end the message's line
    return ConnectionLost(f"the server's answer is not HTTP/1.x ({type(exc).__name__}: {said})")


class Client:
    """HTTP/1.1 requests to a server over keep-alive ``http.client`` connections, one per thread."""

    def __init__(self, host: str, port: int, timeout: float = INVOCATION_TIMEOUT_S) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._open.add(connection)
        return connection

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """``(status, body)`` of one request. A kept-alive connection the server has closed meanwhile is replaced
        once; any other failure raises (``TimeoutError`` when no answer comes within ``timeout`` seconds,
        :class:`ConnectionLost` for an answer cut short or not HTTP, another ``OSError`` when the server cannot be
        reached)."""
        while True:
            connection = self._connection()
            # http.client connects when it has no socket: one it still has was kept alive by an earlier answer.
            kept_alive = connection.sock is not None
            try:
                if _TCP_CORK is None:
                    connection.request(method, path, body, headers or {})
                else:
                    # http.client sends the head and the body in two sends; corked, they leave as one segment, so
                    # the server wakes and parses once per request (20,000 single records: 16 s instead of 21 s).
                    if not kept_alive:
                        connection.connect()
                    sock = connection.sock
                    sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1)
                    connection.request(method, path, body, headers or {})
                    sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 0)
                response = connection.getresponse()
                return response.status, response.read()
            except (ConnectionResetError, BrokenPipeError, http.client.HTTPException) as exc:
                connection.close()
                # RemoteDisconnected (no answer at all) is a ConnectionResetError too.
                if kept_alive and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                    continue  # the server closed an idle connection: a new one gets the request
                if isinstance(exc, http.client.HTTPException):
                    raise _lost(exc) from exc
                raise
            except BaseException:
                connection.close()  # a request cut short leaves http.client's connection unusable
                raise

    def close(self) -> None:
        with self._lock:
            for connection in self._open:
                connection.close()
            self._open.clear()


@dataclass(frozen=True)
class ContainerParameters:
    """What a server's ``GET /execution-parameters`` sets (None: not set)."""

    max_concurrent_transforms: int | None = None
    max_payload_mb: int | None = None
    strategy: str | None = None


def parse_execution_parameters(status: int, body: bytes) -> ContainerParameters:
    """The parameters of a ``GET /execution-parameters`` answer (none for 404); raises :class:`ServerFailure` for
    another status or a value SageMaker would not accept."""
    if status == 404:
        return ContainerParameters()
    where = f"The server's GET /execution-parameters answered {status}"
    if status != 200:
        raise ServerFailure(f"{where}: {server_message(body)} (expected 200 with the parameters, or 404).")
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ServerFailure(f"{where} with {server_message(body, 80)!r}, not a JSON object.")
    counts: dict[str, int | None] = {}
    for key, option, upper in (("MaxConcurrentTransforms", "max-concurrent-transforms", None),
                               ("MaxPayloadInMB", "max-payload-mb", MAX_PAYLOAD_MB_LIMIT)):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1
                                  or (upper is not None and value > upper)):
            raise ServerFailure(f"{where} with {key}={value!r}: rlframe-transform needs an integer from 1"
                                f"{f' to {upper}' if upper else ''}; set it with --{option}.")
        counts[key] = value
    strategy = data.get("BatchStrategy")
    if strategy is not None:
        strategy = _STRATEGY_OF_CONTAINER.get(str(strategy).upper())
        if strategy is None:
            raise ServerFailure(f"{where} with BatchStrategy={data['BatchStrategy']!r}: expected MULTI_RECORD or "
                                "SINGLE_RECORD; set it with --strategy.")
    return ContainerParameters(counts["MaxConcurrentTransforms"], counts["MaxPayloadInMB"], strategy)


# ---------------------------------------------------------------------------------------------------------------
# The transform


@dataclass
class _Output:
    """The ``.out`` of one input file while its answers arrive: a temporary file renamed into place when done."""

    plan: FilePlan
    records: int = 0
    failed: bool = False
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _handle: IO[bytes] | None = None

    def open(self) -> None:
        temporary = self._stack.enter_context(atomic_path(str(self.plan.input.output)))
        self._handle = self._stack.enter_context(open(temporary, "wb"))

    def write(self, data: bytes, records: int) -> None:
        assert self._handle is not None
        try:
            self._handle.write(data)
        except OSError as exc:
            raise storage_error(str(self.plan.input.output), exc) from exc
        self.records += records

    def finish(self) -> None:
        """Close the file and put it in place (fsync, rename)."""
        self._stack.close()

    def discard(self) -> None:
        """Remove what was written; no ``.out`` is left."""
        self.failed = True
        self._stack.__exit__(_Discarded, _Discarded(), None)


class _Discarded(Exception):
    """Thrown into an output's atomic write to make it remove its temporary file."""


@dataclass
class Report:
    """What a transform did: ``transformed`` (records of each file written), ``failed`` (each failed file's line)."""

    transformed: dict[InputFile, int] = field(default_factory=dict)
    failed: dict[InputFile, str] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(self.transformed.values())


class BatchTransform:
    """A batch transform against a server already answering at ``client``'s address.

    :param settings: resolved settings (:meth:`Settings.resolved`).
    :param stop: polled while waiting; a stop request ends the run with :class:`~rlframe.stopping.RunStopped`
        after removing the unfinished outputs.
    :param alive: called when a request cannot reach the server; raises :class:`ServerFailure` if it is gone.
    :param on_failure: called with each failed file's line as soon as it fails (messages appear as they happen).
    """

    def __init__(self, client: Client, settings: Settings, stop: StopSignals | None = None,
                 alive: Callable[[], None] | None = None, on_failure: Callable[[str], None] | None = None) -> None:
        assert settings.strategy and settings.max_payload_mb and settings.max_concurrent_transforms
        self.client = client
        self.settings = settings
        self.stop = stop or StopSignals.current()
        self._alive = alive
        self._on_failure = on_failure

    # -- worker threads

    def _post(self, plan: FilePlan, body: bytes) -> tuple[int, bytes]:
        try:
            return self.client.request("POST", "/invocations", body,
                                       {"Content-Type": plan.content_type, "Accept": plan.accept})
        except TimeoutError:
            raise  # a slow answer fails its file, not the run
        except OSError as exc:
            if self._alive is not None:
                self._alive()
            raise ServerFailure(f"Lost the server at {self.client.host}:{self.client.port} while sending "
                                f"{plan.input.name}: {exc}.") from exc

    def _transform(self, output: _Output, payloads: list[Payload]) -> list[tuple[Payload, bytes]] | None:
        """The answers to ``payloads`` (consecutive requests of one file); None when the file already failed.
        Raises :class:`FileFailed` with the line naming the file, the record and the cause."""
        plan = output.plan
        answers = []
        for payload in payloads:
            if output.failed:
                return None
            try:
                status, answer = self._post(plan, payload.body)
                if not 200 <= status < 300:
                    raise FileFailed(f"{plan.input.name}{self._blame(plan, payload, status, answer)}")
            except TimeoutError:
                raise FileFailed(f"{plan.input.name}{payload.where()}: no answer within {self.client.timeout:g} s") \
                    from None
            answers.append((payload, answer))
        return answers

    def _blame(self, plan: FilePlan, payload: Payload, status: int, answer: bytes) -> str:
        """The record a refused payload of several lines is refused for: halves of it are sent until one record
        fails alone (a few requests, only on failure), so the message names its line."""
        if self.settings.split_type == "Line" and payload.count > 1:
            records = list(zip((payload.line(i) for i in range(payload.count)), text_lines(payload.body)))
            while len(records) > 1:
                half = len(records) // 2
                for part in (records[:half], records[half:]):
                    part_status, part_answer = self._post(plan, b"".join(line + b"\n" for _, line in part))
                    if not 200 <= part_status < 300:
                        records, status, answer = part, part_status, part_answer
                        break
                else:
                    return (f"{payload.where()}: the server answered {status}: {server_message(answer)} (each half "
                            "alone was answered, so no one record fails)")
            return f" line {records[0][0]}: the server answered {status}: {_alone(server_message(answer))}"
        message = server_message(answer)
        return f"{payload.where()}: the server answered {status}: {_alone(message) if payload.count == 1 else message}"

    # -- main thread

    def _check_stop(self) -> None:
        """Raise :class:`RunStopped` (after printing its line) if a stop was requested."""
        if self.stop.poll():
            assert self.stop.signum is not None
            print(f"{signal_name(self.stop.signum)}: stopped; {KEPT_WHEN_STOPPED}.", file=sys.stderr, flush=True)
            raise RunStopped(self.stop.signum, "stopped")

    def _wait(self, future: concurrent.futures.Future[list[tuple[Payload, bytes]] | None]
              ) -> list[tuple[Payload, bytes]] | None:
        while True:
            self._check_stop()
            try:
                return future.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                pass

    def _fail(self, output: _Output, message: str, report: Report) -> None:
        if not output.failed:
            output.discard()
            report.failed[output.plan.input] = message
            if self._on_failure is not None:
                self._on_failure(message)

    def _settle(self, window: deque[_Pending], report: Report) -> None:
        """Write the oldest task's answers (answers are written in request order), or finish its file."""
        output, future = window.popleft()
        if future is None:  # the file's end
            if not output.failed:
                output.finish()
                report.transformed[output.plan.input] = output.records
            return
        try:
            answers = self._wait(future)
        except FileFailed as exc:
            self._fail(output, str(exc), report)
            return
        if answers is None or output.failed:
            return
        # Assembled here rather than in the request's thread: that thread is already sending the next request, so
        # the server works while this joins (with MaxConcurrentTransforms 1 it would otherwise wait for the join).
        try:
            data = b"".join([assemble(output.plan, self.settings, payload, answer) for payload, answer in answers])
        except FileFailed as exc:
            self._fail(output, f"{output.plan.input.name}{exc}", report)
            return
        output.write(data, sum(payload.count for payload, _ in answers))

    def run(self, plans: Sequence[FilePlan]) -> Report:
        """Transform every file of ``plans`` in order; returns what was written and what failed."""
        report = Report()
        concurrency, max_mb = self.settings.max_concurrent_transforms, self.settings.max_payload_mb
        assert concurrency is not None and max_mb is not None
        # Two tasks per connection: the next one is ready while the main thread writes an answer.
        depth = 2 * concurrency
        window: deque[_Pending] = deque()
        executor = concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix=PROG)
        open_outputs: list[_Output] = []
        try:
            for plan in plans:
                output = _Output(plan)
                output.open()
                open_outputs.append(output)
                try:
                    with open(plan.input.path, "rb") as handle:
                        for task in _tasks(file_payloads(plan, handle, self.settings), max_mb * MEGABYTE):
                            if output.failed:
                                break
                            window.append((output, executor.submit(self._transform, output, task)))
                            while len(window) > depth:
                                self._settle(window, report)
                except FileFailed as exc:
                    self._fail(output, f"{plan.input.name}{exc}", report)
                except OSError as exc:
                    self._fail(output, f"{plan.input.name}: cannot be read: {exc.strerror or exc}", report)
                window.append((output, None))
                self._check_stop()
            while window:
                self._settle(window, report)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            for output in open_outputs:
                if output.plan.input not in report.transformed and not output.failed:
                    output.discard()
        return report


#: a file's output and its task's future (None: the file's end) in the order answers are written
_Pending = tuple[_Output, "concurrent.futures.Future[list[tuple[Payload, bytes]] | None] | None"]
#: single records one task sends one after another: handing each to a thread would cost more than its request
RECORDS_PER_TASK = 64


def _tasks(payloads: Iterator[Payload], max_bytes: int) -> Iterator[list[Payload]]:
    """Consecutive payloads grouped into tasks of up to :data:`RECORDS_PER_TASK` requests and about ``max_bytes``."""
    task: list[Payload] = []
    size = 0
    for payload in payloads:
        task.append(payload)
        size += len(payload.body)
        if len(task) == RECORDS_PER_TASK or size >= max_bytes:
            yield task
            task, size = [], 0
    if task:
        yield task


# ---------------------------------------------------------------------------------------------------------------
# The server


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


#: prctl's option that makes the kernel signal a process when its parent dies (Linux)
_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """What the server's process runs before exec so that it gets SIGTERM when this process dies, however it dies
    (None where prctl does not exist). prctl is looked up here, in the parent: the child only calls it."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerProcess:
    """``rlframe-serve MODEL_DIR`` as a subprocess on 127.0.0.1, in its own process group (its workers with it),
    its output kept in an unnamed temporary file for the one line a failure quotes."""

    HOST = "127.0.0.1"

    def __init__(self, model_dir: str, workers: int | None = None, entry_point: str | None = None,
                 environment: dict[str, str] | None = None) -> None:
        self.model_dir = model_dir
        self.port = free_port(self.HOST)
        arguments = [model_dir, "--port", str(self.port), "--host", self.HOST]
        if workers is not None:
            arguments += ["--workers", str(workers)]
        if entry_point is not None:
            arguments += ["--entry-point", entry_point]
        # -c rather than -m: the contract is the module's main(argv), not a __main__ block.
        self.command = [sys.executable, "-c", "import sys; from rlframe.integrations.serving.server import main; "
                        "sys.exit(main(sys.argv[1:]))", *arguments]
        self.environment = {**os.environ, "SAGEMAKER_BATCH": "true", **(environment or {})}
        self._log = tempfile.TemporaryFile()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                        env=self.environment, start_new_session=True,
                                        preexec_fn=_parent_death_signal())

    def last_line(self) -> str:
        """The last line the server printed ('' if none); read without moving the file offset it writes at."""
        size = os.fstat(self._log.fileno()).st_size
        start = max(0, size - 8192)
        tail = os.pread(self._log.fileno(), size - start, start).decode("utf-8", "replace")
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def check_alive(self) -> None:
        """Raise :class:`ServerFailure` quoting the server's last line if it has exited."""
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            said = self.last_line() or "(it printed nothing)"
            raise ServerFailure(f"rlframe-serve {self.model_dir} exited with status {code}: {said}",
                                exit_code=2 if code == 2 else 1)

    def wait_ready(self, client: Client, stop: StopSignals, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Poll ``GET /ping`` until it answers 200; raise :class:`ServerFailure` if the server exits or does not
        answer within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        ping = Client(client.host, client.port, timeout=PING_TIMEOUT_S)
        try:
            while True:
                self.check_alive()
                if stop.poll():
                    assert stop.signum is not None
                    print(f"{signal_name(stop.signum)}: stopped before the server was ready; nothing was written.",
                          file=sys.stderr, flush=True)
                    raise RunStopped(stop.signum, "stopped")
                with contextlib.suppress(OSError):
                    if ping.request("GET", "/ping")[0] == 200:
                        return
                if time.monotonic() > deadline:
                    said = self.last_line()
                    raise ServerFailure(f"rlframe-serve {self.model_dir} did not answer /ping with 200 within "
                                        f"{timeout:g} s{f'; it last printed: {said}' if said else ''}")
                time.sleep(0.05)
        finally:
            ping.close()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the server's process group, SIGKILL it if it has not exited within ``timeout`` seconds (or if
        this wait is interrupted: the server is not left running)."""
        try:
            if self.process is not None:
                self._signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._kill()
                except BaseException:
                    self._kill()
                    raise
        finally:
            self._log.close()

    def _signal(self, signum: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def _kill(self) -> None:
        assert self.process is not None
        self._signal(signal.SIGKILL)
        self.process.wait()


# ---------------------------------------------------------------------------------------------------------------
# Command line


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one-line errors (exit 2) rather than usage text."""

    def error(self, message: str) -> NoReturn:
        raise TransformArgumentError(f"{message}; run {PROG} --help to see the options.")


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    """An argparse type accepting ``choices`` in any case and answering their spelling."""
    by_lower = {choice.lower(): choice for choice in choices}

    def parse(text: str) -> str:
        if text.lower() not in by_lower:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(choices)}")
        return by_lower[text.lower()]

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, allow_abbrev=False,
        description="Run a SageMaker batch transform on this machine: start rlframe-serve MODEL_DIR on 127.0.0.1, "
        "POST the input files' records to it and write OUT/<input>.out for each input file.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="the model directory (rlframe-export's, or /opt/ml/model's)")
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="input files, or folders standing for every file under them (relative paths kept)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="folder for the .out files")
    parser.add_argument("--split-type", type=_choice(SPLIT_TYPES), default="None",
                        help="None: a file is one request (default); Line: a line is a record")
    parser.add_argument("--strategy", "--batch-strategy", dest="strategy", type=_choice(STRATEGIES),
                        help="SingleRecord: one record per request; MultiRecord: as many as fit in MaxPayloadInMB "
                        "(default: the server's /execution-parameters, else MultiRecord)")
    parser.add_argument("--max-payload-mb", type=int, metavar="N",
                        help=f"MB per request, 1-{MAX_PAYLOAD_MB_LIMIT} "
                        f"(default: the server's, else {DEFAULT_MAX_PAYLOAD_MB})")
    parser.add_argument("--max-concurrent-transforms", type=int, metavar="N",
                        help="requests at a time (default: the server's, else 1)")
    parser.add_argument("--content-type", metavar="T",
                        help="Content-Type of every request (default: by each file's extension)")
    parser.add_argument("--accept", metavar="T", help="Accept of every request (default: the content type)")
    parser.add_argument("--assemble-with", type=_choice(ASSEMBLE_WITH), default="None",
                        help="Line: a newline after each record's answer; None: answers concatenated (default)")
    parser.add_argument("--join-source", type=_choice(JOIN_SOURCES), default="None",
                        help="Input: each output line holds its input line too (JSON: SageMakerInput/SageMakerOutput; "
                        "CSV: answer columns appended)")
    parser.add_argument("--workers", type=int, metavar="N", help="the server's worker processes (rlframe-serve --workers)")
    parser.add_argument("--entry-point", metavar="FILE",
                        help="a handler module for the server (rlframe-serve --entry-point)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings(split_type=args.split_type, strategy=args.strategy, max_payload_mb=args.max_payload_mb,
                        max_concurrent_transforms=args.max_concurrent_transforms, content_type=args.content_type,
                        accept=args.accept, assemble_with=args.assemble_with, join_source=args.join_source)
    settings.check()
    return settings


def _server_environment(settings: Settings) -> dict[str, str]:
    """The batch variables a transform job sets in the container, for the values the job sets."""
    environment = {}
    if settings.max_payload_mb is not None:
        environment["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(settings.max_payload_mb)
    if settings.strategy is not None:
        environment["SAGEMAKER_BATCH_STRATEGY"] = {v: k for k, v in _STRATEGY_OF_CONTAINER.items()}[settings.strategy]
    if settings.max_concurrent_transforms is not None:
        environment["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(settings.max_concurrent_transforms)
    return environment


def _check_arguments(args: argparse.Namespace) -> None:
    if not os.path.isdir(args.model_dir):
        what = "is not a folder" if os.path.exists(args.model_dir) else "does not exist"
        raise TransformArgumentError(f"MODEL_DIR {args.model_dir} {what}: give the model directory rlframe-export wrote.")
    if args.entry_point is not None and not os.path.isfile(args.entry_point):
        raise TransformArgumentError(f"--entry-point {args.entry_point} is not a file: give the handler module's path.")
    if args.workers is not None and args.workers < 1:
        raise TransformArgumentError(f"--workers {args.workers}: give 1 or more worker processes.")


def _transform(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    _check_arguments(args)
    settings = _settings(args)
    out = Path(args.output)
    files = discover_inputs(args.inputs, out)
    # Checked with the strategy the command line gives; again below once the server's answer is known.
    for item in files:
        plan_file(item, settings)
    started = time.monotonic()
    server = ServerProcess(args.model_dir, args.workers, args.entry_point, _server_environment(settings))
    client = Client(ServerProcess.HOST, server.port)
    with StopSignals(kept=KEPT_WHEN_STOPPED) as stop:
        try:
            server.start()
            server.wait_ready(client, stop)
            ready = time.monotonic()
            try:
                answer = client.request("GET", "/execution-parameters")
            except OSError as exc:
                server.check_alive()
                raise ServerFailure(f"rlframe-serve {args.model_dir} did not answer GET /execution-parameters: "
                                    f"{exc}") from exc
            settings = settings.resolved(parse_execution_parameters(*answer))
            plans = [plan_file(item, settings) for item in files]
            print(f"{PROG}: rlframe-serve ready in {ready - started:.2f} s; {len(files)} file{'s' * (len(files) != 1)} "
                  f"-> {out} ({settings.describe()})", flush=True)
            transform = BatchTransform(client, settings, stop, alive=server.check_alive,
                                       on_failure=lambda line: print(f"error: {line}", file=sys.stderr, flush=True))
            report = transform.run(plans)
            seconds = time.monotonic() - ready
        finally:
            # After a second signal the server is killed, not given time to exit: the transform stops at once. The
            # server is stopped before the client closes, so a second signal during either cannot leave it running.
            at_once = isinstance(sys.exc_info()[1], (StoppedAtOnce, SystemExit))
            server.stop(0 if at_once else STOP_TIMEOUT_S)
            client.close()
    done = len(report.transformed)
    print(f"{PROG}: {done} of {len(files)} files, {report.records} records in {seconds:.2f} s "
          f"({report.records / max(seconds, 1e-9):,.0f} records/s) -> {out}", flush=True)
    if report.failed:
        names = ", ".join(item.name for item in report.failed)
        print(f"error: {len(report.failed)} of {len(files)} files failed ({names}); no .out was written for "
              f"{'them' if len(report.failed) > 1 else 'it'}", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rlframe-transform``."""
    return run_cli(_transform, argv)


if __name__ == "__main__":
    sys.exit(main())
