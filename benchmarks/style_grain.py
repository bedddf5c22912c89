"""Grain in offline style transfer: a number for it, and the settings that remove it.

    python -m benchmarks.style_grain [--steps 300] [--out docs/style-grain.png]

EfficientNet-Lite0 (the offline network) stylises chelsea with the three offline style images
under the earlier offline preset (balanced style layers, lr 0.1, TV weight 10) and under more
total-variation weight and a lower learning rate. For each run it prints
:func:`vision_core.style.grain` (the result's pixel-scale energy over the grainier source's: the
confetti-like speckle that none of the style images has shows as a ratio well above 1) and the
final content and style losses (the style must stay: a lower grain bought with a much higher style
loss is the photo coming back, not a cleaner style). The runs are deterministic on a CPU; their
speed is benchmarks/style.py's business. It writes one picture: a row per style, the content and
style, then a column per setting, the shipped preset (``STYLE_NETWORKS["efficientnet_lite0"].preset``)
marked.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from benchmarks.common import machine_line, print_table, save_labelled_grid
from vision_core import weights
from vision_core.examples import load_content_photo, load_style_image
from vision_core.models.style_networks import (
    LITE0_WEIGHTS,
    STYLE_NETWORKS,
    efficientnet_lite0_taps,
)
from vision_core.style import grain, style_transfer

SHAPE = (192, 288)
PRESET = {k: v for k, v in STYLE_NETWORKS["efficientnet_lite0"].preset.items() if k not in ("steps", "image_shape")}
BEFORE = dict(content_weight=1.0, style_weight=1e4, tv_weight=10.0, lr=0.1, lr_decay_epoch=50,
              balance_style_layers=True)  # the offline preset until the grain was measured
SETTINGS = (
    ("before: TV 10, lr 0.1", BEFORE),
    ("TV 100", dict(BEFORE, tv_weight=100.0)),
    ("TV 1000", dict(BEFORE, tv_weight=1000.0)),
    ("TV 1000, lr 0.05", dict(BEFORE, tv_weight=1000.0, lr=0.05)),
    ("TV 3000", dict(BEFORE, tv_weight=3000.0)),
    ("TV 10000", dict(BEFORE, tv_weight=1e4)),
    ("TV 30000", dict(BEFORE, tv_weight=3e4)),
    ("TV 10^4.5", dict(BEFORE, tv_weight=10**4.5)),  # on the panel slider's 0.25 steps of log10
)
STYLES = ("swirl", "mosaic", "waves")


def _tile(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((SHAPE[1], SHAPE[0]), Image.BICUBIC))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per run (default: 300)")
    parser.add_argument("--out", default="docs/style-grain.png", help="where to write the picture")
    parser.add_argument("--settings", nargs="+", default=None, metavar="LABEL",
                        help="run only these settings (their labels, as printed; default: all)")
    args = parser.parse_args()
    settings = [s for s in SETTINGS if args.settings is None or s[0] in args.settings]
    state = weights.load_state_dict(LITE0_WEIGHTS)
    print(machine_line())
    content = load_content_photo("chelsea")
    rows, grid = [], []
    for style_name in STYLES:
        style = load_style_image(style_name)
        tiles = [("content: chelsea", _tile(content)), (f"style: {style_name}", _tile(style))]
        for label, kwargs in settings:
            taps = efficientnet_lite0_taps(state)
            for record in style_transfer(content, style, taps, steps=args.steps, image_shape=SHAPE, device="cpu",
                                         frame_interval=3600, **kwargs):
                pass
            m = record.metrics
            shipped = " (shipped)" if kwargs == PRESET else ""
            rows.append([style_name, label + shipped, f"{grain(record.preview, content, style):.2f}",
                         f"{m['content']:.3g}", f"{m['style']:.3g}"])
            tiles.append((label + shipped, record.preview))
        grid.append(tiles)
    print(f"EfficientNet-Lite0, {args.steps} steps at {SHAPE[0]} x {SHAPE[1]}, cpu")
    print_table(rows, ["style", "setting", "grain (x the grainier source)", "content loss", "style loss"])
    save_labelled_grid(grid, SHAPE, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
