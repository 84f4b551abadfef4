"""SageMaker RL's Coach launcher (``sagemaker_rl.coach_launcher``) on rlframe (sagemaker-examples.md 3.1-3.8).

A project's ``train-coach.py`` subclasses :class:`SageMakerCoachPresetLauncher`, names its preset in
``default_preset_name()``, may map shortcut names in ``map_hyperparameter`` (``self.apply_hyperparameter(
"rl.<path>[:Type]", value)``) and tie values after parsing (``self.hyperparameters.hp_dict[...] = ...`` in an
overridden ``get_config_args``), and calls ``MyLauncher.train_main()``. The job's hyperparameters arrive as
``--name value`` pairs: ``-p/--RLCOACH_PRESET``, ``-n/--num_workers``, ``--save_model`` and the rest, which
``map_hyperparameter`` receives one by one. The base class accepts ``rl.<path>[:Type]`` and every SageMaker
notebook's shortcut name (:data:`rlframe.overrides.SHORTCUTS`).

Outputs land where SageMaker collects them: the experiment folder (CSV, GIFs, ``parameters.yaml``, ``log.txt``)
is ``/opt/ml/output/intermediate`` and checkpoints go to ``/opt/ml/output/data/checkpoint``, every 10 s and at
the end (all under ``$SAGEMAKER_BASE_DIR`` when set); with ``save_model=1`` every checkpoint also gets its
``.onnx`` (Coach's ``export_onnx_graph``) and the trained model is exported to ``/opt/ml/model``
(:mod:`rlframe.export`). The preset is ``<folder of the launcher script>/<name>.py``, its name matched ignoring
case, else a shipped preset. ``evaluate_main()`` only evaluates the checkpoint of the
job's ``checkpoint`` channel for ``--evaluate_steps`` steps, writing no checkpoint and no CSV.

Run as a module (``python -m rlframe.integrations.sagemaker.launcher --RLCOACH_PRESET NAME --name value ...``),
this is the training script of a job that brings no script of its own: presets come from ``/opt/ml/code`` first.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from rl_coach import logger
from rlframe.cli import hyperparameter_pairs
from rlframe.errors import PresetError, UnknownParameterError, closest
from rlframe.export import export_model
from rlframe.export.graph import ExportError
from rlframe.graph_managers.graph_manager import GraphManager
from rlframe.integrations.coach_launcher import CoachArgumentParser, CoachLauncher, run_launcher_step, short_dynamic_import
from rlframe.integrations.sagemaker.paths import SageMakerPaths
from rlframe.overrides import RECORDED, SHORTCUTS, apply_hyperparameters, apply_path_hyperparameter
from rlframe.parameters import Parameters, TaskParameters
from rlframe.presets import find_in_dir, presets_in
from rlframe.shipped import shipped_dir

#: seconds between checkpoints (as SageMaker's launcher; a final checkpoint is always written too)
CHECKPOINT_SAVE_SECS = 10
#: the backend the RL images name in COACH_BACKEND (rlframe runs MXNet whatever it says)
BACKEND_VARIABLE = "COACH_BACKEND"
DEFAULT_EVALUATE_STEPS = 1000


class ConfigurationList:
    """Hyperparameters stored by name while the command line is parsed, applied once the preset is loaded.

    ``hp_dict`` maps each name (``rl.<path>[:Type]`` or a shortcut) to its value as given; launchers read and
    write it to tie values together. :meth:`apply_subset` applies the entries under a prefix to any parameter
    object, checked as ``rlframe-train`` checks them.
    """

    def __init__(self) -> None:
        self.hp_dict: dict[str, Any] = {}

    def store(self, name: str, value: Any) -> None:
        self.hp_dict[name] = value

    def apply_subset(self, config_object: Parameters, prefix: str) -> None:
        """Apply and forget the entries named ``<prefix><path>[:Type]`` (``apply_subset(graph_manager, "rl.")``)."""
        for name in [n for n in self.hp_dict if n.startswith(prefix)]:
            apply_path_hyperparameter(config_object, name[len(prefix):], self.hp_dict.pop(name), name)


#: sagemaker_rl's name for the list its Coach launchers use
CoachConfigurationList = ConfigurationList


class SageMakerCoachPresetLauncher(CoachLauncher):
    """Trains (``train_main``) or evaluates (``evaluate_main``) a preset inside a SageMaker training job."""

    def __init__(self) -> None:
        self.hyperparameters = CoachConfigurationList()
        self.save_model = False
        self.evaluating = False
        #: the graph manager the launch ran (``save_model`` exports its agent)
        self.graph_manager: GraphManager | None = None

    # ---- what subclasses override ----------------------------------------------------------------------
    def default_preset_name(self) -> str | None:
        """The preset trained when the job passes no ``RLCOACH_PRESET`` (subclasses return a file name without
        ``.py``); older launchers set a ``DEFAULT_PRESET`` class attribute instead."""
        return getattr(self, "DEFAULT_PRESET", None)

    def map_hyperparameter(self, name: str, value: Any) -> None:
        """Store one ``--name value`` pair. Subclasses map their own shortcut names first and pass the rest here,
        which accepts ``rl.<path>[:Type]`` and the SageMaker notebooks' shortcut names."""
        if name.startswith("rl.") or name in SHORTCUTS:
            self.apply_hyperparameter(name, value)
            return
        raise UnknownParameterError(
            f"Unknown hyperparameter {name!r}.{closest(name, list(SHORTCUTS))} Pass rl.<path>[:Type] (for example "
            f"rl.agent_params.algorithm.discount) or one of the notebooks' shortcuts ({', '.join(SHORTCUTS)}), "
            "or map the name in your launcher's map_hyperparameter()."
        )

    def apply_hyperparameter(self, name: str, value: Any) -> None:
        """Keep ``name`` = ``value`` for the graph manager (applied when the preset is loaded)."""
        print(f"Applying RL hyperparameter {name}={value}", flush=True)
        self.hyperparameters.store(name, value)

    # ---- parsing ---------------------------------------------------------------------------------------
    def sagemaker_argparser(self) -> argparse.ArgumentParser:
        """The options a SageMaker job passes besides ``--name value`` hyperparameters."""
        parser = CoachArgumentParser(prog=os.path.basename(sys.argv[0]) or "train")
        parser.add_argument("-n", "--num_workers", type=int, default=1,
                            help="rollout workers (Ray actors, spread over the job's instances; 1: one process)")
        parser.add_argument("-p", "--RLCOACH_PRESET", default=self.default_preset_name(), help="preset name (no .py)")
        parser.add_argument("--save_model", type=int, default=0, help="1: export the model after training")
        return parser

    def get_config_args(self, parser: argparse.ArgumentParser, arguments: Sequence[str] | None = None) -> argparse.Namespace:
        """Coach's defaults, then the job's options; every other ``--name value`` pair goes to
        :meth:`map_hyperparameter` (an odd count or a name without ``--`` is an error)."""
        args, _ = parser.parse_known_args(args=[])
        if self.evaluating:
            return self._evaluation_config(args, arguments)
        job_args, rest = self.sagemaker_argparser().parse_known_args(arguments)
        paths = SageMakerPaths.from_env()
        args.experiment_name = logger.get_experiment_name(os.environ.get("sagemaker_job_name", "sagemaker-experiment"))
        args.experiment_path = logger.experiment_path = str(paths.intermediate)
        args.checkpoint_save_dir = str(paths.checkpoint_output)
        args.checkpoint_save_secs = CHECKPOINT_SAVE_SECS
        # A subclass's own sagemaker_argparser may leave these options out.
        self.save_model = getattr(job_args, "save_model", 0) == 1
        args.export_onnx_graph = self.save_model
        args.no_summary = True
        args.num_workers = getattr(job_args, "num_workers", 1)
        args.framework = self.framework(os.environ.get(BACKEND_VARIABLE, "tensorflow"))
        args.preset = job_args.RLCOACH_PRESET
        self.hyperparameters = CoachConfigurationList()
        for name, value in hyperparameter_pairs(rest).items():
            self.map_hyperparameter(name, value)
        return args

    def _evaluation_config(self, args: argparse.Namespace, arguments: Sequence[str] | None) -> argparse.Namespace:
        """Evaluate the ``checkpoint`` channel's checkpoint: only the preset and ``--evaluate_steps`` are read
        (other hyperparameters are ignored, as the notebooks' evaluation launchers do)."""
        parser = CoachArgumentParser(prog=os.path.basename(sys.argv[0]) or "evaluate")
        parser.add_argument("-p", "--RLCOACH_PRESET", default=self.default_preset_name())
        parser.add_argument("--evaluate_steps", type=int, default=DEFAULT_EVALUATE_STEPS)
        job_args, _ = parser.parse_known_args(arguments)
        paths = SageMakerPaths.from_env()
        args.preset = job_args.RLCOACH_PRESET
        args.framework = self.framework(os.environ.get(BACKEND_VARIABLE, "tensorflow"))
        args.checkpoint_save_dir = None
        args.checkpoint_restore_dir = str(paths.channel("checkpoint"))
        args.experiment_path = logger.experiment_path = str(paths.intermediate)
        args.evaluate = args.evaluate_steps = job_args.evaluate_steps
        args.no_summary = True
        self.hyperparameters = CoachConfigurationList()
        return args

    # ---- the preset --------------------------------------------------------------------------------------
    def path_of_main_launcher(self) -> str:
        """The folder of the script the process runs (the current directory in an interactive session)."""
        main_file = getattr(sys.modules["__main__"], "__file__", None)
        return os.path.dirname(os.path.abspath(main_file)) if main_file else os.getcwd()

    def preset_dirs(self) -> list[Path]:
        """Where presets are looked up before the shipped ones: the launcher script's folder."""
        return [Path(self.path_of_main_launcher())]

    def preset_from_name(self, preset_name: str | None) -> GraphManager:
        """``<preset folder>/<preset_name>.py:graph_manager`` (name matched ignoring case), else the shipped preset."""
        if not preset_name:
            raise PresetError(
                "No preset: pass the RLCOACH_PRESET hyperparameter, or return the preset's file name (without .py) "
                "from default_preset_name() in your launcher."
            )
        name = preset_name[:-3] if preset_name.lower().endswith(".py") else preset_name
        folders = [*self.preset_dirs(), shipped_dir("presets")]
        for folder in folders:
            path = find_in_dir(folder, name)
            if path is not None:
                print(f"Loading preset {name} from {folder}", flush=True)
                return short_dynamic_import(f"{path}:graph_manager", ignore_module_case=True)
        raise PresetError(
            f"Preset {name!r} is not in {', '.join(str(f) for f in folders[:-1])} nor among the shipped presets "
            f"({', '.join(presets_in(folders[-1]))}). Put {name}.py beside the launcher script or pass another "
            "RLCOACH_PRESET."
        )

    def get_graph_manager_from_args(self, args: argparse.Namespace) -> GraphManager:
        """The preset's graph manager with every stored hyperparameter applied (checked before anything runs)."""
        graph_manager = self.preset_from_name(args.preset)
        values = dict(self.hyperparameters.hp_dict)
        self.hyperparameters.hp_dict.clear()
        if self.save_model:
            values[RECORDED[0]] = 1
        graph_manager.record_hyperparameters(apply_hyperparameters(
            graph_manager, values, graph_manager.origin.shortcuts, graph_manager.origin.name))
        for network in graph_manager.agent_params.network_wrappers.values():
            network.framework = args.framework
        return graph_manager

    def run_graph_manager(self, graph_manager: GraphManager, args: argparse.Namespace) -> None:
        self.graph_manager = graph_manager
        super().run_graph_manager(graph_manager, args)

    def start_single_threaded(self, task_parameters: TaskParameters, graph_manager: GraphManager,
                              args: argparse.Namespace) -> None:
        if self.evaluating:
            # As SageMaker's evaluation launchers: no CSV (the task evaluates whole episodes for evaluate_steps).
            graph_manager.visualization_parameters.dump_csv = False
        graph_manager.run(task_parameters)

    # ---- entry points ------------------------------------------------------------------------------------
    def export_trained_model(self) -> None:
        """Export the trained agent (its final checkpoint's state) into the job's model folder, ``/opt/ml/model``,
        which SageMaker uploads as ``model.tar.gz``: ``model.onnx`` as the notebooks' deploy script loads it (outputs
        ``[value, mean or probabilities, (std)]``), rlframe's own model and ``rlframe-model.json``. The folder's
        ``code/`` (a handler for ``serve``) is kept; another model there is replaced."""
        if self.graph_manager is None:
            raise ExportError("save_model=1, but the launch ran no graph manager (does your launcher override "
                              "run_graph_manager without calling the base class?): nothing to export.")
        path = export_model(self.graph_manager, SageMakerPaths.from_env().model, force=True)
        checkpoint = self.graph_manager.last_checkpoint
        print(f"Model: exported {checkpoint.name if checkpoint else 'the trained agent'} to {path} (save_model=1)",
              flush=True)

    @classmethod
    def train_main(cls) -> None:
        """Train the preset with the job's hyperparameters (``sys.argv``); with ``save_model=1``, then export the
        trained model (:meth:`export_trained_model`)."""
        trainer = cls()
        trainer.launch()
        # Read again, as SageMaker's launcher does: a subclass's get_config_args may not set self.save_model.
        job_args, _ = trainer.sagemaker_argparser().parse_known_args()
        if getattr(job_args, "save_model", 0) == 1:
            run_launcher_step(trainer.export_trained_model)

    @classmethod
    def evaluate_main(cls) -> None:
        """Evaluate the checkpoint of the job's ``checkpoint`` channel (``--evaluate_steps``, default 1000)."""
        evaluator = cls()
        evaluator.evaluating = True
        evaluator.launch()


class SageMakerCoachLauncher(SageMakerCoachPresetLauncher):
    """sagemaker_rl's older launcher name; it is the preset launcher (a subclass may still override
    ``get_graph_manager_from_args`` to build its graph manager in code)."""


class _ShippedScriptLauncher(SageMakerCoachPresetLauncher):
    """The training script of a job without one of its own: presets come from the job's code folder first."""

    def preset_dirs(self) -> list[Path]:
        return [SageMakerPaths.from_env().code]


def main() -> None:
    """``python -m rlframe.integrations.sagemaker.launcher --RLCOACH_PRESET NAME [--name value ...]``."""
    _ShippedScriptLauncher.train_main()


if __name__ == "__main__":
    main()
