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
    cli/fetch.py    fetch bananas|voc2012|resnet18|fcn_resnet50|vgg19|all ...   (the book's files, resumable)

Ranges are checked where input enters, by the options' types (:mod:`._common`); files, folders
and images are checked before any work starts. Every error is one line on stderr, no traceback:
exit status 2 for bad arguments (nothing ran), 1 for work that failed (missing weights, a full
disk, out of memory); ``VISION_LAB_TRACEBACK=1`` shows the traceback of an unexpected error.
Long jobs draw a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import data, fcn, fetch, ssd, style, weights
from .._checks import ArgumentError
from ._common import BAD_ARGUMENTS, FAILED, PROG, CommandError, Parser, one_line

__all__ = ["PROG", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m vision_core`` parser with all subcommands."""
    parser = Parser(prog=PROG, description="Vision Lab's library from the command line: "
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
    fetch.add_parsers(commands)
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
    except CommandError as err:
        return _fail(str(err), err.status)
    except ArgumentError as err:  # the library refused a value that came from the command line
        return _fail(str(err), BAD_ARGUMENTS)
    except MemoryError:
        return _fail("out of memory: try a smaller image, batch or size", FAILED)
    except Exception as err:  # the last resort: one line, not a traceback, unless asked for
        if os.environ.get("VISION_LAB_TRACEBACK"):
            raise
        if "out of memory" in str(err) or "can't allocate memory" in str(err):
            return _fail("out of memory: try a smaller image, batch or size", FAILED)
        return _fail(f"{type(err).__name__}: {err} (VISION_LAB_TRACEBACK=1 shows where)", FAILED)


def _fail(message: str, status: int) -> int:
    """Print ``message`` as one line on stderr; return ``status``."""
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    return status
