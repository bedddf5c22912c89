"""The banana-detection data set (d2l 14.6), and an offline generator for it.

The book trains TinySSD on ``banana-detection.zip``: 1000 training and 100 validation
photos, 256 x 256 RGB, each with one banana and its box. The archive needs a download, so
:func:`generate_bananas` draws a stand-in with the same layout::

    root/
      bananas_train/
        label.csv        img_name,label,xmin,ymin,xmax,ymax   (pixels, label 0 = banana)
        images/0.png     256 x 256 RGB
        ...
      bananas_val/       the same, 100 images

:func:`read_bananas` reads either copy (the book's archive extracted, or a generated one)
with the book's conventions: images ``uint8 Tensor[N, 3, 256, 256]``, targets ``float32
Tensor[N, 1, 5]`` rows ``(class, xmin, ymin, xmax, ymax)`` with the corners divided by 256.
:func:`load_bananas` reads a folder the user has, or generates (once) and reads a cached copy.

The generated bananas are drawn, not photographed: a curved crescent, shaded yellow with
brown tips, a stalk and a thin darker outline, antialiased onto crops of scikit-image's
bundled CC0 / public-domain photos or procedural textures. scikit-image is imported lazily;
without it every background is procedural (so the images differ, the boxes do not).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch import Tensor

from .. import _checks
from . import _synth
from ._synth import SPLITS, PathLike, ProgressCallback, smoothstep

__all__ = [
    "BANANA_SIZE",
    "BANANA_CLASSES",
    "generate_bananas",
    "read_bananas",
    "load_bananas",
    "BananasDataset",
    "load_data_bananas",
]

BANANA_SIZE = 256
BANANA_CLASSES = ("banana",)
# Part of the cache folder's name: bump it whenever the generator draws different images for
# the same seed, so that nobody trains on a stale cache. 2: bananas 16-41 % of the image
# (was 9-32 %). 3: 10-45 % (log-uniform, as small as the book's), straight to crescent, thin to
# fat, green to brown, with or without a stalk, bunches of 2-3 boxed as one, shadows, occluders
# and relit scenes (a TinySSD trained on 2 found the top box but scored it low on bananas drawn
# another way).
# 4: ends from rounded to hair-thin points, crescents bent further, bunches of 2-4 fanned wider
# (a TinySSD trained on 3 boxed the body without the thin tips, or one banana of a bunch).
GENERATOR_VERSION = 4

_HEADER = ("img_name", "label", "xmin", "ymin", "xmax", "ymax")
_SUPERSAMPLE = 4  # 4 x 4 samples per pixel: smooth edges without a blur that would loosen the box


def _check_counts(seed: int, num_train: int, num_val: int) -> tuple[int, int, int]:
    return (_checks.check_int(seed, "seed", 0), _checks.check_int(num_train, "num_train", 1),
            _checks.check_int(num_val, "num_val", 1))


def _split_dir(root: Path, split: str) -> Path:
    return root / f"bananas_{split}"


# --- drawing --------------------------------------------------------------------------------

def _mix(a: np.ndarray, b: Sequence[float], weight: np.ndarray) -> np.ndarray:
    w = weight[..., None]
    return a * (1.0 - w) + np.asarray(b, dtype=np.float32) * w


# Skin colour (linear 0..1 RGB) along ripeness 0..1: green, green-yellow, yellow, golden, brown.
_RIPENESS = np.array([0.0, 0.3, 0.5, 0.72, 1.0], np.float32)
_SKIN = np.array([[0.42, 0.60, 0.16], [0.80, 0.83, 0.20], [0.97, 0.85, 0.18], [0.95, 0.70, 0.15],
                  [0.52, 0.34, 0.11]], np.float32)
_SPOT = (0.30, 0.19, 0.07)


@dataclass(frozen=True)
class _Look:
    """What one banana (or every banana of a bunch) looks like: size, shape and colour."""

    extent: float  # pixels, roughly the longer side of its box
    bend: float  # half the angle the centre line turns through, radians: ~0 straight .. 1.15 a crescent
    thickness: float  # greatest half-thickness over half-length: 0.11 a thin crescent .. 0.26 a fat one
    point: float  # how the body narrows to its ends: 0.5 rounded .. 1.8 long hair-thin horns
    stalk: bool
    mirror: float  # +1 or -1
    skin: np.ndarray  # [3]
    greenness: float  # green towards the stalk end, 0..1
    spots: float  # mean number of ripeness spots


def _draw_look(rng: np.random.Generator, size: int, *, largest: float = 0.45) -> _Look:
    """A random :class:`_Look` whose box's longer side is about 10 % to ``largest`` of ``size``,
    log-uniform (so small bananas are as common as in the book's photos)."""
    # The box's longer side comes out at about 0.8-1.0 x the extent.
    extent = math.exp(rng.uniform(math.log(0.125), math.log(largest))) * size
    bend = rng.uniform(0.03, 1.15)
    thickness = rng.uniform(0.11, 0.26)
    # Half rounded ends (a photo's banana), half tapering to points (a drawn one, a crescent):
    # the box then reaches tips only a pixel wide, which a detector must still include.
    point = 0.5 if rng.random() < 0.5 else rng.uniform(0.8, 1.8)
    stalk = bool(rng.random() < 0.85)
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    # Mostly yellow, some green-yellow, some brown.
    ripeness = float(np.clip(rng.normal(0.52, 0.22), 0.0, 1.0))
    skin = np.stack([np.interp(ripeness, _RIPENESS, _SKIN[:, c]) for c in range(3)]).astype(np.float32)
    skin = np.clip(skin + rng.uniform(-0.04, 0.04, 3), 0.0, 1.0).astype(np.float32) * rng.uniform(0.86, 1.0)
    greenness = rng.uniform(0.0, 0.7) if ripeness < 0.6 else rng.uniform(0.0, 0.15)
    spots = 1.0 + 30.0 * max(ripeness - 0.6, 0.0) if rng.random() < 0.3 + 0.6 * (ripeness > 0.6) else 0.0
    return _Look(extent, bend, thickness, point, stalk, mirror, skin, greenness, spots)


def _banana_patch(rng: np.random.Generator, look: _Look, theta: float) -> tuple[np.ndarray, tuple[float, float]]:
    """Draw one banana turned by ``theta`` (radians), cropped tight to its alpha.

    Returns:
        (np.ndarray[h, w, 4], (x, y)): the patch as float32 straight RGBA, and where in it the
        stalk's end is (pixels): the point a bunch's bananas share.
    """
    # Shape, in pixels. The centre line is an arc of `radius` around the origin, `half` pixels
    # long on each side of the +y axis; the body's half-thickness tapers to 0 at both ends.
    extent, bend, mirror = look.extent * rng.uniform(0.92, 1.08), look.bend, look.mirror
    radius = 0.9 * extent / (2.0 * math.sin(bend))
    half = radius * bend
    width = half * look.thickness * rng.uniform(0.92, 1.08)
    bulge = rng.uniform(0.0, 0.2)  # the outer (convex) side is fuller than the inner one
    taper = rng.uniform(2.0, 3.0)
    stem_len = half * rng.uniform(0.10, 0.24) if look.stalk else 0.0
    stem_w = width * rng.uniform(0.28, 0.38)
    light = rng.uniform(-0.45, 0.45)  # where across the width the light falls, -1..1
    line_w = min(rng.uniform(0.8, 1.5), 0.35 * width)  # outline width, pixels
    n_spots = int(rng.poisson(look.spots))
    spots = rng.uniform([-0.8, -0.7, 0.04], [0.8, 0.7, 0.22], size=(n_spots, 3))  # (s, u, radius / width)

    # Bounding square of the rotated centre line, padded by the thickness: the patch to draw in.
    cos, sin = math.cos(theta), math.sin(theta)
    phi = np.linspace(-(half + stem_len) / radius, half / radius, 64)
    fx, fy = mirror * radius * np.sin(phi), radius * np.cos(phi) - radius
    qx, qy = cos * fx - sin * fy, sin * fx + cos * fy
    pad = width * (1.0 + bulge) + 2.0
    cx = -qx.min() + pad + rng.random()  # random sub-pixel phase
    cy = -qy.min() + pad + rng.random()
    w = int(math.ceil(qx.max() - qx.min() + 2 * pad + 1))
    h = int(math.ceil(qy.max() - qy.min() + 2 * pad + 1))

    ss = _SUPERSAMPLE
    xs = ((np.arange(w * ss, dtype=np.float32) + 0.5) / ss - cx)[None, :]
    ys = ((np.arange(h * ss, dtype=np.float32) + 0.5) / ss - cy)[:, None]
    # Patch -> banana frame: undo the rotation, then the mirror.
    X = mirror * (cos * xs + sin * ys)
    Y = -sin * xs + cos * ys + radius
    r = np.hypot(X, Y)
    s = np.arctan2(X, Y) * (radius / half)  # along the body: -1 stalk end .. +1 blossom end
    v = r - radius  # across: > 0 on the outer side

    profile = width * np.clip(1.0 - np.abs(s) ** taper, 0.0, 1.0) ** look.point
    outer, inner = profile * (1.0 + bulge), profile * (1.0 - bulge)
    body = (np.abs(s) < 1.0) & (v < outer) & (v > -inner)
    s_end = -1.0 - stem_len / half
    stem_half = stem_w * (1.0 + 0.35 * smoothstep(s_end + 0.05, s_end, s))  # the cut end flares
    stem = (s > s_end) & (s < -0.8) & (np.abs(v) < stem_half) if look.stalk else np.zeros_like(body)
    inside = body | stem

    # Shading across the width: a rounded body lit from one side, a highlight and one facet ridge.
    u = np.where(v >= 0, v / np.maximum(outer, 1e-6), v / np.maximum(inner, 1e-6))
    round_ = np.sqrt(np.clip(1.0 - ((u - light) / (1.0 + abs(light))) ** 2, 0.0, 1.0))
    shade = (0.55 + 0.45 * round_) * (1.0 - 0.10 * np.exp(-(((u + 0.35) / 0.08) ** 2)))
    colour = look.skin * shade[..., None]
    colour = colour + (0.16 * np.exp(-(((u - 0.8 * light) / 0.2) ** 2)) * (1.0 - np.abs(s) ** 4))[..., None]
    colour = _mix(colour, (0.50, 0.62, 0.14), look.greenness * smoothstep(-0.45, -1.0, s))
    colour = _mix(colour, (0.24, 0.16, 0.06), smoothstep(0.84, 0.97, s))  # blossom tip
    for s_k, u_k, rad in spots:  # ripeness spots
        a_k = s_k * half / radius
        d_k = radius + u_k * width
        dist = np.hypot(X - d_k * math.sin(a_k), Y - d_k * math.cos(a_k))
        colour = _mix(colour, _SPOT, 0.8 * np.exp(-((dist / (0.4 + rad * width)) ** 2)))

    # The stalk: olive-brown, darker at the cut end.
    stem_only = stem & ~body
    stem_shade = 0.6 + 0.4 * np.sqrt(np.clip(1.0 - (v / stem_half - 0.3 * light) ** 2, 0.0, 1.0))
    stalk = _mix(np.array([0.46, 0.40, 0.16], np.float32) * stem_shade[..., None], (0.26, 0.18, 0.08),
                 smoothstep(s_end + 0.08, s_end, s))
    colour = np.where(stem_only[..., None], stalk, colour)

    # A thin darker outline, measured in pixels from the nearest side edge.
    edge = np.where(body, np.minimum(outer - v, v + inner), stem_half - np.abs(v))
    colour = _mix(colour, (0.30, 0.22, 0.05), 0.85 * (1.0 - smoothstep(0.0, line_w, edge)))

    # Box-filter the supersamples: coverage is alpha, the coverage-weighted colour is RGB.
    cover = inside.astype(np.float32)
    alpha = cover.reshape(h, ss, w, ss).mean(axis=(1, 3))
    premul = (colour * cover[..., None]).reshape(h, ss, w, ss, 3).mean(axis=(1, 3))
    rgb = np.clip(premul / np.maximum(alpha, 1e-6)[..., None], 0.0, 1.0)
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    patch = np.concatenate([rgb, alpha[..., None]], axis=-1)
    # The stalk's end (or the body's, without a stalk) in patch pixels, after the crop.
    end_x, end_y = qx[0] + cx - cols[0], qy[0] + cy - rows[0]
    return patch[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32), (end_x, end_y)


def _over(layers: Sequence[tuple[np.ndarray, int, int]]) -> np.ndarray:
    """Composite straight-RGBA patches placed at ``(patch, x0, y0)`` (x0, y0 >= 0), the last on top:
    ``np.ndarray[h, w, 4]`` just large enough to hold them all."""
    h = max(y0 + p.shape[0] for p, _, y0 in layers)
    w = max(x0 + p.shape[1] for p, x0, _ in layers)
    premul, alpha = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
    for patch, x0, y0 in layers:
        a = patch[..., 3]
        region = (slice(y0, y0 + patch.shape[0]), slice(x0, x0 + patch.shape[1]))
        premul[region] = premul[region] * (1.0 - a[..., None]) + patch[..., :3] * a[..., None]
        alpha[region] = alpha[region] * (1.0 - a) + a
    rgb = premul / np.maximum(alpha, 1e-6)[..., None]
    return np.concatenate([np.clip(rgb, 0.0, 1.0), alpha[..., None]], axis=-1)


def _bananas_patch(rng: np.random.Generator, size: int) -> np.ndarray:
    """One banana, or a bunch of 2-4 fanned out from one stalk point (boxed as one), tight to its alpha:
    ``np.ndarray[h, w, 4]`` float32 straight RGBA, at most ``size`` on a side."""
    count = int(rng.choice([1, 2, 3, 4], p=[0.72, 0.14, 0.09, 0.05]))
    look = _draw_look(rng, size, largest=0.46 if count == 1 else 0.32)
    theta = rng.uniform(0.0, 2.0 * math.pi)
    if count == 1:
        return _banana_patch(rng, look, theta)[0]
    spread = rng.uniform(0.22, 0.6)  # radians between neighbours
    drawn = [_banana_patch(rng, look, theta + spread * (k - (count - 1) / 2)) for k in range(count)]
    # Each patch placed so that its stalk's end lands on one shared point (give or take a pixel).
    ends = np.array([end for _, end in drawn]) + rng.uniform(-1.0, 1.0, (count, 2))
    corners = np.round(ends.max(axis=0) - ends).astype(int)  # [count, 2] top-left of each patch
    order = rng.permutation(count)
    patch = _over([(drawn[k][0], *corners[k]) for k in order])
    alpha = patch[..., 3]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    return patch[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1][:size, :size]


def _render_banana(
    rng: np.random.Generator, size: int = BANANA_SIZE
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Draw one banana (or a bunch) at a random place, fully inside a ``size`` x ``size`` image.

    Returns:
        (np.ndarray[size, size, 4], (xmin, ymin, xmax, ymax)): the layer as float32 straight
        (not premultiplied) RGBA in 0..1, and the tight pixel box of ``alpha > 0``
        (``xmin``, ``ymin`` the first covered pixel, ``xmax``, ``ymax`` the last one + 1).
    """
    patch = _bananas_patch(rng, size)
    h, w = patch.shape[:2]
    x0 = int(rng.integers(0, size - w + 1))
    y0 = int(rng.integers(0, size - h + 1))
    layer = np.zeros((size, size, 4), np.float32)
    layer[y0 : y0 + h, x0 : x0 + w] = patch
    rows, cols = np.flatnonzero(layer[..., 3].any(axis=1)), np.flatnonzero(layer[..., 3].any(axis=0))
    return layer, (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _photo_background(rng: np.random.Generator, photo: Image.Image, size: int) -> np.ndarray:
    pw, ph = photo.size
    side = rng.uniform(0.3, 1.0) * min(pw, ph)
    aspect = rng.uniform(0.8, 1.25)
    crop = min(pw, side * aspect), min(ph, side / aspect)
    return _synth.photo_background(rng, photo, crop, size, size, vflip=0.25)


def _procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = int(rng.integers(4))  # before the angle: the order the data set was first drawn in
    angle = rng.uniform(0.0, 2.0 * math.pi)
    image = _synth.procedural_background(rng, kind, angle, size, size, soften=True)
    return image + rng.normal(0.0, rng.uniform(0.005, 0.03), image.shape).astype(np.float32)  # grain


def _background(rng: np.random.Generator, photos: Sequence[Image.Image], size: int) -> np.ndarray:
    """``np.ndarray[size, size, 3]`` float32 in 0..1."""
    photo = _synth.pick_photo(rng, photos)
    image = _procedural_background(rng, size) if photo is None else _photo_background(rng, photo, size)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _shadow(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """A soft drop shadow of ``alpha`` ``[H, W]``: how much to darken each background pixel, 0..1."""
    size = alpha.shape[0]
    dx, dy = np.round(rng.uniform(-0.025, 0.025, 2) * size).astype(int)
    shifted = np.roll(alpha, (dy, dx), axis=(0, 1))
    blurred = Image.fromarray(np.round(shifted * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(1.0, 4.0)))
    return np.asarray(blurred, np.float32) / 255.0 * rng.uniform(0.2, 0.5)


def _occluder(rng: np.random.Generator, alpha: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """An ellipse or a short stick over part of the banana (5 % to 30 % of it): its coverage
    ``[H, W]`` in 0..1, or None when no try hid that much."""
    size = alpha.shape[0]
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    for _ in range(6):
        cx, cy = rng.uniform(x1, x2), rng.uniform(y1, y2)
        angle = rng.uniform(0.0, math.pi)
        u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
        if rng.random() < 0.5:  # an ellipse, its edge antialiased over about a pixel
            a, b = rng.uniform(0.15, 0.6, 2) * side
            edge = (1.0 - np.hypot(u / a, v / b)) * min(a, b)
        else:  # a stick with round ends: the distance to a segment, less its half-width
            length, half_width = rng.uniform(0.4, 0.8) * side, rng.uniform(0.06, 0.18) * side
            edge = half_width - np.hypot(np.maximum(np.abs(u) - length, 0.0), v)
        cover = np.clip(edge + 0.5, 0.0, 1.0)
        hidden = float((cover * alpha).sum() / alpha.sum())
        if 0.05 <= hidden <= 0.3:
            return cover
    return None


def _relight(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """The whole scene under other light and another camera: a colour cast, gain, gamma, a light
    gradient, sometimes a slight blur and sensor noise. ``[H, W, 3]`` in and out, 0..1."""
    size = image.shape[0]
    image = np.clip(image * rng.uniform(0.88, 1.12, 3) * rng.uniform(0.75, 1.15), 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    angle = rng.uniform(0.0, 2.0 * math.pi)
    image = image * (1.0 + rng.uniform(-0.35, 0.35) * (xx * math.cos(angle) + yy * math.sin(angle)))[..., None]
    if rng.random() < 0.2:
        blurred = Image.fromarray(np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(rng.uniform(0.4, 1.1)))
        image = np.asarray(blurred, np.float32) / 255.0
    if rng.random() < 0.5:
        image = image + rng.normal(0.0, rng.uniform(0.005, 0.03), image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0)


def _render_example(
    background_rng: np.random.Generator,
    banana_rng: np.random.Generator,
    photos: Sequence[Image.Image] = (),
    size: int = BANANA_SIZE,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """One data-set image: ``(uint8 np.ndarray[size, size, 3], alpha np.ndarray[size, size], box)``.

    The banana (or bunch) over the background, sometimes with a drop shadow (45 %), part of it
    behind an occluder filled with another background (20 %), and the whole
    scene relit (80 %). ``alpha`` is the whole banana's coverage, occluded or not, and ``box``
    its tight box: the label is where the banana is, not only the part one sees.
    """
    background = _background(background_rng, photos, size)
    layer, box = _render_banana(banana_rng, size)
    alpha = layer[..., 3]
    if banana_rng.random() < 0.45:
        background = background * (1.0 - _shadow(banana_rng, alpha))[..., None]
    image = background * (1.0 - alpha[..., None]) + layer[..., :3] * alpha[..., None]
    if banana_rng.random() < 0.2:
        cover = _occluder(banana_rng, alpha, box)
        if cover is not None:
            fill = _background(banana_rng, photos, size)
            image = image * (1.0 - cover[..., None]) + fill * cover[..., None]
    if banana_rng.random() < 0.8:
        image = _relight(banana_rng, image)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8), alpha, box


def generate_bananas(
    root: PathLike,
    seed: int = 0,
    num_train: int = 1000,
    num_val: int = 100,
    progress: ProgressCallback = None,
) -> Path:
    """Write a synthetic banana-detection data set in the book's layout.

    Deterministic: the same ``seed`` and counts give byte-identical PNGs and ``label.csv``
    files (on the same numpy / Pillow / scikit-image versions). Each image is drawn from its own
    seed, derived from ``(seed, split, index)``, so the val split never repeats a train image
    and the first ``k`` images do not depend on ``num_train``. Files already in ``root`` are
    overwritten, others are left alone.

    Args:
        root (str or PathLike): folder to write ``bananas_train/`` and ``bananas_val/`` into;
            created if missing.
        seed (int): >= 0.
        num_train (int): >= 1 training images (the book has 1000).
        num_val (int): >= 1 validation images (the book has 100).
        progress (callable, optional): called as ``progress(done, total)`` after each image.

    Returns:
        Path: ``root``.
    """
    seed, num_train, num_val = _check_counts(seed, num_train, num_val)
    root = Path(root)
    photos = _synth.bundled_photos()
    total, done = num_train + num_val, 0
    for split, count in (("train", num_train), ("val", num_val)):
        folder = _split_dir(root, split)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        rows: list[tuple[object, ...]] = []
        for index in range(count):
            image, _, box = _render_example(*_synth.image_rngs(seed, split, index), photos)
            name = f"{index}.png"
            # Level 1: three times faster than the default 6 and only 10% larger (grainy images).
            Image.fromarray(image).save(folder / "images" / name, format="PNG", compress_level=1)
            rows.append((name, 0, *box))
            done += 1
            if progress is not None:
                progress(done, total)
        with open(folder / "label.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(_HEADER)
            writer.writerows(rows)
    return root


# --- reading --------------------------------------------------------------------------------

def _layout_root(root: Path, split: str) -> Path:
    # The book's zip extracts to banana-detection/: accept its parent too.
    nested = root / "banana-detection"
    if not _split_dir(root, split).is_dir() and _split_dir(nested, split).is_dir():
        return nested
    return root


def _read_label_csv(path: Path) -> list[tuple[int, str, list[float]]]:
    size = BANANA_SIZE
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [cell.strip() for cell in header] != list(_HEADER):
            got = ",".join(header) if header else "an empty file"
            raise ValueError(f"{path}: header must be {','.join(_HEADER)}, got {got!r}")
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(_HEADER):
                raise ValueError(
                    f"{path}, line {line}: expected {len(_HEADER)} fields ({','.join(_HEADER)}), got {len(row)}"
                )
            name = row[0].strip()
            if not name or name in (".", "..") or "/" in name or "\\" in name:
                raise ValueError(f"{path}, line {line}: img_name must be a file name inside images/, got {name!r}")
            try:
                values = [float(cell) for cell in row[1:]]
            except ValueError:
                values = [math.nan]
            if not all(math.isfinite(x) for x in values):
                raise ValueError(
                    f"{path}, line {line}: label, xmin, ymin, xmax, ymax must be finite numbers, got {row[1:]}"
                )
            label, x1, y1, x2, y2 = values
            if label < 0 or label != int(label):
                raise ValueError(f"{path}, line {line}: label must be a class index >= 0, got {row[1].strip()!r}")
            if not (0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size):
                raise ValueError(
                    f"{path}, line {line}: box (xmin, ymin, xmax, ymax) = ({x1:g}, {y1:g}, {x2:g}, {y2:g}) "
                    f"must satisfy 0 <= xmin < xmax <= {size} and 0 <= ymin < ymax <= {size}"
                )
            rows.append((line, name, values))
    if not rows:
        raise ValueError(f"{path} lists no images")
    return rows


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.size != (BANANA_SIZE, BANANA_SIZE):
                w, h = image.size
                raise ValueError(f"{path}: image is {w} x {h} pixels, expected {BANANA_SIZE} x {BANANA_SIZE}")
            # Grey, palette and RGBA files become RGB (alpha dropped), as read_image(mode=RGB) would.
            return np.asarray(image.convert("RGB"))
    except OSError as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


def read_bananas(root: PathLike, split: str = "train", limit: int | None = None) -> tuple[Tensor, Tensor]:
    """Read a banana-detection split from disk: the book's ``read_data_bananas``.

    Accepts the book's archive extracted (``root`` may be the ``banana-detection`` folder or
    its parent) or a folder written by :func:`generate_bananas`. Rows keep ``label.csv``'s order.

    Args:
        root (str or PathLike): folder holding ``bananas_train/`` and ``bananas_val/``.
        split (str): ``"train"`` or ``"val"``.
        limit (int, optional): read only the first ``limit`` rows (``>= 1``), e.g. the images a
            short training uses: decoding the 1,000 PNGs of the train split takes seconds.

    Returns:
        (Tensor[N, 3, 256, 256], Tensor[N, 1, 5]): uint8 RGB images, and float32 targets
        ``(class, xmin, ymin, xmax, ymax)`` with the corners divided by 256 (the book divides
        the whole row, which leaves class 0 unchanged; here the class index is never scaled).

    Raises:
        ValueError: a missing folder, ``label.csv`` or image; a bad header; a non-numeric value;
            a box outside ``[0, 256]`` or inverted; an image that is not 256 x 256.
    """
    _checks.check_choice(split, "split", SPLITS)
    given = Path(root)
    folder = _split_dir(_layout_root(given, split), split)
    if not folder.is_dir():
        raise ValueError(
            f"root {str(given)!r} has no {folder.name}/ folder: expected the book's banana-detection layout "
            "(bananas_train/, bananas_val/); generate_bananas(root) writes one"
        )
    csv_path = folder / "label.csv"
    if not csv_path.is_file():
        raise ValueError(f"{csv_path} not found: each split folder needs a label.csv")
    rows = _read_label_csv(csv_path)
    if limit is not None:
        rows = rows[:_checks.check_int(limit, "limit", 1, 2**31 - 1)]
    return _read_rows(folder, csv_path, rows)


def _read_rows(folder: Path, csv_path: Path, rows: list[tuple[int, str, list[float]]]) -> tuple[Tensor, Tensor]:
    """The images ``rows`` (from :func:`_read_label_csv`) name in ``folder/images``, and their labels:
    ``(uint8 Tensor[N, 3, 256, 256], float32 Tensor[N, 1, 5])``, the corners divided by 256."""
    images = np.empty((len(rows), BANANA_SIZE, BANANA_SIZE, 3), np.uint8)
    for k, (line, name, _) in enumerate(rows):
        path = folder / "images" / name
        if not path.is_file():
            raise ValueError(f"{csv_path}, line {line}: image {name!r} not found in {folder / 'images'}")
        images[k] = _read_image(path)
    labels = torch.tensor([values for _, _, values in rows], dtype=torch.float32)
    labels[:, 1:] /= BANANA_SIZE
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels.unsqueeze(1)


# --- the cache ------------------------------------------------------------------------------

def _has_layout(root: Path) -> bool:
    return all((_split_dir(root, split) / "label.csv").is_file() for split in SPLITS)


def _cache_dir(seed: int, num_train: int, num_val: int) -> Path:
    return _synth.cache_dir(f"bananas-v{GENERATOR_VERSION}", seed, (num_train, num_val), (1000, 100))


def load_bananas(
    root: PathLike | None = None,
    split: str = "train",
    seed: int = 0,
    *,
    num_train: int = 1000,
    num_val: int = 100,
    progress: ProgressCallback = None,
    limit: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Read the banana-detection data set, generating it on first use when no folder is given.

    With ``root``, read that folder (the book's archive, or a generated copy): see
    :func:`read_bananas`. Without it, read ``$VISION_LAB_DATA/bananas-v{GENERATOR_VERSION}-seed{seed}`` (default
    parent ``~/.cache/vision_lab``), writing it first with :func:`generate_bananas` if it is
    not there; counts other than 1000 / 100 get their own folder ``bananas-v{GENERATOR_VERSION}-seed{seed}-n{T}-{V}``.

    Args:
        root (str or PathLike, optional): a folder in the book's layout.
        split (str): ``"train"`` or ``"val"``.
        seed (int): >= 0; only used when generating.
        num_train, num_val (int): >= 1; only used when generating.
        progress (callable, optional): ``progress(done, total)`` while generating.
        limit (int, optional): read only the split's first ``limit`` images (:func:`read_bananas`).

    Returns:
        (Tensor[N, 3, 256, 256], Tensor[N, 1, 5]): as :func:`read_bananas`.
    """
    _checks.check_choice(split, "split", SPLITS)
    if root is not None:
        return read_bananas(root, split, limit)
    seed, num_train, num_val = _check_counts(seed, num_train, num_val)
    cache = _cache_dir(seed, num_train, num_val)
    if not _has_layout(cache):
        _synth.generate_cached(
            cache, lambda tmp: generate_bananas(tmp, seed=seed, num_train=num_train, num_val=num_val,
                                                progress=progress),
            _has_layout, "label.csv in each split")
    return read_bananas(cache, split, limit)


# --- the book's Dataset and loaders ---------------------------------------------------------

class BananasDataset(torch.utils.data.Dataset):
    """The book's ``BananasDataset``, over tensors already read (see :func:`load_bananas`).

    Like the book, an item is ``(image, target)`` with the image as **float32 in 0..255**
    (``uint8.float()``, not rescaled to 0..1): ``Tensor[3, 256, 256]`` and ``Tensor[1, 5]``.

    Args:
        images (Tensor[N, 3, H, W]): uint8 (or float 0..255) RGB images.
        labels (Tensor[N, 1, 5]): ``(class, xmin, ymin, xmax, ymax)``, corners normalised.
    """

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise _checks.ArgumentError("images", "a Tensor[N, 3, H, W]", _checks.describe(images))
        if not isinstance(labels, Tensor) or labels.dim() != 3 or labels.shape[1:] != (1, 5):
            raise _checks.ArgumentError("labels", "a Tensor[N, 1, 5]", _checks.describe(labels))
        if len(images) != len(labels):
            raise _checks.ArgumentError("labels", f"one per image ({len(images)})", len(labels))
        self.features, self.labels = images, labels

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor]:
        return self.features[idx].float(), self.labels[idx]

    def __len__(self) -> int:
        return len(self.features)


def load_data_bananas(
    batch_size: int, root: PathLike | None = None, seed: int = 0
) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """The book's ``load_data_bananas``: ``(train_iter, val_iter)``, train shuffled.

    Args:
        batch_size (int): >= 1.
        root, seed: as :func:`load_bananas`.
    """
    _checks.check_int(batch_size, "batch_size", 1)
    train = BananasDataset(*load_bananas(root, "train", seed))
    val = BananasDataset(*load_bananas(root, "val", seed))
    return (
        torch.utils.data.DataLoader(train, batch_size, shuffle=True),
        torch.utils.data.DataLoader(val, batch_size),
    )
