"""``rlframe-sagemaker train``: the toolkit's encodings of hyperparameters as arguments and ``SM_*`` variables
(contracts §1.3-1.5), read from real config files; the script's process (working folder, ``PYTHONPATH``,
variables); success and failure files, exit statuses, and stop signals forwarded to the script.

Every job here runs a few-line script, not a training run: the training jobs are in test_local_mode.py.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from rlframe.integrations.sagemaker.environment import read_environment
from rlframe.integrations.sagemaker.paths import SageMakerConfigError, SageMakerPaths, current_host, in_sagemaker_job

pytestmark = pytest.mark.integration

ENTRYPOINT = [sys.executable, "-m", "rlframe.integrations.sagemaker.entrypoint"]

#: as an SDK estimator writes them: every value a string, JSON-encoded or (plain Estimator) str()
HYPERPARAMETERS = {
    "a": "1",
    "lr": "0.1",
    "flag": "true",
    "Flag2": "True",
    "name": "\"ppo\"",
    "raw": "ppo",
    "d": "{\"b\": 2, \"a\": 1}",
    "lst": "[1, 2]",
    "learning-rate": "0.5",
    "rl.evaluation_steps:EnvironmentEpisodes": "3",
    "n": "null",
    "sagemaker_program": "\"dump.py\"",
    "sagemaker_estimator": "\"RLEstimator\"",
    "sagemaker_container_log_level": "20",
    "_tuning_objective_metric": "\"reward\"",
}

#: prints nothing; records what the toolkit's contract says a script receives
DUMP_SCRIPT = """\
import json, os, sys
seen = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": {k: v for k, v in os.environ.items()
        if k.startswith("SM_") or k in ("PYTHONPATH", "COACH_BACKEND", "PYTHONUNBUFFERED", "CURRENT_HOST")}}
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as handle:
    json.dump(seen, handle)
"""


def _job(base: Path, hyperparameters: dict[str, str], files: dict[str, str] | None = None,
         resources: dict | None = None, channels: dict | None = None) -> SageMakerPaths:
    """Write a job's config files and code folder under ``base`` as SageMaker does."""
    paths = SageMakerPaths(base)
    paths.input_config.mkdir(parents=True)
    paths.code.mkdir()
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    paths.resource_config_file.write_text(json.dumps(
        resources or {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    paths.input_data_config_file.write_text(json.dumps(channels or {}))
    for name, text in (files or {}).items():
        (paths.code / name).write_text(text)
    return paths


def _train(paths: SageMakerPaths, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(ENTRYPOINT + ["train"], env={**os.environ, "SAGEMAKER_BASE_DIR": str(paths.base), **env},
                          capture_output=True, text=True, timeout=120)


# ---- encodings ------------------------------------------------------------------------------------------------
def test_hyperparameters_become_sorted_arguments_and_sm_variables_with_the_toolkits_encodings(tmp_path):
    channels = {"training": {"TrainingInputMode": "File"}, "testing": {"TrainingInputMode": "File", "ContentType": "text/csv"}}
    resources = {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"], "network_interface_name": "ethwe"}
    paths = _job(tmp_path, HYPERPARAMETERS, resources=resources, channels=channels)
    job = read_environment(paths, environ={})
    assert job.cmd_args() == [
        "--Flag2", "True", "-a", "1", "-d", "a=1,b=2", "--flag", "True", "--learning-rate", "0.5", "--lr", "0.1",
        "--lst", "[1, 2]", "-n", "", "--name", "ppo", "--raw", "ppo", "--rl.evaluation_steps:EnvironmentEpisodes", "3",
    ]
    env = job.env_vars()
    base = str(tmp_path)
    assert {k: v for k, v in env.items() if k.startswith("SM_HP_")} == {
        "SM_HP_A": "1", "SM_HP_LR": "0.1", "SM_HP_FLAG": "true", "SM_HP_FLAG2": "True", "SM_HP_NAME": "ppo",
        "SM_HP_RAW": "ppo", "SM_HP_D": '{"a":1,"b":2}', "SM_HP_LST": "[1,2]", "SM_HP_LEARNING-RATE": "0.5",
        "SM_HP_RL.EVALUATION_STEPS:ENVIRONMENTEPISODES": "3", "SM_HP_N": "",
    }
    assert json.loads(env["SM_HPS"]) == {"a": 1, "lr": 0.1, "flag": True, "Flag2": "True", "name": "ppo", "raw": "ppo",
                                         "d": {"a": 1, "b": 2}, "lst": [1, 2], "learning-rate": 0.5,
                                         "rl.evaluation_steps:EnvironmentEpisodes": 3, "n": None}
    assert env["SM_HPS"] == json.dumps(json.loads(env["SM_HPS"]), sort_keys=True, separators=(",", ":"))
    assert env["SM_FRAMEWORK_PARAMS"] == '{"sagemaker_estimator":"RLEstimator"}'
    assert env["SM_CHANNELS"] == '["testing","training"]'
    assert env["SM_CHANNEL_TRAINING"] == f"{base}/input/data/training"
    assert env["SM_CHANNEL_TESTING"] == f"{base}/input/data/testing"
    assert env["SM_HOSTS"] == '["algo-1","algo-2"]' and env["SM_CURRENT_HOST"] == "algo-2"
    assert env["SM_NETWORK_INTERFACE_NAME"] == "ethwe"
    assert env["SM_RESOURCE_CONFIG"] == '{"current_host":"algo-2","hosts":["algo-1","algo-2"],"network_interface_name":"ethwe"}'
    assert json.loads(env["SM_INPUT_DATA_CONFIG"]) == channels
    assert env["SM_USER_ARGS"] == json.dumps(job.cmd_args(), separators=(",", ":"))
    assert (env["SM_USER_ENTRY_POINT"], env["SM_MODULE_NAME"], env["SM_MODULE_DIR"]) == ("dump.py", "dump", f"{base}/code")
    assert env["SM_LOG_LEVEL"] == "20" and env["SM_NUM_CPUS"] == str(multiprocessing.cpu_count())
    assert env["SM_NUM_GPUS"].isdigit()
    assert (env["SM_MODEL_DIR"], env["SM_OUTPUT_DIR"], env["SM_OUTPUT_DATA_DIR"], env["SM_OUTPUT_INTERMEDIATE_DIR"],
            env["SM_INPUT_DIR"], env["SM_INPUT_CONFIG_DIR"]) == (
        f"{base}/model", f"{base}/output", f"{base}/output/data", f"{base}/output/intermediate", f"{base}/input",
        f"{base}/input/config")
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["hyperparameters"] == json.loads(env["SM_HPS"])
    assert training_env["channel_input_dirs"] == {"training": env["SM_CHANNEL_TRAINING"], "testing": env["SM_CHANNEL_TESTING"]}
    assert training_env["current_host"] == "algo-2" and training_env["master_hostname"] == "algo-1"
    assert not training_env["is_master"]
    assert current_host(paths) == "algo-2"


def test_sagemaker_program_in_the_environment_wins_and_missing_config_files_mean_one_host(tmp_path):
    paths = SageMakerPaths(tmp_path)
    job = read_environment(paths, environ={"SAGEMAKER_PROGRAM": "train.py"})
    assert job.user_entry_point == "train.py" and job.hyperparameters == {} and job.channels == []
    assert job.hosts == ["algo-1"] and current_host(paths) == "algo-1" and job.network_interface_name == "eth0"


@pytest.mark.parametrize("file, text, message", [
    ("hyperparameters.json", '{"a": "1",', "hyperparameters.json is not valid JSON (line 1, column 11"),
    ("hyperparameters.json", '["a"]', "hyperparameters.json holds a JSON list; it must be a JSON object"),
    ("inputdataconfig.json", '{"train": {"TrainingInputMode": "Pipe"}}',
     "Channel 'train' uses Pipe input mode"),
])
def test_config_files_sagemaker_would_not_write_are_one_line_errors(tmp_path, file, text, message):
    paths = _job(tmp_path, {})
    (paths.input_config / file).write_text(text)
    with pytest.raises(SageMakerConfigError) as raised:
        read_environment(paths, environ={})
    assert message in str(raised.value) and "\n" not in str(raised.value)


# ---- the script's process -----------------------------------------------------------------------------------
def test_the_script_runs_in_the_code_folder_with_the_toolkits_arguments_and_variables(tmp_path):
    paths = _job(tmp_path, HYPERPARAMETERS, {"dump.py": DUMP_SCRIPT, "requirements.txt": "# nothing to install\n"},
                 channels={"training": {"TrainingInputMode": "File"}})
    result = _train(paths, PYTHONPATH="/somewhere/else")
    assert result.returncode == 0, result.stderr
    assert paths.success_file.read_text() == "" and not paths.failure_file.exists()
    lines = [line for line in result.stdout.splitlines() if line.startswith("rlframe-sagemaker: running")]
    assert "pip install -r requirements.txt" in lines[0] and " dump.py " in lines[1], "requirements come first"
    seen = json.loads((paths.output_data / "seen.json").read_text())
    assert seen["argv"] == read_environment(paths, environ={}).cmd_args()
    assert seen["cwd"] == str(paths.code)
    env = seen["env"]
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(paths.code), "/somewhere/else"]
    assert (env["COACH_BACKEND"], env["PYTHONUNBUFFERED"], env["CURRENT_HOST"]) == ("mxnet", "1", "algo-1")
    assert env["SM_HP_FLAG"] == "true" and env["SM_CHANNELS"] == '["training"]'
    assert json.loads(env["SM_TRAINING_ENV"])["user_entry_point"] == "dump.py"
    assert paths.model.is_dir() and paths.intermediate.is_dir()


def _sourcedir_tarball(path: Path, files: dict[str, str]) -> Path:
    """A ``sourcedir.tar.gz`` as the SageMaker SDK uploads ``source_dir``: the folder's files at the archive's root."""
    folder = path.parent / "sourcedir"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    with tarfile.open(path, "w:gz") as tar:
        for child in folder.iterdir():
            tar.add(child, arcname=child.name)
    return path


@pytest.mark.parametrize("as_uri", [True, False], ids=["file-uri", "plain-path"])
def test_an_empty_code_folder_gets_the_source_dir_the_sdk_uploaded(tmp_path, as_uri):
    archive = _sourcedir_tarball(tmp_path / "upload" / "sourcedir.tar.gz", {"dump.py": DUMP_SCRIPT})
    submitted = f"file://{archive}" if as_uri else str(archive)
    paths = _job(tmp_path / "job", {**HYPERPARAMETERS, "sagemaker_submit_directory": json.dumps(submitted)})
    result = _train(paths)
    assert result.returncode == 0, result.stderr
    assert f"source folder {submitted} unpacked into {paths.code}" in result.stdout
    assert json.loads((paths.output_data / "seen.json").read_text())["cwd"] == str(paths.code)


def test_a_code_folder_that_holds_files_is_used_as_it_is(tmp_path):
    archive = _sourcedir_tarball(tmp_path / "upload" / "sourcedir.tar.gz", {"dump.py": "raise SystemExit('never run')"})
    paths = _job(tmp_path / "job", {**HYPERPARAMETERS, "sagemaker_submit_directory": json.dumps(f"file://{archive}")},
                 {"dump.py": DUMP_SCRIPT})
    result = _train(paths)
    assert result.returncode == 0, result.stderr
    assert "unpacked" not in result.stdout and (paths.output_data / "seen.json").is_file()


@pytest.mark.parametrize("submitted, message", [
    ("s3://rlframe-no-such-bucket/job/source/sourcedir.tar.gz",
     "Cannot download the source folder s3://rlframe-no-such-bucket/job/source/sourcedir.tar.gz (sagemaker_submit_directory): "),
    ("{tmp}/nowhere/sourcedir.tar.gz", "The source folder {tmp}/nowhere/sourcedir.tar.gz (sagemaker_submit_directory) does not exist"),
    ("{tmp}/broken.tar.gz", "The source folder {tmp}/broken.tar.gz (sagemaker_submit_directory) is not a readable .tar.gz"),
], ids=["s3-without-credentials", "missing", "not-a-tarball"])
def test_a_source_dir_that_cannot_be_fetched_is_one_line(tmp_path, submitted, message):
    (tmp_path / "broken.tar.gz").write_text("not gzip")
    paths = _job(tmp_path / "job", {**HYPERPARAMETERS, "sagemaker_submit_directory": json.dumps(submitted.format(tmp=tmp_path))})
    # No credentials anywhere, and no instance-metadata lookup: boto3 gives up at once.
    no_aws = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "",
              "AWS_SECRET_ACCESS_KEY": "", "AWS_CONFIG_FILE": str(tmp_path / "none"),
              "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    result = _train(paths, **no_aws)
    assert result.returncode == 2, result.stderr
    assert paths.failure_file.read_text().splitlines()[0].startswith(message.format(tmp=tmp_path))
    assert "Traceback" not in result.stderr and not paths.success_file.exists()


def test_in_sagemaker_job_is_true_in_the_script_only(tmp_path):
    script = "from rlframe.integrations.sagemaker.paths import in_sagemaker_job\nassert in_sagemaker_job()\n"
    paths = _job(tmp_path, {"sagemaker_program": '"check.py"'}, {"check.py": script})
    assert _train(paths).returncode == 0
    assert not in_sagemaker_job()


# ---- failures -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script, code, reason", [
    ("raise ConnectionError('cannot reach the simulator')\n", 1, "ConnectionError: cannot reach the simulator"),
    ("import sys\nprint('error: Preset \\'x\\' not found.', file=sys.stderr)\nsys.exit(2)\n", 2, "Preset 'x' not found."),
    ("import sys\nsys.exit(3)\n", 3, "The training script exited with code 3 without an error message on stderr."),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", 137, "killed by SIGKILL (exit code 137)"),
], ids=["traceback", "error-line", "silent", "sigkill"])
def test_a_failing_script_writes_its_reason_first_in_the_failure_file_and_exits_non_zero(tmp_path, script, code, reason):
    paths = _job(tmp_path, {"sagemaker_program": '"train.py"', "epochs": "2"}, {"train.py": script})
    result = _train(paths)
    assert result.returncode == code
    failure = paths.failure_file.read_text().splitlines()
    assert reason in failure[0] and failure[1] == f"ExitCode {code}" and "train.py --epochs 2" in failure[2]
    assert not paths.success_file.exists()
    # The script's own output passes through unchanged; the entrypoint adds no traceback of its own.
    assert result.stderr.count("Traceback") == script.count("raise")


def test_a_failure_file_the_script_wrote_is_kept(tmp_path):
    script = ("import os, sys\nopen(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('Simulator license expired')\n"
              "sys.exit(4)\n")
    paths = _job(tmp_path, {"sagemaker_program": '"train.py"'}, {"train.py": script})
    result = _train(paths)
    assert result.returncode == 4
    assert paths.failure_file.read_text() == "Simulator license expired"
    assert "kept the failure file the training script wrote" in result.stderr


@pytest.mark.parametrize("hyperparameters, files, code, message", [
    ({}, {}, 2, "The job names neither an entry script nor a preset"),
    ({"sagemaker_program": '"train-coach.py"'}, {"train.py": ""}, 2,
     "Entry script 'train-coach.py' (SAGEMAKER_PROGRAM / the sagemaker_program hyperparameter) in "),
    ({"sagemaker_program": '"train.py"'}, {"train.py": "raise SystemExit('never run')", "requirements.txt": "./no-such-package\n"}, 1,
     "Installing the packages of requirements.txt failed: ERROR: Invalid requirement: './no-such-package'"),
], ids=["no-script-no-preset", "missing-script", "bad-requirements"])
def test_a_job_that_cannot_start_says_why_in_one_line(tmp_path, hyperparameters, files, code, message):
    paths = _job(tmp_path, hyperparameters, files)
    result = _train(paths)
    assert result.returncode == code
    assert paths.failure_file.read_text().splitlines()[0].startswith(message)
    assert "never run" not in result.stderr and "Traceback" not in result.stderr


def test_serve_without_a_model_and_unknown_commands_fail_with_one_line(tmp_path):
    # Serving a real model is tested with the server (tests/integrations/serving/test_server.py).
    serve = subprocess.run(ENTRYPOINT + ["serve"], env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path)},
                           capture_output=True, text=True, timeout=60)
    assert serve.returncode == 2
    assert serve.stderr == f"error: Model directory {tmp_path / 'model'} does not exist: give the folder rlframe-export wrote (with model.onnx and rlframe-model.json).\n"
    other = subprocess.run(ENTRYPOINT + ["fit"], capture_output=True, text=True, timeout=60)
    assert other.returncode == 2 and other.stderr.strip().startswith("usage: rlframe-sagemaker [train | serve]")


def test_no_argument_trains_as_a_container_entrypoint_override_without_arguments_does(tmp_path):
    paths = _job(tmp_path, {"sagemaker_program": '"dump.py"'}, {"dump.py": DUMP_SCRIPT})
    result = subprocess.run(ENTRYPOINT, env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path)}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and paths.success_file.exists()


# ---- stop signals ---------------------------------------------------------------------------------------------
STUBBORN_SCRIPT = """\
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: print("got SIGTERM, ignoring it", file=sys.stderr, flush=True))
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "started"), "w").close()
while True:
    time.sleep(0.05)
"""


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the job ended ({process.returncode}) before {path.name} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_sigterm_reaches_the_script_and_a_script_that_ignores_it_is_killed_after_the_grace_period(tmp_path):
    paths = _job(tmp_path, {"sagemaker_program": '"train.py"'}, {"train.py": STUBBORN_SCRIPT})
    job = subprocess.Popen(ENTRYPOINT + ["train"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path), "RLFRAME_STOP_GRACE_SECONDS": "1"})
    try:
        _wait_for(paths.output_data / "started", job)
        job.send_signal(signal.SIGTERM)
        _, err = job.communicate(timeout=60)
    finally:
        job.kill()
    assert "got SIGTERM, ignoring it" in err, "the signal was forwarded"
    assert "did not stop within 1 s of SIGTERM; killing it" in err
    assert job.returncode == 137
    assert paths.failure_file.read_text().startswith("Stopped by SIGTERM: the training script did not stop within 1 s")
