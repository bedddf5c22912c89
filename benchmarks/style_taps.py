"""How the offline style network's settings were chosen: the same photo and styles, side by side.

    python -m benchmarks.style_taps [--steps 300] [--out docs/style-offline-comparison.png]

EfficientNet-Lite0 (the offline ImageNet network) stylises chelsea with three of the offline
style images under several settings: the book's raw weights and lr, balanced style layers,
other taps, more TV, lower learning rates. It prints a table of the final losses (the runs are
deterministic on the CPU; their speed is benchmarks/style.py's business) and writes one picture: a row per style, a
column per setting. The last column was the offline preset until benchmarks/style_grain.py
measured its grain and raised its TV weight.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from benchmarks.common import machine_line, print_table, save_labelled_grid
from vision_core import weights
from vision_core.examples import load_content_photo, load_style_image
from vision_core.models.style_networks import LITE0_WEIGHTS, efficientnet_lite0_taps
from vision_core.progress import Progress
from vision_core.style import style_transfer

SHAPE = (192, 288)
BOOK = dict(content_weight=1.0, style_weight=1e4, tv_weight=10.0, lr=0.3)
# (label, style_transfer arguments, efficientnet_lite0_taps arguments)
SETTINGS = (
    ("book's weights, lr 0.3", dict(BOOK), {}),
    ("balanced layers", dict(BOOK, balance_style_layers=True), {}),
    ("balanced, no stem tap", dict(BOOK, balance_style_layers=True), dict(style_layers=(1, 3, 5, 11))),
    ("balanced, content block 4", dict(BOOK, balance_style_layers=True), dict(content_layers=(5,))),
    ("balanced, TV 1e4", dict(BOOK, balance_style_layers=True, tv_weight=1e4), {}),
    ("balanced, lr 0.05, TV 1e3", dict(BOOK, balance_style_layers=True, lr=0.05, tv_weight=1e3), {}),
    ("balanced, lr 0.1 (then shipped)", dict(BOOK, balance_style_layers=True, lr=0.1, lr_decay_epoch=50), {}),
)
STYLES = ("swirl", "mosaic", "waves")

# describe(style name, setting label, style_transfer arguments, last record, content, style)
# -> (the table's row, the tile's label)
Describe = Callable[[str, str, dict, Progress, np.ndarray, np.ndarray], tuple[list[str], str]]


def _tile(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((SHAPE[1], SHAPE[0]), Image.BICUBIC))


def run_grid(settings: Sequence[tuple[str, dict, dict]], steps: int,
             describe: Describe) -> tuple[list[list[str]], list[list[tuple[str, np.ndarray]]]]:
    """Stylise chelsea with each of :data:`STYLES` under each setting: EfficientNet-Lite0, ``steps``
    steps at :data:`SHAPE`, on the CPU (deterministic there).

    Args:
        settings: ``(label, style_transfer arguments, efficientnet_lite0_taps arguments)`` triples.
        steps (int): steps per run.
        describe: turns each finished run into its table row and its tile's label.

    Returns:
        (rows, grid): the table's rows, and per style the content, the style and a tile per setting,
        as :func:`benchmarks.common.save_labelled_grid` takes them.
    """
    state = weights.load_state_dict(LITE0_WEIGHTS)
    content = load_content_photo("chelsea")
    rows, grid = [], []
    for style_name in STYLES:
        style = load_style_image(style_name)
        tiles = [("content: chelsea", _tile(content)), (f"style: {style_name}", _tile(style))]
        for label, kwargs, tap_kwargs in settings:
            taps = efficientnet_lite0_taps(state, **tap_kwargs)
            for record in style_transfer(content, style, taps, steps=steps, image_shape=SHAPE, device="cpu",
                                         frame_interval=3600, **kwargs):
                pass
            row, tile_label = describe(style_name, label, kwargs, record, content, style)
            rows.append(row)
            tiles.append((tile_label, record.preview))
        grid.append(tiles)
    return rows, grid


def _losses(style_name: str, label: str, kwargs: dict, record: Progress, content: np.ndarray,
            style: np.ndarray) -> tuple[list[str], str]:
    m = record.metrics
    return [style_name, label, f"{m['content']:.3g}", f"{m['style']:.3g}", f"{m['tv']:.3g}"], label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per run (default: 300)")
    parser.add_argument("--out", default="docs/style-offline-comparison.png", help="where to write the picture")
    args = parser.parse_args()
    print(machine_line())  # the losses are deterministic on a CPU, but name the machine they came from
    rows, grid = run_grid(SETTINGS, args.steps, _losses)
    print(f"EfficientNet-Lite0, {args.steps} steps at {SHAPE[0]} x {SHAPE[1]}, cpu")
    print_table(rows, ["style", "setting", "content loss", "style loss", "TV loss"])
    save_labelled_grid(grid, SHAPE, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
