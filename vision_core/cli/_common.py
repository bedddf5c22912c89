"""What every subcommand of ``python -m vision_core`` shares: option types, common options, a counter bar.

Ranges are checked here, where input enters: argparse turns an option type's
``ArgumentTypeError`` into ``"argument --x: message"`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..device import DEVICE_CHOICES

__all__ = ["PROG", "MAX_SEED", "int_in", "float_in", "add_weights_dir", "add_device", "add_image_command",
           "add_seed", "CountBar", "resolve_or_exit", "device_and_image"]

PROG = "python -m vision_core"
MAX_SEED = 2**31 - 1


# --- option types -----------------------------------------------------------------------------

def int_in(name: str, lo: int, hi: int) -> Callable[[str], int]:
    """An option type: an integer in ``[lo, hi]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{lo}, {hi}], got {text!r}")
        return value
    return parse


def float_in(name: str, lo: float, hi: float, lo_open: bool = False) -> Callable[[str], float]:
    """An option type: a number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); NaN is refused."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        ok = (lo < value if lo_open else lo <= value) and value <= hi  # False for NaN
        if not ok:
            raise argparse.ArgumentTypeError(
                f"{name} must be a number in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {text!r}")
        return value
    return parse


# --- common options ---------------------------------------------------------------------------

def add_weights_dir(parser: argparse.ArgumentParser, help_text: str = "weights registry folder holding "
                    "manifest.json (default: the project's pretrained/)") -> None:
    """``--weights-dir DIR``: the registry folder."""
    parser.add_argument("--weights-dir", type=Path, default=None, metavar="DIR", help=help_text)


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda|mps``."""
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="where to run: auto picks cuda > mps > cpu (default: auto)")


def add_image_command(commands: argparse._SubParsersAction, name: str, help_text: str, description: str,
                      weights: str) -> argparse.ArgumentParser:
    """A subcommand running registered weights on an image: ``IMAGE``, ``--weights``, ``--weights-dir``,
    ``--device``."""
    parser = commands.add_parser(name, help=help_text, description=description)
    parser.add_argument("image", type=Path, metavar="IMAGE", help="a PNG, JPEG, GIF or WebP file")
    parser.add_argument("--weights", default=weights, metavar="NAME", help=f"registry name (default: {weights})")
    add_weights_dir(parser)
    add_device(parser)
    return parser


def add_seed(parser: argparse.ArgumentParser, flag: str = "--seed", help_text: str = "(default: 0)") -> None:
    """``--seed N`` (or another flag) in ``[0, 2**31 - 1]``, default 0."""
    parser.add_argument(flag, type=int_in(flag.lstrip("-").replace("-", " "), 0, MAX_SEED), default=0,
                        help=help_text)


# --- while a command runs ---------------------------------------------------------------------

class CountBar:
    """A ``progress(done, total)`` callback drawing a throttled counter on stderr."""

    def __init__(self, label: str):
        self.label, self.shown = label, 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.shown >= 0.2 or done == total:
            self.shown = now
            sys.stderr.write(f"\r{self.label} {done}/{total}")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def resolve_or_exit(choice: str, parser: argparse.ArgumentParser):
    """``--device``'s torch.device; a device this machine lacks exits with status 2."""
    from ..device import resolve_device

    try:
        return resolve_device(choice)
    except ValueError as err:
        parser.error(str(err))


def device_and_image(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """``--device`` and the ``IMAGE`` argument as (torch.device, uint8 Tensor[3, H, W]); bad ones exit 2."""
    from torchvision.io import ImageReadMode, decode_image

    device = resolve_or_exit(args.device, parser)
    if not args.image.is_file():
        parser.error(f"IMAGE {str(args.image)!r} is not a file")
    try:
        image = decode_image(str(args.image), mode=ImageReadMode.RGB)
    except RuntimeError as err:
        parser.error(f"IMAGE {str(args.image)!r} could not be decoded as PNG, JPEG, GIF or WebP: {err}")
    return device, image
