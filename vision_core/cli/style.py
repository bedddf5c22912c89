"""``python -m vision_core stylize CONTENT STYLE``: neural style transfer of a photo (d2l 14.12)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ._common import (FAILED, CommandError, add_device, add_seed, check_out_file, float_in, int_in,
                      read_image_or_exit, resolve_or_exit, save_picture)

__all__ = ["add_parsers"]


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """``stylize CONTENT STYLE --out PNG``."""
    stylize = commands.add_parser("stylize", help="neural style transfer of a photo (d2l 14.12)",
                                  description="Synthesise an image with CONTENT's content and STYLE's style. Options "
                                  "left out take the network's preset (VGG-19: the book's settings).")
    stylize.add_argument("content", metavar="CONTENT", help="an image file, or an offline photo: "
                         "chelsea, astronaut, coffee, rocket")
    stylize.add_argument("style", metavar="STYLE", help="an image file, or an offline style: "
                         "swirl, mosaic, waves, hubble, stain")
    stylize.add_argument("--out", type=Path, required=True, metavar="PNG",
                         help="where to write the result (its folder must exist; PNG unless the extension names "
                         "another format)")
    stylize.add_argument("--network", choices=("auto", "vgg19", "efficientnet_lite0"), default="auto",
                         help="feature network (default: auto = VGG-19 if its file is here, else EfficientNet-Lite0)")
    stylize.add_argument("--steps", type=int_in("steps", 1, 10000), default=None, help="1..10000")
    stylize.add_argument("--lr", type=float_in("lr", 0.0, 10.0, lo_open=True), default=None, help="(0, 10]")
    for name in ("content", "style", "tv"):
        stylize.add_argument(f"--{name}-weight", type=float_in(f"{name} weight", 0.0, 1e12, lo_open=True),
                             default=None, help="(0, 1e12]")
    stylize.add_argument("--height", type=int_in("height", 16, 2048), default=None,
                         help="16..2048; the width follows CONTENT's aspect ratio")
    stylize.add_argument("--balance", action=argparse.BooleanOptionalAction, default=None,
                         help="balance the style layers' starting losses")
    stylize.add_argument("--smooth-gradient", type=int_in("smooth gradient", 0, 16), default=None, metavar="N",
                         help="0..16 passes of a 3 x 3 binomial blur over the image's gradient before each step "
                         "(0: the book's raw gradient)")
    add_seed(stylize)
    add_device(stylize)
    stylize.set_defaults(func=_cmd_stylize)


def _read_picture(text: str, examples: Sequence[str], load: Callable[[str], np.ndarray], what: str,
                  parser: argparse.ArgumentParser) -> np.ndarray:
    """An image file (its first frame, within :mod:`vision_core._images`' limits), or an offline example
    by name, as ``uint8 [H, W, 3]``; anything else exits 2."""
    path = Path(text)
    if text in examples and not path.exists():
        return load(text)
    if path.exists():
        return read_image_or_exit(path, what, parser)
    parser.error(f"{what} {text!r} is neither an image file nor one of: {', '.join(examples)}")


def _cmd_stylize(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:

    from ..device import describe_device
    from ..examples import CONTENT_PHOTOS, STYLE_IMAGES, load_content_photo, load_style_image
    from ..progress import run_with_bar
    from ..models.style_networks import load_style_network
    from ..style import style_transfer
    from ..weights import WeightsError

    device = resolve_or_exit(args.device, parser)
    check_out_file(args.out, "--out", parser)
    content = _read_picture(args.content, CONTENT_PHOTOS, load_content_photo, "CONTENT", parser)
    style = _read_picture(args.style, STYLE_IMAGES, load_style_image, "STYLE", parser)
    try:
        taps, spec = load_style_network(args.network)
    except WeightsError as err:
        raise CommandError(f"stylize: {err}", FAILED) from None
    settings = dict(spec.preset)
    for key, value in (("steps", args.steps), ("lr", args.lr), ("content_weight", args.content_weight),
                       ("style_weight", args.style_weight), ("tv_weight", args.tv_weight),
                       ("balance_style_layers", args.balance), ("smooth_gradient", args.smooth_gradient)):
        if value is not None:
            settings[key] = value
    height = args.height or settings["image_shape"][0]
    h, w = content.shape[:2]
    settings["image_shape"] = (height, max(16, min(2048, round(height * w / h))))
    print(f"network: {spec.label}; {settings['steps']} steps at {settings['image_shape'][0]} x "
          f"{settings['image_shape'][1]}; device: {describe_device(device)}", file=sys.stderr)
    try:
        last = run_with_bar(style_transfer(content, style, taps, device=device, seed=args.seed, **settings))
    except ValueError as err:
        parser.error(str(err))
    save_picture(last.preview, args.out)
    print(f"{last.message}; wrote {args.out}")
    return 0 if last.message.startswith("done") else 1
