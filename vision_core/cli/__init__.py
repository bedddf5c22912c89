"""The command line, ``python -m vision_core``: the parser and :func:`main`; one module per topic.

Subcommands (each with ``--help``), by module::

    cli/ssd.py      train ssd [--epochs 20] [--batch-size 32] [--lr 0.2] [--optimizer sgd|adamw] [--seed 0]
                              [--data-seed 0] [--data DIR] [--init NAME] [--device auto|cpu|cuda|mps]
                              [--save/--no-save] [--weights-dir DIR]
                    detect IMAGE [--threshold 0.9] [--weights tiny_ssd_bananas] [--weights-dir DIR] [--device ...]
    cli/fcn.py      train fcn [--epochs 5] [--batch-size 32] [--lr 0.001] [--optimizer sgd|adamw] [--crop 320 480]
                              [--voc-dir DIR] [--backbone auto|none|PATH] [--init NAME] [--save NAME]
                              [--device auto|cpu|cuda] [--weights-dir DIR] [--report-dir DIR]
                              (also under torchrun: torchrun --nproc_per_node=N -m vision_core train fcn ...)
                    segment IMAGE [--weights fcn_resnet18_synthetic] [--out OVERLAY.png] [--device ...]
    cli/weights.py  weights list [--weights-dir DIR]
                    weights verify [NAME] [--weights-dir DIR]
                    weights fetch vgg19|resnet18|fcn_resnet50   (torchvision's files, into the torch cache)
    cli/style.py    stylize CONTENT STYLE --out PNG [--network auto|vgg19|efficientnet_lite0] [--steps N] [--lr X]
                            [--content-weight X] [--style-weight X] [--tv-weight X] [--height H]
                            [--balance/--no-balance]   (CONTENT, STYLE: image files or offline examples' names)
    cli/data.py     data bananas [--out DIR] [--seed 0]
                    data voc --out DIR                  (downloads Pascal VOC 2012, 2 GB, checksum-verified)
                    data voc-synthetic [--seed 0]       (the offline segmentation set, into the cache)

Ranges are checked where input enters, by the options' types (:mod:`._common`); a bad value exits
with status 2 and a message naming the option and its range. Long jobs draw a progress bar on
stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import data, fcn, ssd, style, weights
from ._common import PROG

__all__ = ["PROG", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m vision_core`` parser with all subcommands."""
    parser = argparse.ArgumentParser(prog=PROG, description="Vision Lab's library from the command line: "
                                     "train and run the book's TinySSD, manage weights and data.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = commands.add_parser("train", help="train a model", description="Train a model.")
    models = train.add_subparsers(dest="model", metavar="MODEL", required=True)
    ssd.add_train_parser(models)
    fcn.add_train_parser(models)
    fcn.add_segment_parser(commands)
    ssd.add_detect_parser(commands)
    weights.add_parsers(commands)
    style.add_parsers(commands)
    data.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the subcommand; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # as typed: `train fcn` records its options in the manifest
    try:
        return args.func(args, parser)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing saved", file=sys.stderr)
        return 130
