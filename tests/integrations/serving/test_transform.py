"""``rlframe-transform``: a SageMaker batch transform against a real ``rlframe-serve`` subprocess.

The first part checks what needs no server (finding inputs, cutting records into requests, joining, the command
line's mistakes); the rest runs real transforms of real exported models (``tests/exported_models.py``) over HTTP on
loopback: one server per module for :class:`BatchTransform` runs, and a few whole ``rlframe-transform`` commands,
each starting its own.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from rlframe.environments.gym_compat import install_gym_fallback
from rlframe.integrations.serving.transform import (
    CSV_TYPE,
    JSON_LINES_TYPE,
    JSON_TYPE,
    MEGABYTE,
    NPY_TYPE,
    STOP_TIMEOUT_S,
    BatchTransform,
    Client,
    ContainerParameters,
    FileFailed,
    FilePlan,
    InputFile,
    Payload,
    Report,
    ServerFailure,
    ServerProcess,
    Settings,
    TransformArgumentError,
    assemble,
    discover_inputs,
    file_payloads,
    join_csv,
    join_json,
    line_payloads,
    main,
    parse_execution_parameters,
    plan_file,
    server_message,
    text_lines,
)
from rlframe.stopping import StopSignals

from exported_models import onnxruntime_outputs

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sagemaker"
TRANSFORM = str(Path(sys.executable).with_name("rlframe-transform"))
#: a bound on waiting for a command (not a measurement)
COMMAND_TIMEOUT_S = 120

# ---------------------------------------------------------------------------------------------------------------
# Without a server


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_inputs_are_files_and_folders_whose_files_keep_their_relative_paths(tmp_path: Path) -> None:
    single = write(tmp_path / "one.jsonl", "[1]\n")
    for name in ("b/z.csv", "b/a.csv", "a.csv", "b-c.csv"):
        write(tmp_path / "folder" / name, "1\n")
    files = discover_inputs([str(single), str(tmp_path / "folder")], tmp_path / "out")
    assert [f.output.relative_to(tmp_path / "out").as_posix() for f in files] == [
        "one.jsonl.out", "a.csv.out", "b-c.csv.out", "b/a.csv.out", "b/z.csv.out"]  # S3 key order: '-' < '/'
    assert files[0].name == str(single) and files[-1].path == tmp_path / "folder" / "b" / "z.csv"


@pytest.mark.parametrize("case, match", [
    ("missing", "missing.jsonl does not exist"),
    ("empty folder", "holds no files"),
    ("out inside input", "is inside the input folder"),
    ("out is a file", "is a file: give a folder"),
    ("same output twice", "would both be written to"),
])
def test_input_mistakes_are_one_line(tmp_path: Path, case: str, match: str) -> None:
    folder = tmp_path / "in"
    write(folder / "a.jsonl", "[1]\n")
    (tmp_path / "empty").mkdir()
    inputs, out = {
        "missing": ([str(tmp_path / "missing.jsonl")], tmp_path / "out"),
        "empty folder": ([str(tmp_path / "empty")], tmp_path / "out"),
        "out inside input": ([str(folder)], folder / "sub" / "out"),
        "out is a file": ([str(folder)], folder / "a.jsonl"),
        "same output twice": ([str(folder / "a.jsonl"), str(folder / "a.jsonl")], tmp_path / "out"),
    }[case]
    with pytest.raises(TransformArgumentError, match=match) as error:
        discover_inputs(inputs, out)
    assert "\n" not in str(error.value)


def _plan(name: str, **settings: object) -> FilePlan:
    return plan_file(InputFile(Path(name), name, Path(name + ".out")), Settings(**settings))  # type: ignore[arg-type]


def test_content_type_follows_the_extension_unless_given() -> None:
    assert _plan("s.json", split_type="Line").content_type == JSON_LINES_TYPE  # dump_environment_states' files
    assert _plan("s.json").content_type == JSON_TYPE
    assert (_plan("s.csv").content_type, _plan("s.jsonl").content_type, _plan("s.npy").content_type) == (
        CSV_TYPE, JSON_LINES_TYPE, NPY_TYPE)
    assert _plan("s.csv").accept == CSV_TYPE
    plan = _plan("s.txt", content_type=CSV_TYPE, accept=JSON_TYPE)
    assert (plan.content_type, plan.accept) == (CSV_TYPE, JSON_TYPE)
    with pytest.raises(TransformArgumentError, match="Cannot tell the content type of s.txt"):
        _plan("s.txt")


def test_a_join_needs_input_and_answers_it_can_join() -> None:
    assert _plan("s.csv", join_source="Input").join == "csv"
    assert _plan("s.jsonl", join_source="Input", accept=JSON_TYPE).join == "json"
    with pytest.raises(TransformArgumentError, match="joins JSON, JSON Lines or CSV input"):
        _plan("s.npy", join_source="Input")
    with pytest.raises(TransformArgumentError, match="needs answers of type text/csv"):
        _plan("s.csv", join_source="Input", accept=JSON_LINES_TYPE)


def test_settings_come_from_the_command_line_then_the_server_then_sagemakers_defaults() -> None:
    assert Settings().resolved(ContainerParameters()).describe().startswith(
        "MaxConcurrentTransforms 1, MaxPayloadInMB 6, MultiRecord")
    container = ContainerParameters(max_concurrent_transforms=4, max_payload_mb=10, strategy="SingleRecord")
    resolved = Settings(max_payload_mb=20).resolved(container)
    assert (resolved.max_concurrent_transforms, resolved.max_payload_mb, resolved.strategy) == (4, 20, "SingleRecord")
    with pytest.raises(TransformArgumentError, match="4 x MaxPayloadInMB 30 = 120 MB is over"):
        Settings(max_payload_mb=30).resolved(container)
    for bad, match in [(dict(strategy="SingleRecord"), "needs records: give --split-type Line"),
                       (dict(max_payload_mb=0), "give 1 to 100"), (dict(max_concurrent_transforms=0), "1 or more")]:
        with pytest.raises(TransformArgumentError, match=match):
            Settings(**bad).check()  # type: ignore[arg-type]


def test_execution_parameters_answer() -> None:
    assert parse_execution_parameters(404, b"") == ContainerParameters()
    answer = b'{"MaxConcurrentTransforms": 2, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 6}'
    assert parse_execution_parameters(200, answer) == ContainerParameters(2, 6, "SingleRecord")
    for status, body, match in [(500, b'{"message": "boom"}', "answered 500: boom"),
                                (200, b"[1]", "not a JSON object"),
                                (200, b'{"MaxPayloadInMB": 101}', "MaxPayloadInMB=101"),
                                (200, b'{"BatchStrategy": "EVERY_RECORD"}', "expected MULTI_RECORD")]:
        with pytest.raises(ServerFailure, match=match):
            parse_execution_parameters(status, body)


def _payloads(data: bytes, max_bytes: int, multi: bool = True) -> list[Payload]:
    return list(line_payloads(io.BufferedReader(io.BytesIO(data)), max_bytes, multi))  # type: ignore[arg-type]


def test_multi_record_requests_hold_as_many_whole_lines_as_fit() -> None:
    lines = [b"[%d.5, 2.25]" % i for i in range(100)]  # 10-12 bytes each with the newline
    data = b"\n".join(lines) + b"\n"
    payloads = _payloads(data, 64)
    assert b"".join(p.body for p in payloads) == data
    assert all(len(p.body) <= 64 and p.body.endswith(b"\n") for p in payloads)
    assert all(len(a.body) + len(b.body.split(b"\n")[0]) + 1 > 64 for a, b in zip(payloads, payloads[1:]))  # full
    assert [p.first_line for p in payloads] == [1 + sum(p.count for p in payloads[:i]) for i in range(len(payloads))]
    assert sum(p.count for p in payloads) == 100
    # the last line needs no newline; a file that fits is one request
    assert [(p.body, p.count) for p in _payloads(b"[1]\n[2]", 6 * MEGABYTE)] == [(b"[1]\n[2]", 2)]


def test_single_record_requests_and_empty_lines() -> None:
    data = b"\n[1]\r\n\n[2]\n\r\n[3]"
    assert [(p.body, p.first_line) for p in _payloads(data, 100, multi=False)] == [(b"[1]", 2), (b"[2]", 4), (b"[3]", 6)]
    (payload,) = _payloads(data, 100)
    assert (payload.body, payload.count, payload.line_numbers) == (b"[1]\r\n[2]\n[3]\n", 3, (2, 4, 6))
    assert payload.where() == " lines 2-6" and payload.line(1) == 4
    assert _payloads(b"\n\n\r\n", 100) == []
    assert text_lines(data) == [b"[1]", b"[2]", b"[3]"]


def test_a_record_that_does_not_fit_fails_its_file() -> None:
    for multi in (True, False):
        with pytest.raises(FileFailed, match="line 3 is longer than MaxPayloadInMB"):
            _payloads(b"[1]\n[2]\n" + b"9" * 100 + b"\n[4]\n", 50, multi)
    big = Settings(max_payload_mb=1).resolved(ContainerParameters())
    with pytest.raises(FileFailed, match="is larger than MaxPayloadInMB"):
        list(file_payloads(_plan("s.json"), io.BytesIO(b"1" * (MEGABYTE + 1)), big))  # type: ignore[arg-type]


def test_json_join_keeps_the_input_line_as_it_is() -> None:
    answer = b'{"predictions": [[0.25, 0.75]]}'
    assert join_json(b"[0.1, -2e-05, 3, 4]", answer) == \
        b'{"SageMakerInput": [0.1, -2e-05, 3, 4], "SageMakerOutput": {"predictions": [[0.25, 0.75]]}}'
    assert join_json(b' {"id": 7, "obs": [1]} ', answer) == \
        b'{"id": 7, "obs": [1], "SageMakerOutput": {"predictions": [[0.25, 0.75]]}}'
    assert join_json(b"{ }", answer) == b'{"SageMakerOutput": {"predictions": [[0.25, 0.75]]}}'
    assert json.loads(join_json(b'{"SageMakerOutput": 1, "x": 2}', answer)) == {
        "SageMakerOutput": {"predictions": [[0.25, 0.75]]}, "x": 2}
    assert join_csv(b"0.1,0.2\r\n", b"0.25,0.75,1") == b"0.1,0.2,0.25,0.75,1"


def test_answers_of_several_lines_are_joined_line_by_line_and_counted() -> None:
    settings = Settings(split_type="Line", strategy="MultiRecord", assemble_with="Line", join_source="Input")
    plan = _plan("s.jsonl", **settings.__dict__)
    payload = Payload(b'[1]\n{"a": 1}\n', 5, 2)
    joined = assemble(plan, settings, payload, b'{"p": 1}\n{"p": 2}\n')
    assert joined == b'{"SageMakerInput": [1], "SageMakerOutput": {"p": 1}}\n{"a": 1, "SageMakerOutput": {"p": 2}}\n'
    with pytest.raises(FileFailed, match="lines 5-6: the server answered 1 lines for 2 records"):
        assemble(plan, settings, payload, b'{"p": [1, 2]}')
    csv = Settings(split_type="Line", strategy="MultiRecord", assemble_with="None", join_source="Input")
    assert assemble(_plan("s.csv", **csv.__dict__), csv, Payload(b"1,2\n3,4\n", 1, 2), b"0.5\r\n0.6\r\n") == \
        b"1,2,0.5\n3,4,0.6"


def test_assemble_with_line_ends_each_record_and_none_concatenates() -> None:
    single = Settings(split_type="Line", strategy="SingleRecord", assemble_with="Line")
    record = Payload(b"[1]", 1, 1)
    assert assemble(_plan("s.jsonl", **single.__dict__), single, record, b'{"p": 1}\n') == b'{"p": 1}\n'
    assert assemble(_plan("s.jsonl", **single.__dict__), single, record, b'{"p": 1}') == b'{"p": 1}\n'
    raw = Settings(split_type="Line", strategy="SingleRecord", assemble_with="None")
    assert assemble(_plan("s.jsonl", **raw.__dict__), raw, record, b'{"p": 1}') == b'{"p": 1}'


def test_server_messages_are_one_short_line() -> None:
    assert server_message(b'{"message": "expected 4 numbers,\\n got 3"}') == "expected 4 numbers, got 3"
    assert server_message(b"plain\ntext") == "plain text"
    assert len(server_message(b"x" * 1000)) == 300


@contextlib.contextmanager
def raw_server(answers: list[bytes]) -> Iterator[tuple[Client, list[bytes]]]:
    """A server of one connection per answer: it reads one request, writes the answer's bytes as they are and
    closes the connection without saying so (as a keep-alive timeout does). Yields a client of it and the request
    bodies it received."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        for answer in answers:
            connection, _ = listener.accept()
            with connection, connection.makefile("rb") as reader:
                head = b"".join(iter(lambda: reader.readline(), b"\r\n"))
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                requests.append(reader.read(length))
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = Client("127.0.0.1", listener.getsockname()[1], timeout=10)
    try:
        yield client, requests
    finally:
        client.close()
        listener.close()
    thread.join(10)


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    with raw_server([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"] * 3) as (client, requests):
        assert [client.request("POST", "/invocations", b"[%d]" % i) for i in range(3)] == [(200, b"ok")] * 3
    assert requests == [b"[0]", b"[1]", b"[2]"]


@pytest.mark.parametrize("answer, said", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", "the server closed the connection after 5 of 9 bytes"),
    (b"SSH-2.0-OpenSSH\r\n", "the server's answer is not HTTP/1.x (BadStatusLine: SSH-2.0-OpenSSH"),
    (b"", "the server closed the connection before answering"),
], ids=["truncated", "not HTTP", "no answer"])
def test_a_broken_answer_ends_the_run_with_one_line_naming_the_file(tmp_path: Path, answer: bytes, said: str) -> None:
    """A fresh connection that fails is not tried again (the server would not answer a second one in time)."""
    source = write(tmp_path / "states.jsonl", "[0.1, 0.2, 0.3, 0.4]\n")
    settings = Settings(split_type="Line").resolved(ContainerParameters())
    plans = [plan_file(item, settings) for item in discover_inputs([str(source)], tmp_path / "out")]
    with raw_server([answer]) as (client, _):
        with pytest.raises(ServerFailure) as error:
            BatchTransform(client, settings).run(plans)
    message = str(error.value)
    assert message.startswith(f"Lost the server at 127.0.0.1:{client.port} while sending {source}: {said}"), message
    assert "\n" not in message and error.value.exit_code == 1
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("argv, match", [
    ([], "the following arguments are required: MODEL_DIR, INPUT, -o/--output"),
    (["{model}", "-o", "out"], "the following arguments are required: INPUT"),
    (["missing_model", "{input}", "-o", "out"], "MODEL_DIR missing_model does not exist"),
    (["{model}", "{input}", "-o", "out", "--split-type", "RecordIO"], "'RecordIO' is not one of None, Line"),
    (["{model}", "{input}", "-o", "out", "--strategy", "SingleRecord"], "SingleRecord needs records"),
    (["{model}", "{input}", "-o", "out", "--max-payload-mb", "200"], "give 1 to 100"),
    (["{model}", "{folder}", "-o", "{folder}/out"], "is inside the input folder"),
    (["{model}", "{input}", "-o", "out", "--entry-point", "nothing.py"], "--entry-point nothing.py is not a file"),
    (["{model}", "{input}", "-o", "out", "--join-source", "Input", "--accept", NPY_TYPE], "needs answers of type"),
])
def test_command_line_mistakes_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        argv: list[str], match: str) -> None:
    (tmp_path / "model").mkdir()
    write(tmp_path / "in" / "states.jsonl", "[1, 2, 3, 4]\n")
    names = {"model": str(tmp_path / "model"), "input": str(tmp_path / "in" / "states.jsonl"),
             "folder": str(tmp_path / "in")}
    assert main([arg.format(**names) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------------
# Against a real server


def policy_probabilities(model_dir: Path, states: np.ndarray) -> np.ndarray:
    """softmax(Q / temperature) of a DQN-family model for ``states`` (B, 4), from its model.onnx by onnxruntime."""
    metadata = json.loads((model_dir / "rlframe-model.json").read_text(encoding="utf-8"))
    (q_values,) = onnxruntime_outputs(model_dir / "model.onnx", np.asarray(states, dtype=np.float32))
    logits = q_values.astype(np.float64) / metadata["distribution"]["temperature"]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def random_states(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.2, 0.2, (count, 4))


def json_lines(states: np.ndarray, padding: int = 0) -> str:
    return "".join(json.dumps(row) + " " * padding + "\n" for row in states.tolist())


@contextlib.contextmanager
def running(model: Path) -> Iterator[tuple[ServerProcess, Client]]:
    """rlframe-serve ``model`` with one worker (it starts in half a second), answering, and a client of it."""
    server = ServerProcess(str(model), workers=1)
    client = Client(ServerProcess.HOST, server.port)
    try:
        server.start()
        server.wait_ready(client, StopSignals())
        yield server, client
    finally:
        client.close()
        server.stop()


@pytest.fixture(scope="module")
def served(exported_model_dirs: dict[str, Path]) -> Iterator[tuple[Path, Client]]:
    """One rlframe-serve of the DQN model for the module's :class:`BatchTransform` runs."""
    with running(exported_model_dirs["dqn"]) as (_, client):
        yield exported_model_dirs["dqn"], client


def transform(client: Client, inputs: list[Path], out: Path, **settings: Any) -> Report:
    """A batch transform as rlframe-transform runs one, against the module's server."""
    container = parse_execution_parameters(*client.request("GET", "/execution-parameters"))
    resolved = Settings(**settings).resolved(container)
    plans = [plan_file(item, resolved) for item in discover_inputs([str(p) for p in inputs], out)]
    return BatchTransform(client, resolved).run(plans)


def test_single_and_multi_record_give_the_same_lines_in_input_order(served: tuple[Path, Client], tmp_path: Path) -> None:
    model, client = served
    states = random_states(1500, seed=1)
    # JSON's own whitespace makes the file 1.4 MB, so each 1 MB MultiRecord request holds only part of it.
    source = write(tmp_path / "in" / "states.jsonl", json_lines(states, padding=900))
    assert source.stat().st_size > 1.2 * MEGABYTE
    common: dict[str, Any] = dict(split_type="Line", assemble_with="Line", max_concurrent_transforms=3, max_payload_mb=1)
    for strategy in ("SingleRecord", "MultiRecord"):
        report = transform(client, [source], tmp_path / strategy, strategy=strategy, **common)
        assert not report.failed and report.records == 1500
    single = (tmp_path / "SingleRecord" / "states.jsonl.out").read_bytes()
    assert single == (tmp_path / "MultiRecord" / "states.jsonl.out").read_bytes()
    predictions = np.array([json.loads(line)["predictions"][0] for line in single.splitlines()])
    np.testing.assert_allclose(predictions, policy_probabilities(model, states), atol=1e-5)


def test_join_source_input_with_json_lines(served: tuple[Path, Client], tmp_path: Path) -> None:
    _, client = served
    source = write(tmp_path / "in" / "states.jsonl", json_lines(random_states(40, seed=2)))
    common: dict[str, Any] = dict(split_type="Line", strategy="MultiRecord", assemble_with="Line")
    transform(client, [source], tmp_path / "plain", **common)
    transform(client, [source], tmp_path / "joined", join_source="Input", **common)
    inputs = source.read_bytes().splitlines()
    answers = (tmp_path / "plain" / "states.jsonl.out").read_bytes().splitlines()
    joined = (tmp_path / "joined" / "states.jsonl.out").read_bytes().splitlines()
    assert len(inputs) == len(answers) == len(joined) == 40
    for row, answer, line in zip(inputs, answers, joined):
        assert line == b'{"SageMakerInput": ' + row + b', "SageMakerOutput": ' + answer + b"}"
        assert json.loads(line) == {"SageMakerInput": json.loads(row), "SageMakerOutput": json.loads(answer)}


def test_join_source_input_with_csv(served: tuple[Path, Client], tmp_path: Path) -> None:
    model, client = served
    states = random_states(30, seed=3)
    source = write(tmp_path / "in" / "states.csv", "".join(",".join(map(repr, row)) + "\n" for row in states.tolist()))
    transform(client, [source], tmp_path / "out", split_type="Line", strategy="MultiRecord", assemble_with="Line",
              join_source="Input")
    lines = (tmp_path / "out" / "states.csv.out").read_bytes().splitlines()
    rows = source.read_bytes().splitlines()
    assert len(lines) == 30 and all(line.startswith(row + b",") for row, line in zip(rows, lines))
    appended = np.array([[float(v) for v in line[len(row) + 1:].split(b",")] for row, line in zip(rows, lines)])
    probabilities = policy_probabilities(model, states)
    np.testing.assert_allclose(appended[:, :2], probabilities, atol=1e-5)  # the distribution, then the action
    np.testing.assert_array_equal(appended[:, 2], probabilities.argmax(axis=1))


def json_documents(data: bytes) -> list[Any]:
    """The JSON documents of ``data`` one after another (concatenated, with or without whitespace between)."""
    decoder, text, documents, at = json.JSONDecoder(), data.decode(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
    return documents


def test_assemble_with_line_puts_each_answer_on_a_line_and_none_concatenates(served: tuple[Path, Client],
                                                                            tmp_path: Path) -> None:
    _, client = served
    source = write(tmp_path / "in" / "states.jsonl", json_lines(random_states(12, seed=4)))
    common: dict[str, Any] = dict(split_type="Line", strategy="SingleRecord", content_type=JSON_TYPE, accept=JSON_TYPE)
    transform(client, [source], tmp_path / "line", assemble_with="Line", **common)
    transform(client, [source], tmp_path / "none", assemble_with="None", **common)
    by_line = (tmp_path / "line" / "states.jsonl.out").read_bytes()
    together = (tmp_path / "none" / "states.jsonl.out").read_bytes()
    documents = [json.loads(line) for line in by_line.splitlines()]
    assert len(documents) == 12 and all(len(d["predictions"]) == 1 for d in documents)
    assert json_documents(together) == documents
    assert together.replace(b"\n", b"") == by_line.replace(b"\n", b"")


def test_a_bad_record_fails_its_file_named_by_its_line_and_other_files_continue(served: tuple[Path, Client],
                                                                               tmp_path: Path) -> None:
    _, client = served
    good = write(tmp_path / "in" / "good.jsonl", json_lines(random_states(50, seed=5)))
    lines = json_lines(random_states(300, seed=6)).splitlines()
    lines[216] = "[1.0, 2.0, 3.0]"  # line 217: three numbers for a four-number observation
    bad = write(tmp_path / "in" / "bad.jsonl", "\n".join(lines) + "\n")
    report = transform(client, [bad, good], tmp_path / "out", split_type="Line", strategy="MultiRecord",
                       assemble_with="Line")
    assert [item.path for item in report.transformed] == [good]
    ((item, message),) = report.failed.items()
    assert item.path == bad and message.startswith(f"{bad} line 217: the server answered 400: "), message
    # the record was sent alone at the end, so the server's "Line 1: " would contradict "line 217"
    assert "Line 1:" not in message and "expected an observation of shape (4,), got (3,)" in message, message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.jsonl.out"]  # no .out, no temporary file


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRANSFORM, *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def test_command_keeps_a_folders_relative_paths_and_fails_only_the_file_with_a_bad_record(
        exported_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "input"
    write(folder / "a.jsonl", json_lines(random_states(10, seed=7)))
    write(folder / "sub" / "b.jsonl", json_lines(random_states(10, seed=8)))
    write(folder / "sub" / "c.jsonl", "[0.1, 0.2, 0.3, 0.4]\n[0.1, 0.2, 0.3, 0.4]\n[0.1, 0.2, 0.3, 0.4]\nnot json\n")
    # the server's own number of workers (one per CPU), and MaxConcurrentTransforms from its answer
    done = run_command(str(exported_model_dirs["dqn"]), str(folder), "-o", str(tmp_path / "out"),
                       "--split-type", "Line", "--assemble-with", "Line")
    assert done.returncode == 1, done.stderr
    errors = done.stderr.splitlines()
    assert len(errors) == 2 and "Traceback" not in done.stderr, done.stderr
    assert errors[0].startswith(f"error: {folder / 'sub' / 'c.jsonl'} line 4: the server answered 400: "), errors[0]
    assert errors[1] == f"error: 1 of 3 files failed ({folder / 'sub' / 'c.jsonl'}); no .out was written for it"
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["a.jsonl.out", "sub/b.jsonl.out"]
    assert len((tmp_path / "out" / "sub" / "b.jsonl.out").read_bytes().splitlines()) == 10
    assert done.stdout.splitlines()[-1].startswith("rlframe-transform: 2 of 3 files, 20 records in ")


def test_a_server_that_cannot_start_is_one_line_quoting_it(tmp_path: Path) -> None:
    (tmp_path / "not_a_model").mkdir()
    write(tmp_path / "states.jsonl", "[0.1, 0.2, 0.3, 0.4]\n")
    done = run_command(str(tmp_path / "not_a_model"), str(tmp_path / "states.jsonl"), "-o", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: rlframe-serve {tmp_path / 'not_a_model'} exited with status 2: "), done.stderr
    assert not (tmp_path / "out").exists()


def test_a_server_that_dies_ends_the_run_with_one_line(exported_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    model = exported_model_dirs["dqn"]
    source = write(tmp_path / "states.jsonl", json_lines(random_states(5, seed=10)))
    settings = Settings(split_type="Line").resolved(ContainerParameters())
    plans = [plan_file(item, settings) for item in discover_inputs([str(source)], tmp_path / "out")]
    with running(model) as (server, client):
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        with pytest.raises(ServerFailure, match=f"^rlframe-serve {model} exited with status -9: "):
            BatchTransform(client, settings, alive=server.check_alive).run(plans)
    assert list((tmp_path / "out").iterdir()) == []


def child_processes(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_transform_stops_its_server_and_writes_no_partial_output(
        exported_model_dirs: dict[str, Path], tmp_path: Path, signum: int) -> None:
    # 20,000 single-record requests, one at a time: far longer than the wait below.
    source = write(tmp_path / "states.jsonl", json_lines(random_states(20000, seed=9)))
    process = subprocess.Popen([TRANSFORM, str(exported_model_dirs["dqn"]), str(source), "-o", str(tmp_path / "out"),
                                "--split-type", "Line", "--strategy", "SingleRecord", "--workers", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert " 1 file -> " in process.stdout.readline()  # the server answers
        servers = child_processes(process.pid)
        assert len(servers) == 1
        time.sleep(0.3)
        process.send_signal(signum)
        _, err = process.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        process.kill()
    assert process.returncode == 128 + signum
    name = signal.Signals(signum).name
    assert err == f"{name}: stopped; the finished .out files are kept, no unfinished one was written.\n"
    assert list((tmp_path / "out").iterdir()) == []
    assert not Path(f"/proc/{servers[0]}").exists()


def test_a_second_ctrl_c_stops_at_once_with_the_transforms_own_line(exported_model_dirs: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    source = write(tmp_path / "states.jsonl", json_lines(random_states(20000, seed=11)))
    process = subprocess.Popen([TRANSFORM, str(exported_model_dirs["dqn"]), str(source), "-o", str(tmp_path / "out"),
                                "--split-type", "Line", "--strategy", "SingleRecord", "--workers", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        assert " 1 file -> " in process.stdout.readline()
        (server,) = child_processes(process.pid)
        # A stopped server cannot exit on the transform's SIGTERM: the first Ctrl-C alone would wait STOP_TIMEOUT_S
        # for it, so the second one always comes while the first is being handled.
        os.killpg(server, signal.SIGSTOP)
        process.send_signal(signal.SIGINT)
        kept = "the finished .out files are kept, no unfinished one was written."
        assert process.stderr.readline() == f"SIGINT: stopped; {kept}\n"
        process.send_signal(signal.SIGINT)
        # at once: well before the STOP_TIMEOUT_S (30 s) a server is otherwise given to exit
        _, err = process.communicate(timeout=STOP_TIMEOUT_S / 2)
    finally:
        process.kill()
    assert (process.returncode, err) == (130, f"Second SIGINT: stopping at once; {kept}\n")
    assert list((tmp_path / "out").iterdir()) == []
    assert not Path(f"/proc/{server}").exists()  # killed, not left stopped


def test_the_batch_notebook_loop(exported_model_dirs: dict[str, Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """sagemaker-examples §5.4: states of N environments -> batch transform (the notebook's settings) -> rollouts
    with the policy's action probabilities."""
    from rlframe.data import VectoredGymEnvironment as RlframeVectoredGymEnvironment

    install_gym_fallback()  # env_utils imports gym, as the notebook's does
    monkeypatch.syspath_prepend(str(FIXTURES / "batch_src"))
    monkeypatch.delitem(sys.modules, "env_utils", raising=False)
    env_utils = importlib.import_module("env_utils")
    np.random.seed(0)  # the notebook samples with the global generator
    envs = env_utils.VectoredGymEnvironment("CartPole-v1", 6)
    envs.reset_all_envs()
    batch_input, batch_output = tmp_path / "batch_test" / "input", tmp_path / "batch_test" / "output"
    batch_input.mkdir(parents=True)
    file_name = f"env_states_{int(time.time())}.json"
    envs.dump_environment_states(str(batch_input), file_name)

    model = exported_model_dirs["ddqn_bcq"]
    assert main([str(model), str(batch_input), "-o", str(batch_output), "--content-type", "application/jsonlines",
                 "--accept", "application/jsonlines", "--split-type", "Line", "--strategy", "SingleRecord",
                 "--assemble-with", "Line", "--join-source", "Input", "--workers", "1"]) == 0
    output = batch_output / f"{file_name}.out"
    states = np.array([json.loads(line) for line in (batch_input / file_name).read_text().splitlines()])
    expected = policy_probabilities(model, states)

    frame = envs.collect_rollouts_with_given_action_probs(num_episodes=1, file_name=str(output))
    assert sorted(set(frame.episode_id)) == list(range(6))
    for episode_id, rows in frame.groupby("episode_id"):
        for probabilities in rows.all_action_probabilities:
            np.testing.assert_allclose(probabilities, expected[episode_id], atol=1e-5)
    # rlframe's own counterpart of the notebook's helper reads the same file
    with RlframeVectoredGymEnvironment("CartPole-v1", 6) as ours:
        rows = ours.collect_rollouts_with_given_action_probs(num_episodes=1, file_name=str(output))
    for episode_id, text in zip(rows.episode_id, rows.all_action_probabilities):
        np.testing.assert_allclose(json.loads(text), expected[episode_id % 6], atol=1e-5)
