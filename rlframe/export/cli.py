"""``rlframe-export CHECKPOINT_DIR -o DIR``: a checkpoint's policy as a model directory (see :mod:`rlframe.export`).

Mistakes (a missing, empty or incomplete checkpoint directory, a preset that cannot be found, an output folder that
holds something else) print one line starting with ``error:`` and exit with status 2; nothing is written then.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from rlframe.cli import hyperparameter_pairs, run_cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlframe-export", allow_abbrev=False,
        description="Export the policy of a checkpoint directory (the newest complete checkpoint) as a model "
        "directory: model.onnx, rlframe's MXNet symbol and parameters, and rlframe-model.json. Extra '--name value' "
        "pairs are hyperparameters, as rlframe-train takes them, applied on top of those the run recorded.",
    )
    parser.add_argument("checkpoint_dir", metavar="CHECKPOINT_DIR",
                        help="a checkpoint directory (or the experiment folder that holds checkpoint/)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="the model directory to write")
    parser.add_argument("-p", "--preset", help="the preset the checkpoint was trained with (default: the one the "
                        "checkpoint recorded): a name, path.py or path.py:variable")
    parser.add_argument("-cp", "--custom-parameter", "--custom_parameter", dest="custom_parameter", default="",
                        help="Coach overrides: \"key=value;key=value\" on the graph manager")
    parser.add_argument("--force", action="store_true", help="replace the rlframe model DIR already holds")
    return parser


def _export(argv: Sequence[str] | None) -> int:
    from rlframe.export.checkpoint import export_checkpoint
    from rlframe.export.layout import METADATA

    args, extra = _parser().parse_known_args(argv)
    path = export_checkpoint(args.checkpoint_dir, args.output, preset=args.preset,
                             hyperparameters=hyperparameter_pairs(extra), custom_parameters=args.custom_parameter,
                             force=args.force)
    metadata = json.loads((path / METADATA).read_text(encoding="utf-8"))
    checkpoint = metadata["checkpoint"]
    print(f"Exported {checkpoint['name']} of {checkpoint['directory']} ({metadata['agent']}, preset "
          f"{metadata['preset']['name']}) to {path}")
    print(f"Outputs of model.onnx and policy-symbol.json: {', '.join(o['name'] for o in metadata['outputs'])}; "
          f"input '{metadata['input_name']}' {['batch', *metadata['observation']['shape']]}, raw observations")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rlframe-export``."""
    return run_cli(_export, argv)


if __name__ == "__main__":
    sys.exit(main())
