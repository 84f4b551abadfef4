"""The strict parameter base class and the generic parameter objects of a preset.

A preset builds a tree of :class:`Parameters` objects. Every attribute is created (with its default) in
``__init__``; once the outermost constructor returns the object is locked, and assigning a name that does
not exist raises :class:`~rlframe.errors.UnknownParameterError` naming the closest valid names. That is how a
typo in a preset (``agent_params.algorithm.dicount = 0.9``) fails instead of being silently ignored.

Algorithm-, network-, memory- and exploration-specific parameters live beside the code that uses them
(``agents/``, ``networks/``, ``memories/``, ``exploration/``); this module holds the base class and the
parameters every run shares: :class:`AgentParameters`, :class:`AlgorithmParameters`,
:class:`VisualizationParameters`, :class:`PresetValidationParameters` and :class:`TaskParameters`.
"""
from __future__ import annotations

import inspect
import math
import numbers
import types
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterator

from rlframe.core_types import EnvironmentSteps, RunPhase, StepMethod, TrainingSteps
from rlframe.errors import ParameterValueError, UnknownParameterError, closest

if TYPE_CHECKING:
    from rlframe.agents.agent import Agent

_MISSING = object()


class _LockAfterInit(type):
    """Metaclass that locks a parameters object once its outermost ``__init__`` has returned."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__call__(*args, **kwargs)
        object.__setattr__(obj, "_locked", True)
        return obj


class Parameters(metaclass=_LockAfterInit):
    """Base of every parameter object: a locked attribute tree that refuses unknown names."""

    _locked = False

    def __setattr__(self, name: str, value: Any) -> None:
        if self._locked and not name.startswith("_") and name not in self.__dict__:
            attr = inspect.getattr_static(type(self), name, _MISSING)
            if isinstance(attr, property):
                if attr.fset is None:
                    # Without this check Python raises a bare AttributeError, which the CLI would show as a traceback.
                    raise ParameterValueError(
                        f"{type(self).__name__}.{name} is computed from other parameters and cannot be set."
                    )
            elif attr is _MISSING or isinstance(attr, (types.FunctionType, classmethod, staticmethod)):
                # A method is no parameter: assigning over ``items`` or ``parameter_names`` would break the object.
                raise UnknownParameterError(self._unknown_message(name))
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup failed. Private names are rlframe's own bookkeeping, so a missing one
        # is a bug in rlframe, not a user's typo: a plain AttributeError (also what copy/pickle probes expect).
        if name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise UnknownParameterError(self._unknown_message(name))

    def _unknown_message(self, name: str) -> str:
        return (
            f"{type(self).__name__} has no parameter {name!r}.{closest(name, self.parameter_names())}"
            f" Valid parameters: {', '.join(self.parameter_names())}."
        )

    def parameter_names(self) -> list[str]:
        """The public parameter names of this object, in creation order, then settable properties.

        Read-only properties (a graph manager's ``csv_path``, ``agent_class``) are results, not parameters.
        """
        names = [k for k in self.__dict__ if not k.startswith("_")]
        for k in dir(type(self)):
            attr = getattr(type(self), k, None)
            if not k.startswith("_") and isinstance(attr, property) and attr.fset is not None and k not in names:
                names.append(k)
        return names

    def items(self) -> Iterator[tuple[str, Any]]:
        """(name, value) of every parameter; a property that cannot be computed yet is left out."""
        cls = type(self)
        for name in self.parameter_names():
            if name in self.__dict__:
                yield name, self.__dict__[name]
                continue
            # A property may need state that exists only later (a graph manager's csv_path before the run) or
            # in a subclass (AgentParameters.agent_class); repr and the YAML dump must still work.
            try:
                value = getattr(self, name)
            except (AttributeError, NotImplementedError):
                if not isinstance(inspect.getattr_static(cls, name, None), property):
                    raise
                continue
            yield name, value

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.items())
        return f"{type(self).__name__}({inner})"


def _shown(value: Any) -> str:
    """``value`` for an error message: numpy scalars as the plain number they hold (not ``np.float64(-5.0)``)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and hasattr(value, "item"):
        value = value.item()
    return repr(value)


def _range_text(low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool, integer: bool) -> str:
    """'a number from 0 to 1', 'a number above 0 and at most 1', 'an integer of at least 1', ..."""
    kind = "an integer" if integer else "a number"
    if low is not None and high is not None:
        if low_inclusive and high_inclusive:
            return f"{kind} from {low:g} to {high:g}"
        above = f"of at least {low:g}" if low_inclusive else f"above {low:g}"
        below = f"at most {high:g}" if high_inclusive else f"below {high:g}"
        return f"{kind} {above} and {below}"
    if low is not None:
        return f"{kind} of at least {low:g}" if low_inclusive else f"{kind} above {low:g}"
    if high is not None:
        return f"{kind} of at most {high:g}" if high_inclusive else f"{kind} below {high:g}"
    return kind


def check_range(
    where: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    example: object,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
    allow_infinity: bool = False,
) -> None:
    """Raise :class:`ParameterValueError` unless ``value`` is a number in the range: the range check components share.

    Hyperparameters reach the preset tree from presets, ``-cp`` and SageMaker hyperparameters; an override's type is
    checked when it is applied, but not its range, and a preset may set anything. An out-of-range value (a discount
    of -5, a batch size of 0) would otherwise train silently into nonsense or fail deep inside numpy or MXNet with a
    traceback, so every component calls this for the values it reads when it is built, before anything runs.

    :param where: the value's path in the preset tree, e.g. ``agent_params.algorithm.discount``.
    :param low: the smallest allowed value (None: no lower bound); ``low_inclusive=False`` excludes it.
    :param high: the largest allowed value (None: no upper bound); ``high_inclusive=False`` excludes it.
    :param example: a good value, shown in the message.
    :param integer: only whole numbers (an integer-valued float such as 32.0 is accepted; the readers use ``int()``).
    :param allow_infinity: accept +/-inf (a step count of ``inf`` means "never"); NaN is never accepted.

    The message is one line: ``<where> = <value>: use <range>, for example <example>.``
    """
    # bool is an int in Python, but True is no discount or batch size.
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        number = float(value)
        ok = not math.isnan(number) and (allow_infinity or math.isfinite(number))
        if ok and integer:
            ok = isinstance(value, numbers.Integral) or (math.isfinite(number) and number.is_integer())
        if ok and low is not None:
            ok = number >= low if low_inclusive else number > low
        if ok and high is not None:
            ok = number <= high if high_inclusive else number < high
    if not ok:
        raise ParameterValueError(
            f"{where} = {_shown(value)}: use {_range_text(low, high, low_inclusive, high_inclusive, integer)}, "
            f"for example {example}."
        )


def to_plain(value: Any) -> Any:
    """Turn a parameter tree into plain YAML-able data (dicts, lists, strings, numbers)."""
    if isinstance(value, Parameters):
        out: dict[str, Any] = {"__class__": type(value).__name__}
        for name, item in value.items():
            out[name] = to_plain(item)
        return out
    if isinstance(value, StepMethod):
        return repr(value)
    if isinstance(value, Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, dict):
        return {(k.__name__ if isinstance(k, type) else str(k)): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, type):
        return value.__name__
    if value is None or isinstance(value, bool):
        return value
    # numpy scalars (and int/float/str subclasses) are turned into the plain types yaml.safe_dump accepts.
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    return repr(value)


class AlgorithmParameters(Parameters):
    """What every algorithm shares (Coach's ``AlgorithmParameters`` defaults).

    :param num_consecutive_playing_steps: environment steps (or episodes) played between training phases.
    :param num_consecutive_training_steps: gradient updates in each training phase.
    :param heatup_using_network_decisions: act with the network during heatup instead of uniformly at random.
    :param discount: reward discount factor gamma.
    :param apply_gradients_every_x_episodes: kept for Coach compatibility; unused by rlframe's agents.
    :param num_steps_between_copying_online_weights_to_target: target-network update period, in
        ``EnvironmentSteps`` (agent decisions) or ``TrainingSteps`` (gradient updates); 0 never copies.
    :param rate_for_copying_weights_to_target: 1.0 copies; below 1 mixes (Polyak averaging).
    :param load_memory_from_file_path: a dataset to fill the memory from (batch RL).
    :param store_transitions_only_when_episodes_are_terminated: kept for Coach compatibility.
    :param n_step: kept for Coach compatibility (-1 = full Monte-Carlo returns).
    :param distributed_coach_synchronization_type: kept for Coach compatibility.
    :param act_for_full_episodes: only train once the episodes being played have ended.
    :param override_episode_rewards_with_the_last_transition_reward: kept for Coach compatibility.
    :param update_pre_network_filters_state_on_train: update pre-network filter statistics on training batches.
    :param update_pre_network_filters_state_on_inference: update them on the observations the agent acts on.
    """

    def __init__(self) -> None:
        self.num_consecutive_playing_steps: StepMethod = EnvironmentSteps(1)
        self.num_consecutive_training_steps = 1
        self.heatup_using_network_decisions = False
        self.discount = 0.99
        self.apply_gradients_every_x_episodes = 5
        self.num_steps_between_copying_online_weights_to_target: StepMethod = TrainingSteps(0)
        self.rate_for_copying_weights_to_target = 1.0
        self.load_memory_from_file_path: Any = None
        self.store_transitions_only_when_episodes_are_terminated = False
        self.n_step = -1
        self.distributed_coach_synchronization_type: Any = None
        self.act_for_full_episodes = False
        self.override_episode_rewards_with_the_last_transition_reward = False
        self.update_pre_network_filters_state_on_train = False
        self.update_pre_network_filters_state_on_inference = True


class DistributedCoachSynchronizationType(Enum):
    """Accepted for Coach compatibility; rlframe runs one process."""

    SYNC = "sync"
    ASYNC = "async"


class EmbedderScheme(Enum):
    """Named embedder layer lists (coach.md section 1.7)."""

    Empty = "Empty"
    Shallow = "Shallow"
    Medium = "Medium"
    Deep = "Deep"


class MiddlewareScheme(Enum):
    """Named middleware layer lists (coach.md section 1.7)."""

    Empty = "Empty"
    Shallow = "Shallow"
    Medium = "Medium"
    Deep = "Deep"


class Frameworks(Enum):
    """Accepted for Coach compatibility; rlframe always uses MXNet Gluon."""

    tensorflow = "TensorFlow"
    mxnet = "MXNet"


class VisualizationParameters(Parameters):
    """What a run shows and writes.

    :param print_networks_summary: print the networks when they are built.
    :param dump_csv: write the agent CSV.
    :param dump_signals_to_csv_every_x_episodes: flush the CSV every this many episodes (also at every
        checkpoint and at the end of the run).
    :param dump_gifs: write GIFs of the episodes the ``video_dump_filters`` select.
    :param dump_mp4: accepted for Coach compatibility; rlframe writes GIFs only.
    :param video_dump_methods: Coach's older name for ``video_dump_filters``.
    :param video_dump_filters: dump filters that must all agree for an episode to be recorded; the default is
        ``[SelectedPhaseOnlyDumpFilter(RunPhase.TEST), MaxDumpFilter()]``.
    :param dump_in_episode_signals: accepted for Coach compatibility; not written.
    :param dump_parameters_documentation: write the resolved parameters as YAML in the experiment directory.
    :param render: accepted for Coach compatibility; rlframe never opens a window.
    :param native_rendering: accepted for Coach compatibility.
    :param max_fps_for_human_control: accepted for Coach compatibility.
    :param tensorboard: accepted for Coach compatibility.
    :param add_rendered_image_to_env_response: accepted for Coach compatibility.
    """

    def __init__(
        self,
        print_networks_summary: bool = False,
        dump_csv: bool = True,
        dump_signals_to_csv_every_x_episodes: int = 5,
        dump_gifs: bool = False,
        dump_mp4: bool = False,
        video_dump_methods: list | None = None,
        dump_in_episode_signals: bool = False,
        dump_parameters_documentation: bool = True,
        render: bool = False,
        native_rendering: bool = False,
        max_fps_for_human_control: int = 10,
        tensorboard: bool = False,
        add_rendered_image_to_env_response: bool = False,
    ) -> None:
        from rlframe.outputs.video_dump_filters import MaxDumpFilter, SelectedPhaseOnlyDumpFilter

        self.print_networks_summary = print_networks_summary
        self.dump_csv = dump_csv
        self.dump_signals_to_csv_every_x_episodes = dump_signals_to_csv_every_x_episodes
        self.dump_gifs = dump_gifs
        self.dump_mp4 = dump_mp4
        self.video_dump_methods = video_dump_methods
        self.video_dump_filters = (
            list(video_dump_methods)
            if video_dump_methods is not None
            else [SelectedPhaseOnlyDumpFilter(RunPhase.TEST), MaxDumpFilter()]
        )
        self.dump_in_episode_signals = dump_in_episode_signals
        self.dump_parameters_documentation = dump_parameters_documentation
        self.render = render
        self.native_rendering = native_rendering
        self.max_fps_for_human_control = max_fps_for_human_control
        self.tensorboard = tensorboard
        self.add_rendered_image_to_env_response = add_rendered_image_to_env_response


class PresetValidationParameters(Parameters):
    """The golden test a preset declares: reach ``min_reward_threshold`` within ``max_episodes_to_achieve_reward``.

    ``rlframe-validate`` reads the first three; the others are accepted for Coach compatibility.

    :param test: whether the preset declares a golden test (informational: ``rlframe-validate`` runs any preset).
    :param min_reward_threshold: the mean evaluation reward (total reward per episode, averaged over one
        evaluation phase) that passes the test.
    :param max_episodes_to_achieve_reward: ``rlframe-validate`` fails when this many training episodes (epochs
        for batch RL) finish without an evaluation reaching ``min_reward_threshold`` (episodes).
    :param num_workers: accepted for Coach compatibility, not used (``rlframe-validate`` acts in one process unless
        given ``-n N``).
    :param reward_test_level: accepted for Coach compatibility, not used (the preset's own level is tested).
    :param test_using_a_trace_test: accepted for Coach compatibility, not used (rlframe has no trace tests).
    :param trace_test_levels: accepted for Coach compatibility, not used.
    :param trace_max_env_steps: accepted for Coach compatibility, not used (environment steps).
    :param read_csv_tries: accepted for Coach compatibility, not used (``rlframe-validate`` watches the run in
        its own process instead of polling the CSV).
    """

    def __init__(
        self,
        test: bool = False,
        min_reward_threshold: float = 0,
        max_episodes_to_achieve_reward: int = 1,
        num_workers: int = 1,
        reward_test_level: str | None = None,
        test_using_a_trace_test: bool = True,
        trace_test_levels: list | None = None,
        trace_max_env_steps: int = 5000,
        read_csv_tries: int = 200,
    ) -> None:
        self.test = test
        self.min_reward_threshold = min_reward_threshold
        self.max_episodes_to_achieve_reward = max_episodes_to_achieve_reward
        self.num_workers = num_workers
        self.reward_test_level = reward_test_level
        self.test_using_a_trace_test = test_using_a_trace_test
        self.trace_test_levels = trace_test_levels
        self.trace_max_env_steps = trace_max_env_steps
        self.read_csv_tries = read_csv_tries


class TaskParameters(Parameters):
    """How one run is executed: where it writes, its seed, checkpoint cadence and restore source.

    :param framework_type: accepted for Coach compatibility (always MXNet).
    :param evaluate_only: when not None, only evaluate for this many environment steps (0 = one episode).
    :param use_cpu: accepted for Coach compatibility (rlframe runs on the CPU).
    :param experiment_path: the experiment directory (CSV, GIFs, parameters, checkpoints).
    :param seed: the seed of every random generator of the run; None draws one.
    :param checkpoint_save_secs: seconds between checkpoints; a final checkpoint is always written.
    :param checkpoint_restore_dir: a checkpoint directory to restore from (its ``.coach_checkpoint``).
    :param checkpoint_restore_path: Coach's newer name for the same thing.
    :param checkpoint_save_dir: where checkpoints go (default ``<experiment_path>/checkpoint``).
    :param checkpoint_sync_dir: a second directory that receives a copy of each complete checkpoint, with the
        same retention (SageMaker's managed ``/opt/ml/checkpoints/<host>``, synced to S3 and restored on a spot
        restart); None: no copy.
    :param restore_memory: also restore the replay memory saved with the checkpoint (resuming). A checkpoint
        whose memory file is missing is an error unless this is False.
    :param num_checkpoints_to_keep: how many of the newest checkpoints stay in the checkpoint directory
        (0 keeps every one); an older one is deleted only after a newer one is complete. Batch RL also keeps
        the checkpoint with the best off-policy estimate.
    :param start_over: when ``experiment_path`` already holds a run, move its files into
        ``previous_<DD_MM_YYYY-HH_MM_SS>/`` inside it and start a new run, instead of refusing.
    :param export_onnx_graph: also write ``<checkpoint name>.onnx`` beside every checkpoint (Coach's ``-onnx``): the
        policy as an ONNX graph, its policy outputs first as Coach's were, which the SageMaker notebooks' launchers
        move into the model with ``save_model=1`` (see :mod:`rlframe.export`).
    :param apply_stop_condition: stop once an evaluation's success rate reaches the target success rate.
    :param num_gpu: accepted for Coach compatibility.
    :param task_index: the worker's index, 0 in rlframe's one-process runs; it names the CSV
        (``worker_<task_index>....csv``) and the screen lines' ``Worker=``.
    """

    def __init__(
        self,
        framework_type: Frameworks = Frameworks.mxnet,
        evaluate_only: int | None = None,
        use_cpu: bool = True,
        experiment_path: str = "./experiments",
        seed: int | None = None,
        checkpoint_save_secs: float | None = None,
        checkpoint_restore_dir: str | None = None,
        checkpoint_restore_path: str | None = None,
        checkpoint_save_dir: str | None = None,
        checkpoint_sync_dir: str | None = None,
        restore_memory: bool = True,
        num_checkpoints_to_keep: int = 5,
        start_over: bool = False,
        export_onnx_graph: bool = False,
        apply_stop_condition: bool = False,
        num_gpu: int = 1,
    ) -> None:
        self.framework_type = framework_type
        self.evaluate_only = evaluate_only
        self.use_cpu = use_cpu
        self.experiment_path = experiment_path
        self.seed = seed
        self.checkpoint_save_secs = checkpoint_save_secs
        self.checkpoint_restore_dir = checkpoint_restore_dir
        self.checkpoint_restore_path = checkpoint_restore_path
        self.checkpoint_save_dir = checkpoint_save_dir
        self.checkpoint_sync_dir = checkpoint_sync_dir
        self.restore_memory = restore_memory
        self.num_checkpoints_to_keep = num_checkpoints_to_keep
        self.start_over = start_over
        self.export_onnx_graph = export_onnx_graph
        self.apply_stop_condition = apply_stop_condition
        self.num_gpu = num_gpu
        self.task_index = 0


class AgentParameters(Parameters):
    """One agent: its algorithm, exploration, memory, networks and filters.

    :param algorithm: an ``AlgorithmParameters`` subclass; it names the agent class that runs it.
    :param exploration: exploration parameters, or a dict ``{ActionSpaceClass: ExplorationParameters}``.
    :param memory: memory parameters.
    :param network_wrappers: dict name -> ``NetworkParameters``; ``'main'`` always exists (the constructor's
        ``networks`` argument).
    :param visualization: per-agent visualization parameters; the graph manager replaces them with its own
        ``vis_params`` object, so both names reach the run.
    :param input_filter: an ``InputFilter`` applied to every observation and reward the environments return,
        before the agent acts and stores them (its reward output is the CSV's shaped reward); None: none.
    :param output_filter: accepted for Coach compatibility, not used (rlframe has no action filters).
    :param pre_network_filter: an ``InputFilter`` applied to observations right before a network sees them
        (where a normaliser such as ``ObservationNormalizationFilter`` goes); its state is checkpointed.
    :param name: accepted for Coach compatibility, not used (screen lines and the CSV name the agent
        ``main_level/agent``).
    :param is_batch_rl_training: accepted for Coach compatibility, not used (``BatchRLGraphManager`` decides).
    :param task_parameters: accepted for Coach compatibility, not used (the graph manager holds the run's
        ``TaskParameters``).
    """

    def __init__(
        self,
        algorithm: AlgorithmParameters,
        exploration: Any,
        memory: Any,
        networks: dict,
        visualization: VisualizationParameters | None = None,
    ) -> None:
        from rlframe.filters.filter import NoInputFilter

        self.visualization = visualization if visualization is not None else VisualizationParameters()
        self.algorithm = algorithm
        self.exploration = exploration
        self.memory = memory
        self.network_wrappers = networks
        self.input_filter: Any = None
        self.output_filter: Any = None
        self.pre_network_filter: Any = NoInputFilter()
        self.name = "agent"
        self.is_batch_rl_training = False
        self.task_parameters: TaskParameters | None = None

    @property
    def agent_class(self) -> type[Agent]:
        """The agent class that runs these parameters (declared by each algorithm's parameters)."""
        raise NotImplementedError
