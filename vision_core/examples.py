"""Example pictures that load offline: photos with hand-placed boxes for the teaching panels,
and style transfer's content photos and style images.

The photos are scikit-image's bundled public-domain / CC0 images, so nothing is
downloaded. scikit-image is imported lazily: ``import vision_core`` works without it
(on a torch-only GPU box), and only loading an example needs it.

The book's 14.3 example draws a dog box and a cat box on ``catdog.jpg``; that photo
needs a download, so ``"astronaut"`` re-creates the exercise with two objects at
sensible coordinates (the astronaut and the shuttle model), in the book's corner format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._checks import check_choice

__all__ = ["ExampleImage", "EXAMPLES", "example_names", "load_example", "CONTENT_PHOTOS", "STYLE_IMAGES",
           "load_content_photo", "load_style_image"]


@dataclass(frozen=True)
class ExampleImage:
    """An offline photo and its labelled boxes (corner format, pixels)."""

    name: str
    loader: str  # the scikit-image ``data`` function that returns the photo
    caption: str
    boxes: tuple[tuple[str, float, float, float, float], ...]  # (label, x1, y1, x2, y2)


# The teaching panels' photos, by name, with their boxes.
EXAMPLES: dict[str, ExampleImage] = {e.name: e for e in (
    ExampleImage("astronaut", "astronaut",
                 "Eileen Collins, NASA (public domain), 512 x 512. The book's two-box example re-created.",
                 (("astronaut", 20.0, 14.0, 366.0, 512.0), ("shuttle", 352.0, 0.0, 472.0, 290.0))),
    ExampleImage("chelsea", "chelsea", "Chelsea the cat, Stefan van der Walt (CC0), 451 x 300.",
                 (("cat", 24.0, 0.0, 400.0, 300.0), ("eye", 134.0, 84.0, 211.0, 149.0),
                  ("eye", 292.0, 107.0, 346.0, 166.0), ("nose", 230.0, 222.0, 295.0, 268.0))),
    ExampleImage("coffee", "coffee", "A cup of espresso, Rachel Michetti (CC0), 600 x 400.",
                 (("cup", 172.0, 18.0, 411.0, 309.0), ("saucer", 76.0, 66.0, 481.0, 390.0),
                  ("spoon", 324.0, 65.0, 426.0, 327.0))),
)}


def example_names() -> tuple[str, ...]:
    """Names accepted by :func:`load_example`."""
    return tuple(EXAMPLES)


def _skimage_photo(loader: str) -> np.ndarray:
    """scikit-image's bundled photo ``data.<loader>()`` as ``uint8 [H, W, 3]`` (grey photos repeated to RGB)."""
    try:
        from skimage import data
    except ImportError as err:  # pragma: no cover - only on torch-only machines
        raise ValueError("example photos need scikit-image: pip install scikit-image") from err
    image = getattr(data, loader)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def load_example(name: str) -> np.ndarray:
    """Load an example photo offline.

    Args:
        name (str): one of :func:`example_names`.

    Returns:
        np.ndarray[H, W, 3]: the photo, uint8 RGB.
    """
    check_choice(name, "example", tuple(EXAMPLES))
    return _skimage_photo(EXAMPLES[name].loader)


# --- style transfer: content photos and style images ------------------------------------------

# Content photos: scikit-image's bundled ones (name -> (data function, caption)).
CONTENT_PHOTOS: dict[str, tuple[str, str]] = {
    "chelsea": ("chelsea", "Chelsea the cat, Stefan van der Walt (CC0)"),
    "astronaut": ("astronaut", "Eileen Collins, NASA (public domain)"),
    "coffee": ("coffee", "A cup of espresso, Rachel Michetti (CC0)"),
    "rocket": ("rocket", "A Falcon 9 launch, SpaceX (CC0)"),
}

# Style images: patterns drawn here (seeded, so every machine gets the same pixels) and two
# bundled photos with strong texture.
STYLE_IMAGES: dict[str, str] = {
    "swirl": "bands of blue, ochre and orange bent by a smooth random warp (drawn here)",
    "mosaic": "Voronoi tiles in warm colours with dark grout (drawn here)",
    "waves": "layered blue and white crests, a nod to woodblock seas (drawn here)",
    "hubble": "Hubble deep field, NASA (public domain)",
    "stain": "immunohistochemistry stain, scikit-image (CC0)",
}

_STYLE_PHOTOS = {"hubble": "hubble_deep_field", "stain": "immunohistochemistry"}
_STYLE_SIZE = (384, 512)  # (h, w) of the drawn patterns


def load_content_photo(name: str) -> np.ndarray:
    """A content photo for style transfer, offline: ``uint8 [H, W, 3]``; ``name`` in :data:`CONTENT_PHOTOS`."""
    check_choice(name, "content photo", tuple(CONTENT_PHOTOS))
    return _skimage_photo(CONTENT_PHOTOS[name][0])


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Bicubic-upsampled random grid in [-1, 1]: ``[h, w]`` float32."""
    from PIL import Image

    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC))


def _palette(colours: Sequence[tuple[int, int, int]], t: np.ndarray) -> np.ndarray:
    """Map ``t`` in [0, 1] (``[h, w]``) through piecewise-linear RGB ``colours``: ``uint8 [h, w, 3]``."""
    colours = np.asarray(colours, dtype=np.float32)
    stops = np.linspace(0, 1, len(colours))
    rgb = np.stack([np.interp(t, stops, colours[:, c]) for c in range(3)], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _draw_swirl(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
    warp_x, warp_y = _smooth_noise(rng, h, w, 5), _smooth_noise(rng, h, w, 5)
    t = np.sin(14 * (x + 0.35 * warp_x) + 9 * np.sin(6 * (y + 0.35 * warp_y)))
    return _palette([(18, 40, 110), (40, 90, 170), (235, 200, 90), (225, 120, 40), (250, 235, 170)], (t + 1) / 2)


def _draw_mosaic(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    points = rng.uniform(0, 1, (70, 2)).astype(np.float32) * np.array([h, w], dtype=np.float32)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot(y[..., None] - points[:, 0], x[..., None] - points[:, 1])  # [h, w, P]
    nearest = np.partition(d, 1, axis=-1)
    cell = d.argmin(axis=-1)
    colours = _palette([(120, 30, 20), (200, 80, 30), (235, 170, 60), (60, 110, 120), (240, 225, 190)],
                       rng.uniform(0, 1, len(points)))
    image = colours[cell].astype(np.float32) * (0.85 + 0.15 * _smooth_noise(rng, h, w, 24)[..., None])
    grout = (nearest[..., 1] - nearest[..., 0]) < 3.0
    image[grout] = (35, 25, 20)
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw_waves(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / h
    phase = 2.5 * _smooth_noise(rng, h, w, 4)
    crest = np.sin(40 * (y + 0.05 * np.sin(9 * x + phase)))  # stacked bands, gently bent
    foam = np.clip((crest - 0.75) * 4, 0, 1) * (0.5 + 0.5 * np.sin(60 * x + 20 * y))
    t = np.clip(0.45 + 0.35 * crest + 0.6 * foam, 0, 1)
    return _palette([(10, 30, 70), (30, 70, 140), (90, 140, 190), (235, 240, 235)], t)


def load_style_image(name: str) -> np.ndarray:
    """A style image, offline: ``uint8 [H, W, 3]``; ``name`` in :data:`STYLE_IMAGES`.

    The drawn patterns use a fixed seed, so they are the same on every machine.
    """
    check_choice(name, "style image", tuple(STYLE_IMAGES))
    if name in _STYLE_PHOTOS:
        return _skimage_photo(_STYLE_PHOTOS[name])
    draw = {"swirl": _draw_swirl, "mosaic": _draw_mosaic, "waves": _draw_waves}[name]
    return draw(np.random.default_rng(list(STYLE_IMAGES).index(name)), *_STYLE_SIZE)
