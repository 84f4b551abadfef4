"""Coach's launcher API (``rl_coach.coach.CoachLauncher``) on rlframe's presets and graph managers.

SageMaker RL launchers subclass ``CoachLauncher`` and override parts of its pipeline::

    launch() = get_argument_parser() -> get_config_args(parser) -> get_graph_manager_from_args(args)
               -> run_graph_manager(graph_manager, args) -> start_single_threaded(task_parameters, graph_manager, args)

``get_config_args`` returns a Namespace with Coach's attribute names (``preset``, ``experiment_path``,
``checkpoint_save_dir``, ``checkpoint_restore_dir``, ``evaluate``, ``seed``, ``custom_parameter``, ``level``, ...);
a subclass usually starts from ``parser.parse_known_args(args=[])`` and sets them itself. A subclass's
``start_single_threaded`` may drive the graph manager as Coach's do (``create_graph``, ``improve`` or
``evaluate``, ``close``): SIGTERM and SIGINT then stop it as they stop ``rlframe-train`` (final checkpoint,
one line, exit 143 or 130).

Inside a SageMaker training job (:func:`~rlframe.integrations.sagemaker.paths.in_sagemaker_job`) the run also
gets SageMaker's context: literal ``/opt/ml/...`` paths are relocated under ``$SAGEMAKER_BASE_DIR``, every
checkpoint is copied to the managed ``/opt/ml/checkpoints/<host>``, and a run that names no checkpoint to
restore resumes from the one found there (a spot restart).

Errors end the process with one line on stderr and a non-zero status (2 for a mistake in the input, 1 for
anything else, such as an exception in a user's script); ``RLFRAME_TRACEBACK=1`` shows the full traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from rl_coach import logger
from rlframe.cli import run_cli
from rlframe.errors import ParameterValueError, PresetError, RlframeError
from rlframe.graph_managers.graph_manager import GraphManager
from rlframe.integrations import TRACEBACK_VARIABLE
from rlframe.outputs.checkpoints import STATE_FILE
from rlframe.outputs.progress_bar import ProgressBar
from rlframe.overrides import apply_custom_parameters
from rlframe.parameters import Frameworks, TaskParameters
from rlframe.presets import available_presets, find_in_dir, load_preset
from rlframe.stopping import RunStopped, StopSignals


class CoachArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are rlframe's one-line errors (argparse itself prints usage and exits)."""

    def error(self, message: str) -> NoReturn:
        raise ParameterValueError(f"{self.prog}: {message}. Run with --help to see the options.")


def short_dynamic_import(module_path_and_attribute: str, ignore_module_case: bool = False) -> Any:
    """Coach's ``short_dynamic_import``: ``"path/to/preset.py:graph_manager"`` or ``"package.module:attribute"``.

    A ``.py`` file is a preset: it is loaded as ``rlframe-train`` loads one (its ``rl_coach`` imports answered
    by rlframe, its mistakes reported in one line naming the preset's line) and the attribute must be a graph
    manager. ``ignore_module_case`` finds the file whatever the case of its name.
    """
    module_path, _, attribute = module_path_and_attribute.rpartition(":")
    if not module_path or not attribute:
        raise ParameterValueError(
            f"{module_path_and_attribute!r}: write 'path/to/preset.py:graph_manager' or 'package.module:attribute'."
        )
    if module_path.lower().endswith(".py"):
        path = Path(module_path)
        if not path.is_file() and ignore_module_case:
            path = find_in_dir(path.parent, path.stem) or path
        if not path.is_file():
            raise PresetError(f"Preset file {module_path!r} does not exist. Check the preset's name and folder.")
        return load_preset(f"{path}:{attribute}")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ParameterValueError(f"Cannot import {module_path!r} for {module_path_and_attribute!r}: {exc}.") from exc
    if not hasattr(module, attribute):
        raise ParameterValueError(f"Module {module_path!r} has no {attribute!r} ({module_path_and_attribute!r}).")
    return getattr(module, attribute)


def _user_error_line(exc: BaseException) -> str:
    """``ConnectionError: message (train-coach.py, line 9, in get_graph_manager_from_args)``: the exception and
    the innermost line that raised it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({os.path.basename(frames[-1].filename)}, line {frames[-1].lineno}, in {frames[-1].name})" if frames else ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


def run_launcher_step(step: Callable[[], Any]) -> None:
    """Run ``step`` as a command: an error (rlframe's, or any other exception from users' code) becomes one
    line on stderr and ends the process (2 for rlframe's usage errors, 1 otherwise); a stop by a signal exits
    with 143 or 130. ``RLFRAME_TRACEBACK=1`` lets other exceptions through with their traceback."""
    def main(_: Sequence[str] | None) -> int:
        try:
            step()
        except (RlframeError, RunStopped, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get(TRACEBACK_VARIABLE) == "1":
                raise
            print(f"error: {_user_error_line(exc)}", file=sys.stderr, flush=True)
            return 1
        return 0

    status = run_cli(main, None)
    if status:
        sys.exit(status)


def _relocate_for_sagemaker(args: argparse.Namespace) -> None:
    """Point the hard-coded ``/opt/ml`` paths of ``args`` at the job's tree (``$SAGEMAKER_BASE_DIR``)."""
    from rlframe.integrations.sagemaker.paths import SageMakerPaths

    paths = SageMakerPaths.from_env()
    for name in ("experiment_path", "checkpoint_save_dir", "checkpoint_restore_dir", "checkpoint_restore_path"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, paths.relocate(value))
    if isinstance(logger.experiment_path, str):
        logger.experiment_path = paths.relocate(logger.experiment_path)


def _apply_sagemaker_checkpoints(task: TaskParameters) -> None:
    """Copy every checkpoint of a training run to SageMaker's managed checkpoint folder of this host, and resume
    from that folder when it holds a complete checkpoint and the run names none to restore (a spot restart)."""
    from rlframe.integrations.sagemaker.paths import SageMakerPaths, current_host

    if task.evaluate_only is not None:
        return
    paths = SageMakerPaths.from_env()
    sync_dir = paths.managed_checkpoints / current_host(paths)
    task.checkpoint_sync_dir = str(sync_dir)
    if task.checkpoint_restore_dir is None and task.checkpoint_restore_path is None and (sync_dir / STATE_FILE).is_file():
        task.checkpoint_restore_dir = str(sync_dir)
        # The earlier attempt's files in the experiment folder are this job's own: they are moved aside (never
        # deleted) and the CSV continues from the copy saved with the checkpoint.
        task.start_over = True
        print(f"Resuming from the managed checkpoint in {sync_dir}", flush=True)


class CoachLauncher:
    """Coach's launcher: parse the arguments, load the preset, run it (see the module docstring)."""

    def get_argument_parser(self) -> argparse.ArgumentParser:
        """Coach's command-line options (the attribute names users' launchers read and set)."""
        parser = CoachArgumentParser(prog=os.path.basename(sys.argv[0]) or "coach",
                                      description="Run a Coach preset with rlframe.")
        parser.add_argument("-p", "--preset", help="preset name, path.py or path.py:variable")
        parser.add_argument("-l", "--list", action="store_true", help="list the available presets")
        parser.add_argument("-e", "--experiment_name", help="experiment folder name under ./experiments")
        parser.add_argument("-ep", "--experiment_path", help="experiment folder (CSV, GIFs, checkpoint/)")
        parser.add_argument("-r", "--render", action="store_true", help="accepted for Coach compatibility")
        parser.add_argument("-f", "--framework", default="tensorflow",
                            help="accepted for Coach compatibility (tensorflow or mxnet; rlframe uses MXNet)")
        parser.add_argument("-n", "--num_workers", type=int, default=1,
                            help="rollout workers (Ray actors; 1: act in this process)")
        parser.add_argument("-c", "--use_cpu", action="store_true", help="accepted for Coach compatibility")
        parser.add_argument("--evaluate", nargs="?", const=0, type=int,
                            help="only evaluate the restored checkpoint, for at least this many steps (0: the preset's)")
        parser.add_argument("--nocolor", action="store_true", help="accepted for Coach compatibility (never coloured)")
        parser.add_argument("-s", "--checkpoint_save_secs", type=int, help="seconds between checkpoints")
        parser.add_argument("-crd", "--checkpoint_restore_dir", help="checkpoint folder to restore from")
        parser.add_argument("-dg", "--dump_gifs", action="store_true", help="write GIFs")
        parser.add_argument("-lvl", "--level", help="environment level to use instead of the preset's")
        parser.add_argument("-cp", "--custom_parameter", help='preset overrides: "key=value;key=value"')
        parser.add_argument("--print_networks_summary", action="store_true", help="print the networks")
        parser.add_argument("-ns", "--no_summary", action="store_true", help="accepted for Coach compatibility")
        parser.add_argument("--seed", type=int, help="seed of every random generator")
        parser.add_argument("-onnx", "--export_onnx_graph", action="store_true",
                            help="also write <checkpoint name>.onnx beside every checkpoint")
        parser.add_argument("-asc", "--apply_stop_condition", action="store_true",
                            help="stop once an evaluation reaches the environment's target success rate")
        # Set by the launcher rather than typed (Coach derives it from -s; SageMaker launchers set it).
        parser.set_defaults(checkpoint_save_dir=None, checkpoint_restore_path=None)
        return parser

    def get_config_args(self, parser: argparse.ArgumentParser, arguments: Sequence[str] | None = None) -> argparse.Namespace:
        """Parse ``arguments`` (default ``sys.argv[1:]``) and complete them as Coach does (experiment name and
        folder, framework)."""
        args = parser.parse_args(arguments)
        if args.list:
            print("\n".join(available_presets()))
            sys.exit(0)
        if args.preset is None:
            raise ParameterValueError("No preset: pass -p PRESET (a preset name, path.py or path.py:variable).")
        args.experiment_name = logger.get_experiment_name(args.experiment_name or Path(args.preset.split(":")[0]).stem)
        if args.experiment_path is None:
            # Made by the run itself, so a run that fails before it starts leaves no empty folder behind.
            args.experiment_path = logger.get_experiment_path(args.experiment_name, create_path=False)
        args.framework = self.framework(args.framework)
        return args

    @staticmethod
    def framework(name: str | Frameworks) -> Frameworks:
        """Coach's ``Frameworks[name]`` with a one-line error (rlframe runs MXNet whatever is named)."""
        if isinstance(name, Frameworks):
            return name
        try:
            return Frameworks[str(name).lower()]
        except KeyError:
            raise ParameterValueError(
                f"Framework {name!r}: use one of {', '.join(Frameworks.__members__)} (rlframe runs MXNet either way)."
            ) from None

    def get_graph_manager_from_args(self, args: argparse.Namespace) -> GraphManager:
        """The preset's graph manager with the command line's changes (``-cp``, ``-lvl``, ``-dg``)."""
        graph_manager = load_preset(args.preset)
        if getattr(args, "custom_parameter", None):
            apply_custom_parameters(graph_manager, args.custom_parameter)
        if getattr(args, "level", None):
            graph_manager.env_params.level = args.level
        if getattr(args, "dump_gifs", False):
            graph_manager.visualization_parameters.dump_gifs = True
        if getattr(args, "print_networks_summary", False):
            graph_manager.visualization_parameters.print_networks_summary = True
        return graph_manager

    def create_task_parameters(self, graph_manager: GraphManager, args: argparse.Namespace) -> TaskParameters:
        """The run's TaskParameters from ``args`` (Coach's names; ``evaluate=True`` means evaluate only)."""
        evaluate = getattr(args, "evaluate", None)
        if evaluate is False:
            evaluate = None
        elif evaluate is not None:
            evaluate = int(evaluate) if not isinstance(evaluate, bool) else 0
            if evaluate < 0:
                raise ParameterValueError(f"evaluate = {evaluate}: give a number of environment steps (0 or more).")
        return TaskParameters(
            framework_type=self.framework(getattr(args, "framework", Frameworks.mxnet)),
            evaluate_only=evaluate,
            experiment_path=args.experiment_path,
            seed=getattr(args, "seed", None),
            checkpoint_save_secs=getattr(args, "checkpoint_save_secs", None),
            checkpoint_restore_dir=getattr(args, "checkpoint_restore_dir", None),
            checkpoint_restore_path=getattr(args, "checkpoint_restore_path", None),
            checkpoint_save_dir=getattr(args, "checkpoint_save_dir", None),
            export_onnx_graph=bool(getattr(args, "export_onnx_graph", False)),
            apply_stop_condition=bool(getattr(args, "apply_stop_condition", False)),
        )

    def run_graph_manager(self, graph_manager: GraphManager, args: argparse.Namespace) -> None:
        """Build the TaskParameters (with SageMaker's context inside a training job) and call
        :meth:`start_single_threaded` with SIGTERM and SIGINT turned into a clean stop."""
        from rlframe.integrations.distributed import distribute
        from rlframe.integrations.sagemaker.paths import in_sagemaker_job

        # the cluster a SageMaker multi-instance job's leader started is named by RLFRAME_RAY_ADDRESS
        distribute(graph_manager, getattr(args, "num_workers", 1))
        sagemaker = in_sagemaker_job()
        if sagemaker:
            _relocate_for_sagemaker(args)
        task_parameters = self.create_task_parameters(graph_manager, args)
        if sagemaker:
            _apply_sagemaker_checkpoints(task_parameters)
        if sys.stdout.isatty():
            graph_manager.add_hooks(ProgressBar())
        with StopSignals() as stop:
            self.start_single_threaded(task_parameters, graph_manager, args)
        if stop.signum is not None:
            # A run the user's code drove itself finished its step and returned; say what was kept, as run() does.
            line = graph_manager.stopped_line(stop.signum)
            print(line, flush=True)
            raise RunStopped(stop.signum, line)

    def start_single_threaded(self, task_parameters: TaskParameters, graph_manager: GraphManager,
                              args: argparse.Namespace) -> None:
        """Train, or only evaluate when the task says so (Coach's ``create_graph`` -> ``improve``/``evaluate`` ->
        ``close``; rlframe's ``run`` does all three, and on a signal stops cleanly)."""
        graph_manager.run(task_parameters)

    def launch(self) -> None:
        """Parse, load, run; any error ends the process with one line (see :func:`run_launcher_step`)."""
        def step() -> None:
            parser = self.get_argument_parser()
            args = self.get_config_args(parser)
            graph_manager = self.get_graph_manager_from_args(args)
            self.run_graph_manager(graph_manager, args)

        run_launcher_step(step)
