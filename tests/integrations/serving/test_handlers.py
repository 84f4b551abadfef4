"""A user's handler module replaces the built-in handler, as in SageMaker's MXNet/PyTorch serving containers: from
``MODEL_DIR/code/inference.py``, ``$SAGEMAKER_PROGRAM`` or ``--entry-point``, with its requirements installed; and the
SageMaker RL notebooks' ``deploy-mxnet-coach.py`` serves the exported ``model.onnx`` unchanged."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rlframe.integrations.serving.handlers import HandlerError, HandlerSource, Request
from rlframe.integrations.serving.model import PolicyModel

from serving_processes import SERVE, Server, run_serve

pytestmark = pytest.mark.integration

DEPLOY_SCRIPT = Path(__file__).resolve().parents[2] / "fixtures" / "sagemaker" / "deploy" / "deploy-mxnet-coach.py"
ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"

#: input_fn, predict_fn (taking the context) and output_fn; a request can make predict_fn wait for a file, or fail
INFERENCE = '''
import json
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime


class Refused(Exception):
    status_code = 422


def model_fn(model_dir):
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(os.path.join(model_dir, "model.onnx"), options,
                                        providers=["CPUExecutionProvider"])


def input_fn(body, content_type):
    request = json.loads(body)
    return np.asarray(request["observations"], np.float32), request


def predict_fn(data, model, context):
    observations, request = data
    if "release" in request:
        Path(request["started"]).touch()
        deadline = time.monotonic() + 60
        while not Path(request["release"]).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    if request.get("fail") == "refuse":
        raise Refused("observations out of the model's range")
    if request.get("fail") == "crash":
        raise ValueError("the model cannot run this")
    value, probabilities = model.run(None, {"observation": observations})
    return {"value": value.tolist(), "probabilities": probabilities.tolist(),
            "attributes": context.custom_attributes, "model_dir": context.system_properties["model_dir"]}


def output_fn(prediction, accept):
    return json.dumps({**prediction, "accept": accept}), "application/vnd.handler+json"
'''

#: transform_fn alone (the built-in model is passed), importing a module beside it
OTHER_PROGRAM = '''
import json

import numpy as np
from handler_constants import SCALE


def transform_fn(model, body, content_type, accept):
    observations = np.asarray(json.loads(body), np.float32).reshape(-1, 4)
    value, probabilities = model.forward(observations)
    return json.dumps({"scaled_value": (SCALE * value).tolist(), "content_type": content_type, "accept": accept})
'''


@pytest.fixture(scope="module")
def handler_model(exported_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The discrete Clipped PPO model with ``code/``: inference.py, other.py (+ its neighbour) and requirements.txt."""
    folder = Path(shutil.copytree(exported_model_dirs["ppo_discrete"], tmp_path_factory.mktemp("handler") / "model"))
    code = folder / "code"
    code.mkdir()
    (code / "inference.py").write_text(INFERENCE)
    (code / "other.py").write_text(OTHER_PROGRAM)
    (code / "handler_constants.py").write_text("SCALE = 10.0\n")
    (code / "requirements.txt").write_text("numpy  # installed already: pip has nothing to fetch\n")
    return folder


@pytest.fixture(scope="module")
def servers(handler_model: Path, exported_model_dirs: dict[str, Path], start_server) -> dict[str, Server]:
    """Started together: inference.py (PIP_NO_INDEX: its requirements.txt is installed with no index to fetch from,
    as it needs none), $SAGEMAKER_PROGRAM=other.py (in a copy without requirements.txt), and --entry-point
    deploy-mxnet-coach.py."""
    offline = {"PIP_NO_INDEX": "1"}
    program_model = Path(shutil.copytree(handler_model, handler_model.parent / "program-model"))
    (program_model / "code" / "requirements.txt").unlink()
    started = {
        "inference": start_server(handler_model, "--workers", "1", env=offline),
        "program": start_server(program_model, "--workers", "1", env={"SAGEMAKER_PROGRAM": "other.py"}),
        "deploy": start_server(exported_model_dirs["ppo_discrete"], "--workers", "1", "--entry-point", str(DEPLOY_SCRIPT)),
    }
    return {name: server.wait() for name, server in started.items()}


def agent_outputs(trained_runs, observation: list[float]) -> list[np.ndarray]:
    """(value, action probabilities) of the discrete Clipped PPO agent for one observation."""
    return trained_runs["ppo_discrete"].graph_manager.agent.policy_outputs(np.float32([observation]))


def test_model_dir_code_inference_py_is_used_with_the_context(servers, handler_model, trained_runs):
    server = servers["inference"]
    status, headers, body = server.invoke(json.dumps({"observations": [[0, 0, 2, 2]]}), **{ATTRIBUTES: "k=v"})
    answer = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/vnd.handler+json"
    value, probabilities = agent_outputs(trained_runs, [0, 0, 2, 2])
    assert np.abs(np.float32(answer["probabilities"]) - probabilities).max() <= 1e-5
    assert answer["accept"] == "application/json"  # no Accept: SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT's default
    assert answer["attributes"] == "k=v" and headers[ATTRIBUTES.lower()] == "k=v"
    assert answer["model_dir"] == str(handler_model)
    assert json.loads(server.invoke(json.dumps({"observations": [[0, 0, 2, 2]]}), accept="*/*")[2])["accept"] == \
        "application/json"
    assert json.loads(server.invoke(json.dumps({"observations": [[0, 0, 2, 2]]}), accept="text/x-mine")[2])["accept"] \
        == "text/x-mine"


def test_a_handlers_failure_is_its_status_or_a_500_and_the_server_goes_on(servers):
    server = servers["inference"]
    status, _, body = server.invoke(json.dumps({"observations": [[0, 0, 2, 2]], "fail": "refuse"}))
    assert status == 422 and json.loads(body) == {"error": "Inference failed: Refused: observations out of the model's range"}
    status, _, body = server.invoke(json.dumps({"observations": [[0, 0, 2, 2]], "fail": "crash"}))
    assert status == 500 and json.loads(body) == {"error": "Inference failed: ValueError: the model cannot run this"}
    status, _, body = server.invoke("not json")
    assert status == 500 and json.loads(body)["error"].startswith("Inference failed: JSONDecodeError: Expecting value")
    assert server.invoke(json.dumps({"observations": [[0, 0, 2, 2]]}))[0] == 200


def test_ping_answers_while_a_handler_is_busy(servers, tmp_path):
    server = servers["inference"]
    started, release = tmp_path / "started", tmp_path / "release"
    request = json.dumps({"observations": [[0, 0, 2, 2]], "started": str(started), "release": str(release)})
    answers: list[int] = []
    worker = threading.Thread(target=lambda: answers.append(server.invoke(request)[0]))
    worker.start()
    try:
        while not started.exists() and worker.is_alive():
            time.sleep(0.01)
        assert started.exists() and not answers  # the handler is in predict_fn, waiting
        assert server.request("GET", "/ping", timeout=10)[0] == 200
        assert server.request("GET", "/execution-parameters", timeout=10)[0] == 200
        assert not answers
    finally:
        release.touch()
        worker.join()
    assert answers == [200]


def test_sagemaker_program_names_the_module_in_code_which_imports_its_neighbours(servers, trained_runs):
    status, headers, body = servers["program"].invoke("[0, 0, 2, 2]", "application/json; charset=utf-8", "text/plain")
    answer = json.loads(body)
    value, _ = agent_outputs(trained_runs, [0, 0, 2, 2])
    assert status == 200 and headers["content-type"] == "text/plain"
    assert answer["content_type"] == "application/json; charset=utf-8" and answer["accept"] == "text/plain"
    assert abs(answer["scaled_value"][0] - 10.0 * value[0]) <= 1e-4


def test_the_notebooks_deploy_script_serves_the_exported_model_unchanged(servers, trained_runs):
    # CartPole, as the notebook asks it: [cart position, cart velocity, pole angle, pole velocity]
    status, _, body = servers["deploy"].invoke("[0.0, 0.0, 2.0, 2.0]")
    value, probabilities = json.loads(body)
    expected_value, expected_probabilities = agent_outputs(trained_runs, [0, 0, 2, 2])
    assert status == 200
    assert np.abs(np.float32(value) - expected_value).max() <= 1e-5
    assert np.abs(np.float32(probabilities) - expected_probabilities).max() <= 1e-5


def test_requirements_that_cannot_be_installed_stop_the_start_in_one_line(handler_model, tmp_path):
    model = Path(shutil.copytree(handler_model, tmp_path / "model"))
    requirements = model / "code" / "requirements.txt"
    requirements.write_text("rlframe-no-such-package==1.0\n")
    result = run_serve(str(model), "--port", "1", env={"PIP_NO_INDEX": "1"})
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"error: Installing the packages of {requirements} failed: ERROR: No matching distribution found for "
        "rlframe-no-such-package==1.0. Fix requirements.txt.")
    assert "Traceback" not in result.stderr


def handler(model_dir: Path, source: str, name: str, **kwargs: str) -> HandlerSource:
    """A handler module ``name`` in ``model_dir/code`` holding ``source``, found as the server finds it."""
    code = model_dir / "code"
    code.mkdir(exist_ok=True)
    (code / name).write_text(textwrap.dedent(source))
    return HandlerSource.find(model_dir, kwargs.get("entry_point"), "application/json",
                              {"SAGEMAKER_PROGRAM": name} if name != "inference.py" else {})


@pytest.fixture
def bare_model(exported_model_dirs: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported_model_dirs["ppo_discrete"], tmp_path / "model"))


@pytest.mark.parametrize("source, message", [
    ("def transform_fn(m, b, c, a):\n    pass\ndef predict_fn(d, m):\n    pass\n",
     r"defines both transform_fn and predict_fn: define transform_fn alone, or input_fn/predict_fn/output_fn"),
    ("def transform_fn(model, body):\n    pass\n", r": transform_fn takes 2 arguments; it must take 4 \(and may take one more"),
    ("def model_fn(model_dir):\n    raise OSError('no weights here')\n", r"h\.py line 2: model_fn raised OSError: no weights here$"),
    ("import rlframe_no_such_module\n", r"^Importing the handler module .*h\.py line 1 failed: ModuleNotFoundError: No module named"),
    ("def model_fn(model_dir)\n    pass\n", r"h\.py line 1: expected ':'; fix the handler module\.$"),
    ("VALUE = 1\n", r"h\.py defines none of model_fn, transform_fn, input_fn, predict_fn, output_fn"),
], ids=["both-kinds", "arity", "model-fn-fails", "import-error", "syntax-error", "no-functions"])
def test_a_handler_module_that_cannot_serve_is_one_line(bare_model, source, message):
    with pytest.raises(HandlerError) as caught:
        handler(bare_model, source, "h.py").load()
    assert re.search(message, str(caught.value)) and "\n" not in str(caught.value)


def test_a_named_module_that_is_not_there_is_one_line(bare_model):
    with pytest.raises(HandlerError, match=r"SAGEMAKER_PROGRAM=serve\.py, but .*code/serve\.py is not there \(it holds no "
                                           r"Python module\): put the handler module in"):
        HandlerSource.find(bare_model, None, "application/json", {"SAGEMAKER_PROGRAM": "serve.py"})
    with pytest.raises(HandlerError, match=r"^--entry-point nowhere\.py: no such file; give the handler module's path\.$"):
        HandlerSource.find(bare_model, "nowhere.py", "application/json", {})
    result = run_serve(str(bare_model), "--entry-point", "nowhere.py", "--port", "1")
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", "error: --entry-point nowhere.py: no such file; give the handler module's path.\n")


def test_missing_steps_are_the_built_in_ones(bare_model):
    # model_fn gives a plain function: the built-in input_fn decodes, predict_fn calls it, output_fn writes its array.
    source = handler(bare_model, """
        import numpy as np

        def model_fn(model_dir):
            return lambda observations: observations.sum(axis=1, keepdims=True)
        """, "inference.py")
    loaded = source.load()
    response = loaded.invoke(Request(b"1,2,3,4\n5,6,7,8\n", "text/csv", "application/json", None))
    assert (json.loads(response.body), response.content_type) == ([[10.0], [26.0]], "application/json")
    response = loaded.invoke(Request(b"[1, 2, 3, 4]\n", "application/jsonlines", "text/csv", None))
    assert (response.body, response.content_type) == (b"10.0\n", "text/csv")
    # Only output_fn: the built-in model and its prediction, written the user's way.
    source = handler(bare_model, """
        def output_fn(prediction, accept):
            return str(prediction.actions.tolist())
        """, "only_output.py")
    response = source.load().invoke(Request(b"[[0, 0, 2, 2], [0, 0, -2, -2]]", "application/json", None, None))
    assert response.body == str(PolicyModel(bare_model).predict(np.float32([[0, 0, 2, 2], [0, 0, -2, -2]]))
                                .actions.tolist()).encode()


def test_a_bad_module_fails_the_start_in_one_line_before_the_port_is_bound(bare_model):
    (bare_model / "code").mkdir()
    (bare_model / "code" / "inference.py").write_text("def model_fn(model_dir):\n    return 1 / 0\n")
    result = subprocess.run([*SERVE, str(bare_model), "--port", "1"], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"error: {bare_model / 'code' / 'inference.py'} line 2: model_fn raised ZeroDivisionError: "
                             "division by zero\n")
