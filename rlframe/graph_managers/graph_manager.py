"""Schedules and the graph-manager base: run set-up, counters, outputs and checkpoints.

The graph manager orchestrates; it never decides what an agent learns. Subclasses implement the loop
(``BasicRLGraphManager.improve``: heatup -> (train_and_act -> evaluate)*). Outputs (CSV, GIFs, screen,
checkpoints) only observe the run.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, cast

import mxnet as mx
import numpy as np
import yaml

from rlframe.agents.contract import AgentCheckpoint, AgentContract
from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, RunPhase, StepMethod, Time, TrainingSteps
from rlframe.environments.gym_environment import EnvironmentPool, make_env_factory, reward_threshold
from rlframe.errors import CheckpointError, ParameterValueError, RlframeError, StorageError
from rlframe.graph_managers.environment_loop import EpisodeLoop, FinishedEpisode, GifRecording
from rlframe.graph_managers.hooks import EpisodeEnd, Evaluation, RunHooks
from rlframe.graph_managers.rollout_worker import WorkerPool
from rlframe.outputs.atomic import atomic_write_text
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
from rlframe.outputs.csv_logger import FIXED_COLUMNS, CsvLogger, csv_file_name
from rlframe.outputs.experiment import ExperimentFolder
from rlframe.outputs.screen import Screen
from rlframe.overrides import Hyperparameters
from rlframe.parameters import (
    AgentParameters,
    Parameters,
    PresetValidationParameters,
    TaskParameters,
    VisualizationParameters,
    to_plain,
)
from rlframe.shipped import shipped_dir
from rlframe.spaces import SpacesDefinition
from rlframe.stopping import RunStopped, StopSignals, signal_name


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

    def __init__(self, improve_steps: StepMethod | None = None, steps_between_evaluation_periods: StepMethod | None = None,
                 evaluation_steps: StepMethod | None = None) -> None:
        super().__init__()
        # Fresh units per object (None defaults): a unit's num_steps can be set, so a shared default would be shared.
        self.heatup_steps = EnvironmentSteps(0)
        self.improve_steps = improve_steps if improve_steps is not None else TrainingSteps(10000000000)
        self.steps_between_evaluation_periods = (steps_between_evaluation_periods if steps_between_evaluation_periods
                                                 is not None else EnvironmentEpisodes(50))
        self.evaluation_steps = evaluation_steps if evaluation_steps is not None else EnvironmentEpisodes(5)


class SimpleScheduleWithoutEvaluation(SimpleSchedule):
    """``SimpleSchedule`` that never evaluates."""

    def __init__(self, improve_steps: StepMethod | None = None) -> None:
        super().__init__(improve_steps=improve_steps, evaluation_steps=EnvironmentEpisodes(0))


class HumanPlayScheduleParameters(ScheduleParameters):
    """Accepted for Coach compatibility (rlframe has no human play)."""

    def __init__(self) -> None:
        super().__init__()
        self.heatup_steps = EnvironmentSteps(0)
        self.evaluation_steps = EnvironmentEpisodes(0)
        self.steps_between_evaluation_periods = EnvironmentEpisodes(100000000)
        self.improve_steps = TrainingSteps(10000000000)


#: the agent's name in screen lines (Coach's level/agent path)
AGENT_NAME = "main_level/agent"
#: evaluation copy i is first reset with seed ``seed + EVALUATION_SEED_OFFSET + i``
EVALUATION_SEED_OFFSET = 10000

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
    return cast(StepMethod, value)


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
        self._last_checkpoint: CheckpointFiles | None = None
        #: build_agent's one environment copy (only the spaces are needed), without changing the preset's env_params
        self._single_copy = False
        self._workers: WorkerPool | None = None

    def use_workers(self, pool: WorkerPool) -> None:
        """Act on ``pool``'s rollout workers instead of in this process (:mod:`rlframe.graph_managers.rollout_worker`);
        call before :meth:`run`."""
        self._workers = pool

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
    def agent(self) -> AgentContract:
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
        #: rollout worker i's own CSV (``worker_<i>...csv``) of the training episodes it played, in a distributed run
        self._worker_csvs: dict[int, CsvLogger] = {}
        self._checkpoint_dir = task.checkpoint_save_dir or os.path.join(self._experiment_path, "checkpoint")
        self._checkpoints: CheckpointWriter | None = None
        #: the writer of ``task.checkpoint_sync_dir``, made with the first checkpoint
        self._sync: CheckpointWriter | None = None
        self._last_checkpoint_time = time.time()
        self._start_time = time.time()
        self._wall_clock_offset = 0.0
        self._gif_dir = os.path.join(self._experiment_path, "gifs")
        if self._gifs is not None:
            self._gifs.directory = self._gif_dir
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
        for csv_logger in [*([self._csv] if self._csv is not None else []), *self._worker_csvs.values()]:
            csv_logger.flush()
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
            # a resumed distributed run may have other workers: each earlier worker's CSV is cut back the same way
            worker = 1
            while os.path.exists(self._worker_csv_path(worker)):
                self._worker_csv(worker).resume(last_index)
                worker += 1

    def _worker_csv_path(self, worker: int) -> str:
        return os.path.join(self._experiment_path, csv_file_name(self.graph_name, worker))

    def _worker_csv(self, worker: int) -> CsvLogger:
        if worker not in self._worker_csvs:
            self._worker_csvs[worker] = CsvLogger(self._worker_csv_path(worker), self.index_column, [],
                                                  self.visualization_parameters.dump_signals_to_csv_every_x_episodes)
        return self._worker_csvs[worker]

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
    def load_policy(self, directory: str) -> CheckpointFiles:
        """Build the agent (:meth:`build_agent`) and load the checkpoint ``.coach_checkpoint`` names in ``directory``
        into it, without its memory; returns that checkpoint. Nothing is written."""
        files = latest_checkpoint(directory)
        self.build_agent()
        self._load_agent_state(files, restore_memory=False)
        self._last_checkpoint = files
        return files

    # ---- building a run (every graph) ---------------------------------------------------------------
    #: the CSV's index column
    index_column = "Episode #"
    #: whether finished heatup and training episodes get CSV rows (a batch-RL CSV has one row per epoch; evaluation-only
    #: runs write a row per episode either way)
    episode_rows = True

    def _check_schedule(self) -> None:
        """Refuse schedule fields this graph cannot run, before anything is built."""
        raise NotImplementedError

    def _create_environments(self) -> SpacesDefinition:
        """Make what this graph plays on (see :meth:`_environment_factory`); returns the spaces the agent is for."""
        raise NotImplementedError

    def improve(self, until: Callable[[Progress], bool] | None = None) -> None:
        """Train by this graph's schedule until ``improve_steps`` (or ``until``), then write the final checkpoint."""
        raise NotImplementedError

    def _restore(self, directory: str, task: TaskParameters) -> None:
        """Load the checkpoint in ``directory`` and continue the run state it recorded."""
        raise NotImplementedError

    def create_graph(self, task_parameters: TaskParameters, stop: StopSignals | None = None) -> "GraphManager":
        """Build environments and agent, lock the experiment folder and open the outputs; restore a checkpoint
        when the task names one. ``stop``: the stop request the loop reads (``run`` passes its own)."""
        self.task_parameters = task = task_parameters
        self._stop_signals = stop or StopSignals.current()
        self._last_checkpoint = None  # a run that fails before its outputs are open names none
        self.check_task(task)
        self._check_schedule()
        rng = self._seed_run(task)
        spaces = self._create_environments()
        self._create_agent(spaces, rng)
        self._open_experiment(task)
        self._setup_outputs(task, self._agent.signal_columns(), self.index_column)
        restore_dir = task.checkpoint_restore_dir or task.checkpoint_restore_path
        if restore_dir:
            self._restore(restore_dir, task)
        return self

    def build_agent(self) -> AgentContract:
        """The agent as :meth:`create_graph` builds it, from one copy of the environment (only its spaces are needed),
        writing nothing: for exporting a checkpoint's policy (:meth:`load_policy`)."""
        self.task_parameters = task = TaskParameters(evaluate_only=0, seed=0)
        self._stop_signals = StopSignals.current()
        self._single_copy = True
        rng = self._seed_run(task)
        spaces = self._create_environments()
        self._create_agent(spaces, rng)
        self.close()
        return self._agent

    def _seed_run(self, task: TaskParameters) -> np.random.Generator:
        seed = task.seed if task.seed is not None else int(cast(int, np.random.SeedSequence().entropy) % (2**31))
        task.seed = seed
        mx.random.seed(seed)
        self._seed = seed
        return np.random.default_rng(seed)

    def _environment_factory(self) -> None:
        """How copies of the preset's environment are made, and how many play at once."""
        self._search_dirs = [d for d in (self.origin.directory, shipped_dir("environments")) if d is not None]
        vis = self.visualization_parameters
        render = bool(vis.dump_gifs)
        self._make_env = make_env_factory(self.env_params, self._search_dirs, render)
        num_envs = 1 if self._single_copy else self.env_params.num_envs or self.agent_params.agent_class.default_num_envs
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ParameterValueError(f"env_params.num_envs = {num_envs!r}: use a positive integer such as 8.")
        self._num_envs = num_envs
        frame_skip = int(getattr(self.env_params, "frame_skip", 1) or 1)
        # The folder is known once the experiment folder is open (_setup_outputs).
        self._gifs = GifRecording(vis.video_dump_filters, "", frame_skip) if render else None

    def _episode_loop(self, seed_offset: int) -> EpisodeLoop:
        """``num_envs`` new copies of the environment, seeded from ``seed + seed_offset``."""
        pool = EnvironmentPool(self._make_env, self._num_envs, self._seed + seed_offset)
        self._stop_signals.reassert()  # an environment (pygame) may have replaced the signal handlers
        return EpisodeLoop(pool, float(self.agent_params.algorithm.discount), self._gifs)

    def _agent_parameters(self) -> AgentParameters:
        """The parameters the agent is built from: a copy of the preset's, so building and running (filter
        statistics, schedule counters, networks an algorithm adds) never change the preset's objects."""
        return copy.deepcopy(self.agent_params)

    def _create_agent(self, spaces: SpacesDefinition, rng: np.random.Generator) -> None:
        self._agent: AgentContract = self.agent_params.agent_class(self._agent_parameters(), spaces, rng)
        self._counters = PhaseCounters()
        self._progress = Progress()
        self._first_checkpoint_id = 0
        self._evaluations = 0
        self._until: Callable[[Progress], bool] | None = None
        self._stop = False
        self._eval_loop: EpisodeLoop | None = None
        self._success_threshold = self._reward_threshold()

    def _reward_threshold(self) -> float | None:
        if self.env_params is None:
            return None
        if self._train_loop is not None:
            return reward_threshold(self.env_params, self._train_loop.pool.envs[0])
        env = self._make_env()  # a batch-RL graph that only evaluates: a copy made for the purpose
        try:
            return reward_threshold(self.env_params, env)
        finally:
            env.close()

    # ---- running ------------------------------------------------------------------------------------
    def run(self, task_parameters: TaskParameters, until: Callable[[Progress], bool] | None = None) -> Progress:
        """Build, then train (or only evaluate, with ``evaluate_only``), then close.

        On SIGTERM or SIGINT the run finishes its step, writes a final checkpoint, flushes the CSV, prints one
        line and raises :class:`~rlframe.stopping.RunStopped`. An error after the outputs are open is also
        written to ``log.txt``; a file that cannot be written ends the run with the last complete checkpoint
        named (:class:`~rlframe.errors.StorageError`).
        """
        failed = True
        with StopSignals() as stop:
            try:
                self.create_graph(task_parameters, stop)
                if task_parameters.evaluate_only is not None:
                    steps = task_parameters.evaluate_only
                    self.evaluate(EnvironmentSteps(steps) if steps else (self.evaluation_steps or EnvironmentEpisodes(1)),
                                  rows_per_episode=True)
                else:
                    self.improve(until)
                if stop.signum is not None:
                    self._screen.line(self.stopped_line(stop.signum))
                failed = False
            except StorageError as exc:
                raise self._note_failure(StorageError(f"{exc} The run stopped; {self.last_checkpoint_text()}.")) from exc
            except RlframeError as exc:
                self._note_failure(exc)
                raise
            finally:
                self.close(failed)
        if stop.signum is not None:
            raise RunStopped(stop.signum, self.stopped_line(stop.signum))
        return self._progress

    def stopped_line(self, signum: int) -> str:
        """The line a run stopped by ``signum`` ends with: what was finished and kept."""
        if self._task.evaluate_only is not None:
            done = self._counters.get(RunPhase.TEST, EnvironmentEpisodes)
            return f"Stopped by {signal_name(signum)} after {done} evaluation episodes; the CSV is written."
        return f"Stopped by {signal_name(signum)}: finished the current step; {self.last_checkpoint_text()}."

    def _note_failure(self, exc: RlframeError) -> RlframeError:
        """Keep the error a run ends with in ``log.txt`` too (the command-line tool prints it on stderr)."""
        if getattr(self, "_screen", None) is not None:
            self._screen.log_only(f"error: {exc}")
        return exc

    def _should_stop(self) -> bool:
        return self._stop_signals.poll() or self._stop or (self._until is not None and self._until(self._progress))

    # ---- playing episodes (heatup, evaluation) -------------------------------------------------------
    def _heatup(self, loop: EpisodeLoop, steps: StepMethod) -> None:
        """Act uniformly at random (unless the algorithm says otherwise) for whole episodes until ``steps``."""
        unit = type(steps)
        pool = loop.pool
        if self._counters.get(RunPhase.HEATUP, unit) >= steps.num_steps:
            return  # nothing to do, or a resumed run whose heatup is already done
        while not self._stop_signals.poll():
            reached = self._counters.get(RunPhase.HEATUP, unit) >= steps.num_steps
            if reached and not pool.active.any():
                break
            self._play(loop, RunPhase.HEATUP, 0 if reached else None)
        pool.reopen()

    def evaluate(self, steps: StepMethod, rows_per_episode: bool = False) -> float:
        """Run whole evaluation episodes on separate environment copies and write the evaluation's CSV row (none
        when only evaluating); returns the mean total reward (NaN when a stop request cut it short)."""
        row = self._evaluation_phase(steps, rows_per_episode)
        if row is None:
            return math.nan
        self._evaluation_done(row)
        return float(row["Evaluation Reward"])

    def _evaluation_done(self, row: dict[str, Any]) -> None:
        """A complete evaluation phase: write its CSV row (none when only evaluating)."""
        if self._task.evaluate_only is None and self._csv is not None:
            self._csv.add_row(row)

    def _evaluation_phase(self, steps: StepMethod, rows_per_episode: bool) -> dict[str, Any] | None:
        """Play whole evaluation episodes on the evaluation copies; returns the evaluation's CSV row.

        A stop request ends it after the current step and None is returned; while training, its steps and episodes
        are not counted either, so the resumed run evaluates again.
        """
        if self._eval_loop is None:
            self._eval_loop = self._episode_loop(EVALUATION_SEED_OFFSET)
        loop = self._eval_loop
        pool = loop.pool
        started_at = time.perf_counter()
        loop.tracker.clear()
        by_episodes = isinstance(steps, EnvironmentEpisodes)
        target = int(steps.num_steps)
        pool.restart(min(pool.num_envs, target) if by_episodes else pool.num_envs)
        started = int(pool.active.sum())
        start_steps = self._counters.get(RunPhase.TEST, EnvironmentSteps)
        counted = copy.deepcopy(self._counters.counts[RunPhase.TEST.name])
        results: list[FinishedEpisode] = []
        while pool.active.any():
            if self._stop_signals.poll():
                if self._task.evaluate_only is None:
                    self._counters.counts[RunPhase.TEST.name] = counted
                return None
            if by_episodes:
                quota = target - started
            elif self._counters.get(RunPhase.TEST, EnvironmentSteps) - start_steps >= target:
                quota = 0
            else:
                quota = None
            _, finished = self._play(loop, RunPhase.TEST, quota, rows_per_episode)
            started += int(pool.episode_started.sum())
            results.extend(finished)
        return self._end_evaluation(results, time.perf_counter() - started_at)

    def _end_evaluation(self, results: list[FinishedEpisode], seconds: float) -> dict[str, Any]:
        self._evaluations += 1
        rewards = np.array([r.total_reward for r in results])
        mean = float(rewards.mean()) if len(rewards) else math.nan
        threshold = self._success_threshold
        success = float(np.mean(rewards >= threshold)) if threshold is not None and len(rewards) else math.nan
        self._progress.last_evaluation_reward = mean
        self._progress.last_success_rate = success
        self._progress.evaluations.append((self._progress.episodes, mean))
        self._screen.line(
            f"## agent: Finished evaluation phase. Success rate = {success:.2f}, Avg Total Reward = {mean:.2f}"
        )
        if (self._task.apply_stop_condition and not math.isnan(success)
                and success >= float(self.env_params.target_success_rate)):
            self._screen.line("## agent: Reached the target success rate; stopping.")
            self._stop = True
        event = Evaluation(mean, success, len(results), self._agent.total_steps, seconds)
        for hooks in self._hooks:
            hooks.on_evaluation(event)
        return {
            "Episode #": self._progress.episodes,
            "Training Iter": self._agent.training_iteration,
            "Epoch": 0,
            "In Heatup": 0,
            "Total steps": self._agent.total_steps,
            "Wall-Clock Time": self.wall_clock,
            "Evaluation Reward": mean,
            "Shaped Evaluation Reward": float(np.mean([r.shaped_reward for r in results])) if results else math.nan,
            "Success Rate": success,
        }

    def _play(self, loop: EpisodeLoop, phase: RunPhase, max_new_episodes: int | None,
              rows_per_episode: bool = False) -> tuple[int, list[FinishedEpisode]]:
        """Act once in every active copy of ``loop`` and handle finished episodes; returns (steps played, finished)."""
        played, finished = loop.step(self._agent, phase, max_new_episodes)
        self._counters.add(phase, steps=played)
        for episode in finished:
            self._counters.add(phase, episodes=1)  # one at a time, so each episode gets its own number
            number = self._episode_ended(episode, phase, rows_per_episode)
            loop.episode_numbered(episode, phase, number)
        return played, finished

    def _episode_ended(self, episode: FinishedEpisode, phase: RunPhase, rows_per_episode: bool,
                       worker: int | None = None) -> int:
        """Count, log, write and report a finished episode (played by rollout ``worker``, in a distributed run);
        returns its number."""
        agent = self._agent
        if phase != RunPhase.TEST:
            self._progress.episodes += 1
            agent.episode_ended(episode.discounted_return)
        number = self._episode_number(phase)
        self._screen.log_dict(phase.value, {
            "Name": AGENT_NAME, "Worker": self._task.task_index if worker is None else worker, "Episode": number,
            "Total reward": round(episode.total_reward, 2), "Exploration": round(agent.exploration_value(phase), 2),
            "Steps": self._total_steps(), "Training iteration": agent.training_iteration,
        })
        if self._csv is not None and (rows_per_episode or (self.episode_rows and phase != RunPhase.TEST)):
            row = self._episode_row(episode, phase, number)
            self._csv.add_row(row)
            if worker is not None and phase != RunPhase.TEST:
                self._worker_csv(worker).add_row({k: v for k, v in row.items() if k in FIXED_COLUMNS})
        if self._hooks:
            event = EpisodeEnd(phase, number, episode.total_reward, episode.shaped_reward, episode.length,
                               self._total_steps())
            for hooks in self._hooks:
                hooks.on_episode_end(event)
        if self._until is not None and phase != RunPhase.TEST and self._until(self._progress):
            self._stop = True
        return number

    def _episode_row(self, episode: FinishedEpisode, phase: RunPhase, number: int) -> dict[str, Any]:
        agent = self._agent
        row: dict[str, Any] = {
            "Episode #": number,
            "Epoch": 0,
            "In Heatup": int(phase == RunPhase.HEATUP),
            "Episode Length": episode.length,
            "Total steps": self._total_steps(),
            "Epsilon": agent.exploration_value(phase),
            "Wall-Clock Time": self.wall_clock,
            **agent.row_statistics(),
        }
        if phase == RunPhase.TRAIN:
            row["Shaped Training Reward"] = episode.shaped_reward
            row["Training Reward"] = episode.total_reward
        elif phase == RunPhase.TEST:
            row["Evaluation Reward"] = episode.total_reward
            row["Shaped Evaluation Reward"] = episode.shaped_reward
        return row

    def _total_steps(self) -> int:
        """The step count a line or row shows: the agent's heatup and training steps, or, in a run that only
        evaluates, the evaluation steps played so far (as Coach's evaluate-only runs count them)."""
        if self._task.evaluate_only is not None:
            return self._counters.get(RunPhase.TEST, EnvironmentSteps)
        return self._agent.total_steps

    def _episode_number(self, phase: RunPhase) -> int:
        if phase == RunPhase.TEST:
            return self._counters.get(RunPhase.TEST, EnvironmentEpisodes)
        return self._progress.episodes

    def close(self, failed: bool = False) -> None:
        """Flush the CSV, close the environments and the log, and release the experiment folder. After a
        failure the CSV is written only if it has rows, and a failing write is not raised over the first error."""
        try:
            csv: CsvLogger | None = getattr(self, "_csv", None)
            for csv_logger in [*([csv] if csv is not None else []), *getattr(self, "_worker_csvs", {}).values()]:
                try:
                    csv_logger.flush(create=not failed)
                except StorageError:
                    if not failed:
                        raise
        finally:
            if self._workers is not None:
                self._workers.close()
            for loop in (getattr(self, "_train_loop", None), getattr(self, "_eval_loop", None)):
                if loop is not None:
                    loop.close()
            if getattr(self, "_screen", None) is not None:
                self._screen.close()
            if getattr(self, "_folder", None) is not None:
                self._folder.close()
            for hooks in self._hooks:
                hooks.on_run_end()
