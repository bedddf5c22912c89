"""A held-out banana set, drawn by a different method than the training generator, and banana-free negatives.

TinySSD scores near-perfectly on the validation split of :mod:`vision_core.data.bananas`,
but that split comes from the same generator as the training images: same shape model,
same shading, same backgrounds. This module draws a second set another way, so that a
score on it says something about generalisation rather than about one generator::

    root/
      bananas_heldout/
        label.csv        img_name,label,xmin,ymin,xmax,ymax   (pixels, label 0 = banana)
        images/0.png     256 x 256 RGB, one banana (or one bunch, boxed as one)
      negatives/
        images/0.png     256 x 256 RGB, no banana at all

How it differs from the training generator:

* shape: the outline is a polygon of two cubic Bezier curves (outer and inner edge) meeting
  at the tips, from almost straight to strongly curved, thin to fat, one tip sometimes cut
  blunt, an optional stalk (a quad), sometimes a bunch of 2-3 sharing one stalk point;
* drawing: the polygon is filled by PIL ``ImageDraw`` at 4x the resolution and block-averaged
  down, which gives the coverage alpha; light and edges come from blurred and eroded copies
  of that mask, not from an analytic coordinate frame;
* colour: HSV, hue from green-yellow through yellow to orange-brown, speckles and ripeness
  patches drawn as PIL ellipses;
* sizes: the box's longer side is 10-45 % of the image, log-uniform, so many are small;
* scene: any rotation, a soft drop shadow, up to 30 % of the banana sometimes hidden behind an
  occluder cut from the background;
* backgrounds: half are crops of scikit-image photos the training set never uses (see
  :data:`HELDOUT_PHOTOS`), 35 % of the training photos, 15 % procedural ones made with PIL
  gradients and rectangles. Without scikit-image all are procedural.

The label box is the tight box of the coverage alpha before occlusion (the whole banana),
``xmax`` / ``ymax`` the last covered pixel + 1, as in the book's ``label.csv``.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch import Tensor

from .. import _checks
from . import _synth
from ._synth import PathLike, ProgressCallback, smoothstep
from .bananas import _HEADER, BANANA_SIZE, _read_image, _read_label_csv, _read_rows

__all__ = [
    "HELDOUT_PHOTOS",
    "HELDOUT_VERSION",
    "generate_heldout_bananas",
    "load_heldout_bananas",
    "read_heldout_bananas",
    "read_negatives",
]

# Part of the cache folder's name: bump it whenever the same seed draws different images.
HELDOUT_VERSION = 1
# scikit-image's bundled photos that the training generator never shows (see _synth._PHOTOS);
# files in skimage/data/, so nothing is downloaded. Grey ones are tinted when drawn.
HELDOUT_PHOTOS = ("motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "color.png", "camera.png",
                  "moon.png", "coins.png", "page.png", "cell.png", "text.png")

_SIZE = BANANA_SIZE
_SS = 4  # supersampling factor of the polygon fill: smooth edges, and alpha > 0 exactly where covered
# Leads every SeedSequence spawn key: keeps these streams apart from _synth.image_rngs' (whose
# keys are (split, index)), so no held-out image shares a seed with a training image.
_SALT = 0x48454C44  # "HELD"
_KINDS = ("heldout", "negatives")
_SPLIT = "heldout"
_NEGATIVES = "negatives"
_DEFAULT_COUNTS = (200, 200)


# --- seeds ----------------------------------------------------------------------------------

def _image_rngs(seed: int, kind: str, index: int) -> tuple[np.random.Generator, ...]:
    """``(background, banana, occluder)`` generators for image ``index`` of ``kind``.

    One SeedSequence child per image, so any image can be re-drawn alone. The banana and its
    occluder have their own streams: the boxes do not depend on which backgrounds were drawn
    (scikit-image present or not).
    """
    ss = np.random.SeedSequence(int(seed), spawn_key=(_SALT, _KINDS.index(kind), int(index)))
    return tuple(np.random.default_rng(child) for child in ss.spawn(3))


# --- small helpers --------------------------------------------------------------------------

def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, n: int,
            t0: float = 0.0, t1: float = 1.0) -> np.ndarray:
    """``n`` points of the cubic Bezier curve ``p0 .. p3`` for ``t`` in ``[t0, t1]``: ``np.ndarray[n, 2]``."""
    t = np.linspace(t0, t1, n)[:, None]
    u = 1.0 - t
    return u**3 * p0 + 3 * u**2 * t * p1 + 3 * u * t**2 * p2 + t**3 * p3


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV (hue in turns, 0..1) to RGB: arrays of one shape ``[...]`` -> ``np.ndarray[..., 3]`` float32."""
    h, s, v = np.broadcast_arrays(np.asarray(h, np.float32) % 1.0, np.asarray(s, np.float32),
                                  np.asarray(v, np.float32))
    sector = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(sector, [v, q, p, p, t, v])
    g = np.choose(sector, [t, v, v, q, p, p])
    b = np.choose(sector, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def _hsv(hue_deg: float, s: float, v: float) -> np.ndarray:
    """One colour: ``np.ndarray[3]`` float32 RGB."""
    return _hsv_to_rgb(np.float32(hue_deg / 360.0), np.float32(s), np.float32(v))


def _mix(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``a`` -> ``b`` by ``weight``: ``[h, w, 3]`` (or ``[3]``) colours, ``[h, w]`` weights."""
    w = weight[..., None]
    return a * (1.0 - w) + b * w


def _block_mean(mask: Image.Image) -> np.ndarray:
    """An ``L`` image ``_SS`` times the size -> ``np.ndarray[h, w]`` float32 in 0..1.

    A box-filter downsample (Image.BOX would give the same up to rounding to 8 bits); done in
    numpy so that a pixel is > 0 exactly when one of its samples is covered: the box stays tight.
    """
    a = np.asarray(mask, dtype=np.float32) / 255.0
    h, w = a.shape[0] // _SS, a.shape[1] // _SS
    return a.reshape(h, _SS, w, _SS).mean(axis=(1, 3))


def _canvas(w: int, h: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A black ``L`` mask at ``_SS`` x the patch size, and its drawer."""
    image = Image.new("L", (w * _SS, h * _SS), 0)
    return image, ImageDraw.Draw(image)


def _points(poly: np.ndarray) -> list[tuple[float, float]]:
    """Patch-pixel coordinates ``np.ndarray[n, 2]`` -> supersampled ``[(x, y), ...]`` for ImageDraw."""
    return [(float(x), float(y)) for x, y in poly * _SS]


# --- the outline ----------------------------------------------------------------------------

@dataclass
class _Outline:
    """One banana's geometry, all ``np.ndarray[n, 2]`` ``(x, y)`` points in one frame.

    ``body``: the closed outline (outer edge tip to stalk end, then the inner edge back);
    ``stalk``: a quad, or None; ``blossom``: the far tip; ``stem_end``: the stalk's cut end (the
    body's end without a stalk); ``ridge``: a polyline along the lit side, for the highlight; ``thickness``: the body's
    greatest width, in the frame's units.
    """

    body: np.ndarray
    stalk: np.ndarray | None
    blossom: np.ndarray
    stem_end: np.ndarray
    ridge: np.ndarray
    thickness: float

    def mapped(self, matrix: np.ndarray, offset: np.ndarray) -> _Outline:
        """The same outline with every point ``p`` mapped to ``matrix @ p + offset``."""
        f = lambda p: None if p is None else p @ matrix.T + offset
        scale = math.sqrt(abs(np.linalg.det(matrix)))
        return _Outline(f(self.body), f(self.stalk), f(self.blossom), f(self.stem_end), f(self.ridge),
                        self.thickness * scale)

    def all_points(self) -> np.ndarray:
        """Every point that bounds the drawn shape: ``np.ndarray[n, 2]``."""
        return self.body if self.stalk is None else np.concatenate([self.body, self.stalk])


def _banana_outline(rng: np.random.Generator, sag: float, thickness: float, has_stalk: bool) -> _Outline:
    """One banana of length 1 from the blossom tip ``(0, 0)`` to the stalk end ``(1, 0)``, bowing to +y.

    The edges are cubic Beziers sharing their control points' abscissas; the outer edge's
    controls sit higher than the inner's by the thickness, so the edges never cross. With
    ``sag`` near 0 the inner edge bows the other way and the banana is a straight spindle.
    """
    k = 4.0 / 3.0  # a symmetric cubic's midpoint deflection is 3/4 of its controls'
    a, b = rng.uniform(0.18, 0.38), rng.uniform(0.18, 0.38)  # control abscissas: where it is fattest
    half = thickness / 2.0
    outer_dy = k * (sag + half * rng.uniform(0.85, 1.2, 2))
    inner_dy = k * (sag - half * rng.uniform(0.85, 1.2, 2))
    # Tangent and normal of the centre line at each end, to cut the ends square to it.
    t_a = np.array([a, k * sag]) / math.hypot(a, k * sag)
    t_b = np.array([b, -k * sag]) / math.hypot(b, k * sag)
    n_a, n_b = np.array([-t_a[1], t_a[0]]), np.array([-t_b[1], t_b[0]])
    tip_a, tip_b = np.zeros(2), np.array([1.0, 0.0])
    blunt = thickness * rng.uniform(0.15, 0.4) if rng.random() < 0.4 else 0.0  # a cut blossom end
    neck_w = thickness * (rng.uniform(0.22, 0.36) if has_stalk else rng.uniform(0.0, 0.12))
    outer = _bezier(tip_a + n_a * blunt / 2, np.array([a, outer_dy[0]]), np.array([1 - b, outer_dy[1]]),
                    tip_b + n_b * neck_w / 2, 40)
    inner = _bezier(tip_b - n_b * neck_w / 2, np.array([1 - b, inner_dy[1]]), np.array([a, inner_dy[0]]),
                    tip_a - n_a * blunt / 2, 40)
    body = np.concatenate([outer, inner])
    stalk, stem_end = None, tip_b
    if has_stalk:
        length = rng.uniform(0.06, 0.13)
        bend = rng.uniform(-0.25, 0.25)  # the stalk turns a little off the body's axis
        d = t_b * math.cos(bend) + n_b * math.sin(bend)
        d_n = np.array([-d[1], d[0]])
        start = tip_b - t_b * 0.02  # overlap the body so that no seam shows
        end = tip_b + d * length
        flare = neck_w * rng.uniform(0.8, 1.3)  # the cut end is often a little wider
        stalk = np.stack([start + n_b * neck_w / 2, end + d_n * flare / 2, end - d_n * flare / 2,
                          start - n_b * neck_w / 2])
        stem_end = end
    # The highlight runs between the edges, nearer the outer one, away from both tips.
    rho = rng.uniform(0.55, 0.8)
    ridge_dy = inner_dy + rho * (outer_dy - inner_dy)
    ridge = _bezier(tip_a, np.array([a, ridge_dy[0]]), np.array([1 - b, ridge_dy[1]]), tip_b, 24, 0.15, 0.8)
    return _Outline(body, stalk, tip_a, stem_end, ridge, thickness)


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _bunch_outlines(rng: np.random.Generator) -> list[_Outline]:
    """One banana (80 %) or a bunch of 2-3, in one frame, the stalk ends meeting at the origin.

    Bunch members are alike (one variety, one ripeness), fanned around the shared stalk point.
    """
    count = 1 if rng.random() < 0.8 else int(rng.choice([2, 2, 3]))
    sag = rng.uniform(0.0, 0.34) if rng.random() < 0.8 else rng.uniform(0.0, 0.05)  # some almost straight
    # Thin crescents to fat ones; a fat straight one would be an egg, not a banana.
    thickness = float(np.exp(rng.uniform(math.log(0.1), math.log(0.3 if sag > 0.1 else 0.22))))
    has_stalk = count > 1 or rng.random() < 0.75
    spread = rng.uniform(0.2, 0.45)  # radians between neighbours of a bunch
    mirror = np.diag([1.0, -1.0 if rng.random() < 0.5 else 1.0])
    outlines = []
    for i in range(count):
        one = _banana_outline(rng, sag * rng.uniform(0.85, 1.15), thickness * rng.uniform(0.9, 1.1), has_stalk)
        scale = rng.uniform(0.85, 1.05) if count > 1 else 1.0
        angle = (i - (count - 1) / 2) * spread
        matrix = _rotation(angle) @ mirror * scale
        # Put the stalk's far end (the shared point) at the origin, then fan.
        outlines.append(one.mapped(matrix, -(matrix @ one.stem_end)))
    return outlines


def _place(outlines: list[_Outline], rng: np.random.Generator, size: int) -> tuple[list[_Outline], int, int]:
    """Rotate by any angle and scale so the box's longer side is 10-45 % of ``size``, in a padded patch.

    Returns the outlines in patch pixels, and the patch's ``(w, h)``. The size is log-uniform:
    as many bananas below 21 % of the side as above.
    """
    rotation = _rotation(rng.uniform(0.0, 2.0 * math.pi))
    turned = [o.mapped(rotation, np.zeros(2)) for o in outlines]
    pts = np.concatenate([o.all_points() for o in turned])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    target = size * math.exp(rng.uniform(math.log(0.10), math.log(0.45)))
    scale = target / float((hi - lo).max())
    pad = 3.0
    offset = -lo * scale + pad + rng.random(2)  # a random sub-pixel phase
    placed = [o.mapped(np.eye(2) * scale, offset) for o in turned]
    w, h = (np.ceil((hi - lo) * scale + 2 * pad + 1)).astype(int)
    return placed, int(w), int(h)


# --- shading --------------------------------------------------------------------------------

@dataclass
class _Palette:
    """One banana's (or bunch's) colours: HSV base, ripeness marks, stalk."""

    hue: float  # degrees
    sat: float
    val: float
    stalk_shift: float  # degrees added to the hue towards the stalk end (greener)
    spots_per_100px: float  # speckle density on the body
    patches: int  # dark ripeness patches
    stalk: np.ndarray  # RGB
    edge: np.ndarray  # RGB of the darker rim
    mark: np.ndarray  # RGB of speckles, patches and the blossom tip


def _palette(rng: np.random.Generator) -> _Palette:
    """From green through yellow to brown: four ripeness stages, each a band of HSV."""
    stage = int(rng.choice(4, p=[0.15, 0.45, 0.28, 0.12]))  # green, yellow, spotted, overripe
    hue = (rng.uniform(62, 82), rng.uniform(46, 58), rng.uniform(40, 52), rng.uniform(28, 42))[stage]
    sat = rng.uniform(0.55, 0.95)
    val = rng.uniform(0.45, 0.8) if stage == 3 else rng.uniform(0.7, 0.98)
    spots = (0.0, rng.uniform(0.0, 0.4), rng.uniform(0.6, 3.0), rng.uniform(1.5, 5.0))[stage]
    patches = (0, 0, int(rng.integers(0, 3)), int(rng.integers(1, 5)))[stage]
    shift = rng.uniform(0, 6) if stage == 0 else rng.uniform(4, 18)
    stalk = _hsv(rng.uniform(40, 80), rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.6))
    edge = _hsv(hue - rng.uniform(5, 15), rng.uniform(0.6, 0.9), rng.uniform(0.25, 0.45))
    mark = _hsv(rng.uniform(20, 35), rng.uniform(0.5, 0.85), rng.uniform(0.12, 0.35))
    return _Palette(hue, sat, val, shift, spots, patches, stalk, edge, mark)


def _shade_banana(rng: np.random.Generator, outline: _Outline, palette: _Palette, w: int,
                  h: int) -> np.ndarray:
    """Draw one banana of a patch: ``np.ndarray[h, w, 4]`` float32 straight RGBA (alpha = coverage)."""
    px = outline.thickness  # the body's width in pixels
    body_img, body_draw = _canvas(w, h)
    body_draw.polygon(_points(outline.body), fill=255)
    whole_img = body_img.copy()
    stalk_frac = np.zeros((h, w), np.float32)
    if outline.stalk is not None:
        ImageDraw.Draw(whole_img).polygon(_points(outline.stalk), fill=255)
    alpha = _block_mean(whole_img)
    if outline.stalk is not None:
        # The share of a pixel's covered samples that are stalk and not body: the stalk's colour weight.
        stalk_only = np.asarray(whole_img, np.float32) - np.asarray(body_img, np.float32)
        stalk_frac = _block_mean(Image.fromarray(stalk_only.astype(np.uint8))) / np.maximum(alpha, 1e-6)

    # Depth inside the body, from a blurred mask: 0.5 on the edge, towards 1 in the middle. Its
    # fall-off makes the body look round without any coordinate frame.
    depth = _block_mean(body_img.filter(ImageFilter.GaussianBlur(radius=_SS * px * 0.3)))
    round_ = smoothstep(0.3, 0.95, depth) ** 0.6
    # A directional light across the patch.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phi = rng.uniform(0, 2 * math.pi)
    along_light = ((xx - w / 2) * math.cos(phi) + (yy - h / 2) * math.sin(phi)) / (0.5 * max(w, h))
    shade = (0.62 + 0.38 * round_) * (1.0 + rng.uniform(0.05, 0.22) * along_light)

    # Hue drifts greener towards the stalk: t along the blossom -> stalk axis, 0..1.
    axis = outline.stem_end - outline.blossom
    t = np.clip(((xx - outline.blossom[0]) * axis[0] + (yy - outline.blossom[1]) * axis[1]) / float(axis @ axis),
                0.0, 1.0)
    hue = palette.hue + palette.stalk_shift * smoothstep(0.55, 1.0, t)
    rgb = _hsv_to_rgb(hue / 360.0, palette.sat * (1.0 - 0.1 * (1 - round_)), np.clip(palette.val * shade, 0, 1))

    # The lit ridge: a thick line along the ridge curve, blurred, lightens the body.
    if rng.random() < 0.75:
        ridge_img, ridge_draw = _canvas(w, h)
        ridge_draw.line(_points(outline.ridge), fill=255, width=max(1, round(_SS * px * rng.uniform(0.12, 0.3))))
        ridge = _block_mean(ridge_img.filter(ImageFilter.GaussianBlur(radius=_SS * px * 0.12)))
        rgb = rgb + (rng.uniform(0.08, 0.2) * ridge)[..., None] * np.float32([1.0, 1.0, 0.85])

    rgb = _mix(rgb, palette.mark, _marks(rng, outline, palette, alpha, w, h))
    # A darker rim: the covered samples that a min-filter (erosion) removes.
    rim_px = rng.uniform(0.6, 1.6)
    size = 2 * max(1, round(_SS * rim_px / 2)) + 1
    inner = _block_mean(whole_img.filter(ImageFilter.MinFilter(size)))
    rim = np.clip(1.0 - inner / np.maximum(alpha, 1e-6), 0.0, 1.0)
    rgb = _mix(rgb, palette.edge, rng.uniform(0.45, 0.8) * rim)
    stalk_rgb = palette.stalk * (0.75 + 0.25 * round_[..., None])
    rgb = _mix(rgb, stalk_rgb, np.clip(stalk_frac, 0.0, 1.0))
    return np.concatenate([np.clip(rgb, 0.0, 1.0), alpha[..., None]], axis=-1).astype(np.float32)


def _marks(rng: np.random.Generator, outline: _Outline, palette: _Palette, alpha: np.ndarray, w: int,
           h: int) -> np.ndarray:
    """Weights of the dark marks: blossom tip, speckles, ripeness patches; ``np.ndarray[h, w]`` in 0..1."""
    px = outline.thickness
    img, draw = _canvas(w, h)
    r = _SS * px * rng.uniform(0.12, 0.28)  # the blossom tip's dark cap
    bx, by = outline.blossom * _SS
    draw.ellipse([bx - r, by - r, bx + r, by + r], fill=int(rng.integers(150, 256)))
    # Speckles at random covered pixels (positions drawn in bulk, kept where the body is solid).
    area = float(alpha.sum())
    n = int(rng.poisson(palette.spots_per_100px * area / 100.0))
    if n:
        xy = rng.random((n, 2)) * (w, h)
        inside = alpha[xy[:, 1].astype(int), xy[:, 0].astype(int)] > 0.9
        radii = rng.uniform(0.3, 1.3, (n, 2)) * _SS
        shades = rng.integers(120, 256, n)
        for (x, y), (rx, ry), v in zip(xy[inside] * _SS, radii[inside], shades[inside]):
            draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=int(v))
    marks = _block_mean(img)
    if palette.patches:
        patch_img, patch_draw = _canvas(w, h)
        centres = outline.ridge[rng.integers(0, len(outline.ridge), palette.patches)]
        centres = centres + rng.normal(0.0, 0.3 * px, centres.shape)
        for (x, y), rr in zip(centres * _SS, rng.uniform(0.25, 0.7, palette.patches) * px * _SS):
            patch_draw.ellipse([x - rr, y - rr * 0.7, x + rr, y + rr * 0.7], fill=255)
        patches = _block_mean(patch_img.filter(ImageFilter.GaussianBlur(radius=_SS * px * 0.2)))
        marks = np.maximum(marks, rng.uniform(0.35, 0.7) * patches)
    return marks * 0.9


def _banana_patch(rng: np.random.Generator, size: int = _SIZE) -> np.ndarray:
    """One banana or bunch, cropped tight to its alpha: ``np.ndarray[h, w, 4]`` float32 straight RGBA."""
    outlines, w, h = _place(_bunch_outlines(rng), rng, size)
    palette = _palette(rng)
    rgb = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    for outline in outlines:  # back to front: "over" compositing, in premultiplied colour
        layer = _shade_banana(rng, outline, palette, w, h)
        a = layer[..., 3]
        rgb = layer[..., :3] * a[..., None] + rgb * (1.0 - a[..., None])
        alpha = a + alpha * (1.0 - a)
    rgb = rgb / np.maximum(alpha, 1e-6)[..., None]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    patch = np.concatenate([rgb, alpha[..., None]], axis=-1)
    return patch[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


# --- backgrounds ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _heldout_photos() -> tuple[Image.Image, ...]:
    """:data:`HELDOUT_PHOTOS` that scikit-image bundles (RGB or grey ``Image``), loaded once; ``()`` without it."""
    # Imported lazily, as _synth does: without scikit-image every background is procedural.
    try:
        from skimage import data
    except ImportError:
        return ()
    folder = Path(data.__file__).parent
    photos = []
    for name in HELDOUT_PHOTOS:
        path = folder / name
        if not path.is_file():  # never fetch: a trimmed install simply has fewer photos
            continue
        # PIL reads the file skimage.io.imread would (through imageio's Pillow plugin) without the plugin.
        with Image.open(path) as image:
            photos.append(image.convert("L" if image.mode in ("L", "I;16", "I") else "RGB"))
    return tuple(photos)


def _photo_crop(rng: np.random.Generator, photo: Image.Image, size: int) -> np.ndarray:
    """A random crop (scale, aspect, flips, quarter turns) of ``photo``: ``np.ndarray[size, size, 3]`` float32."""
    pw, ph = photo.size
    side = rng.uniform(0.2, 1.0) * min(pw, ph)
    aspect = math.exp(rng.uniform(math.log(0.75), math.log(1.33)))
    cw, ch = min(pw, side * math.sqrt(aspect)), min(ph, side / math.sqrt(aspect))
    x0, y0 = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
    crop = photo.resize((size, size), Image.Resampling.LANCZOS, box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.3:
        crop = crop.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if rng.random() < 0.2:
        crop = crop.transpose(Image.Transpose.ROTATE_90)
    image = np.asarray(crop, dtype=np.float32) / 255.0
    if image.ndim == 2:
        image = _tint(rng, image)
    return image


def _tint(rng: np.random.Generator, grey: np.ndarray) -> np.ndarray:
    """A grey ``[H, W]`` photo tinted like an old print: a gamma, then a partial colour cast -> ``[H, W, 3]``."""
    cast = rng.uniform(0.3, 1.0, 3)
    cast /= cast.max()
    strength = rng.uniform(0.1, 0.7)
    tone = grey ** rng.uniform(0.7, 1.4)
    return (tone[..., None] * (1.0 - strength + strength * cast)).astype(np.float32)


def _procedural(rng: np.random.Generator, size: int) -> np.ndarray:
    """A gradient under translucent rectangles and ellipses: ``np.ndarray[size, size, 3]`` float32.

    Made with PIL (a rotated linear or radial gradient, shapes alpha-composited), unlike the
    training generator's numpy stripes / checkers / clouds.
    """
    gradient = Image.linear_gradient("L") if rng.random() < 0.6 else Image.radial_gradient("L")
    # Turn a larger copy and cut the middle: no empty corners.
    gradient = gradient.resize((2 * size, 2 * size), Image.Resampling.BILINEAR)
    gradient = gradient.rotate(rng.uniform(0, 360), Image.Resampling.BILINEAR)
    gradient = gradient.crop((size // 2, size // 2, size // 2 + size, size // 2 + size))
    c0, c1 = rng.integers(0, 256, (2, 3))
    base = np.asarray(gradient, np.float32)[..., None] / 255.0 * (c1 - c0) + c0  # [S, S, 1] against [3]
    canvas = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).convert("RGBA")
    for _ in range(int(rng.integers(2, 14))):
        overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        cx, cy = rng.uniform(0, size, 2)
        rw, rh = rng.uniform(8, size * 0.6, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3)) + (int(rng.integers(90, 256)),)
        if rng.random() < 0.7:  # a turned rectangle
            corners = np.array([[-rw, -rh], [rw, -rh], [rw, rh], [-rw, rh]]) / 2 @ _rotation(rng.uniform(0, math.pi)).T
            draw.polygon([(float(x), float(y)) for x, y in corners + (cx, cy)], fill=colour)
        else:
            draw.ellipse([cx - rw / 2, cy - rh / 2, cx + rw / 2, cy + rh / 2], fill=colour)
        canvas = Image.alpha_composite(canvas, overlay)
    return np.asarray(canvas.convert("RGB"), np.float32) / 255.0


def _pick_source(rng: np.random.Generator, pools: tuple[Sequence[Image.Image], Sequence[Image.Image]]):
    """The photo to crop (50 % held-out photos, 35 % training photos), or None for a procedural one.

    One draw either way, so the rest of the stream does not depend on which pools exist.
    """
    heldout, training = pools
    u, pick = rng.random(), rng.random()
    pool = heldout if u < 0.5 else training if u < 0.85 else ()
    return pool[int(pick * len(pool))] if pool else None


def _background(rng: np.random.Generator, pools: tuple[Sequence[Image.Image], Sequence[Image.Image]],
                size: int = _SIZE) -> np.ndarray:
    """One background: ``np.ndarray[size, size, 3]`` float32 in 0..1, colour-jittered, sometimes blurred."""
    photo = _pick_source(rng, pools)
    image = _procedural(rng, size) if photo is None else _photo_crop(rng, photo, size)
    mean = image.mean(axis=(0, 1))
    contrast, brightness = rng.uniform(0.75, 1.2), rng.uniform(0.75, 1.2)
    image = ((image - mean) * contrast + mean) * brightness * rng.uniform(0.9, 1.1, 3)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    if rng.random() < 0.35:  # out of focus: the banana stays sharp, as the subject of a photo
        blurred = Image.fromarray(np.round(image * 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(rng.uniform(0.4, 1.5)))
        image = np.asarray(blurred, np.float32) / 255.0
    return image


def _finish(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Sensor noise on the finished picture, then 8 bits: ``[H, W, 3]`` float -> uint8."""
    if rng.random() < 0.6:
        image = image + rng.normal(0.0, rng.uniform(0.004, 0.025), image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


# --- the scene ------------------------------------------------------------------------------

def _shadow(rng: np.random.Generator, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A soft drop shadow of the banana's ``alpha [H, W]`` on ``background [H, W, 3]`` (40 % of images).

    The shadow lies outside the box, as a real one would.
    """
    if rng.random() >= 0.4:
        return background
    dx, dy = rng.integers(-6, 7, 2)
    blur = rng.uniform(1.5, 5.0)
    moved = np.roll(alpha, (int(dy), int(dx)), axis=(0, 1))
    soft = np.asarray(Image.fromarray(np.round(moved * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur)),
                      np.float32) / 255.0
    return background * (1.0 - rng.uniform(0.2, 0.5) * soft)[..., None]


def _occluder_shape(rng: np.random.Generator, centre: np.ndarray, radius: float) -> tuple[str, object]:
    """A random ellipse or star-shaped polygon around ``centre`` (pixels): ``(kind, params)`` to draw."""
    if rng.random() < 0.5:
        rx, ry = radius * rng.uniform(0.5, 1.0, 2)
        return "ellipse", (centre[0] - rx, centre[1] - ry, centre[0] + rx, centre[1] + ry)
    n = int(rng.integers(4, 9))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = radius * rng.uniform(0.5, 1.0, n)
    return "polygon", centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]


def _draw_occluder(shape: tuple[str, object], scale: float, centre: np.ndarray, size: int) -> np.ndarray:
    """Coverage of ``shape`` shrunk by ``scale`` about ``centre``: ``np.ndarray[size, size]``."""
    img, draw = _canvas(size, size)
    kind, params = shape
    if kind == "ellipse":
        x0, y0, x1, y1 = params
        cx, cy = centre
        draw.ellipse([_SS * (cx + (x0 - cx) * scale), _SS * (cy + (y0 - cy) * scale),
                      _SS * (cx + (x1 - cx) * scale), _SS * (cy + (y1 - cy) * scale)], fill=255)
    else:
        draw.polygon(_points(centre + (params - centre) * scale), fill=255)
    return _block_mean(img)


def _occlude(rng: np.random.Generator, image: np.ndarray, background: np.ndarray, alpha: np.ndarray,
             max_hidden: float = 0.3) -> tuple[np.ndarray, float]:
    """Sometimes (30 %) cover part of the banana with a patch cut from elsewhere in the background.

    Args:
        image (np.ndarray[H, W, 3]): the composited picture, float 0..1.
        background (np.ndarray[H, W, 3]): the picture without the banana: the occluder's texture.
        alpha (np.ndarray[H, W]): the banana's coverage.
        max_hidden (float): the largest share of the banana's area hidden; the shape shrinks until
            it hides no more.

    Returns:
        (np.ndarray[H, W, 3], float): the picture, and the share of the banana hidden.
    """
    if rng.random() >= 0.3:
        return image, 0.0
    size = image.shape[0]
    ys, xs = np.nonzero(alpha > 0.5)
    if len(xs) == 0:
        return image, 0.0
    # Centre near a random point of the banana, pushed outwards: it covers an edge, not the middle.
    k = int(rng.integers(len(xs)))
    extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    radius = extent * rng.uniform(0.15, 0.45)
    direction = rng.uniform(0, 2 * math.pi)
    centre = np.array([xs[k], ys[k]], float) + radius * rng.uniform(0.2, 0.9) * np.array(
        [math.cos(direction), math.sin(direction)])
    shape = _occluder_shape(rng, centre, radius)
    # Texture: the background shifted (another piece of the scene), or a flat tone of it.
    shift = rng.integers(size // 5, size - size // 5, 2)
    if rng.random() < 0.65:
        fill = np.roll(background, (int(shift[0]), int(shift[1])), axis=(0, 1))
    else:
        fill = np.broadcast_to(np.clip(background.mean(axis=(0, 1)) * rng.uniform(0.6, 1.4, 3), 0, 1), image.shape)
    total = float(alpha.sum())
    scale = 1.0
    for _ in range(8):  # shrink until no more than max_hidden of the banana is covered
        cover = _draw_occluder(shape, scale, centre, size)
        hidden = float((cover * alpha).sum()) / total
        if hidden <= max_hidden:
            return image * (1.0 - cover[..., None]) + fill * cover[..., None], hidden
        scale *= 0.75
    return image, 0.0


def _render_example(background_rng: np.random.Generator, banana_rng: np.random.Generator,
                    occluder_rng: np.random.Generator,
                    pools: tuple[Sequence[Image.Image], Sequence[Image.Image]] = ((), ()), size: int = _SIZE
                    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int], float]:
    """One held-out image.

    Returns:
        (np.ndarray[size, size, 3] uint8, np.ndarray[size, size] float32, (xmin, ymin, xmax, ymax), float):
        the picture, the banana's coverage before occlusion, its tight box (last covered
        pixel + 1), and the share of the banana an occluder hides.
    """
    patch = _banana_patch(banana_rng, size)
    h, w = patch.shape[:2]
    x0, y0 = int(banana_rng.integers(0, size - w + 1)), int(banana_rng.integers(0, size - h + 1))
    layer = np.zeros((size, size, 4), np.float32)
    layer[y0:y0 + h, x0:x0 + w] = patch
    alpha = layer[..., 3]
    background = _background(background_rng, pools, size)
    shaded = _shadow(occluder_rng, background, alpha)
    image = shaded * (1.0 - alpha[..., None]) + layer[..., :3] * alpha[..., None]
    image, hidden = _occlude(occluder_rng, image, background, alpha)
    # The patch is cropped tight to alpha > 0 and placed wholly inside: its extent is the box
    # (clipped all the same, so the book's 0 <= xmin < xmax <= 256 holds whatever the placement).
    box = (max(x0, 0), max(y0, 0), min(x0 + w, size), min(y0 + h, size))
    return _finish(background_rng, image), alpha, box, hidden


def _render_negative(background_rng: np.random.Generator,
                     pools: tuple[Sequence[Image.Image], Sequence[Image.Image]] = ((), ()),
                     size: int = _SIZE) -> np.ndarray:
    """One banana-free picture: ``np.ndarray[size, size, 3]`` uint8."""
    return _finish(background_rng, _background(background_rng, pools, size))


def _pools() -> tuple[tuple[Image.Image, ...], tuple[Image.Image, ...]]:
    """``(held-out photos, training photos)``; both empty without scikit-image."""
    return _heldout_photos(), _synth.bundled_photos()


# --- writing --------------------------------------------------------------------------------

def _save_png(array: np.ndarray, path: Path) -> None:
    # Level 1 as bananas.py: much faster than the default, a little larger.
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def generate_heldout_bananas(root: PathLike, seed: int = 0, num_images: int = 200, num_negatives: int = 200,
                             progress: ProgressCallback = None) -> Path:
    """Write the held-out banana set and the banana-free negatives under ``root``.

    Deterministic: the same ``seed`` gives byte-identical PNGs and ``label.csv`` (on the same
    numpy / Pillow / scikit-image versions); each image has its own seed, so the first ``k``
    images do not depend on the counts, and none shares a seed with the training generator's.

    Args:
        root (str or PathLike): folder to write ``bananas_heldout/`` and ``negatives/`` into.
        seed (int): >= 0.
        num_images (int): >= 1 images with a banana (or a bunch, one box).
        num_negatives (int): >= 0 banana-free images.
        progress (callable, optional): ``progress(done, total)`` after each image.

    Returns:
        Path: ``root``.
    """
    seed = _checks.check_int(seed, "seed", 0)
    num_images = _checks.check_int(num_images, "num_images", 1)
    num_negatives = _checks.check_int(num_negatives, "num_negatives", 0)
    root = Path(root)
    pools = _pools()
    total = num_images + num_negatives
    folder = root / f"bananas_{_SPLIT}"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows: list[tuple[object, ...]] = []
    for index in range(num_images):
        image, _, box, _ = _render_example(*_image_rngs(seed, "heldout", index), pools)
        _save_png(image, folder / "images" / f"{index}.png")
        rows.append((f"{index}.png", 0, *box))
        if progress is not None:
            progress(index + 1, total)
    with open(folder / "label.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(_HEADER)
        writer.writerows(rows)
    negatives = root / _NEGATIVES / "images"
    negatives.mkdir(parents=True, exist_ok=True)
    for index in range(num_negatives):
        background_rng = _image_rngs(seed, "negatives", index)[0]
        _save_png(_render_negative(background_rng, pools), negatives / f"{index}.png")
        if progress is not None:
            progress(num_images + index + 1, total)
    return root


# --- reading --------------------------------------------------------------------------------

def read_heldout_bananas(root: PathLike) -> tuple[Tensor, Tensor]:
    """Read ``root/bananas_heldout`` as :func:`~vision_core.data.bananas.read_bananas` reads a split.

    Returns:
        (Tensor[N, 3, 256, 256], Tensor[N, 1, 5]): uint8 RGB images, float32 rows ``(class,
        xmin, ymin, xmax, ymax)`` with the corners divided by 256.

    Raises:
        ValueError: as ``read_bananas``: a missing folder, file or image, a bad header or box,
            an image that is not 256 x 256.
    """
    folder = Path(root) / f"bananas_{_SPLIT}"
    csv_path = folder / "label.csv"
    if not csv_path.is_file():
        raise ValueError(f"{csv_path} not found: generate_heldout_bananas(root) writes it")
    return _read_rows(folder, csv_path, _read_label_csv(csv_path))


def _image_order(path: Path) -> tuple[int, str]:
    # 0.png, 1.png, ..., 10.png in numeric order; other names after, alphabetically.
    return (int(path.stem), "") if path.stem.isdigit() else (2**63, path.name)


def read_negatives(root: PathLike) -> Tensor:
    """Read ``root/negatives/images/*.png`` in numeric order: ``uint8 Tensor[M, 3, 256, 256]`` (M may be 0).

    Raises:
        ValueError: no ``negatives/images`` folder, or an image that is not a readable 256 x 256.
    """
    folder = Path(root) / _NEGATIVES / "images"
    if not folder.is_dir():
        raise ValueError(f"{folder} not found: generate_heldout_bananas(root) writes it")
    paths = sorted(folder.glob("*.png"), key=_image_order)
    images = np.empty((len(paths), _SIZE, _SIZE, 3), np.uint8)
    for k, path in enumerate(paths):
        images[k] = _read_image(path)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


# --- the cache ------------------------------------------------------------------------------

def _is_complete(root: Path) -> bool:
    return (root / f"bananas_{_SPLIT}" / "label.csv").is_file() and (root / _NEGATIVES / "images").is_dir()


def load_heldout_bananas(root: PathLike | None = None, seed: int = 0, *, num_images: int = 200,
                         num_negatives: int = 200, progress: ProgressCallback = None
                         ) -> tuple[Tensor, Tensor, Tensor]:
    """The held-out set and the negatives, generated once into the cache when no folder is given.

    Without ``root``: ``$VISION_LAB_DATA/bananas-heldout-v{HELDOUT_VERSION}-seed{seed}`` (default
    parent ``~/.cache/vision_lab``; other counts than 200 / 200 get ``-n{images}-{negatives}``).

    Returns:
        (Tensor[N, 3, 256, 256], Tensor[N, 1, 5], Tensor[M, 3, 256, 256]): uint8 images,
        normalised labels (:func:`read_heldout_bananas`), uint8 negatives (:func:`read_negatives`).
    """
    if root is None:
        seed = _checks.check_int(seed, "seed", 0)
        num_images = _checks.check_int(num_images, "num_images", 1)
        num_negatives = _checks.check_int(num_negatives, "num_negatives", 0)
        root = _synth.cache_dir(f"bananas-heldout-v{HELDOUT_VERSION}", seed, (num_images, num_negatives),
                                _DEFAULT_COUNTS)
        if not _is_complete(root):
            _synth.generate_cached(
                root, lambda tmp: generate_heldout_bananas(tmp, seed, num_images, num_negatives, progress),
                _is_complete, "bananas_heldout/label.csv and negatives/images/")
    images, labels = read_heldout_bananas(root)
    return images, labels, read_negatives(root)
