"""Example photos that load offline, with hand-placed boxes for the teaching panels.

The photos are scikit-image's bundled public-domain / CC0 images, so nothing is
downloaded. scikit-image is imported lazily: ``import vision_core`` works without it
(on a torch-only GPU box), and only loading an example needs it.

The book's 14.3 example draws a dog box and a cat box on ``catdog.jpg``; that photo
needs a download, so ``"astronaut"`` re-creates the exercise with two objects at
sensible coordinates (the astronaut and the shuttle model), in the book's corner format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

__all__ = ["ExampleImage", "EXAMPLES", "example_names", "load_example"]


@dataclass(frozen=True)
class ExampleImage:
    """An offline photo and its labelled boxes (corner format, pixels)."""

    name: str
    loader: str  # the scikit-image ``data`` function that returns the photo
    caption: str
    boxes: Tuple[Tuple[str, float, float, float, float], ...]  # (label, x1, y1, x2, y2)


EXAMPLES: Dict[str, ExampleImage] = {
    e.name: e
    for e in (
        ExampleImage(
            "astronaut",
            "astronaut",
            "Eileen Collins, NASA (public domain), 512 x 512. The book's two-box example re-created.",
            (("astronaut", 20.0, 14.0, 366.0, 512.0), ("shuttle", 352.0, 0.0, 472.0, 290.0)),
        ),
        ExampleImage(
            "chelsea",
            "chelsea",
            "Chelsea the cat, Stefan van der Walt (CC0), 451 x 300.",
            (
                ("cat", 24.0, 0.0, 400.0, 300.0),
                ("eye", 134.0, 84.0, 211.0, 149.0),
                ("eye", 292.0, 107.0, 346.0, 166.0),
                ("nose", 230.0, 222.0, 295.0, 268.0),
            ),
        ),
        ExampleImage(
            "coffee",
            "coffee",
            "A cup of espresso, Rachel Michetti (CC0), 600 x 400.",
            (
                ("cup", 172.0, 18.0, 411.0, 309.0),
                ("saucer", 76.0, 66.0, 481.0, 390.0),
                ("spoon", 324.0, 65.0, 426.0, 327.0),
            ),
        ),
    )
}


def example_names() -> Tuple[str, ...]:
    """Names accepted by :func:`load_example`."""
    return tuple(EXAMPLES)


def load_example(name: str) -> np.ndarray:
    """Load an example photo offline.

    Args:
        name (str): one of :func:`example_names`.

    Returns:
        np.ndarray[H, W, 3]: the photo, uint8 RGB.
    """
    if name not in EXAMPLES:
        raise ValueError(f"example must be one of {', '.join(EXAMPLES)}, got {name!r}")
    try:
        from skimage import data
    except ImportError as err:  # pragma: no cover - only on torch-only machines
        raise ValueError("example photos need scikit-image: pip install scikit-image") from err
    image = getattr(data, EXAMPLES[name].loader)()
    return np.ascontiguousarray(image[..., :3])
