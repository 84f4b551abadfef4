"""``rlframe-local``: run a SageMaker source folder as a training job would run it, without Docker or AWS.

It lays out the job's ``/opt/ml`` tree under ``OUT/opt_ml`` as SageMaker (and the SDK's local mode) would:

- ``input/config/hyperparameters.json``: every value JSON-encoded, as the SDK sends them, with
  ``sagemaker_program`` naming the entry script; ``resourceconfig.json`` (one host, ``algo-1``);
  ``inputdataconfig.json`` (every channel in File mode);
- ``code/``: a copy of the source folder; ``input/data/<channel>``: a link to each channel's folder (local mode
  mounts ``file://`` inputs the same way); ``checkpoints``: a link to ``--checkpoint-dir`` (CheckpointConfig);

then runs the same code as the image's entrypoint (:func:`.entrypoint.train`) with the tree as its base, and
at the end, also after a failure, packs ``OUT/model.tar.gz`` (the files of ``model/``) and ``OUT/output.tar.gz``
(``data/...`` and ``success`` or ``failure``, as local mode packs them). The tree stays for inspection; the CSV
and GIFs are in ``OUT/opt_ml/output/intermediate``. The exit status is the job's.

Running it again with the same ``--checkpoint-dir`` is a spot restart (the job resumes from it); passing a job's
``OUT/opt_ml/output/data/checkpoint`` as the ``checkpoint`` channel of another is an evaluation job.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tarfile
import time
from pathlib import Path
from typing import Sequence

from rlframe.errors import ParameterValueError, RlframeError
from rlframe.integrations.sagemaker.entrypoint import train
from rlframe.integrations.sagemaker.environment import PROGRAM_HYPERPARAMETER
from rlframe.integrations.sagemaker.paths import DEFAULT_HOST, SageMakerPaths, current_host
from rlframe.outputs.atomic import atomic_path, atomic_write_text, storage_error
from rlframe.overrides import is_sagemaker_internal, read_hyperparameters_file

TREE = "opt_ml"
MODEL_ARCHIVE = "model.tar.gz"
OUTPUT_ARCHIVE = "output.tar.gz"
#: SageMaker's channel-name pattern
_CHANNEL_NAME = re.compile(r"\A[A-Za-z0-9.\-_]+\Z")


class LocalModeError(RlframeError):
    """A ``rlframe-local`` argument that cannot be used (nothing has been written when it is raised)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlframe-local", allow_abbrev=False,
        description="Run a SageMaker RL source folder as a training job would, without Docker or AWS: the /opt/ml "
        "tree is laid out under OUTPUT_PATH/opt_ml and the image's entrypoint code runs it.",
    )
    parser.add_argument("--source-dir", required=True, help="the estimator's source_dir (copied to /opt/ml/code)")
    parser.add_argument("--entry-point", help="the estimator's entry_point in the source folder, e.g. train-coach.py "
                        "(omit it to train the RLCOACH_PRESET hyperparameter's preset with rlframe's launcher)")
    parser.add_argument("--hyperparameters", metavar="FILE",
                        help="a flat JSON or YAML map of hyperparameters, values as a notebook passes them "
                        "(or a SageMaker hyperparameters.json as it is)")
    parser.add_argument("--channel", action="append", default=[], metavar="NAME=PATH",
                        help="an input channel, e.g. checkpoint=OLD_OUT/opt_ml/output/data/checkpoint (repeatable)")
    parser.add_argument("--output-path", required=True, metavar="OUT",
                        help="a new folder for the job: OUT/opt_ml, OUT/model.tar.gz, OUT/output.tar.gz")
    parser.add_argument("--checkpoint-dir", metavar="DIR",
                        help="plays CheckpointConfig: mounted as /opt/ml/checkpoints and kept across runs, so a "
                        "second run with the same DIR resumes (a spot restart)")
    return parser


def read_hyperparameters(path: str) -> dict[str, str]:
    """The hyperparameters of ``path`` as SageMaker writes them (``name -> JSON-encoded string``).

    A file with ``sagemaker_*`` keys is taken to be a SageMaker ``hyperparameters.json`` whose values are already
    encoded; in any other, every value is JSON-encoded as the SDK encodes a notebook's ``hyperparameters={...}``.
    """
    try:
        data = read_hyperparameters_file(path)
    except ParameterValueError as exc:
        raise LocalModeError(f"--hyperparameters: {exc}") from exc
    already_encoded = any(is_sagemaker_internal(key) for key in data)
    return {
        str(key): value if already_encoded and isinstance(value, str) else json.dumps(value)
        for key, value in data.items()
    }


def _channels(specs: Sequence[str]) -> dict[str, Path]:
    channels: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not _CHANNEL_NAME.match(name) or not path:
            raise LocalModeError(f"--channel {spec!r}: write NAME=PATH, NAME made of letters, digits, '.', '-' and '_'.")
        if name in channels:
            raise LocalModeError(f"--channel {name} is given twice: give each channel once.")
        if not os.path.exists(path):
            raise LocalModeError(f"--channel {name}={path}: {path} does not exist.")
        channels[name] = Path(path).resolve()
    return channels


def _check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise LocalModeError(f"--output-path {out} is a file: give a folder for the job's outputs.")
    previous = [name for name in (TREE, MODEL_ARCHIVE, OUTPUT_ARCHIVE) if (out / name).exists()]
    if previous:
        raise LocalModeError(
            f"--output-path {out} already holds a job ({', '.join(previous)}): give a new --output-path, or move "
            "that job's files away (nothing was changed)."
        )


def lay_out(paths: SageMakerPaths, source: Path, hyperparameters: dict[str, str], channels: dict[str, Path],
            checkpoint_dir: Path | None, skip: set[Path]) -> None:
    """Write the job's ``/opt_ml`` tree at ``paths.base`` (``skip``: folders not to copy from ``source``)."""
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n == "__pycache__" or (Path(folder) / n).resolve() in skip}

    for folder in (paths.input_config, paths.input_data, paths.model, paths.output_data, paths.intermediate):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, paths.code, ignore=ignore)
    atomic_write_text(str(paths.hyperparameters_file), json.dumps(hyperparameters, indent=1))
    resources = {"current_host": DEFAULT_HOST, "hosts": [DEFAULT_HOST], "network_interface_name": "eth0"}
    atomic_write_text(str(paths.resource_config_file), json.dumps(resources, indent=1))
    input_data = {name: {"TrainingInputMode": "File"} for name in sorted(channels)}
    atomic_write_text(str(paths.input_data_config_file), json.dumps(input_data, indent=1))
    for name, path in channels.items():
        if path.is_dir():
            paths.channel(name).symlink_to(path, target_is_directory=True)
        else:  # a file: local mode mounts the folder of a file:// input; here the channel holds that file alone
            paths.channel(name).mkdir()
            (paths.channel(name) / path.name).symlink_to(path)
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        paths.managed_checkpoints.symlink_to(checkpoint_dir.resolve(), target_is_directory=True)


def pack(folder: Path, archive: Path, exclude: tuple[str, ...] = ()) -> None:
    """Write ``archive`` (gzip tar) holding the files under ``folder``, named relative to it."""
    with atomic_path(str(archive)) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            if folder.is_dir():
                for entry in sorted(folder.iterdir()):
                    if entry.name not in exclude:
                        tar.add(entry, arcname=entry.name)


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    source = Path(args.source_dir)
    if not source.is_dir():
        raise LocalModeError(f"--source-dir {source} is not a folder: give the folder the estimator's source_dir names.")
    hyperparameters = read_hyperparameters(args.hyperparameters) if args.hyperparameters else {}
    if args.entry_point:
        hyperparameters[PROGRAM_HYPERPARAMETER] = json.dumps(args.entry_point)
    channels = _channels(args.channel)
    out = Path(args.output_path).resolve()
    _check_output(out)
    job_name = time.strftime("rlframe-local-%Y-%m-%d-%H-%M-%S")
    hyperparameters.setdefault("sagemaker_job_name", json.dumps(job_name))
    hyperparameters.setdefault("sagemaker_container_log_level", "20")
    hyperparameters.setdefault("sagemaker_submit_directory", json.dumps(f"file://{source.resolve()}"))
    checkpoint_dir = Path(args.checkpoint_dir).resolve() if args.checkpoint_dir else None

    paths = SageMakerPaths(out / TREE)
    try:
        protected = {out, *([checkpoint_dir] if checkpoint_dir else [])}
        lay_out(paths, source, hyperparameters, channels, checkpoint_dir, protected)
    except OSError as exc:
        raise storage_error(str(exc.filename or out), exc) from exc
    print(f"rlframe-local: job {job_name}, /opt/ml is {paths.base}", flush=True)
    os.environ["TRAINING_JOB_NAME"] = job_name  # set by SageMaker (and by local mode) in the container
    status = train(paths)
    pack(paths.model, out / MODEL_ARCHIVE)
    # Local mode mounts output/intermediate elsewhere, so output.tar.gz holds data/... and success or failure.
    pack(paths.output, out / OUTPUT_ARCHIVE, exclude=(paths.intermediate.name,))
    synced = f" (and {checkpoint_dir / current_host(paths)})" if checkpoint_dir else ""
    print(f"rlframe-local: job {job_name} ended with exit status {status}\n"
          f"  CSV, GIFs:    {paths.intermediate}\n"
          f"  checkpoints:  {paths.checkpoint_output}{synced}\n"
          f"  model:        {out / MODEL_ARCHIVE}\n"
          f"  output:       {out / OUTPUT_ARCHIVE}", flush=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rlframe-local``."""
    try:
        return _run(argv)
    except RlframeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
