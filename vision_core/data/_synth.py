"""What the two offline generators (bananas, synthetic VOC) share: seeds, backgrounds, the cache.

:mod:`vision_core.data.bananas` and :mod:`vision_core.data.voc_synthetic` draw different
objects on the same kinds of backgrounds (crops of scikit-image's bundled photos, or procedural
textures) and keep their sets in the same cache folder. The helpers here are the one copy of
that plumbing. Each generator still draws its random numbers in its own order: the shipped
checkpoints were trained on these exact images, so every helper keeps the draws and the
arithmetic of the code it replaced, and a change here is a new ``GENERATOR_VERSION`` there.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["SPLITS", "PathLike", "ProgressCallback", "image_rngs", "smoothstep", "resize", "value_noise",
           "bundled_photos", "pick_photo", "photo_background", "procedural_background", "cache_dir",
           "generate_cached"]

SPLITS = ("train", "val")
# Names of scikit-image's bundled CC0 / public-domain images used as backgrounds; the last
# three are grey textures, tinted when drawn.
_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "brick",
           "grass", "gravel")

PathLike = str | os.PathLike[str]
ProgressCallback = Callable[[int, int], None] | None


# --- seeds and small maths ------------------------------------------------------------------

def image_rngs(seed: int, split: str, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """``(background_rng, objects_rng)`` for image ``index`` of ``split``.

    One SeedSequence child per (split, image): the val split never repeats a train image, and any
    image can be re-drawn alone (the tests do) without replaying the ones before it. The objects
    get their own stream, so their boxes and labels do not depend on which background was drawn
    (scikit-image present or not).
    """
    ss = np.random.SeedSequence(int(seed), spawn_key=(SPLITS.index(split), int(index)))
    background, objects = ss.spawn(2)
    return np.random.default_rng(background), np.random.default_rng(objects)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1`` (or the reverse when ``edge0 > edge1``), a smooth cubic between."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float32 ``[h, w]`` grid, bicubically resized to ``[height, width]``."""
    return np.asarray(Image.fromarray(array.astype(np.float32)).resize((width, height), Image.Resampling.BICUBIC))


def value_noise(rng: np.random.Generator, height: int, width: int,
                cells: Sequence[int] = (3, 6, 12, 24)) -> np.ndarray:
    """Octaves of smooth noise, rescaled to 0..1: ``np.ndarray[height, width]`` float32.

    Octave ``k`` is a ``cells[k]``-row grid of uniform values (as many columns as keep the cells
    square, at least 2), resized bicubically and weighted ``2 ** -k``.
    """
    total = np.zeros((height, width), np.float32)
    for octave, n in enumerate(cells):
        grid = rng.random((n, max(2, round(n * width / height))), dtype=np.float32)
        total += resize(grid, height, width) / 2.0**octave
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


# --- backgrounds ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def bundled_photos() -> tuple[Image.Image, ...]:
    """scikit-image's bundled photos (RGB or grey ``Image``), loaded once; ``()`` without scikit-image."""
    try:
        from skimage import data  # lazily: the generators work without it (procedural backgrounds only)
    except ImportError:
        return ()
    photos = []
    for name in _PHOTOS:
        try:
            array = getattr(data, name)()
        except Exception:  # a trimmed install may lack a file: use the others  # noqa: BLE001
            continue
        photos.append(Image.fromarray(np.ascontiguousarray(array[..., :3] if array.ndim == 3 else array)))
    return tuple(photos)


def pick_photo(rng: np.random.Generator, photos: Sequence[Image.Image]) -> Image.Image | None:
    """A random one of ``photos`` for 60 % of the backgrounds, else None (a procedural one)."""
    if photos and rng.random() < 0.6:
        return photos[int(rng.integers(len(photos)))]
    return None


def photo_background(rng: np.random.Generator, photo: Image.Image, crop: tuple[float, float], height: int,
                     width: int, vflip: float | None = None) -> np.ndarray:
    """A random ``crop = (width, height)`` of ``photo``, resized to ``[height, width, 3]`` float (0..1ish).

    Grey textures are tinted between two random colours; the crop is mirrored left-right half
    the time, upside down with probability ``vflip`` (no draw when None), and its colours jittered.
    """
    pw, ph = photo.size
    cw, ch = crop
    x0, y0 = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
    crop_image = photo.resize((width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    image = np.asarray(crop_image, dtype=np.float32) / 255.0
    if image.ndim == 2:  # brick, grass, gravel: tint the grey texture between two colours
        dark, light = rng.uniform(0.0, 0.45, 3), rng.uniform(0.55, 1.0, 3)
        image = dark + image[..., None] * (light - dark)  # [H, W, 1] against [3]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if vflip is not None and rng.random() < vflip:
        image = image[::-1]
    return image * rng.uniform(0.85, 1.15, 3) * rng.uniform(0.75, 1.15)


def procedural_background(rng: np.random.Generator, kind: int, angle: float, height: int, width: int,
                          soften: bool = False) -> np.ndarray:
    """A two-colour texture under uneven light: ``np.ndarray[height, width, 3]`` float32 (0..1ish).

    ``kind`` 0 a linear gradient, 1 clouds (:func:`value_noise`), 2 stripes, 3 a checker, along
    ``angle`` (radians). The caller draws ``kind`` and ``angle``: the two generators draw them
    in opposite orders. ``soften`` pulls both colours part of the way to grey.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    along = xx * math.cos(angle) + yy * math.sin(angle)
    across = -xx * math.sin(angle) + yy * math.cos(angle)
    if kind == 0:  # linear gradient
        t = (along - along.min()) / np.ptp(along)
    elif kind == 1:  # clouds
        t = value_noise(rng, height, width)
    elif kind == 2:  # stripes, soft to hard
        t = 0.5 + 0.5 * np.sin(2.0 * math.pi * rng.uniform(3.0, 16.0) * along + rng.uniform(0, 2 * math.pi))
        t = np.clip((t - 0.5) * rng.uniform(1.0, 6.0) + 0.5, 0.0, 1.0)
    else:  # rotated checker
        cell = rng.uniform(0.05, 0.2)
        t = ((np.floor(along / cell) + np.floor(across / cell)) % 2).astype(np.float32)
    c0, c1 = rng.uniform(0.0, 1.0, (2, 3)).astype(np.float32)
    if soften:
        c0, c1 = [c + (0.5 - c) * rng.uniform(0.0, 0.6) for c in (c0, c1)]  # not all of them garish
    image = c0 + t[..., None] * (c1 - c0)  # [H, W, 1] against [3]
    # Uneven lighting, so no background is perfectly flat.
    lit_angle = rng.uniform(0.0, 2.0 * math.pi)
    lit = 1.0 + rng.uniform(-0.3, 0.3) * (xx * math.cos(lit_angle) + yy * math.sin(lit_angle) - 0.5)
    return image * lit[..., None]


# --- the cache ------------------------------------------------------------------------------

def cache_dir(stem: str, seed: int, counts: tuple[int, int], default_counts: tuple[int, int],
              suffix: str = "") -> Path:
    """``$VISION_LAB_DATA/{stem}-seed{seed}[-n{train}-{val}]{suffix}`` (default parent ``~/.cache/vision_lab``).

    The counts are in the name only when they differ from ``default_counts``.
    """
    parent = os.environ.get("VISION_LAB_DATA")
    base = Path(parent).expanduser() if parent else Path.home() / ".cache" / "vision_lab"
    name = f"{stem}-seed{seed}"
    if counts != default_counts:
        name += f"-n{counts[0]}-{counts[1]}"
    return base / (name + suffix)


def generate_cached(cache: Path, generate: Callable[[Path], object], is_complete: Callable[[Path], bool],
                    contents: str) -> Path:
    """Run ``generate(folder)`` beside ``cache`` and rename the folder into place; returns ``cache``.

    An interrupted run leaves no half-written cache behind, and of two processes racing, one
    wins and the other reuses its copy. ``contents`` names what a complete cache holds, for the
    error when a folder is already there and ``is_complete`` says it is not.
    """
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.parent / f".{cache.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        generate(tmp)
        try:
            os.replace(tmp, cache)
        except OSError:
            if not is_complete(cache):
                raise ValueError(f"cache folder {cache} exists but is incomplete (no {contents}): delete it") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cache
