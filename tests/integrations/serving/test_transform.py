"""``rlframe-transform``: a SageMaker batch transform against a real ``rlframe-serve`` subprocess.

The first part checks what needs no server (finding inputs, cutting records into requests, joining, the command
line's mistakes); the rest runs real transforms of real exported models (``tests/exported_models.py``) over HTTP on
loopback: one server per module for :class:`BatchTransform` runs, and a few whole ``rlframe-transform`` commands,
each starting its own.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rlframe.integrations.serving.transform import (
    CSV_TYPE, JSON_LINES_TYPE, JSON_TYPE, MEGABYTE, NPY_TYPE, ContainerParameters, FilePlan, InputFile, Payload,
    ServerFailure, Settings, TransformArgumentError, _FileFailed, assemble, discover_inputs, file_payloads,
    join_csv, join_json, line_payloads, main, parse_execution_parameters, plan_file, server_message, text_lines,
)

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
        with pytest.raises(_FileFailed, match="line 3 is longer than MaxPayloadInMB"):
            _payloads(b"[1]\n[2]\n" + b"9" * 100 + b"\n[4]\n", 50, multi)
    big = Settings(max_payload_mb=1).resolved(ContainerParameters())
    with pytest.raises(_FileFailed, match="is larger than MaxPayloadInMB"):
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
    with pytest.raises(_FileFailed, match="lines 5-6: the server answered 1 lines for 2 records"):
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
