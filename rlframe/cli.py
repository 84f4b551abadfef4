"""Command-line tools: ``rlframe-train`` and ``rlframe-validate``.

``rlframe-train -p PRESET`` accepts Coach's flags (``-cp``, ``-s``, ``-crd``, ``--evaluate``, ``-dg``,
``-ep``, ``--seed``) and SageMaker's ``--name value`` hyperparameters (see :mod:`rlframe.overrides`), also from a
YAML file or a SageMaker ``hyperparameters.json`` (``--hyperparameters FILE``). With ``save_model=1`` a training run
that completes (or stops after its final checkpoint) exports its policy into ``<experiment path>/model``
(:mod:`rlframe.export`). User mistakes print one line starting with ``error:`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rlframe.errors import ParameterValueError, RlframeError
from rlframe.parameters import TaskParameters
from rlframe.stopping import RunStopped, StoppedAtOnce

if TYPE_CHECKING:
    from rlframe.graph_managers.graph_manager import GraphManager
    from rlframe.graph_managers.hooks import RunHooks

def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlframe-train", allow_abbrev=False,
        description="Train (or evaluate) an agent from a Coach-style preset. Extra '--name value' pairs are "
        "SageMaker hyperparameters: rl.<path>[:Type] or the preset's notebook shortcuts (discount, improve_steps, ...).",
    )
    parser.add_argument("-p", "--preset", "--RLCOACH_PRESET", dest="preset",
                        help="preset name (current dir, $RLFRAME_PRESET_PATH, shipped presets), path.py or path.py:variable "
                        "(default: RLCOACH_PRESET of the --hyperparameters file)")
    parser.add_argument("-cp", "--custom-parameter", "--custom_parameter", dest="custom_parameter", default="",
                        help="Coach overrides: \"key=value;key=value\" on the graph manager")
    parser.add_argument("--hyperparameters", metavar="FILE",
                        help="YAML file of hyperparameters (same names as on the command line), or a SageMaker "
                        "hyperparameters.json as it is (JSON-encoded string values, RLCOACH_PRESET, sagemaker_* keys)")
    parser.add_argument("--shortcuts", choices=["mountain_car", "cartpole", "batch"],
                        help="SageMaker notebook whose unit the improve_steps shortcut takes (default: the preset's "
                        "HYPERPARAMETER_SHORTCUTS, else the notebook whose preset has this name, else the preset's own "
                        "unit)")
    parser.add_argument("--seed", type=int, help="seed of every random generator")
    parser.add_argument("-dg", "--dump-gifs", "--dump_gifs", dest="dump_gifs", action="store_true", help="write GIFs")
    parser.add_argument("--evaluate", nargs="?", const=0, type=int, default=None, metavar="STEPS",
                        help="only evaluate (restored from -crd) for STEPS environment steps, whole episodes "
                        "(no value: the preset's evaluation_steps)")
    parser.add_argument("-e", "--experiment-name", "--experiment_name", dest="experiment_name",
                        help="experiment folder name under ./experiments (default: the preset's name)")
    parser.add_argument("-ep", "--experiment-path", "--experiment_path", dest="experiment_path",
                        help="experiment directory (CSV, GIFs, parameters, checkpoint/)")
    parser.add_argument("-s", "--checkpoint-save-secs", "--checkpoint_save_secs", dest="checkpoint_save_secs", type=float,
                        help="seconds between checkpoints (a final checkpoint is always written)")
    parser.add_argument("-crd", "--checkpoint-restore-dir", "--checkpoint_restore_dir", dest="checkpoint_restore_dir",
                        help="checkpoint directory to restore (resume training, or evaluate with --evaluate)")
    parser.add_argument("--no-restore-memory", dest="restore_memory", action="store_false",
                        help="when resuming, start with an empty replay memory (needed when the checkpoint has none)")
    parser.add_argument("--keep-checkpoints", "--num_checkpoints_to_keep", dest="num_checkpoints_to_keep", type=int,
                        default=5, metavar="K",
                        help="keep the newest K checkpoints, deleting older ones once a newer one is complete "
                        "(0: keep all; default 5; batch RL also keeps the best by off-policy evaluation)")
    parser.add_argument("-onnx", "--export-onnx-graph", "--export_onnx_graph", dest="export_onnx_graph",
                        action="store_true", help="also write <checkpoint name>.onnx beside every checkpoint (Coach's "
                        "per-checkpoint ONNX graph, which the SageMaker notebooks' launchers move into the model)")
    parser.add_argument("--start-over", dest="start_over", action="store_true",
                        help="when the experiment folder already holds a run, move its files into "
                        "previous_<time>/ there and begin a new run (without it the run refuses the folder)")
    _add_worker_options(parser)
    parser.add_argument("--num-envs", dest="num_envs", type=int, help="environment copies acting at once")
    parser.add_argument("-lvl", "--level", help="environment level (a gymnasium id or module:callable)")
    parser.add_argument("--progress", choices=["auto", "bar", "lines"], default="auto",
                        help="progress bar on a terminal (auto), always (bar) or never (lines)")
    return parser


def _add_worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--num_workers", "--num-workers", dest="num_workers", type=int, default=1, metavar="N",
                        help="act on N rollout workers (Ray actors; pip install 'rlframe[distributed]'); the default 1 "
                        "acts in this process")
    parser.add_argument("--ray-address", dest="ray_address", default=None, metavar="HOST:PORT",
                        help="with N > 1, join this Ray cluster (default: $RLFRAME_RAY_ADDRESS, else a local Ray "
                        "instance on this machine)")


def hyperparameter_pairs(extra: Sequence[str]) -> dict[str, str]:
    """SageMaker's ``--name value ...`` (or ``--name=value``) arguments as a name -> value map, in order."""
    tokens: list[str] = []
    for token in extra:
        # '--name=value' is one token; split it so it pairs up like SageMaker's '--name value'.
        if token.startswith("--") and "=" in token:
            tokens += token.split("=", 1)
        else:
            tokens.append(token)
    if len(tokens) % 2:
        raise ParameterValueError(
            f"Odd number of extra arguments {list(extra)}: hyperparameters come as '--name value' pairs."
        )
    out: dict[str, str] = {}
    for name, value in zip(tokens[::2], tokens[1::2]):
        if not name.startswith("--") or len(name) < 3:
            raise ParameterValueError(f"Unknown command-line argument {name!r}: hyperparameters are written '--name value'.")
        out[name[2:]] = value
    return out


def default_experiment_path(name: str, root: str = "experiments") -> str:
    """``<root>/<name>/<DD_MM_YYYY-HH_MM>`` with ``_<i>`` on a collision (as Coach; ``root`` is ``./experiments``)."""
    base = os.path.join(root, name, time.strftime("%d_%m_%Y-%H_%M"))
    path, i = base, 1
    while os.path.exists(path):
        path, i = f"{base}_{i}", i + 1
    return path


def prepare(argv: Sequence[str] | None = None) -> tuple[Any, TaskParameters, argparse.Namespace]:
    """Parse arguments, load the preset and apply every override; returns (graph manager, task, args)."""
    from rlframe.outputs.checkpoints import latest_checkpoint
    from rlframe.overrides import (
        PRESET_HYPERPARAMETER,
        apply_custom_parameters,
        apply_hyperparameters,
        decode_sagemaker_value,
        read_hyperparameters_file,
    )
    from rlframe.presets import load_preset

    args, extra = _build_parser().parse_known_args(argv)
    hyperparameters = ({k: decode_sagemaker_value(v) for k, v in read_hyperparameters_file(args.hyperparameters).items()}
                       if args.hyperparameters else {})
    hyperparameters.update(hyperparameter_pairs(extra))
    # A SageMaker job names its preset among the hyperparameters; -p wins when both are given.
    preset_from_file = hyperparameters.pop(PRESET_HYPERPARAMETER, None)
    if args.preset is None:
        if preset_from_file is None:
            raise ParameterValueError(
                "No preset: pass -p PRESET, or a --hyperparameters file with RLCOACH_PRESET (the SageMaker notebooks' key)."
            )
        args.preset = str(preset_from_file)
    # numpy and MXNet reject these only once the environments and networks are being built, with a traceback.
    if args.seed is not None and not 0 <= args.seed < 2**31:
        raise ParameterValueError(f"--seed {args.seed}: use an integer from 0 to {2**31 - 1}.")
    if args.evaluate is not None and args.evaluate < 0:
        raise ParameterValueError(f"--evaluate {args.evaluate}: give a number of environment steps (0 or more).")
    if args.num_envs is not None and args.num_envs < 1:
        raise ParameterValueError(f"--num-envs {args.num_envs}: use a positive integer such as 8.")
    graph_manager = load_preset(args.preset)
    notebook = args.shortcuts or graph_manager.origin.shortcuts
    graph_manager.record_hyperparameters(
        apply_hyperparameters(graph_manager, hyperparameters, notebook, graph_manager.origin.name))
    if args.custom_parameter:
        apply_custom_parameters(graph_manager, args.custom_parameter)
        graph_manager.record_custom_parameters(args.custom_parameter)
    if args.level:
        graph_manager.env_params.level = args.level
    if args.num_envs is not None:
        graph_manager.env_params.num_envs = args.num_envs
    if args.dump_gifs:
        graph_manager.visualization_parameters.dump_gifs = True
    from rlframe.integrations.distributed import distribute

    distribute(graph_manager, args.num_workers, args.ray_address)
    if args.evaluate is not None and not args.checkpoint_restore_dir:
        raise ParameterValueError("--evaluate needs a checkpoint to evaluate: add -crd <experiment>/checkpoint.")
    if args.checkpoint_restore_dir:
        # Fail before the environments and networks are built when the directory cannot be restored from.
        latest_checkpoint(args.checkpoint_restore_dir)
    experiment_path = args.experiment_path
    if experiment_path is None and args.checkpoint_restore_dir and args.evaluate is None:
        # Resuming continues the experiment that owns the checkpoint (its CSV keeps growing).
        experiment_path = str(Path(args.checkpoint_restore_dir).resolve().parent)
    if experiment_path is None:
        experiment_path = default_experiment_path(args.experiment_name or graph_manager.origin.name)
    task = TaskParameters(
        experiment_path=experiment_path, seed=args.seed, checkpoint_save_secs=args.checkpoint_save_secs,
        checkpoint_restore_dir=args.checkpoint_restore_dir, evaluate_only=args.evaluate,
        restore_memory=args.restore_memory, num_checkpoints_to_keep=args.num_checkpoints_to_keep,
        start_over=args.start_over, export_onnx_graph=args.export_onnx_graph,
    )
    return graph_manager, task, args


def _save_model(graph_manager: GraphManager) -> None:
    """Export the trained agent into ``<experiment path>/model`` (replacing an earlier run's model there)."""
    from rlframe.export import export_model

    path = export_model(graph_manager, Path(graph_manager.experiment_path) / "model", force=True)
    checkpoint = graph_manager.last_checkpoint
    assert checkpoint is not None  # export_model exports the run's last checkpoint
    print(f"Model: {path} (save_model=1: model.onnx, policy-symbol.json, rlframe-model.json; "
          f"checkpoint {checkpoint.name})", flush=True)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """Run a command's ``main(argv)``; a user mistake or a stop becomes one line on stderr and the exit status."""
    try:
        return main(argv)
    except RlframeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except RunStopped as exc:
        return exc.exit_code  # the run printed its line
    except StoppedAtOnce:
        return 130  # the signal handler printed its line
    except KeyboardInterrupt:
        print("interrupted before the run started; nothing was written", file=sys.stderr)
        return 130


def _train(argv: Sequence[str] | None, hooks: Sequence[RunHooks] = ()) -> int:
    from rlframe.outputs.progress_bar import ProgressBar

    graph_manager, task, args = prepare(argv)
    if args.progress == "bar" or (args.progress == "auto" and sys.stdout.isatty()):
        graph_manager.add_hooks(ProgressBar())
    for hook in hooks:
        graph_manager.add_hooks(hook)
    save_model = graph_manager.hyperparameters.save_model and task.evaluate_only is None
    try:
        graph_manager.run(task)
    except RunStopped:
        if save_model and graph_manager.last_checkpoint is not None:
            _save_model(graph_manager)  # the run stopped after its final checkpoint: the model is that checkpoint's
        raise
    if save_model:
        _save_model(graph_manager)
    print(f"Experiment directory: {graph_manager.experiment_path}")
    print(f"CSV: {graph_manager.csv_path}")
    print(f"GIFs: {os.path.join(graph_manager.experiment_path, 'gifs')}")
    if task.evaluate_only is None:
        print(f"Checkpoints: {graph_manager.checkpoint_dir}")
    return 0


def train_main(argv: Sequence[str] | None = None, hooks: Sequence[RunHooks] = ()) -> int:
    """Entry point of ``rlframe-train``; ``hooks`` (:mod:`rlframe.graph_managers.hooks`) follow the run, for a
    caller in the same process (a benchmark's clock, a notebook's plot)."""
    return run_cli(functools.partial(_train, hooks=hooks), argv)


def _validate(argv: Sequence[str] | None) -> int:
    from rlframe.graph_managers.graph_manager import Progress

    parser = argparse.ArgumentParser(
        prog="rlframe-validate", allow_abbrev=False,
        description="Run a preset's golden test: reach its min_reward_threshold (mean evaluation reward) "
        "within max_episodes_to_achieve_reward episodes.",
    )
    parser.add_argument("-p", "--preset", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-cp", "--custom-parameter", dest="custom_parameter", default="")
    parser.add_argument("-ep", "--experiment-path", dest="experiment_path")
    _add_worker_options(parser)
    args = parser.parse_args(argv)
    train_args = ["-p", args.preset, "--seed", str(args.seed), "-n", str(args.num_workers)]
    if args.ray_address:
        train_args += ["--ray-address", args.ray_address]
    if args.custom_parameter:
        train_args += ["-cp", args.custom_parameter]
    if args.experiment_path:
        train_args += ["-ep", args.experiment_path]
    graph_manager, task, _ = prepare(train_args)
    if graph_manager.env_params is None:
        raise ParameterValueError(
            f"Preset {args.preset!r} has no environment (env_params=None), so its policy cannot be evaluated: "
            "validate a preset that trains with an environment."
        )
    validation = graph_manager.preset_validation_params
    threshold = float(validation.min_reward_threshold)
    max_episodes = int(validation.max_episodes_to_achieve_reward)
    reached: list[int] = []

    def until(progress: Progress) -> bool:
        if progress.last_evaluation_reward is not None and progress.last_evaluation_reward >= threshold and not reached:
            reached.append(progress.evaluations[-1][0])
        return bool(reached) or progress.episodes >= max_episodes

    graph_manager.improve_steps = type(graph_manager.improve_steps)(10**12)
    graph_manager.run(task, until=until)
    unit = "epoch" if graph_manager.index_column == "Epoch" else "episode"  # a batch-RL run counts epochs
    if reached:
        print(f"PASSED: {args.preset} (seed {args.seed}) reached evaluation reward >= {threshold:g} "
              f"at {unit} {reached[0]} (limit {max_episodes}).")
        return 0
    best = max((r for _, r in graph_manager.progress.evaluations), default=float("nan"))
    print(f"FAILED: {args.preset} (seed {args.seed}) did not reach evaluation reward >= {threshold:g} within "
          f"{max_episodes} {unit}s (best evaluation reward {best:.2f}).")
    return 1


def validate_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rlframe-validate``."""
    return run_cli(_validate, argv)


if __name__ == "__main__":
    sys.exit(train_main())
