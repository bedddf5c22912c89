"""An offline stand-in for Pascal VOC 2012 segmentation: textured shapes, written in VOC's layout.

:func:`generate_voc_synthetic` writes a folder that :func:`~vision_core.data.voc.read_voc_images`
and the book's own reader read unchanged::

    root/
      ImageSets/Segmentation/train.txt, val.txt   one image name a line
      JPEGImages/{split}_{index:06d}.jpg           the images (quality 95, no chroma subsampling)
      SegmentationClass/{split}_{index:06d}.png    palette PNGs with VOC's colours

Each image holds 1 to 4 antialiased shapes on a desaturated crop of scikit-image's bundled
photos or a procedural texture; each shape is labelled with one VOC class (see
:data:`SYNTH_CLASSES`), so one 21-class model and one legend serve both data sets.
:func:`synthetic_voc_dir` keeps one generated copy per seed in the cache folder. scikit-image
is imported lazily; without it every background is procedural (the labels do not change).
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .._checks import check_int
from . import _synth
from ._synth import PathLike, ProgressCallback, smoothstep
from .voc import _PALETTE, _has_layout

__all__ = ["SYNTH_CLASSES", "generate_voc_synthetic", "synthetic_voc_dir"]

# Synthetic objects: (VOC index, VOC name, what is drawn). Keeping VOC's indices means one
# 21-class model and one legend serve both data sets; the shapes only loosely suggest the names.
# Only the shape names the class: every object gets a random hue and one of five textures
# (shaded, striped, glossy, mottled, framed), so that a network cannot label by colour.
SYNTH_CLASSES = (
    (0, "background", "desaturated crops of scikit-image photos, or gradients, clouds, stripes, checkers"),
    (3, "bird", "crescent, half moon to thin sickle"),
    (4, "boat", "triangle, equilateral to long and narrow"),
    (5, "bottle", "capsule (stadium), slim to stout"),
    (16, "potted plant", "disc, round or slightly oval"),
    (20, "tv/monitor", "rectangle, square to wide, sharp or rounded corners"),
)
# Part of the cache folder's name: bump it whenever the generator draws different images for
# the same seed, so that nobody trains on a stale cache.
GENERATOR_VERSION = 2

_DEFAULTS = {"num_train": 600, "num_val": 100, "height": 320, "width": 480}

# A shape: (rng, u, v, radius) -> signed distance in pixels, negative inside. (u, v) are
# pixel-centre coordinates in the object's own rotated frame, origin at its centre; `radius` is
# half the object's extent. Textures live in that frame so they turn with the shape.
_Shape = Callable[[np.random.Generator, np.ndarray, np.ndarray, float], np.ndarray]


def _check_args(seed: int, num_train: int, num_val: int, height: int, width: int) -> tuple[int, ...]:
    return (check_int(seed, "seed", 0), check_int(num_train, "num_train", 1), check_int(num_val, "num_val", 1),
            check_int(height, "height", 32, 4096), check_int(width, "width", 32, 4096))


# --- drawing --------------------------------------------------------------------------------

def _photo_background(rng: np.random.Generator, photo: Image.Image, height: int, width: int) -> np.ndarray:
    pw, ph = photo.size
    aspect = width / height * rng.uniform(0.85, 1.15)
    ch = rng.uniform(0.35, 1.0) * min(ph, pw / aspect)
    return _synth.photo_background(rng, photo, (ch * aspect, ch), height, width)


def _procedural_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    angle = rng.uniform(0.0, 2.0 * math.pi)  # before the kind: the order the data set was first drawn in
    return _synth.procedural_background(rng, int(rng.integers(4)), angle, height, width)


def _background(rng: np.random.Generator, photos: Sequence[Image.Image], height: int, width: int) -> np.ndarray:
    """``np.ndarray[height, width, 3]`` float32 in 0..1."""
    photo = _synth.pick_photo(rng, photos)
    if photo is None:
        image = _procedural_background(rng, height, width)
    else:
        image = _photo_background(rng, photo, height, width)
    # Tone the colours down: objects are saturated, backgrounds less so, which (with shape)
    # keeps every class learnable by a small FCN even where a photo shares an object's hue.
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    image = grey[..., None] + (image - grey[..., None]) * rng.uniform(0.25, 0.6)
    grain = rng.normal(0.0, rng.uniform(0.005, 0.02), image.shape).astype(np.float32)
    return np.clip(image + grain, 0.0, 1.0).astype(np.float32)


def _crescent(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Bird: a crescent, from a thick half moon to a thin sickle."""
    inner = radius * rng.uniform(0.72, 0.92)
    shift = radius * rng.uniform(0.32, 0.6)
    return np.maximum(np.hypot(u, v) - radius, inner - np.hypot(u - shift, v))


def _triangle(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Boat: a triangle, from equilateral to long and narrow."""
    angles = np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.45, 0.45, 3)
    angles[0] = 0.0
    reach = radius * rng.uniform(0.75, 1.0, 3)
    corners = np.stack([reach * np.cos(angles), reach * np.sin(angles)], 1)  # counter-clockwise
    dist = np.full(u.shape, -np.inf, np.float32)
    for k in range(3):
        a, b = corners[k], corners[(k + 1) % 3]
        edge = (b - a) / np.linalg.norm(b - a)
        # Distance to the edge's line, positive outside: exact near the edges (what antialiasing
        # needs), an underestimate near the outside of the corners; the sign is exact everywhere.
        dist = np.maximum(dist, -(edge[0] * (v - a[1]) - edge[1] * (u - a[0])))
    return dist


def _capsule(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Bottle: a capsule (stadium), slim to stout."""
    thick = radius * rng.uniform(0.26, 0.45)
    half = radius - thick
    return np.hypot(np.maximum(np.abs(u) - half, 0.0), v) - thick


def _disc(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Potted plant: a disc or a slightly oval one."""
    squash = rng.uniform(0.8, 1.0)
    # Not the exact distance to an ellipse, but exact on the axes and within a few per cent
    # elsewhere for squash >= 0.8: enough for a one-pixel antialiased edge.
    return (np.hypot(u, v / squash) - radius) * squash


def _rectangle(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Tv/monitor: a rectangle, square to wide, its corners sharp to slightly rounded."""
    aspect = rng.uniform(1.1, 1.9)
    half_u, half_v = radius * np.array([aspect, 1.0]) / math.hypot(aspect, 1.0)
    round_ = half_v * rng.uniform(0.0, 0.2)
    qu, qv = np.abs(u) - half_u + round_, np.abs(v) - half_v + round_
    return np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0)) + np.minimum(np.maximum(qu, qv), 0.0) - round_


# A texture: (rng, u, v, radius, dist, colour RGB[3]) -> RGB[h, w, 3]. Any class may wear any
# texture in any colour, so neither colour nor texture names a class: only the shape does.
_Texture = Callable[[np.random.Generator, np.ndarray, np.ndarray, float, np.ndarray, np.ndarray], np.ndarray]


def _shaded(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float, dist: np.ndarray,
            colour: np.ndarray) -> np.ndarray:
    """Shaded along one axis, darker towards both ends."""
    along = np.clip(v / radius, -1.0, 1.0)
    shade = 0.75 + 0.25 * np.cos(along * rng.uniform(1.0, 1.6) + rng.uniform(-0.4, 0.4))
    ends = smoothstep(0.6, 0.95, np.abs(along))
    return colour * (shade * (1.0 - 0.45 * ends))[..., None]


def _striped(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float, dist: np.ndarray,
             colour: np.ndarray) -> np.ndarray:
    """Stripes at a random angle."""
    turn = rng.uniform(0.0, math.pi)
    phase = (u * math.cos(turn) + v * math.sin(turn)) / rng.uniform(7.0, 14.0)
    stripes = 0.5 + 0.5 * np.sin(2 * math.pi * phase)
    return colour * (1.0 - 0.35 * smoothstep(0.3, 0.7, stripes))[..., None]


def _glossy(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float, dist: np.ndarray,
            colour: np.ndarray) -> np.ndarray:
    """Round shading across one axis with a highlight, as on a cylinder."""
    across = np.clip(v / (0.5 * radius), -1.0, 1.0)
    light = rng.uniform(-0.5, 0.5)
    shade = 0.5 + 0.5 * np.sqrt(np.clip(1.0 - across**2, 0.0, 1.0))
    highlight = 0.35 * np.exp(-(((across - light) / 0.15) ** 2))
    return colour * shade[..., None] + highlight[..., None]


def _mottled(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float, dist: np.ndarray,
             colour: np.ndarray) -> np.ndarray:
    """Mottled with value noise."""
    h, w = u.shape
    mottle = _synth.value_noise(rng, h, w, (4, 8)) if min(h, w) >= 2 else np.zeros_like(u)
    return colour * (0.65 + 0.55 * mottle)[..., None]


def _framed(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float, dist: np.ndarray,
            colour: np.ndarray) -> np.ndarray:
    """A darker frame along the outline around a scan-lined inside."""
    frame = colour * rng.uniform(0.3, 0.5)
    border = radius * rng.uniform(0.06, 0.12)
    lines = 0.88 + 0.12 * np.sin(2 * math.pi * v / rng.uniform(3.0, 5.0))
    inside = smoothstep(-border + 0.5, -border - 0.5, dist)  # 1 inside, 0 on the frame
    return frame + inside[..., None] * (colour * lines[..., None] - frame)


_TEXTURES: tuple[_Texture, ...] = (_shaded, _striped, _glossy, _mottled, _framed)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """Any hue, saturated and bright enough to stand out of the toned-down backgrounds."""
    h, s, v = rng.uniform(0.0, 1.0), rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32)


_SHAPES: dict[int, _Shape] = {3: _crescent, 4: _triangle, 5: _capsule, 16: _disc, 20: _rectangle}
_OBJECT_CLASSES = tuple(_SHAPES)
_EXTENT = (0.35, 0.7)  # an object's extent (2 x radius), as a share of the image's shorter side
# Thin shapes fill less of their circle: draw them larger so every class gets a similar
# share of the pixels (about 4-6 % each, background about 75 %).
_SCALE = {3: 1.2, 4: 1.25, 5: 1.1, 16: 0.85, 20: 1.1}


def _place_objects(rng: np.random.Generator, height: int, width: int) -> list[tuple[int, float, float, float, float]]:
    """1..4 objects ``(class, cx, cy, radius, angle)``, each fully inside the image."""
    placed: list[tuple[int, float, float, float, float]] = []
    for _ in range(int(rng.integers(1, 5))):
        cls = _OBJECT_CLASSES[int(rng.integers(len(_OBJECT_CLASSES)))]
        radius = 0.5 * rng.uniform(*_EXTENT) * _SCALE[cls] * min(height, width)
        angle = rng.uniform(0.0, 2 * math.pi)
        # Up to 12 tries to keep clear of the others: overlaps happen, total occlusion is rare.
        for _ in range(12):
            cx = rng.uniform(radius + 1, width - radius - 1)
            cy = rng.uniform(radius + 1, height - radius - 1)
            if all(math.hypot(cx - x, cy - y) > 0.75 * (radius + r) for _, x, y, r, _ in placed):
                break
        placed.append((cls, cx, cy, radius, angle))
    return placed


def _render_example(background_rng: np.random.Generator, objects_rng: np.random.Generator,
                    photos: Sequence[Image.Image] = (), height: int = 320,
                    width: int = 480) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic example: ``(uint8 np.ndarray[height, width, 3], uint8 np.ndarray[height, width])``.

    Objects are composited back to front with antialiased edges (coverage ``0.5 - distance``);
    a pixel's label is the frontmost object whose shape contains the pixel centre, so the
    label agrees with the majority colour of every edge pixel and occlusion is exact.
    """
    image = _background(background_rng, photos, height, width)
    label = np.zeros((height, width), np.uint8)
    for cls, cx, cy, radius, angle in _place_objects(objects_rng, height, width):
        x0, x1 = max(int(cx - radius) - 2, 0), min(math.ceil(cx + radius) + 3, width)
        y0, y1 = max(int(cy - radius) - 2, 0), min(math.ceil(cy + radius) + 3, height)
        xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
        ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
        cos, sin = math.cos(angle), math.sin(angle)
        u, v = cos * xs + sin * ys, -sin * xs + cos * ys
        dist = _SHAPES[cls](objects_rng, u, v, radius)
        texture = _TEXTURES[int(objects_rng.integers(len(_TEXTURES)))]
        rgb = texture(objects_rng, u, v, radius, dist, _colour(objects_rng))
        alpha = np.clip(0.5 - dist, 0.0, 1.0)[..., None]
        patch = image[y0:y1, x0:x1]
        patch[...] = patch * (1.0 - alpha) + np.clip(rgb, 0.0, 1.0) * alpha
        label[y0:y1, x0:x1][dist < 0] = cls
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8), label


def _label_png(label: np.ndarray) -> Image.Image:
    """uint8 class indices -> a palette PNG image with VOC's 256 colours, as VOC's own files."""
    image = Image.frombytes("P", (label.shape[1], label.shape[0]), np.ascontiguousarray(label).tobytes())
    image.putpalette(_PALETTE.tobytes())
    return image


def _example_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}"


def generate_voc_synthetic(
    root: PathLike,
    seed: int = 0,
    num_train: int = _DEFAULTS["num_train"],
    num_val: int = _DEFAULTS["num_val"],
    progress: ProgressCallback = None,
    *,
    height: int = _DEFAULTS["height"],
    width: int = _DEFAULTS["width"],
) -> Path:
    """Write a synthetic segmentation set in the VOC 2012 layout (see :data:`SYNTH_CLASSES`).

    ``root`` becomes a ``VOC2012``-style folder: ``JPEGImages/{split}_{index:06d}.jpg``
    (quality 95, no chroma subsampling), ``SegmentationClass/*.png`` (palette PNGs with VOC's
    colours) and ``ImageSets/Segmentation/train.txt`` / ``val.txt``. Each image holds 1 to 4
    objects, 22-50 % of the shorter side across, which may overlap (the label follows the
    occlusion).

    Deterministic: the same arguments give byte-identical files (on the same numpy / Pillow /
    scikit-image versions). Each image is drawn from its own seed, derived from
    ``(seed, split, index)``: the val split never repeats a train image, and the first ``k``
    images do not depend on the counts. Without scikit-image every background is procedural
    (the images differ, the labels do not).

    Args:
        root (str or PathLike): folder to write into; created if missing.
        seed (int): >= 0.
        num_train (int): >= 1 training images.
        num_val (int): >= 1 validation images.
        progress (callable, optional): called as ``progress(done, total)`` after each image.
        height (int): image height in [32, 4096]; the book crops 320.
        width (int): image width in [32, 4096]; the book crops 480.

    Returns:
        Path: ``root``.
    """
    seed, num_train, num_val, height, width = _check_args(seed, num_train, num_val, height, width)
    root = Path(root)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    photos = _synth.bundled_photos()
    total, done = num_train + num_val, 0
    for split, count in (("train", num_train), ("val", num_val)):
        names = []
        for index in range(count):
            image, label = _render_example(*_synth.image_rngs(seed, split, index), photos, height, width)
            name = _example_name(split, index)
            Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", format="JPEG", quality=95, subsampling=0)
            _label_png(label).save(root / "SegmentationClass" / f"{name}.png", format="PNG", compress_level=1)
            names.append(name)
            done += 1
            if progress is not None:
                progress(done, total)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return root


# --- the cache ------------------------------------------------------------------------------

def _cache_dir(seed: int, num_train: int, num_val: int, height: int, width: int) -> Path:
    size = "" if (height, width) == (_DEFAULTS["height"], _DEFAULTS["width"]) else f"-{height}x{width}"
    return _synth.cache_dir(f"voc-synthetic-v{GENERATOR_VERSION}", seed, (num_train, num_val),
                            (_DEFAULTS["num_train"], _DEFAULTS["num_val"]), size)


def synthetic_voc_dir(
    seed: int = 0,
    *,
    num_train: int = _DEFAULTS["num_train"],
    num_val: int = _DEFAULTS["num_val"],
    height: int = _DEFAULTS["height"],
    width: int = _DEFAULTS["width"],
    progress: ProgressCallback = None,
) -> Path:
    """The cached synthetic set's folder, generated on first use.

    ``$VISION_LAB_DATA/voc-synthetic-v{GENERATOR_VERSION}-seed{seed}`` (default parent
    ``~/.cache/vision_lab``); other counts add ``-n{T}-{V}``, another size ``-{H}x{W}``. The
    set is generated beside it and renamed into place, so an interrupted run leaves no
    half-written cache and two racing processes both end up reading one complete copy.

    Args:
        seed, num_train, num_val, height, width, progress: as :func:`generate_voc_synthetic`.

    Returns:
        Path: a folder :func:`~vision_core.data.voc.read_voc_images` reads.
    """
    seed, num_train, num_val, height, width = _check_args(seed, num_train, num_val, height, width)
    cache = _cache_dir(seed, num_train, num_val, height, width)
    if _has_layout(cache):
        return cache
    return _synth.generate_cached(
        cache, lambda tmp: generate_voc_synthetic(tmp, seed=seed, num_train=num_train, num_val=num_val,
                                                  progress=progress, height=height, width=width),
        _has_layout, "ImageSets/Segmentation/train.txt and val.txt")
