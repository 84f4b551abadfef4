"""A training job's environment as SageMaker's training toolkit presents it to the user's script.

Reads the three files of ``/opt/ml/input/config`` (contracts §1.3) and computes what the toolkit gives the
script it runs: the ``SM_*`` environment variables with the toolkit's exact encodings (§1.4) and the script-mode
command-line arguments (§1.5). The encodings matter because users' scripts parse them: ``--flag True`` on the
command line but ``SM_HP_FLAG=true`` in the environment, ``SM_HP_LEARNING-RATE`` with its dash kept.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
from dataclasses import dataclass
from typing import Any, Mapping

from rlframe.integrations.sagemaker.paths import (
    DEFAULT_HOST,
    SageMakerConfigError,
    SageMakerPaths,
    read_json_config,
)
from rlframe.overrides import decode_sagemaker_value, is_sagemaker_internal

#: reserved hyperparameters the toolkit reads itself; other ``sagemaker_*`` ones are framework parameters
TOOLKIT_HYPERPARAMETERS = (
    "sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics", "sagemaker_region",
    "sagemaker_container_log_level", "sagemaker_job_name", "default_user_module_name", "_tuning_objective_metric",
    "sagemaker_s3_output",
)
PROGRAM_HYPERPARAMETER = "sagemaker_program"
PROGRAM_VARIABLE = "SAGEMAKER_PROGRAM"
DEFAULT_LOG_LEVEL = 20  # logging.INFO, the toolkit's default
DEFAULT_NETWORK_INTERFACE = "eth0"


def _compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def env_value(value: Any) -> str:
    """An environment-variable value: a string as it is, None as ``""``, anything else compact sorted JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _compact_json(value)


def to_env_vars(mapping: Mapping[str, Any]) -> dict[str, str]:
    """``SM_`` + the key upper-cased (nothing else: dashes and dots stay) -> :func:`env_value`."""
    return {f"SM_{key.upper()}": env_value(value) for key, value in mapping.items()}


def arg_value(value: Any) -> str:
    """A command-line value: ``str()`` of the decoded value (``True``, ``0.1``, ``[1, 2]``), ``""`` for None,
    and a mapping as ``k1=v1,k2=v2`` sorted by key."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return ",".join(f"{key}={item}" for key, item in sorted(value.items()))
    return str(value)


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """Script-mode arguments: keys sorted, each ``--key`` (``-k`` for a one-character key) then its value."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        args += [f"--{key}" if len(key) > 1 else f"-{key}", arg_value(hyperparameters[key])]
    return args


def count_gpus() -> int:
    """GPUs as the toolkit counts them: ``GPU `` lines of ``nvidia-smi --list-gpus`` (0 without it)."""
    try:
        listing = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def _object(path: Any, content: Any, what: str) -> dict[str, Any]:
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise SageMakerConfigError(f"{path} holds a JSON {type(content).__name__}; it must be a JSON object of {what}.")
    return content


@dataclass(frozen=True)
class TrainingEnvironment:
    """What the config files of one job say, decoded.

    :param hyperparameters: the user's hyperparameters, decoded (no ``sagemaker_*`` or tuning keys).
    :param sagemaker_parameters: the reserved ``sagemaker_*`` (and tuning) hyperparameters, decoded.
    :param user_entry_point: the entry script in ``paths.code`` (``SAGEMAKER_PROGRAM``, else the
        ``sagemaker_program`` hyperparameter); None for a job that names only a preset.
    """

    paths: SageMakerPaths
    hyperparameters: dict[str, Any]
    sagemaker_parameters: dict[str, Any]
    resource_config: dict[str, Any]
    input_data_config: dict[str, Any]
    user_entry_point: str | None
    job_name: str | None
    num_cpus: int
    num_gpus: int

    @property
    def current_host(self) -> str:
        return str(self.resource_config.get("current_host") or DEFAULT_HOST)

    @property
    def hosts(self) -> list[str]:
        return list(self.resource_config.get("hosts") or [self.current_host])

    @property
    def network_interface_name(self) -> str:
        return str(self.resource_config.get("network_interface_name") or DEFAULT_NETWORK_INTERFACE)

    @property
    def channels(self) -> list[str]:
        return sorted(self.input_data_config)

    @property
    def framework_parameters(self) -> dict[str, Any]:
        """``sagemaker_*`` hyperparameters the toolkit does not read itself (``SM_FRAMEWORK_PARAMS``)."""
        return {k: v for k, v in self.sagemaker_parameters.items() if k not in TOOLKIT_HYPERPARAMETERS}

    @property
    def module_name(self) -> str:
        entry = self.user_entry_point or ""
        return entry[:-len(".py")] if entry.endswith(".py") else entry

    @property
    def module_dir(self) -> str:
        return str(self.sagemaker_parameters.get("sagemaker_submit_directory") or self.paths.code)

    @property
    def log_level(self) -> Any:
        return self.sagemaker_parameters.get("sagemaker_container_log_level", DEFAULT_LOG_LEVEL)

    def cmd_args(self) -> list[str]:
        """The user script's arguments (contracts §1.5)."""
        return to_cmd_args(self.hyperparameters)

    def properties(self) -> dict[str, Any]:
        """The properties the toolkit exports as ``SM_<NAME>`` (and gathers in ``SM_TRAINING_ENV``)."""
        paths = self.paths
        return {
            "hosts": self.hosts,
            "current_host": self.current_host,
            "master_hostname": self.hosts[0],
            "is_master": self.current_host == self.hosts[0],
            "current_instance_type": self.resource_config.get("current_instance_type", "local"),
            "network_interface_name": self.network_interface_name,
            "hyperparameters": self.hyperparameters,
            "additional_framework_parameters": self.framework_parameters,
            "resource_config": self.resource_config,
            "input_data_config": self.input_data_config,
            "channel_input_dirs": {name: str(paths.channel(name)) for name in self.input_data_config},
            "job_name": self.job_name,
            "user_entry_point": self.user_entry_point,
            "module_name": self.module_name,
            "module_dir": self.module_dir,
            "log_level": self.log_level,
            "input_dir": str(paths.input),
            "input_config_dir": str(paths.input_config),
            "model_dir": str(paths.model),
            "output_dir": str(paths.output),
            "output_data_dir": str(paths.output_data),
            "output_intermediate_dir": str(paths.intermediate),
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
        }

    def env_vars(self) -> dict[str, str]:
        """Every ``SM_*`` variable the user's process gets, encoded as the toolkit encodes them."""
        properties = self.properties()
        exported = {
            key: properties[key] for key in (
                "hosts", "current_host", "current_instance_type", "network_interface_name", "resource_config",
                "input_data_config", "user_entry_point", "module_name", "module_dir", "log_level", "input_dir",
                "input_config_dir", "model_dir", "output_dir", "output_data_dir", "output_intermediate_dir",
                "num_cpus", "num_gpus",
            )
        }
        exported.update({
            "hps": self.hyperparameters,
            "framework_params": self.framework_parameters,
            "channels": self.channels,
            "user_args": self.cmd_args(),
            "training_env": properties,
        })
        exported.update({f"channel_{name}": path for name, path in properties["channel_input_dirs"].items()})
        exported.update({f"hp_{key}": value for key, value in self.hyperparameters.items()})
        return to_env_vars(exported)


def read_environment(paths: SageMakerPaths, environ: Mapping[str, str] | None = None) -> TrainingEnvironment:
    """Read the job's config files under ``paths``; a missing file counts as empty (one host, ``algo-1``).

    Raises SageMakerConfigError (one line naming the file and the fix) for a file that is not what SageMaker
    writes, and for a channel in Pipe mode, which rlframe does not read.
    """
    environ = os.environ if environ is None else environ
    raw = _object(paths.hyperparameters_file, read_json_config(paths.hyperparameters_file), "string values")
    decoded = {str(key): decode_sagemaker_value(value) for key, value in raw.items()}
    reserved = {k: v for k, v in decoded.items() if is_sagemaker_internal(k) or k in TOOLKIT_HYPERPARAMETERS}
    user = {k: v for k, v in decoded.items() if k not in reserved}
    resource_config = _object(paths.resource_config_file, read_json_config(paths.resource_config_file),
                              "current_host, hosts and network_interface_name")
    input_data_config = _object(paths.input_data_config_file, read_json_config(paths.input_data_config_file),
                                "channels")
    for name, channel in input_data_config.items():
        mode = channel.get("TrainingInputMode") if isinstance(channel, dict) else None
        if mode == "Pipe":
            raise SageMakerConfigError(
                f"Channel {name!r} uses Pipe input mode ({paths.input_data_config_file}), which rlframe does not read: "
                "give the channel input_mode='File' (or 'FastFile') in the training job."
            )
    program = environ.get(PROGRAM_VARIABLE) or reserved.get(PROGRAM_HYPERPARAMETER)
    return TrainingEnvironment(
        paths=paths,
        hyperparameters=user,
        sagemaker_parameters=reserved,
        resource_config=resource_config,
        input_data_config=input_data_config,
        user_entry_point=str(program) if program else None,
        job_name=environ.get("TRAINING_JOB_NAME"),
        num_cpus=multiprocessing.cpu_count(),
        num_gpus=count_gpus(),
    )
