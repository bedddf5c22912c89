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

from .._images import MAX_ASPECT_RATIO, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE
from ..device import DEVICE_CHOICES

__all__ = ["PROG", "MAX_SEED", "BAD_ARGUMENTS", "FAILED", "Parser", "CommandError", "one_line", "int_in", "float_in",
           "add_weights_dir", "add_device", "add_image_command", "add_seed", "CountBar", "resolve_or_exit",
           "device_and_image", "read_image_or_exit", "check_out_file", "check_out_folder", "save_picture"]

PROG = "python -m vision_core"
MAX_SEED = 2**31 - 1
BAD_ARGUMENTS = 2  # exit status: the command line asked for something that cannot be done; nothing ran
FAILED = 1  # exit status: the arguments were fine, the work failed (missing weights, a full disk, ...)


# --- errors: one line on stderr and an exit status ----------------------------------------------

def one_line(text: object) -> str:
    """``text`` with its whitespace (newlines included) collapsed, so an error is one line on stderr."""
    return " ".join(str(text).split())


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (the usage is left to ``--help``), status 2."""

    def error(self, message: str):
        # argparse's own complaints (syntax) point to --help; the commands' own say what to do.
        syntax = message.startswith(("argument ", "the following arguments", "unrecognized arguments"))
        hint = " (see --help)" if syntax else ""
        self.exit(BAD_ARGUMENTS, f"{self.prog}: error: {one_line(message)}{hint}\n")


class CommandError(Exception):
    """A command's clean failure: :func:`vision_core.cli.main` prints ``message`` as one line and
    exits with ``status`` (:data:`BAD_ARGUMENTS` or :data:`FAILED`)."""

    def __init__(self, message: str, status: int = BAD_ARGUMENTS):
        super().__init__(one_line(message))
        self.status = status


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
    parser.add_argument("image", type=Path, metavar="IMAGE", help="a PNG, JPEG, GIF or WebP file (of an animated "
                        f"one, the first frame); at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, {MAX_IMAGE_SIDE} px "
                        f"a side and {MAX_ASPECT_RATIO}:1 between the sides")
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


def read_image_or_exit(path: Path, what: str, parser: argparse.ArgumentParser):
    """An image file's first frame as ``uint8 [H, W, 3]``, within :mod:`vision_core._images`' limits
    (checked on the header, before decoding); anything else exits 2 naming ``what`` and the problem."""
    from .._images import ImageFileError, read_image_file

    try:
        return read_image_file(path, what)
    except ImageFileError as err:
        parser.error(str(err))


def device_and_image(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """``--device`` and the ``IMAGE`` argument as (torch.device, uint8 Tensor[3, H, W]); bad ones exit 2.

    An animated file gives its first frame (the only one decoded)."""
    import torch

    device = resolve_or_exit(args.device, parser)
    image = read_image_or_exit(args.image, "IMAGE", parser)
    return device, torch.from_numpy(image).permute(2, 0, 1).contiguous()


def check_out_file(path: Path, flag: str, parser: argparse.ArgumentParser) -> None:
    """Exit 2, before any work, unless ``path`` can be written as a file: its folder exists, it is not a
    folder itself, and a file can be created there (tried: permissions alone say little to root)."""
    if path.is_dir():
        parser.error(f"{flag} {str(path)!r} is a folder; give a file name, e.g. {path / 'out.png'}")
    if not path.parent.is_dir():
        parser.error(f"{flag} {str(path)!r}: the folder {str(path.parent)!r} does not exist")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as err:
        parser.error(f"{flag} {str(path)!r} cannot be written: {err.strerror or err}")
    if not existed:
        path.unlink(missing_ok=True)  # only the probe: the result is written when the work is done


def check_out_folder(path: Path, flag: str, parser: argparse.ArgumentParser) -> None:
    """Exit 2, before any work, unless ``path`` is (or can be made) a folder that files can be written in."""
    if path.exists() and not path.is_dir():
        parser.error(f"{flag} {str(path)!r} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".vision_lab_write_test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        parser.error(f"{flag} {str(path)!r} cannot be written: {err.strerror or err}")


def save_picture(picture, path: Path) -> None:
    """Write ``uint8 [H, W, 3]`` to ``path``, in the format its extension names (PNG when it names
    none PIL writes); a failure now, after the work, is a :class:`CommandError` with status 1."""
    from PIL import Image

    known = path.suffix.lower() in Image.registered_extensions()
    try:
        Image.fromarray(picture).save(path, format=None if known else "PNG")
    except (OSError, ValueError, KeyError) as err:
        raise CommandError(f"{str(path)!r} could not be written: {err}", FAILED) from None
