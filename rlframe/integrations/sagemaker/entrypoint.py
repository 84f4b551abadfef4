"""``rlframe-sagemaker train | serve``: the training image's exec-form ENTRYPOINT (contracts §1).

``train`` does what SageMaker's training toolkit does for a script-mode job, with rlframe's launcher in place of
a framework:

- reads ``/opt/ml/input/config`` (:mod:`.environment`) and makes the output folders; an empty ``/opt/ml/code``
  gets the ``source_dir`` the SDK uploaded (``sagemaker_submit_directory``: ``s3://`` through boto3, or a local
  folder or ``.tar.gz``);
- installs ``/opt/ml/code/requirements.txt`` when there is one; then, with an entry script (``SAGEMAKER_PROGRAM``
  or the ``sagemaker_program`` hyperparameter, in ``/opt/ml/code``), runs ``python <script> --key value ...``;
  without one, runs rlframe's launcher on the ``RLCOACH_PRESET`` hyperparameter the same way. The child runs in
  ``/opt/ml/code``, with that folder on ``PYTHONPATH``, the ``SM_*`` variables, ``COACH_BACKEND=mxnet`` and
  ``PYTHONUNBUFFERED=1``; its output is passed through unchanged (SageMaker's metric regexes read it);
- in a job with several hosts (``resourceconfig.json``), joins them into one Ray cluster first: the leader,
  ``hosts[0]``, runs the child with ``RLFRAME_RAY_ADDRESS`` naming the cluster, the other hosts serve as its
  nodes until training ends (:mod:`.ray_cluster`); a one-host job never starts Ray;
- copies ``/opt/ml/output/intermediate`` (CSV, GIFs) into ``/opt/ml/output/data/intermediate`` at the end, since
  SageMaker uploads only ``model/`` and ``output/data/``;
- exits 0 after writing an empty ``/opt/ml/output/success``, or non-zero after writing ``/opt/ml/output/failure``
  with the one-line reason first (unless the user's code wrote that file itself); no traceback unless
  ``RLFRAME_TRACEBACK=1`` (which the launcher in the child reads as well).

SIGTERM (SageMaker's stop, a spot interruption) and SIGINT are forwarded to the child, which finishes its step
and writes a final checkpoint; a child still running ``RLFRAME_STOP_GRACE_SECONDS`` (default 100) after the
first signal is killed, inside SageMaker's 120 s grace. The child has its own process group, so a Ctrl-C at a
terminal reaches it once (through this process), and dies with this process (as a container's processes do).

``serve`` runs ``rlframe-serve`` on the model SageMaker extracted into ``/opt/ml/model`` (under
``SAGEMAKER_BASE_DIR`` when set), on every interface, port ``SAGEMAKER_BIND_TO_PORT`` or 8080, with
``SAGEMAKER_MODEL_SERVER_WORKERS`` workers (default one per CPU), and a handler module from ``/opt/ml/model/code``
when there is one (contracts §2; :mod:`rlframe.integrations.serving.server`).

Nothing depends on being called with ``train``: with no argument it trains too (a ``ContainerEntrypoint``
override without arguments).
"""
from __future__ import annotations

import collections
import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Callable, Sequence

from rlframe.errors import RlframeError
from rlframe.integrations import TRACEBACK_VARIABLE
from rlframe.integrations.sagemaker.environment import TrainingEnvironment, arg_value, read_environment, to_cmd_args
from rlframe.integrations.sagemaker.paths import BASE_DIR_VARIABLE, SageMakerPaths
from rlframe.outputs.atomic import TEMPORARY_PREFIX, atomic_write_text, storage_error
from rlframe.outputs.experiment import LOCK_FILE
from rlframe.stopping import STOP_SIGNALS

USAGE = "usage: rlframe-sagemaker [train | serve]  (SageMaker runs the image with 'train' or 'serve')"
LAUNCHER_MODULE = "rlframe.integrations.sagemaker.launcher"
PRESET_HYPERPARAMETER = "RLCOACH_PRESET"
#: the one switch for tracebacks, here and in the launcher the child runs
GRACE_VARIABLE = "RLFRAME_STOP_GRACE_SECONDS"
#: seconds between the first stop signal and killing the child: SageMaker kills the container at 120 s
DEFAULT_GRACE_SECONDS = 100.0
#: stderr lines kept to find the failure reason and to show at the end of the failure file
STDERR_TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1


class JobError(RlframeError):
    """A training job that cannot start as configured (no entry script or preset, a script that is not there)."""


class StepFailed(Exception):
    """A child process (pip, the training script) that ended with a non-zero status.

    :param reason: the one line that says why (first line of the failure file).
    :param exit_code: the status this entrypoint exits with.
    :param details: further lines for the failure file.
    """

    def __init__(self, reason: str, exit_code: int, details: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
        self.details = details


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rlframe-sagemaker``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in ([], ["train"]):
        return train(SageMakerPaths.from_env())
    if args == ["serve"]:
        return serve(SageMakerPaths.from_env())
    print(USAGE, file=sys.stderr)
    return 2


def serve(paths: SageMakerPaths) -> int:
    """Serve ``paths.model`` as SageMaker's hosting contract asks (port and workers from the SAGEMAKER_* variables,
    which ``rlframe-serve`` reads); returns the exit status."""
    from rlframe.integrations.serving.server import main as serve_main  # the serve extra: imported only to serve

    return serve_main([str(paths.model), "--host", "0.0.0.0"])


def train(paths: SageMakerPaths) -> int:
    """Run the training job whose ``/opt/ml`` tree is ``paths``; returns the exit status."""
    try:
        return _train(paths)
    finally:
        keep_intermediate(paths)


def keep_intermediate(paths: SageMakerPaths) -> None:
    """Copy ``output/intermediate`` (CSV, GIFs, ``log.txt``) into ``output/data/intermediate``.

    SageMaker uploads only ``model/`` and ``output/data/`` at the end of a job; ``output/intermediate`` reached S3
    only through the training toolkit's sync for RLEstimator's ``sagemaker_s3_output``. The copy puts a job's
    CSV and GIFs into ``output.tar.gz`` whichever way it ended.
    """
    if not paths.intermediate.is_dir():
        return
    try:
        shutil.copytree(paths.intermediate, paths.output_data / "intermediate", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(LOCK_FILE, f"{TEMPORARY_PREFIX}*"))
    except (OSError, shutil.Error) as exc:
        print(f"error: copying {paths.intermediate} into {paths.output_data}: {exc}", file=sys.stderr, flush=True)


def _train(paths: SageMakerPaths) -> int:
    with StopForwarding() as stop:
        try:
            command = _prepare(paths, stop)
            if len(command.job.hosts) > 1:
                from rlframe.integrations.sagemaker.ray_cluster import run_on_cluster  # multi-instance jobs only

                run_on_cluster(command.job, command.env, stop,
                               lambda env: _run_step(command.argv, env, paths.code, stop, _reason_from_stderr))
            else:
                _run_step(command.argv, command.env, paths.code, stop, _reason_from_stderr)
            atomic_write_text(str(paths.success_file), "")
        except StepFailed as exc:
            return _fail(paths, exc.reason, exc.exit_code, exc.details)
        except RlframeError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return _fail(paths, str(exc), exc.exit_code, "")
        except Exception as exc:  # a bug in rlframe: still a failure file SageMaker can show, and an exit code
            details = traceback.format_exc()
            if os.environ.get(TRACEBACK_VARIABLE) == "1":
                print(details, file=sys.stderr, end="")
            reason = f"rlframe-sagemaker failed: {type(exc).__name__}: {exc} (set {TRACEBACK_VARIABLE}=1 for the traceback)"
            print(f"error: {reason}", file=sys.stderr, flush=True)
            return _fail(paths, reason, 1, details if os.environ.get(TRACEBACK_VARIABLE) == "1" else "")
    print(f"Training job succeeded; wrote {paths.success_file}", flush=True)
    return 0


@dataclass(frozen=True)
class _Command:
    job: TrainingEnvironment
    argv: list[str]
    env: dict[str, str]


def _prepare(paths: SageMakerPaths, stop: "StopForwarding") -> _Command:
    """Read the job, make its output folders, install its requirements; the command that trains."""
    job = read_environment(paths)
    for folder in (paths.model, paths.output_data, paths.intermediate):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(str(folder), exc) from exc
    fetch_source(job)
    env = child_environment(job)
    argv = launcher_command(job) if job.user_entry_point is None else script_command(job)
    if (paths.code / "requirements.txt").is_file():
        pip = [sys.executable, "-m", "pip", "install", "-r", "requirements.txt"]
        _run_step(pip, env, paths.code, stop, _pip_reason)
    return _Command(job, argv, env)


def fetch_source(job: TrainingEnvironment) -> None:
    """Put the job's source folder into an empty ``/opt/ml/code``, as the training toolkit does.

    The SageMaker SDK uploads ``source_dir`` as ``sourcedir.tar.gz`` and names it in the
    ``sagemaker_submit_directory`` hyperparameter (``s3://...``, or ``file://...`` in local mode); SageMaker itself
    does not download it. A code folder that already holds files (mounted, or baked in by ``rlframe-local``) is
    used as it is.
    """
    code = job.paths.code
    source = job.sagemaker_parameters.get("sagemaker_submit_directory")
    if not source or (code.is_dir() and any(code.iterdir())):
        return
    source = str(source)
    try:
        code.mkdir(parents=True, exist_ok=True)
        if source.startswith("s3://"):
            with tempfile.TemporaryDirectory() as scratch:
                archive = Path(scratch) / "sourcedir.tar.gz"
                _download_s3(source, archive)
                _unpack(archive, code, source)
        else:
            local = Path(source[len("file://"):] if source.startswith("file://") else source)
            if local.is_dir():
                shutil.copytree(local, code, dirs_exist_ok=True)
            elif local.is_file():
                _unpack(local, code, source)
            else:
                raise JobError(f"The source folder {source} (sagemaker_submit_directory) does not exist: give the "
                               "estimator an existing source_dir.")
    except OSError as exc:
        raise storage_error(str(code), exc) from exc
    print(f"rlframe-sagemaker: source folder {source} unpacked into {code}", flush=True)


def _download_s3(uri: str, target: Path) -> None:
    try:
        import boto3  # in the image; an optional dependency elsewhere (the sagemaker extra)
        import botocore.exceptions
    except ImportError as exc:
        raise JobError(f"The source folder is {uri}; downloading it needs boto3: pip install 'rlframe[sagemaker]'.") from exc
    bucket, _, key = uri[len("s3://"):].partition("/")
    try:
        boto3.client("s3").download_file(bucket, key, str(target))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise JobError(f"Cannot download the source folder {uri} (sagemaker_submit_directory): {exc}. Check that the "
                       "job's role may read it.") from exc


def _unpack(archive: Path, code: Path, source: str) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(code, filter="data")  # no paths out of the folder, no devices
    except tarfile.TarError as exc:
        raise JobError(f"The source folder {source} (sagemaker_submit_directory) is not a readable .tar.gz: {exc}. "
                       "Upload source_dir again.") from exc


def child_environment(job: TrainingEnvironment) -> dict[str, str]:
    """The environment of the training script: this process's, the ``SM_*`` variables, and what the MXNet RL
    images set (``COACH_BACKEND=mxnet``), with ``/opt/ml/code`` first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env.update(job.env_vars())
    python_path = [str(job.paths.code)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update({
        "PYTHONPATH": os.pathsep.join(python_path),
        "PYTHONUNBUFFERED": "1",
        "COACH_BACKEND": "mxnet",
        BASE_DIR_VARIABLE: str(job.paths.base),
        # exported by the training toolkit as well
        "CURRENT_HOST": job.current_host,
        "SAGEMAKER_JOB_NAME": arg_value(job.sagemaker_parameters.get("sagemaker_job_name")),
        "SAGEMAKER_REGION": arg_value(job.sagemaker_parameters.get("sagemaker_region")),
    })
    return env


def script_command(job: TrainingEnvironment) -> list[str]:
    """``python <script> <args>`` (``/bin/sh`` for a ``.sh`` script), run in ``/opt/ml/code``."""
    entry = job.user_entry_point or ""
    code = job.paths.code
    where = f"(SAGEMAKER_PROGRAM / the sagemaker_program hyperparameter) in {code}"
    if entry.startswith("-") or Path(entry).is_absolute() or ".." in Path(entry).parts:
        raise JobError(f"Entry script {entry!r} {where} must be a file name inside that folder, such as train-coach.py.")
    if not (code / entry).is_file():
        present = sorted(p.name for p in code.glob("*.py")) if code.is_dir() else []
        listing = f"it holds {', '.join(present)}" if present else "it holds no Python script"
        raise JobError(
            f"Entry script {entry!r} {where} is not there ({listing}): give the estimator the source_dir that contains "
            "it, or name an existing script as entry_point."
        )
    if entry.endswith(".py"):
        return [sys.executable, entry, *job.cmd_args()]
    if entry.endswith(".sh"):
        return ["/bin/sh", entry, *job.cmd_args()]
    raise JobError(f"Entry script {entry!r} {where}: rlframe runs Python (.py) and shell (.sh) entry scripts; "
                   "name one of those as entry_point.")


def launcher_command(job: TrainingEnvironment) -> list[str]:
    """``python -m <rlframe's launcher> --RLCOACH_PRESET <preset> <the other hyperparameters>``."""
    hyperparameters = dict(job.hyperparameters)
    preset = hyperparameters.pop(PRESET_HYPERPARAMETER, None)
    if preset in (None, ""):
        raise JobError(
            f"The job names neither an entry script nor a preset ({job.paths.hyperparameters_file} has no "
            f"sagemaker_program and no {PRESET_HYPERPARAMETER}): pass entry_point='train-coach.py' to the estimator, "
            f"or the hyperparameter {PRESET_HYPERPARAMETER} (a preset in the source folder or one rlframe ships)."
        )
    return [sys.executable, "-m", LAUNCHER_MODULE, f"--{PRESET_HYPERPARAMETER}", arg_value(preset),
            *to_cmd_args(hyperparameters)]


# ---- running a child ----------------------------------------------------------------------------------------
class StopForwarding:
    """While active, SIGTERM and SIGINT are passed on to the current child instead of ending this process.

    The first signal is remembered (:attr:`signum`, :attr:`since`), so a child still running
    :meth:`grace_seconds` later can be killed. Used as a context manager from the main thread; the previous
    handlers come back on exit.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.since: float | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopForwarding":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum, self.since = signum, time.monotonic()
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    @staticmethod
    def grace_seconds() -> float:
        try:
            return float(os.environ.get(GRACE_VARIABLE) or DEFAULT_GRACE_SECONDS)
        except ValueError:
            return DEFAULT_GRACE_SECONDS


def _child_setup() -> None:
    """In the child, before exec: take stop signals again (they are blocked while it starts), and on Linux be
    killed when this process dies (as everything in a container is)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_step(argv: list[str], env: dict[str, str], cwd: Path, stop: StopForwarding,
              reason: Callable[[list[str], int, StopForwarding], str]) -> None:
    """Run ``argv`` as a child (stdout inherited, stderr passed through line by line and remembered).

    Raises StepFailed with ``reason(stderr_tail, exit_code, stop)`` when it ends with a non-zero status.
    """
    print(f"rlframe-sagemaker: running {shlex.join(argv)} in {cwd}", flush=True)
    # A signal that comes while the child starts is handled once it is known, so it is forwarded exactly once.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        if stop.signum is not None:
            raise StepFailed(f"Stopped by {signal.Signals(stop.signum).name} before the training script started.",
                             128 + stop.signum, "")
        child = subprocess.Popen(argv, cwd=cwd, env=env, stderr=subprocess.PIPE, process_group=0,
                                 preexec_fn=_child_setup)
        stop.child = child
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    relay = threading.Thread(target=_relay, args=(child, tail), daemon=True)
    relay.start()
    try:
        status = _wait(child, stop)
    finally:
        stop.child = None
    relay.join(timeout=5)
    if status == 0:
        return
    code = 128 - status if status < 0 else status
    details = f"ExitCode {code}\nCommand \"{shlex.join(argv)}\"\n" + (
        "Last lines of stderr:\n" + "".join(tail) if tail else "")
    raise StepFailed(reason(list(tail), code, stop), code, details)


def _relay(child: subprocess.Popen[bytes], tail: collections.deque[str]) -> None:
    """Copy the child's stderr to ours as it comes, keeping the last lines."""
    assert child.stderr is not None
    binary = getattr(sys.stderr, "buffer", None)  # a notebook's stderr takes text only
    for line in iter(child.stderr.readline, b""):
        text = line.decode("utf-8", "replace")
        if binary is not None:
            binary.write(line)
            binary.flush()
        else:
            sys.stderr.write(text)
            sys.stderr.flush()
        tail.append(text)
    child.stderr.close()


def _wait(child: subprocess.Popen[bytes], stop: StopForwarding) -> int:
    """The child's status; kills it once the grace period after a stop signal is over."""
    while True:
        try:
            return child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if stop.since is not None and time.monotonic() - stop.since >= stop.grace_seconds():
            print(f"rlframe-sagemaker: the training script did not stop within {stop.grace_seconds():g} s of "
                  f"{signal.Signals(stop.signum or signal.SIGTERM).name}; killing it", file=sys.stderr, flush=True)
            child.kill()
            return child.wait()


def _reason_from_stderr(tail: list[str], code: int, stop: StopForwarding) -> str:
    """Why the training script failed, in one line: its last ``error:`` line, else the last line of its last
    traceback, else how it ended."""
    lines = [line.rstrip("\n") for line in tail if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):]
    if any(line.startswith("Traceback (most recent call last):") for line in lines):
        for line in reversed(lines):
            if not line[:1].isspace() and not line.startswith("Traceback"):
                return line
    if stop.signum is not None:
        name = signal.Signals(stop.signum).name
        if code == 128 + signal.SIGKILL:
            return f"Stopped by {name}: the training script did not stop within {stop.grace_seconds():g} s and was killed."
        return f"Stopped by {name} (forwarded to the training script, which exited with code {code})."
    if code == 128 + signal.SIGKILL:
        return f"The training script was killed by SIGKILL (exit code {code}), often a sign it ran out of memory."
    return f"The training script exited with code {code} without an error message on stderr."


def _pip_reason(tail: list[str], code: int, stop: StopForwarding) -> str:
    errors = [line.strip() for line in tail if line.startswith("ERROR:")]
    said = f": {errors[-1]}" if errors else f" (pip exited with code {code})"
    return f"Installing the packages of requirements.txt failed{said}. Fix requirements.txt in the source folder."


def _fail(paths: SageMakerPaths, reason: str, exit_code: int, details: str) -> int:
    """Write the failure file (unless the user's code wrote one) and return the exit status."""
    reason = " ".join(reason.split())  # one line, whatever the message held
    if paths.failure_file.exists():
        print(f"Training job failed (exit code {exit_code}); kept the failure file the training script wrote, "
              f"{paths.failure_file}", file=sys.stderr, flush=True)
        return exit_code
    try:
        atomic_write_text(str(paths.failure_file), f"{reason}\n{details}")
    except RlframeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
    print(f"Training job failed (exit code {exit_code}); the reason is in {paths.failure_file}", file=sys.stderr,
          flush=True)
    return exit_code


if __name__ == "__main__":
    # `python -m` runs this file as __main__, a second copy of the module beside the one ray_cluster imports: run the
    # imported one, so that both see the same StepFailed and JobError classes
    from rlframe.integrations.sagemaker.entrypoint import main as _main

    sys.exit(_main())
