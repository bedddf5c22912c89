"""Grain in offline style transfer: a number for it, and the settings that remove it.

    python -m benchmarks.style_grain [--steps 300] [--out docs/style-grain.png]

EfficientNet-Lite0 (the offline network) stylises chelsea with the three offline style images
under the earlier offline preset (balanced style layers, lr 0.1, TV weight 10) and under more
total-variation weight, a lower learning rate, and the image's gradient smoothed before each step
(``style_transfer(smooth_gradient=N)``). For each run it prints
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

from benchmarks.common import machine_line, print_table, save_labelled_grid
from benchmarks.style_taps import SHAPE, run_grid
from vision_core.models.style_networks import STYLE_NETWORKS
from vision_core.progress import Progress
from vision_core.style import grain

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
    ("TV 10^4.5, smooth 3", dict(BEFORE, tv_weight=10**4.5, smooth_gradient=3)),
    ("TV 1e5", dict(BEFORE, tv_weight=1e5)),
    ("TV 1e5, smooth 2", dict(BEFORE, tv_weight=1e5, smooth_gradient=2)),
    ("TV 1e5, smooth 3", dict(BEFORE, tv_weight=1e5, smooth_gradient=3)),
)


def _grain_and_losses(style_name: str, label: str, kwargs: dict, record: Progress, content: np.ndarray,
                      style: np.ndarray) -> tuple[list[str], str]:
    label += " (shipped)" if kwargs == PRESET else ""
    m = record.metrics
    return [style_name, label, f"{grain(record.preview, content, style):.2f}", f"{m['content']:.3g}",
            f"{m['style']:.3g}"], label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per run (default: 300)")
    parser.add_argument("--out", default="docs/style-grain.png", help="where to write the picture")
    parser.add_argument("--settings", nargs="+", default=None, metavar="LABEL",
                        help="run only these settings (their labels, as printed; default: all)")
    args = parser.parse_args()
    settings = [(label, kwargs, {}) for label, kwargs in SETTINGS if args.settings is None or label in args.settings]
    print(machine_line())
    rows, grid = run_grid(settings, args.steps, _grain_and_losses)
    print(f"EfficientNet-Lite0, {args.steps} steps at {SHAPE[0]} x {SHAPE[1]}, cpu")
    print_table(rows, ["style", "setting", "grain (x the grainier source)", "content loss", "style loss"])
    save_labelled_grid(grid, SHAPE, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
