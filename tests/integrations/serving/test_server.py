"""``rlframe-serve`` over real HTTP on loopback, with the built-in handler: SageMaker's hosting contract
(contracts §2, §3; checklist 17-28), errors of every kind, start-up failures, signals, and ``rlframe-sagemaker serve``."""
from __future__ import annotations

import http.client
import io
import json
import os
import pickle
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from rlframe.integrations.serving.app import ServingSettings, SettingsError
from rlframe.integrations.serving.model import ModelDirError, PolicyModel
from rlframe.integrations.serving.transform import free_port

from serving_processes import SERVE, Server, run_serve

pytestmark = pytest.mark.integration

MB = 1024 * 1024
ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
OBSERVATIONS = np.array([[0.0, 0.0, 2.0, 2.0], [0.01, -0.02, 0.03, 0.04], [-1.0, 0.5, -0.2, -2.0]], np.float32)


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=allow_pickle)
    return out.getvalue()


@pytest.fixture(scope="module")
def model_dir(exported_model_dirs: dict[str, Path]) -> Path:
    return exported_model_dirs["ppo_discrete"]


@pytest.fixture(scope="module")
def server(model_dir: Path, start_server) -> Server:
    """One worker, the built-in handler on the discrete Clipped PPO policy (CartPole: 4 numbers in, 2 actions)."""
    return start_server(model_dir, "--workers", "1").wait()


@pytest.fixture(scope="module")
def expected(trained_runs) -> tuple[np.ndarray, np.ndarray]:
    """(value, action probabilities) of OBSERVATIONS, as the agent computes them."""
    value, probabilities = trained_runs["ppo_discrete"].graph_manager.agent.policy_outputs(OBSERVATIONS)
    return value, probabilities


def bodies(observations: np.ndarray) -> dict[str, bytes]:
    return {
        "application/json": json.dumps(observations.tolist()).encode(),
        "application/jsonlines": "".join(json.dumps(r) + "\n" for r in observations.tolist()).encode(),
        "text/csv": "".join(",".join(repr(v) for v in r) + "\n" for r in observations.tolist()).encode(),
        "application/x-npy": npy(observations),
    }


def distributions(body: bytes, accept: str) -> tuple[np.ndarray, np.ndarray]:
    """(distributions, actions) from an answer of type ``accept`` (NPY: distributions only; actions None)."""
    if accept == "application/json":
        document = json.loads(body)
        return np.float32(document["predictions"]), np.array(document["actions"])
    if accept == "application/jsonlines":
        documents = [json.loads(line) for line in body.decode().splitlines()]
        return (np.float32([d["predictions"][0] for d in documents]), np.array([d["actions"][0] for d in documents]))
    if accept == "text/csv":
        rows = np.loadtxt(io.StringIO(body.decode()), delimiter=",", ndmin=2)
        return rows[:, :2].astype(np.float32), rows[:, 2].astype(int)
    return np.load(io.BytesIO(body), allow_pickle=False), None


@pytest.mark.parametrize("accept", ["application/json", "application/jsonlines", "text/csv", "application/x-npy"])
@pytest.mark.parametrize("content_type", ["application/json", "application/jsonlines", "text/csv", "application/x-npy"])
def test_every_content_type_in_and_out(server, expected, content_type, accept):
    status, headers, body = server.invoke(bodies(OBSERVATIONS)[content_type], content_type, accept)
    assert status == 200 and headers["content-type"] == accept
    got, actions = distributions(body, accept)
    assert np.abs(got - expected[1]).max() <= 1e-5
    if actions is not None:
        np.testing.assert_array_equal(actions, expected[1].argmax(axis=1))


def test_the_json_answer_holds_the_distribution_the_action_and_every_output(server, expected):
    status, headers, body = server.invoke("[0, 0, 2, 2]")
    document = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert list(document) == ["predictions", "actions", "outputs"]
    assert list(document["outputs"]) == ["value", "action_probabilities"]
    assert document["outputs"]["action_probabilities"] == document["predictions"]
    assert abs(document["outputs"]["value"][0] - expected[0][0]) <= 1e-5
    assert document["actions"] == [int(expected[1][0].argmax())]
    same = [server.invoke(body)[2] for body in ('{"instances": [[0, 0, 2, 2]]}', "[[0, 0, 2, 2]]", "[0.0, 0.0, 2.0, 2.0]")]
    assert same == [body] * 3


def test_an_observations_answer_does_not_depend_on_the_batch_it_comes_in(server):
    observations = np.random.default_rng(3).normal(size=(40, 4)).astype(np.float32)
    batch = server.invoke(bodies(observations)["application/jsonlines"], "application/jsonlines",
                          "application/jsonlines")[2].splitlines()
    alone = [server.invoke(json.dumps(row), accept="application/jsonlines")[2].rstrip(b"\n")
             for row in observations.tolist()]
    halves = [server.invoke(bodies(part)["application/jsonlines"], "application/jsonlines", "application/jsonlines")[2]
              for part in (observations[:17], observations[17:])]
    assert alone == batch == b"".join(halves).splitlines()


@pytest.mark.parametrize("accept, expected_type", [
    (None, "application/json"), ("*/*", "application/json"), ("text/csv;q=0.5, application/jsonlines", "application/jsonlines"),
    ("text/html, text/*", "text/csv"),
])
def test_accept_falls_back_to_json_and_picks_the_best_type(server, accept, expected_type):
    status, headers, _ = server.invoke("[0, 0, 2, 2]", accept=accept)
    assert status == 200 and headers["content-type"] == expected_type


def test_the_default_accept_comes_from_sagemaker_default_invocations_accept(model_dir, start_server):
    other = start_server(model_dir, "--workers", "1", env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
                                                           "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
                                                           "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD",
                                                           "SAGEMAKER_BATCH": "True"}).wait()
    status, headers, body = other.invoke("[0, 0, 2, 2]", accept="*/*")
    assert status == 200 and headers["content-type"] == "text/csv" and body.count(b",") == 2
    status, _, body = other.request("GET", "/execution-parameters")
    assert status == 200
    assert json.loads(body) == {"MaxConcurrentTransforms": 1, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 1}
    assert other.invoke(b"[" + b"0," * (MB // 2) + b"0]")[0] == 413
    # In a batch transform every refusal is also in the log, so the job's log says why a record failed.
    assert other.invoke("[1, 2]")[0] == 400
    code, stderr, seconds = other.stop(signal.SIGTERM)
    assert code == 0 and seconds < 30
    assert "answered 400: The JSON body: expected observations of shape (4,)" in stderr


def test_ping_and_execution_parameters(server):
    assert server.request("GET", "/ping")[0] == 200
    status, headers, body = server.request("GET", "/execution-parameters")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


def test_sampled_actions_follow_the_distribution_and_greedy_ones_do_not_vary(server, expected):
    observations = np.repeat(OBSERVATIONS[:1], 4000, axis=0)
    greedy = json.loads(server.invoke(json.dumps(observations.tolist()))[2])["actions"]
    assert set(greedy) == {int(expected[1][0].argmax())}
    for body, headers in [(json.dumps({"instances": observations.tolist(), "action": "sample"}), {}),
                          (json.dumps(observations.tolist()), {ATTRIBUTES: "trace=7, action=sample"})]:
        status, answer_headers, answer = server.invoke(body, **headers)
        actions = np.array(json.loads(answer)["actions"])
        p1, spread = expected[1][0][1], np.sqrt(expected[1][0][1] * expected[1][0][0] / 4000)
        assert status == 200 and abs(actions.mean() - p1) < 6 * spread  # a failure has odds below 1e-8
    assert server.invoke("[0, 0, 2, 2]", **{ATTRIBUTES: "action=best"})[0] == 400


@pytest.mark.parametrize("method, path, body, headers, status, message", [
    ("POST", "/invocations", "<obs/>", {"Content-Type": "application/xml"}, 415, "Content-Type 'application/xml' is not one this server reads"),
    ("POST", "/invocations", "[0, 0, 2, 2]", {"Content-Type": "application/json", "Accept": "text/html"}, 406, "Accept 'text/html' names no type"),
    ("POST", "/invocations", "[0, 0, 2]", {"Content-Type": "application/json"}, 400, "expected observations of shape (4,) (one, or a list of them), got (3,)"),
    ("POST", "/invocations", "[0, 0, 2, ", {"Content-Type": "application/json"}, 400, "The body is not JSON"),
    ("POST", "/invocations", "1,2,3,NaN", {"Content-Type": "text/csv"}, 400, "holds NaN"),
    ("GET", "/invocations", None, {}, 405, "/invocations takes POST."),
    ("POST", "/ping", "", {}, 405, "/ping takes GET."),
    ("DELETE", "/execution-parameters", None, {}, 405, "/execution-parameters takes GET."),
    ("GET", "/models", None, {}, 404, "No such path '/models'"),
], ids=["415", "406", "400-shape", "400-json", "400-nan", "405-invocations", "405-ping", "405-parameters", "404"])
def test_each_error_is_its_status_with_a_one_line_json_message_and_the_attributes_echoed(
        server, method, path, body, headers, status, message):
    got_status, got_headers, answer = server.request(method, path, body, {**headers, ATTRIBUTES: "trace=1;x=y"})
    assert got_status == status
    assert got_headers["content-type"] == "application/json" and got_headers[ATTRIBUTES.lower()] == "trace=1;x=y"
    error = json.loads(answer)["error"]
    assert message in error and "\n" not in error and "Traceback" not in error


def test_custom_attributes_are_echoed_and_unknown_headers_ignored(server):
    status, headers, _ = server.invoke("[0, 0, 2, 2]", **{ATTRIBUTES: "a=1", "X-Amzn-SageMaker-Target-Model": "m",
                                                          "X-Something-Else": "?"})
    assert status == 200 and headers[ATTRIBUTES.lower()] == "a=1"
    assert ATTRIBUTES.lower() not in server.invoke("[0, 0, 2, 2]")[1]


def six_mb_body(size: int) -> bytes:
    """A JSON list of observations padded with spaces to exactly ``size`` bytes."""
    core = json.dumps(np.zeros((1000, 4)).tolist()).encode()
    return core + b" " * (size - len(core))


def test_a_body_of_exactly_6_mb_is_served_and_one_byte_more_is_a_413(server):
    status, _, body = server.invoke(six_mb_body(6 * MB))
    assert status == 200 and len(json.loads(body)["actions"]) == 1000
    status, _, body = server.invoke(six_mb_body(6 * MB + 1))
    assert status == 413 and "over the limit of 6291456 bytes" in json.loads(body)["error"]
    # The same through chunked transfer encoding, where the size is only known while reading.
    for size, expected in [(6 * MB, 200), (6 * MB + 1, 413)]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        data = six_mb_body(size)
        connection.request("POST", "/invocations", body=(data[i:i + 65536] for i in range(0, len(data), 65536)),
                           headers={"Content-Type": "application/json"}, encode_chunked=True)
        assert connection.getresponse().status == expected
        connection.close()
    assert server.invoke("[0, 0, 2, 2]")[0] == 200


def test_ping_answers_while_a_big_batch_is_inferred(server):
    observations = np.random.default_rng(0).normal(size=(60000, 4)).round(6)
    body = json.dumps(observations.tolist()).encode()
    assert len(body) < 6 * MB
    answered_while_busy = []
    done = threading.Event()

    def big() -> None:
        try:
            assert server.invoke(body)[0] == 200
        finally:
            done.set()

    worker = threading.Thread(target=big)
    worker.start()
    while not done.is_set():
        status = server.request("GET", "/ping", timeout=10)[0]
        if not done.is_set():
            answered_while_busy.append(status)
    worker.join()
    assert answered_while_busy and set(answered_while_busy) == {200}


def malformed_requests(rng: random.Random) -> list[tuple[dict[str, str], bytes, int]]:
    """(headers, body, expected status) of assorted bad requests."""
    good = np.zeros((2, 4), np.float32)
    json_type, lines_type, csv_type, npy_type = ({"Content-Type": t} for t in (
        "application/json", "application/jsonlines", "text/csv", "application/x-npy"))
    cases = [
        (json_type, b"[0, 0, 2", 400), (json_type, b"{", 400), (json_type, b"", 400), (json_type, b"\xff\xfe\x00", 400),
        (json_type, b"[0, 0, 2]", 400), (json_type, b"[[0, 0, 2, 2], [1, 2]]", 400), (json_type, b"[[[0, 0, 2, 2]]]", 400),
        (json_type, b'["0", "0", "2", "2"]', 400), (json_type, b'[0, 0, 2, "NaN"]', 400), (json_type, b"[0, 0, 2, NaN]", 400),
        (json_type, b"[0, 0, 2, Infinity]", 400), (json_type, b"[0, 0, 2, 1e999]", 400), (json_type, b"[0, 0, 2, 1e39]", 400),
        (json_type, b"[0, 0, 2, " + b"9" * 500 + b"]", 400), (json_type, b"[0, 0, 2, null]", 400), (json_type, b"{}", 400),
        (json_type, b'{"instances": "x"}', 400), (json_type, b'{"instances": [[0, 0, 2, 2]], "action": 1}', 400),
        (json_type, b"true", 400), (json_type, b'"obs"', 400), (json_type, b"[]", 400),
        (lines_type, b"[0, 0, 2, 2]\n[0, 0]\n", 400), (lines_type, b"[0, 0, 2, 2]\n\n[0, 0, 2, 2]", 400),
        (lines_type, b"0, 0, 2, 2\n", 400), (lines_type, b"", 400),
        (csv_type, b"a,b,c,d\n", 400), (csv_type, b"0,0,2\n", 400), (csv_type, b"0,0,2,2,\n", 400),
        (csv_type, b"0;0;2;2\n", 400), (csv_type, b"0,0,2,nan\n", 400), (csv_type, b"\n\n", 400),
        (npy_type, npy(good)[:-3], 400), (npy_type, npy(good)[:20], 400), (npy_type, b"\x93NUMPY\x01\x00", 400),
        (npy_type, npy(np.array([[0, 0, 2, 2]], dtype=object), allow_pickle=True), 400),
        (npy_type, pickle.dumps(good), 400), (npy_type, npy(np.zeros((2, 3), np.float32)), 400), (npy_type, b"", 400),
        ({"Content-Type": "application/xml"}, b"<o/>", 415), ({"Content-Type": "text/plain"}, b"0 0 2 2", 415),
        ({"Content-Type": "image/png"}, bytes(range(256)), 415),
        ({"Content-Type": "application/json", "Accept": "application/pdf"}, b"[0, 0, 2, 2]", 406),
    ]
    # Random bytes of random length under each content type: whatever they are, a 4xx.
    for _ in range(20):
        noise = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
        cases.append((rng.choice([json_type, lines_type, csv_type, npy_type]), noise, 400))
    return cases


def test_10000_malformed_requests_leave_the_server_up_and_answering_correctly(server, expected):
    rng = random.Random(0)
    cases = malformed_requests(rng)
    reference = server.invoke("[0, 0, 2, 2]")[2]
    failures: list[str] = []

    def send(count: int, seed: int) -> None:
        local = random.Random(seed)
        for _ in range(count):
            headers, body, status = local.choice(cases)
            got, _, answer = server.request("POST", "/invocations", body, headers)
            if got != status and not (status == 400 and got in (400, 415)):
                failures.append(f"{headers} {body[:40]!r}: {got} {answer[:100]!r}")
            elif b"Traceback" in answer:
                failures.append(f"traceback for {body[:40]!r}")

    threads = [threading.Thread(target=send, args=(2500, seed)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert server.process.poll() is None and server.request("GET", "/ping")[0] == 200
    assert server.invoke("[0, 0, 2, 2]")[2] == reference


def test_sigterm_and_a_terminals_ctrl_c_stop_the_workers_with_status_0_and_no_traceback(model_dir, start_server):
    # SIGTERM to a one-worker server: test_the_default_accept_comes_from_sagemaker_default_invocations_accept.
    servers = [start_server(model_dir, "--workers", "2"), start_server(model_dir, "--workers", "2")]
    for server in servers:
        server.wait()
        assert server.invoke("[0, 0, 2, 2]")[0] == 200
    code, stderr, seconds = servers[0].stop(signal.SIGTERM)  # SageMaker's stop: to the server process
    assert code == 0 and seconds < 30 and "Traceback" not in stderr, stderr
    code, stderr, seconds = servers[1].stop(signal.SIGINT, group=True)  # Ctrl-C: to every process of the group
    assert code == 0 and seconds < 30 and "Traceback" not in stderr, stderr


def test_rlframe_sagemaker_serve_serves_the_model_under_sagemaker_base_dir(model_dir, start_server, tmp_path):
    shutil.copytree(model_dir, tmp_path / "model")
    entrypoint = [sys.executable, "-m", "rlframe.integrations.sagemaker.entrypoint", "serve"]
    # Port 0 is refused (ports run from 1): the variable is read.
    refused = subprocess.run(entrypoint, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path), "SAGEMAKER_BIND_TO_PORT": "0"})
    assert refused.returncode == 2
    assert refused.stderr == "error: SAGEMAKER_BIND_TO_PORT='0' is not a whole number from 1 to 65535: fix it.\n"
    port = free_port()
    server = start_server(None, command=entrypoint, port=port, env={
        "SAGEMAKER_BASE_DIR": str(tmp_path), "SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}).wait()
    status, _, body = server.invoke("[0, 0, 2, 2]")
    assert status == 200 and len(json.loads(body)["predictions"][0]) == 2
    stdout_line = server.process.stdout.readline()
    assert f"on http://0.0.0.0:{port} (1 worker)" in stdout_line
    assert server.stop()[0] == 0


def test_a_port_in_use_is_one_line(model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
    assert result.returncode == 1
    assert result.stderr == (f"error: Cannot listen on 127.0.0.1:{port}: Address already in use (EADDRINUSE); stop what "
                             "uses it, or pass --port (or set SAGEMAKER_BIND_TO_PORT).\n")


def test_an_installation_without_the_serve_extra_is_one_line(model_dir):
    # `pip install rlframe` without [serve]: the extra's modules cannot be imported (None in sys.modules makes the
    # import fail as a missing package does).
    hidden = "import sys; sys.modules['onnxruntime'] = sys.modules['orjson'] = None; "
    result = subprocess.run([sys.executable, "-c", hidden + "from rlframe.integrations.serving.server import main; "
                             f"sys.exit(main([{str(model_dir)!r}, '--port', '{free_port()}', '--workers', '1']))"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == ('error: rlframe-serve needs onnxruntime, orjson, which the serve extra installs: pip '
                             'install "rlframe[serve]" (in a clone: pip install -e ".[serve]").\n')


def broken_model_dirs(model_dir: Path, root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (a model directory with something wrong, the one line expected)."""
    def copy(name: str) -> Path:
        return Path(shutil.copytree(model_dir, root / name))

    no_onnx = copy("no-onnx")
    (no_onnx / "model.onnx").unlink()
    bad_json = copy("bad-json")
    (bad_json / "rlframe-model.json").write_text("{")
    bad_kind = copy("bad-kind")
    metadata = json.loads((bad_kind / "rlframe-model.json").read_text())
    (bad_kind / "rlframe-model.json").write_text(json.dumps({**metadata, "kind": "options"}))
    no_outputs = copy("no-outputs")
    (no_outputs / "rlframe-model.json").write_text(json.dumps({k: v for k, v in metadata.items() if k != "outputs"}))
    bad_onnx = copy("bad-onnx")
    (bad_onnx / "model.onnx").write_bytes(b"not a graph")
    shape = copy("other-shape")
    (shape / "rlframe-model.json").write_text(json.dumps({**metadata, "outputs": [
        {**metadata["outputs"][0]}, {**metadata["outputs"][1], "shape": ["batch", 3]}]}))
    missing = root / "missing"
    fix = "export the model again with rlframe-export CHECKPOINT_DIR -o MODEL_DIR."
    return {
        "missing": (missing, f"Model directory {missing} does not exist: give the folder rlframe-export wrote (with "
                             "model.onnx and rlframe-model.json)."),
        "no-onnx": (no_onnx, f"{no_onnx} has no model.onnx: export the model again with rlframe-export."),
        "bad-json": (bad_json, f"Cannot read {bad_json / 'rlframe-model.json'} (Expecting property name enclosed in "
                               f"double quotes: line 1 column 2 (char 1)): {fix}"),
        "bad-kind": (bad_kind, f"{bad_kind / 'rlframe-model.json'} is not as rlframe-export writes it: kind 'options' "
                               f"is not one of q_values, discrete_policy, continuous_policy; {fix}"),
        "no-outputs": (no_outputs, f"{no_outputs / 'rlframe-model.json'} lacks 'outputs'; {fix}"),
        "bad-onnx": (bad_onnx, f"onnxruntime cannot load {bad_onnx / 'model.onnx'} (InvalidProtobuf: "),
        "other-shape": (shape, f"{shape / 'model.onnx'} output generalmodel0_singlemodel1_scaledgradhead0_discreteppo"
                               "head0_softmax0 has shape (2,) per observation, but rlframe-model.json says 3"),
    }


def test_a_model_directory_that_cannot_serve_is_named_in_one_line(model_dir, tmp_path):
    for name, (folder, message) in broken_model_dirs(model_dir, tmp_path).items():
        with pytest.raises(ModelDirError) as caught:
            PolicyModel(folder)
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value), name


@pytest.mark.parametrize("environ, message", [
    ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "six"}, "SAGEMAKER_MAX_PAYLOAD_IN_MB='six' is not a whole number of at least 0: "
                                             "fix it."),
    ({"SAGEMAKER_BATCH_STRATEGY": "ALL"}, "SAGEMAKER_BATCH_STRATEGY='ALL' is not MULTI_RECORD or SINGLE_RECORD: fix "
                                          "it."),
    ({"SAGEMAKER_BATCH": "yes"}, "SAGEMAKER_BATCH='yes' is not true or false: fix it."),
    ({"SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "0"}, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS='0' is not a whole number of "
                                                   "at least 1: fix it."),
])
def test_a_serving_variable_that_cannot_be_used_is_named_in_one_line(environ, message):
    with pytest.raises(SettingsError, match=f"^{re.escape(message)}$"):
        ServingSettings.from_env(2, environ)


@pytest.mark.parametrize("workers, environ, expected", [
    (4, {}, {"MaxConcurrentTransforms": 4, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}),
    (32, {}, {"MaxConcurrentTransforms": 16, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}),
    (2, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "100", "SAGEMAKER_BATCH_STRATEGY": "SingleRecord"},
     {"MaxConcurrentTransforms": 1, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 100}),
    (2, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "8", "SAGEMAKER_BATCH": "true"},
     {"MaxConcurrentTransforms": 8, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 0}),
])
def test_execution_parameters_follow_the_workers_and_the_batch_variables(workers, environ, expected):
    settings = ServingSettings.from_env(workers, environ)
    assert json.loads(settings.execution_parameters) == expected
    assert settings.max_payload_bytes == expected["MaxPayloadInMB"] * MB


def test_a_server_that_cannot_start_says_why_in_one_line_before_binding_its_port(model_dir, tmp_path):
    missing = tmp_path / "missing"
    port = free_port()
    runs = [(subprocess.Popen([*SERVE, str(folder), "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **env}), message)
            for folder, env, message in [
                (missing, {}, f"error: Model directory {missing} does not exist: give the folder rlframe-export wrote "
                              "(with model.onnx and rlframe-model.json).\n"),
                (model_dir, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/html"},
                 "error: SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='text/html' is not a type the built-in handler writes: use "
                 "one of application/json, application/jsonlines, text/csv, application/x-npy.\n"),
                (model_dir, {"SAGEMAKER_MODEL_SERVER_WORKERS": "many"},
                 "error: SAGEMAKER_MODEL_SERVER_WORKERS='many' is not a whole number of at least 1: fix it.\n"),
            ]]
    for process, message in runs:
        stdout, stderr = process.communicate(timeout=120)
        assert (process.returncode, stdout, stderr) == (2, "", message)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # nobody bound it
