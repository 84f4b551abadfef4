"""Where a SageMaker training job keeps its inputs and outputs (contracts §1.2), relocatable for local runs.

SageMaker mounts everything under ``/opt/ml``. Local mode and tests relocate that tree by setting
``SAGEMAKER_BASE_DIR`` (the same variable SageMaker's own training toolkit honours), so every path here is
derived from one base directory.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from rlframe.errors import RlframeError

#: the root SageMaker mounts in a real job, and the prefix users' scripts hard-code
SAGEMAKER_ROOT = "/opt/ml"
BASE_DIR_VARIABLE = "SAGEMAKER_BASE_DIR"
#: exported to the user's process by rlframe's entrypoint and by SageMaker's training toolkit alike
TRAINING_ENV_VARIABLE = "SM_TRAINING_ENV"
DEFAULT_HOST = "algo-1"


class SageMakerConfigError(RlframeError):
    """A file of the ``/opt/ml/input/config`` folder that cannot be read as SageMaker writes it."""


@dataclass(frozen=True)
class SageMakerPaths:
    """The ``/opt/ml`` tree of one training job, rooted at ``base``."""

    base: Path

    @classmethod
    def from_env(cls) -> "SageMakerPaths":
        """The tree at ``$SAGEMAKER_BASE_DIR``, else ``/opt/ml``."""
        return cls(Path(os.environ.get(BASE_DIR_VARIABLE) or SAGEMAKER_ROOT))

    @property
    def code(self) -> Path:
        return self.base / "code"

    @property
    def input(self) -> Path:
        return self.base / "input"

    @property
    def input_config(self) -> Path:
        return self.input / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config / "hyperparameters.json"

    @property
    def resource_config_file(self) -> Path:
        return self.input_config / "resourceconfig.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.input_config / "inputdataconfig.json"

    @property
    def input_data(self) -> Path:
        return self.input / "data"

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def output_data(self) -> Path:
        return self.output / "data"

    @property
    def intermediate(self) -> Path:
        """Synced to S3 while the job runs (contracts §1.7); the launcher's experiment folder."""
        return self.output / "intermediate"

    @property
    def checkpoint_output(self) -> Path:
        """Where the Coach launchers write checkpoints; ends up in ``output.tar.gz``."""
        return self.output_data / "checkpoint"

    @property
    def managed_checkpoints(self) -> Path:
        """``CheckpointConfig.LocalPath``: synced with S3 and restored on a spot restart."""
        return self.base / "checkpoints"

    @property
    def success_file(self) -> Path:
        return self.output / "success"

    @property
    def failure_file(self) -> Path:
        """Its first 1024 characters become the job's ``FailureReason``."""
        return self.output / "failure"

    def channel(self, name: str) -> Path:
        """The folder of input channel ``name`` (``/opt/ml/input/data/<name>``)."""
        return self.input_data / name

    def relocate(self, path: str) -> str:
        """Map a literal ``/opt/ml/...`` path, as users' scripts hard-code it, to the same place under ``base``.

        Other paths, and every path when ``base`` is ``/opt/ml``, come back unchanged.
        """
        if path == SAGEMAKER_ROOT:
            return str(self.base)
        if path.startswith(SAGEMAKER_ROOT + "/"):
            return str(self.base / path[len(SAGEMAKER_ROOT) + 1:])
        return path


def read_json_config(path: Path) -> object | None:
    """The decoded content of a config file, or None when it does not exist.

    Raises SageMakerConfigError (one line naming the file) when it exists but is not JSON.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SageMakerConfigError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SageMakerConfigError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            f"write it as SageMaker does, a JSON object."
        ) from exc


def current_host(paths: SageMakerPaths) -> str:
    """This host's name from ``resourceconfig.json`` (``algo-1`` when the file or the key is absent)."""
    config = read_json_config(paths.resource_config_file)
    if isinstance(config, dict) and isinstance(config.get("current_host"), str) and config["current_host"]:
        return config["current_host"]
    return DEFAULT_HOST


def in_sagemaker_job() -> bool:
    """True inside a training job's user process (rlframe's entrypoint or SageMaker's toolkit started it)."""
    return TRAINING_ENV_VARIABLE in os.environ
