"""Schedules and the graph-manager base: run set-up, counters, outputs and checkpoints.

The graph manager orchestrates; it never decides what an agent learns. Subclasses implement the loop
(``BasicRLGraphManager.improve``: heatup -> (train_and_act -> evaluate)*). Outputs (CSV, GIFs, screen,
checkpoints) only observe the run.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, RunPhase, StepMethod, Time, TrainingSteps
from rlframe.errors import CheckpointError, ParameterValueError
from rlframe.outputs.atomic import atomic_write_text
from rlframe.overrides import Hyperparameters
from rlframe.outputs.checkpoints import (
    AGENT_PREFIX,
    CheckpointFiles,
    CheckpointWriter,
    latest_checkpoint,
    library_error_text,
    load_arrays,
    read_state,
    verify,
)
from rlframe.outputs.csv_logger import CsvLogger, csv_file_name
from rlframe.outputs.experiment import ExperimentFolder
from rlframe.outputs.screen import Screen
from rlframe.parameters import (
    AgentParameters,
    Parameters,
    PresetValidationParameters,
    TaskParameters,
    VisualizationParameters,
    to_plain,
)

from rlframe.agents.contract import AgentCheckpoint
from rlframe.graph_managers.hooks import RunHooks

if TYPE_CHECKING:
    from rlframe.agents.agent import Agent


class ScheduleParameters(Parameters):
    """When each phase runs: ``heatup_steps``, then ``improve_steps`` of training, evaluating for
    ``evaluation_steps`` every ``steps_between_evaluation_periods``. All are step units (see
    ``rlframe.core_types`` for what a ``TrainingSteps`` is). The graph manager copies them when it is made, so
    ``-cp`` overrides name them on the graph manager (``improve_steps=TrainingSteps(500)``).

    :param heatup_steps: played before training to fill the memory, with uniformly random actions unless
        ``heatup_using_network_decisions``; ``EnvironmentSteps`` or ``EnvironmentEpisodes`` (None: no heatup).
        Batch RL without a dataset generates one from these steps.
    :param evaluation_steps: the length of each evaluation phase (greedy or evaluation exploration, no
        training); ``EnvironmentEpisodes`` or ``EnvironmentSteps``; None or 0: never evaluate.
    :param steps_between_evaluation_periods: training played between two evaluation phases; in batch RL,
        ``TrainingSteps(n)`` is n epochs over the dataset.
    :param improve_steps: how long training lasts after heatup: ``TrainingSteps(n)`` is n training-phase
        environment steps (n epochs in batch RL), or ``EnvironmentSteps``/``EnvironmentEpisodes``; must be set.
    """

    def __init__(self) -> None:
        self.heatup_steps: StepMethod | None = None
        self.evaluation_steps: StepMethod | None = None
        self.steps_between_evaluation_periods: StepMethod | None = None
        self.improve_steps: StepMethod | None = None


class SimpleSchedule(ScheduleParameters):
    """No heatup; train (practically) forever, evaluating 5 episodes every 50 episodes."""

    def __init__(self, improve_steps: StepMethod = TrainingSteps(10000000000),
                 steps_between_evaluation_periods: StepMethod = EnvironmentEpisodes(50),
                 evaluation_steps: StepMethod = EnvironmentEpisodes(5)) -> None:
        super().__init__()
        self.heatup_steps = EnvironmentSteps(0)
        self.improve_steps = improve_steps
        self.steps_between_evaluation_periods = steps_between_evaluation_periods
        self.evaluation_steps = evaluation_steps


class SimpleScheduleWithoutEvaluation(SimpleSchedule):
    """``SimpleSchedule`` that never evaluates."""

    def __init__(self, improve_steps: StepMethod = TrainingSteps(10000000000)) -> None:
        super().__init__(improve_steps=improve_steps, evaluation_steps=EnvironmentEpisodes(0))


class HumanPlayScheduleParameters(ScheduleParameters):
    """Accepted for Coach compatibility (rlframe has no human play)."""

    def __init__(self) -> None:
        super().__init__()
        self.heatup_steps = EnvironmentSteps(0)
        self.evaluation_steps = EnvironmentEpisodes(0)
        self.steps_between_evaluation_periods = EnvironmentEpisodes(100000000)
        self.improve_steps = TrainingSteps(10000000000)


SCHEDULE_FIELDS = ("heatup_steps", "improve_steps", "steps_between_evaluation_periods", "evaluation_steps")
_UNITS = (EnvironmentSteps, EnvironmentEpisodes, TrainingSteps, Time)


@dataclass
class PresetOrigin:
    """Where a graph manager's preset came from."""

    #: the preset's folder: environment modules and datasets are looked up beside the preset
    directory: Path | None = None
    #: the preset's name, the default experiment folder name
    name: str = "experiment"
    #: the notebook whose hyperparameter shortcuts the preset names (its ``HYPERPARAMETER_SHORTCUTS``)
    shortcuts: str | None = None
    #: the preset file's variable that holds the graph manager
    variable: str = "graph_manager"

    @property
    def file(self) -> str | None:
        """The preset file; None when the graph manager was not loaded from one."""
        return str(self.directory / f"{self.name}.py") if self.directory is not None else None


@dataclass
class Progress:
    """What a stop condition sees after each episode and evaluation."""

    episodes: int = 0
    last_evaluation_reward: float | None = None
    last_success_rate: float | None = None
    evaluations: list[tuple[int, float]] = field(default_factory=list)


class PhaseCounters:
    """Per-phase counts of environment steps, episodes and training steps (and the run's seconds)."""

    def __init__(self) -> None:
        self.counts = {phase.name: {unit.__name__: 0 for unit in _UNITS} for phase in RunPhase}

    def add(self, phase: RunPhase, steps: int = 0, episodes: int = 0, training_steps: int = 0) -> None:
        counts = self.counts[phase.name]
        counts["EnvironmentSteps"] += steps
        counts["EnvironmentEpisodes"] += episodes
        counts["TrainingSteps"] += training_steps

    def get(self, phase: RunPhase, unit: type[StepMethod]) -> int:
        return self.counts[phase.name][unit.__name__]


def check_step_unit(value: Any, where: str, allowed: tuple[type, ...] = _UNITS) -> StepMethod:
    if not isinstance(value, allowed):
        raise ParameterValueError(
            f"{where} = {value!r}: use a step unit, one of {', '.join(t.__name__ for t in allowed)}, "
            f"for example EnvironmentSteps(1000)."
        )
    return value


class GraphManager(Parameters):
    """Holds a preset's parameters; ``run`` builds the agent and environments and runs the schedule.

    The schedule fields are copied from ``schedule_params`` when the graph manager is made (as in
    Coach), so overrides address them on the graph manager: ``-cp "improve_steps=TrainingSteps(500)"``.
    """

    def __init__(self, name: str, agent_params: AgentParameters, env_params: Any, schedule_params: ScheduleParameters,
                 vis_params: VisualizationParameters, preset_validation_params: PresetValidationParameters) -> None:
        self.name = name
        # One object, as in Coach: a launcher's ``agent_params.visualization.dump_csv = False`` reaches the run.
        agent_params.visualization = vis_params
        self.agent_params = agent_params
        self.env_params = env_params
        self.schedule_params = schedule_params
        self.visualization_parameters = vis_params
        self.preset_validation_params = preset_validation_params
        self.heatup_steps = schedule_params.heatup_steps
        self.improve_steps = schedule_params.improve_steps
        self.steps_between_evaluation_periods = schedule_params.steps_between_evaluation_periods
        self.evaluation_steps = schedule_params.evaluation_steps
        self.task_parameters: TaskParameters | None = None
        self._origin = PresetOrigin()
        self._hyperparameters = Hyperparameters()
        self._custom_parameters: list[str] = []
        self._hooks: list[RunHooks] = []
        #: build_agent's one environment copy (only the spaces are needed), without changing the preset's env_params
        self._single_copy = False

    # ---- hooks and run state, for the edges ----------------------------------------------------------
    def add_hooks(self, hooks: RunHooks) -> None:
        """Call ``hooks``' events from now on (see :mod:`rlframe.graph_managers.hooks`)."""
        self._hooks.append(hooks)

    @property
    def progress(self) -> Progress:
        """The run's progress so far (episodes, evaluations); read it, do not change it."""
        return self._progress

    # ---- set-up shared by every graph ---------------------------------------------------------------
    @property
    def graph_name(self) -> str:
        return self.name

    @property
    def origin(self) -> PresetOrigin:
        """Where the preset came from (:func:`rlframe.presets.load_preset` fills it in)."""
        return self._origin

    @property
    def hyperparameters(self) -> Hyperparameters:
        """The SageMaker-style hyperparameters applied to this graph manager, and those only recorded."""
        return self._hyperparameters

    def record_hyperparameters(self, hyperparameters: Hyperparameters) -> None:
        """Keep what :func:`rlframe.overrides.apply_hyperparameters` applied, for ``parameters.yaml`` and checkpoints."""
        self._hyperparameters = hyperparameters

    def record_custom_parameters(self, text: str) -> None:
        """Keep Coach's ``-cp`` text that was applied to this graph manager, for checkpoints (an export rebuilds the
        agent with it)."""
        self._custom_parameters.append(text)

    @property
    def agent(self) -> "Agent":
        """The agent, once :meth:`create_graph` (or :meth:`load_policy`) has built it."""
        return self._agent

    def preset_record(self) -> dict[str, Any]:
        """What this graph manager was built from, as a checkpoint's ``state.json`` keeps it under ``"preset"``: the
        preset's name, file and variable, and the hyperparameters and ``-cp`` overrides applied to it (values as
        :func:`~rlframe.overrides.parse_value` reads them back). An export rebuilds the agent from it."""
        def replayable(value: Any) -> Any:
            plain = (str, int, float, bool, type(None))
            if isinstance(value, plain) or (isinstance(value, list) and all(isinstance(v, plain) for v in value)):
                return value
            return repr(value)  # a constructor such as Dense(32) or EnvironmentSteps(100) that parse_value accepts

        return {"name": self.origin.name, "file": self.origin.file, "variable": self.origin.variable,
                "hyperparameters": {k: replayable(v) for k, v in self._hyperparameters.applied.items()},
                "custom_parameters": list(self._custom_parameters)}

    @staticmethod
    def check_task(task: TaskParameters) -> None:
        """Refuse checkpoint settings that cannot work (before anything is built or written)."""
        secs = task.checkpoint_save_secs
        if secs is not None and (isinstance(secs, bool) or not isinstance(secs, (int, float)) or not secs > 0):
            raise ParameterValueError(
                f"checkpoint_save_secs = {secs!r} (-s): give the seconds between checkpoints as a positive number, "
                "for example -s 60 (without it only the final checkpoint is written)."
            )
        keep = task.num_checkpoints_to_keep
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ParameterValueError(
                f"num_checkpoints_to_keep = {keep!r} (--keep-checkpoints): give how many of the newest checkpoints to "
                "keep as a whole number, for example 5, or 0 to keep every one."
            )

    def _open_experiment(self, task: TaskParameters) -> None:
        """Lock the experiment folder for this run (see :mod:`rlframe.outputs.experiment`)."""
        path = os.path.abspath(task.experiment_path)
        checkpoint_dir = os.path.abspath(task.checkpoint_save_dir or os.path.join(path, "checkpoint"))
        restore_dir = task.checkpoint_restore_dir or task.checkpoint_restore_path
        resumes_here = (task.evaluate_only is None and restore_dir is not None
                        and os.path.realpath(restore_dir) == os.path.realpath(checkpoint_dir))
        self._folder = ExperimentFolder(path, resumes_here, bool(task.start_over)).open()

    def _setup_outputs(self, task: TaskParameters, signal_columns: list[str], index: str) -> None:
        if task.evaluate_only is None and (task.export_onnx_graph or self._hyperparameters.save_model):
            self._agent.policy_graph()  # a policy that cannot be exported fails now, not once training is over
        self._task = task
        self._experiment_path = self._folder.path
        self._screen = Screen(os.path.join(self._experiment_path, "log.txt"))
        if self._folder.moved_to is not None:
            self._screen.line(f"Experiment> moved the earlier run's files into {self._folder.moved_to}")
        self._csv_path = os.path.join(self._experiment_path, csv_file_name(self.graph_name, task.task_index))
        vis = self.visualization_parameters
        self._csv = (
            CsvLogger(self._csv_path, index, signal_columns, vis.dump_signals_to_csv_every_x_episodes)
            if vis.dump_csv else None
        )
        self._checkpoint_dir = task.checkpoint_save_dir or os.path.join(self._experiment_path, "checkpoint")
        self._checkpoints: CheckpointWriter | None = None
        #: the writer of ``task.checkpoint_sync_dir``, made with the first checkpoint
        self._sync: CheckpointWriter | None = None
        self._last_checkpoint_time = time.time()
        self._start_time = time.time()
        self._wall_clock_offset = 0.0
        self._gif_dir = os.path.join(self._experiment_path, "gifs")
        if vis.dump_parameters_documentation:
            self.dump_parameters(os.path.join(self._experiment_path, "parameters.yaml"))

    def dump_parameters(self, path: str) -> None:
        """Write the resolved parameter tree as YAML."""
        tree = {
            "graph_manager": type(self).__name__,
            "name": self.name,
            **{f: to_plain(getattr(self, f)) for f in SCHEDULE_FIELDS},
            "agent_params": to_plain(self.agent_params),
            "env_params": to_plain(self.env_params),
            "visualization_parameters": to_plain(self.visualization_parameters),
            "preset_validation_params": to_plain(self.preset_validation_params),
            "task_parameters": to_plain(self.task_parameters),
            "hyperparameters": {"applied": to_plain(self._hyperparameters.applied),
                                "recorded": to_plain(self._hyperparameters.recorded)},
        }
        atomic_write_text(path, yaml.safe_dump(tree, sort_keys=False, default_flow_style=False))

    @property
    def wall_clock(self) -> float:
        return self._wall_clock_offset + time.time() - self._start_time

    @property
    def csv_path(self) -> str:
        return self._csv_path

    @property
    def checkpoint_dir(self) -> str:
        return self._checkpoint_dir

    @property
    def experiment_path(self) -> str:
        return self._experiment_path

    # ---- checkpoints --------------------------------------------------------------------------------
    def _checkpoint_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def save_checkpoint(self) -> CheckpointFiles | None:
        """Flush the CSV, then write a checkpoint of the agent and the run's counters."""
        if self._task.evaluate_only is not None:
            return None
        if self._csv is not None:
            self._csv.flush()
        writer = self._checkpoint_writer()
        writer.protected = self._protected_checkpoints()
        agent = self._agent
        agent_state = agent.checkpoint_state()
        state = self._checkpoint_state()
        state["agent"] = agent_state.values
        state["preset"] = self.preset_record()
        export_onnx = bool(self._task.export_onnx_graph)
        if export_onnx:
            from rlframe.export.onnx_graph import policy_to_onnx, write_onnx  # imports onnx: only runs that export

        def write_networks(prefix: str) -> None:
            agent.save_networks(prefix)
            if export_onnx:
                # <checkpoint name>.onnx, as Coach's OnnxSaver named it, where the notebooks' launchers look for it
                write_onnx(policy_to_onnx(agent.policy_graph(), policy_first=True),
                           prefix.removesuffix(f".{AGENT_PREFIX}") + ".onnx")

        csv = self._csv_path if self._csv is not None else None
        files = writer.save(self._train_env_steps(), write_networks, agent_state.arrays, agent.memory_state(), state, csv)
        if self._sync is not None:
            self._sync.protected = writer.protected
            self._sync.copy(files)
        self._last_checkpoint_time = time.time()
        self._last_checkpoint = files
        self._screen.line(f"Checkpoint> Saving in path=['{files.prefix}']")
        for hooks in self._hooks:
            hooks.on_checkpoint(files)
        return files

    def _checkpoint_writer(self) -> CheckpointWriter:
        if self._checkpoints is None:
            keep = self._task.num_checkpoints_to_keep
            sync_dir = self._task.checkpoint_sync_dir
            if sync_dir and os.path.realpath(sync_dir) != os.path.realpath(self._checkpoint_dir):
                self._sync = CheckpointWriter(sync_dir, keep=keep)
            # Ids continue after the newest checkpoint of either directory, so a copy never replaces one.
            first_id = max(self._first_checkpoint_id, self._sync.next_id if self._sync is not None else 0)
            self._checkpoints = CheckpointWriter(self._checkpoint_dir, first_id, keep)
        return self._checkpoints

    def _resume_csv(self, last_index: int) -> None:
        """Continue the CSV up to ``last_index`` after a restore: the experiment folder's own CSV, or, where the
        folder has none (a spot restart on a fresh machine), the copy saved with the restored checkpoint."""
        if self._csv is not None:
            self._csv.resume(last_index, self._last_checkpoint.csv if self._last_checkpoint is not None else None)

    def next_checkpoint_name(self) -> str:
        """The name the next :meth:`save_checkpoint` gives its checkpoint."""
        return self._checkpoint_writer().next_name(self._train_env_steps())

    def _protected_checkpoints(self) -> set[str]:
        """Checkpoint names retention must keep besides the newest ones."""
        return set()

    @property
    def last_checkpoint(self) -> CheckpointFiles | None:
        """The run's last complete checkpoint (written or restored), None before the first."""
        return self._last_checkpoint

    def last_checkpoint_text(self) -> str:
        """Where the run's last complete checkpoint is, for the line a stopped or failed run ends with."""
        files = self._last_checkpoint
        if files is None:
            return "no checkpoint was written"
        return f"its last complete checkpoint is {files.name} in {files.directory} (resume with -crd {files.directory})"

    def _train_env_steps(self) -> int:
        raise NotImplementedError

    def maybe_save_checkpoint(self) -> None:
        secs = self._task.checkpoint_save_secs
        if secs is not None and time.time() - self._last_checkpoint_time >= float(secs):
            self.save_checkpoint()

    def restore_checkpoint(self, directory: str, restore_memory: bool) -> dict[str, Any]:
        """Load the latest checkpoint of ``directory`` into the agent; returns the saved run state."""
        files = latest_checkpoint(directory)
        state = self._load_agent_state(files, restore_memory)
        self._first_checkpoint_id = files.checkpoint_id + 1
        self._last_checkpoint = files
        self._screen.line(f"Checkpoint> Restored {files.name} from {directory}")
        return state

    def _load_agent_state(self, files: CheckpointFiles, restore_memory: bool) -> dict[str, Any]:
        """Check the checkpoint ``files`` and load them into the agent (networks, optimiser, filters, counters,
        schedules, random state, and the memory when ``restore_memory``); returns the saved run state."""
        directory = files.directory
        state = read_state(files)
        verify(files, state, with_memory=restore_memory)
        agent = self._agent
        try:
            agent.load_checkpoint_state(files.prefix, AgentCheckpoint(load_arrays(files.arrays), state["agent"]))
        except (KeyError, ValueError, AssertionError, OSError) as exc:
            raise CheckpointError(
                f"Checkpoint {files.name} in {directory!r} does not match this preset's agent or is corrupt "
                f"({type(exc).__name__}: {exc}). Restore it with the preset that wrote it."
            ) from exc
        except Exception as exc:  # MXNet raises its own MXNetError for unreadable parameter files
            raise CheckpointError(
                f"Checkpoint {files.name} in {directory!r} could not be loaded ({type(exc).__name__}: "
                f"{library_error_text(exc)}). Restore from an earlier checkpoint."
            ) from exc
        if restore_memory:
            agent.load_memory_state(load_arrays(files.memory))
        return state

    # ---- the policy alone, for export ---------------------------------------------------------------
    def build_agent(self) -> "Agent":
        """Build this preset's agent as a run builds it, writing nothing (no experiment folder, outputs or
        checkpoints), and return it."""
        raise NotImplementedError

    def load_policy(self, directory: str) -> CheckpointFiles:
        """Build the agent (:meth:`build_agent`) and load the checkpoint ``.coach_checkpoint`` names in ``directory``
        into it, without its memory; returns that checkpoint. Nothing is written."""
        files = latest_checkpoint(directory)
        self.build_agent()
        self._load_agent_state(files, restore_memory=False)
        self._last_checkpoint = files
        return files
