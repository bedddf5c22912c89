"""SSD-style data augmentation of detection batches, one vectorised pass over the whole batch.

The book trains TinySSD (d2l 14.7) on the banana images as they are, and the network learns
those thousand pictures rather than bananas. :func:`ssd_augment` applies the augmentations of
the SSD paper (Liu et al. 2016, section 2.2 and 3.6), each sample drawing its own parameters,
and moves the boxes with the pixels so the labels stay exact. What each one teaches:

* **zoom out** (the SSD paper's "zoom out", its code's "expand"): the image shrinks inside a
  larger canvas filled with its mean colour, so the network sees small objects, which the
  banana images rarely show and which TinySSD's first, finest stage must find. It never
  shrinks the smallest box below ``min_box_side``: much smaller boxes overlap none of the
  book's anchors well (the smallest are ``0.2`` of the image's side).
* **crop** (d2l 14.1's "flipping and cropping", as a zoom in): a random window that keeps
  every box whole, stretched back to the image's size: larger objects, other positions and
  slightly other aspect ratios, so position and scale stop being cues.
* **horizontal flip** (d2l 14.1, ``RandomHorizontalFlip``): a banana facing left is still a
  banana; the network must not learn one orientation.
* **changing colours** (d2l 14.1's ``ColorJitter``: brightness, contrast, saturation, hue):
  other lighting and white balance, so the detector keys on shape rather than on one exact
  yellow.
* **banana-free windows** (off unless asked for): the largest square beside the boxes,
  stretched to the image's size, with no box left. Every training picture holds a banana, so
  without them the network never sees a whole picture without one, and it learns that a
  picture always has somewhere to put a box.

The three geometric ones compose into one axis-aligned affine map per sample (scale,
translate, mirror), applied with one ``affine_grid`` + ``grid_sample`` to the batch; the
colour ones compose into one ``3 x 3`` matrix and an offset per sample, applied with one
``einsum``. Boxes go through the same affine map, exactly: an axis-aligned map keeps an
axis-aligned box axis-aligned. All random numbers come from the caller's CPU
``torch.Generator``, a fixed number per sample and call, so a seed reproduces a run on any
device and changing a probability does not shift the other draws.

Images are float ``0..255`` (not normalised), ``Tensor[B, 3, H, W]``; labels are
``Tensor[B, G, 5]`` rows ``(class, x1, y1, x2, y2)``, the corners (``xyxy``) divided by the
image's width and height, ``class = -1`` for a padding row, as
:func:`vision_core.data.bananas.read_bananas` returns them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import ArgumentError, check_real, describe, is_real

__all__ = ["ssd_augment"]

# Per sample and call: zoom-out (gate, factor, x, y), crop (gate, width, height, x, y), flip (gate),
# colour (gate and value for brightness, contrast, saturation, hue).
_GEOMETRY_DRAWS = 10
_COLOR_DRAWS = 8

# RGB -> YIQ (NTSC). Y is the luma of ITU-R BT.601, the grey of saturation and contrast; the I and Q
# rows sum to 0, so grey (1, 1, 1) has no chroma and a hue rotation about Y leaves greys grey.
_YIQ = ((0.299, 0.587, 0.114),
        (0.595716, -0.274453, -0.321263),
        (0.211456, -0.522591, 0.311135))


def ssd_augment(images: Tensor, labels: Tensor, generator: torch.Generator, *,
                zoom_out: tuple[float, float] = (1.0, 2.0), crop: tuple[float, float] = (0.6, 1.0),
                min_box_side: float = 0.08, p_zoom_out: float = 0.3, p_crop: float = 0.4, p_flip: float = 0.5,
                p_color: float = 0.5, brightness: float = 32.0, contrast: tuple[float, float] = (0.5, 1.5),
                saturation: tuple[float, float] = (0.5, 1.5), hue: float = 18.0, p_background: float = 0.0,
                min_background_side: float = 0.3) -> tuple[Tensor, Tensor]:
    """Randomly zoom out, crop, flip and recolour a batch of detection images, and move their boxes.

    Each sample draws its own parameters. In order:

    1. colours, each with probability ``p_color``, on its own: brightness (add ``delta``
       drawn from ``[-brightness, brightness]``), contrast (scale about the image's mean grey
       by a factor in ``contrast``), saturation (blend with the pixel's grey by a factor in
       ``saturation``) and hue (rotate the chroma, YIQ's ``I, Q`` plane, by an angle in
       ``[-hue, hue]`` degrees). They are composed into one colour map and clamped to
       ``0..255`` once, so no intermediate step clips;
    2. zoom out, with probability ``p_zoom_out``: the image is placed at a random position in a
       canvas ``z`` times its width and height, filled with the image's mean colour, ``z`` drawn
       from ``zoom_out``, but at most as large as keeps the longer side of the smallest box
       ``>= min_box_side`` (a sample whose boxes are already smaller is not zoomed out);
    3. crop (zoom in), with probability ``p_crop``: a window whose width and height are their
       own fractions in ``crop`` of the canvas's (so the aspect ratio changes by up to
       ``crop[1] / crop[0]``), widened where needed and placed inside the canvas so that every
       box lies inside it, stretched back to ``H x W``;
    4. horizontal flip, with probability ``p_flip``;
    5. a banana-free window, with probability ``p_background``, instead of steps 2 and 3: the
       largest square that lies wholly beside the boxes' union (left, right, above or below it),
       at a random place along that side, stretched to ``H x W``; every real box becomes a
       padding row (all ``-1``). A sample whose largest such square is under
       ``min_background_side`` of the image's side keeps steps 2 and 3.

    Steps 2 to 5 are one affine resampling (bilinear, ``align_corners=False``) per sample.
    Samples that no step picks come back bit for bit; padding rows (``class < 0``) are never
    changed; real boxes are mapped exactly and clamped to ``[0, 1]`` against rounding. Boxes
    are assumed to lie in ``[0, 1]``, as the banana reader guarantees.

    Args:
        images (Tensor[B, 3, H, W]): floating point ``0..255``, on any device.
        labels (Tensor[B, G, 5]): floating point rows ``(class, x1, y1, x2, y2)``, corners
            normalised by the image's width and height, ``class = -1`` for padding; on the
            images' device.
        generator (torch.Generator): a CPU generator, the only source of randomness.
        zoom_out ((float, float)): range of the canvas-to-image side ratio, ``1 <= lo <= hi <= 10``.
        crop ((float, float)): range of the crop's side as a fraction of the canvas's,
            ``0 < lo <= hi <= 1``.
        min_box_side (float): in ``[0, 1]``: zooming out stops where the longer side of the
            smallest box would fall below this fraction of the image's side.
        p_zoom_out, p_crop, p_flip (float): each step's probability, in ``[0, 1]``.
        p_color (float): probability of each of the four colour changes, in ``[0, 1]``.
        brightness (float): largest brightness shift, in ``[0, 255]`` (SSD's 32).
        contrast ((float, float)): range of the contrast factor, ``0 <= lo <= hi <= 10``.
        saturation ((float, float)): range of the saturation factor, ``0 <= lo <= hi <= 10``.
        hue (float): largest hue rotation in degrees, in ``[0, 180]``.
        p_background (float): probability of step 5, in ``[0, 1]``; its random numbers are only
            drawn when it is above 0, so the default leaves every other draw as it was.
        min_background_side (float): in ``(0, 1]``: the smallest window step 5 stretches.

    Returns:
        (Tensor[B, 3, H, W], Tensor[B, G, 5]): new tensors: the images (``0..255`` where
        recoloured or resampled, the dtype and device of ``images``) and the labels (the dtype
        and device of ``labels``).

    Raises:
        ArgumentError: an argument is out of its range.
    """
    _check_batch(images, labels)
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ArgumentError("generator", "a torch.Generator on the CPU",
                            f"one on {generator.device}" if isinstance(generator, torch.Generator)
                            else type(generator).__name__)
    zoom_out = _check_range(zoom_out, "zoom_out", 1.0, 10.0)
    crop = _check_range(crop, "crop", 0.0, 1.0, lo_open=True)
    min_box_side = check_real(min_box_side, "min_box_side", 0.0, 1.0)
    p_zoom_out, p_crop, p_flip, p_color = (check_real(p, name, 0.0, 1.0) for p, name in (
        (p_zoom_out, "p_zoom_out"), (p_crop, "p_crop"), (p_flip, "p_flip"), (p_color, "p_color")))
    brightness = check_real(brightness, "brightness", 0.0, 255.0)
    contrast = _check_range(contrast, "contrast", 0.0, 10.0)
    saturation = _check_range(saturation, "saturation", 0.0, 10.0)
    hue = check_real(hue, "hue", 0.0, 180.0)
    p_background = check_real(p_background, "p_background", 0.0, 1.0)
    min_background_side = check_real(min_background_side, "min_background_side", 0.0, 1.0, lo_open=True)

    # Drawn in full whatever the probabilities, then moved: the same numbers on every device.
    draws = torch.rand((images.shape[0], _GEOMETRY_DRAWS + _COLOR_DRAWS), generator=generator)
    draws = draws.to(images.device)
    geometry, colors = draws[:, :_GEOMETRY_DRAWS], draws[:, _GEOMETRY_DRAWS:]

    images = _color_jitter(images, colors, p_color, brightness, contrast, saturation, hue)
    scale, shift, moved = _sample_affine(labels, geometry, zoom_out, crop, min_box_side, p_zoom_out, p_crop, p_flip)
    if p_background > 0:
        background = torch.rand((images.shape[0], 2), generator=generator).to(images.device)
        scale, shift, moved, emptied = _with_background(labels, geometry[:, 9], background, scale, shift, moved,
                                                        p_background, min_background_side, p_flip)
        labels = torch.where(emptied[:, None, None], torch.full_like(labels, -1.0), labels)
    return _warp_images(images, scale, shift, moved), _warp_labels(labels, scale, shift, moved)


# --- argument checks ------------------------------------------------------------------------

def _check_batch(images: Any, labels: Any) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ArgumentError("images", "a tensor of shape [B, 3, H, W] with B >= 1", describe(images))
    if not images.is_floating_point():
        raise ArgumentError("images", "floating point (values 0..255)", str(images.dtype))
    if not isinstance(labels, Tensor) or labels.dim() != 3 or labels.shape[-1] != 5:
        raise ArgumentError("labels", "of shape [B, G, 5] (rows class, x1, y1, x2, y2)", describe(labels))
    if labels.shape[0] != images.shape[0]:
        raise ArgumentError("labels", f"{images.shape[0]} rows, one per image", f"{labels.shape[0]} rows")
    if not labels.is_floating_point():
        raise ArgumentError("labels", "floating point", str(labels.dtype))
    if labels.device != images.device:
        raise ArgumentError("labels", f"on the images' device ({images.device})", str(labels.device))


def _check_range(value: Any, name: str, lo: float, hi: float, lo_open: bool = False) -> tuple[float, float]:
    # A (low, high) pair of numbers within [lo, hi] ((lo, hi] with lo_open), low <= high.
    ok = (isinstance(value, (tuple, list)) and len(value) == 2 and all(is_real(v) for v in value)
          and (lo < value[0] if lo_open else lo <= value[0]) and value[0] <= value[1] <= hi)
    if not ok:
        raise ArgumentError(name, f"a pair (low, high) with {lo:g} {'<' if lo_open else '<='} low <= high <= {hi:g}",
                            repr(value))
    return float(value[0]), float(value[1])


# --- colours --------------------------------------------------------------------------------

def _hue_rotation(angle: Tensor) -> Tensor:
    """``Tensor[B]`` angles in radians -> ``Tensor[B, 3, 3]`` RGB maps rotating the chroma about grey.

    ``T^-1 P(angle) T`` with ``T`` RGB -> YIQ and ``P`` a rotation of the ``I, Q`` plane, written
    as ``identity + (cos - 1) K + sin J`` so that a zero angle gives the identity exactly, not to
    rounding.
    """
    yiq = torch.tensor(_YIQ, dtype=torch.float64)
    inverse = torch.linalg.inv(yiq)
    chroma = inverse @ torch.diag(torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)) @ yiq
    turn = inverse @ torch.tensor([[0.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64) @ yiq
    chroma, turn = chroma.to(angle), turn.to(angle)  # float32 on the device: no float64 on MPS
    eye = torch.eye(3, dtype=angle.dtype, device=angle.device)
    # [3, 3] + [B, 1, 1] * [3, 3]
    return eye + (angle.cos() - 1)[:, None, None] * chroma + angle.sin()[:, None, None] * turn


def _color_jitter(images: Tensor, draws: Tensor, p: float, brightness: float, contrast: tuple[float, float],
                  saturation: tuple[float, float], hue: float) -> Tensor:
    """Brightness, contrast, saturation and hue, each on with probability ``p``, per sample.

    Args:
        images (Tensor[B, 3, H, W]): float ``0..255``.
        draws (Tensor[B, 8]): uniform ``[0, 1)`` numbers, a (gate, value) pair per change.

    Returns:
        Tensor[B, 3, H, W]: recoloured samples clamped to ``0..255``; the others as they were.
    """
    gates, values = draws[:, 0::2] < p, draws[:, 1::2]  # [B, 4] each
    delta = torch.where(gates[:, 0], (2 * values[:, 0] - 1) * brightness, 0.0)
    alpha = torch.where(gates[:, 1], contrast[0] + values[:, 1] * (contrast[1] - contrast[0]), 1.0)
    beta = torch.where(gates[:, 2], saturation[0] + values[:, 2] * (saturation[1] - saturation[0]), 1.0)
    angle = torch.where(gates[:, 3], (2 * values[:, 3] - 1) * math.radians(hue), 0.0)

    gray = torch.tensor(_YIQ[0], device=images.device)
    eye = torch.eye(3, device=images.device)
    # Saturation blends each pixel with its grey: beta I + (1 - beta) 1 gray^T.  [B, 3, 3]
    saturate = beta[:, None, None] * eye + (1 - beta)[:, None, None] * gray.expand(3, 3)
    matrix = alpha[:, None, None] * _hue_rotation(angle) @ saturate  # [B, 3, 3]
    # Brightness, then contrast about the brightened image's mean grey, is alpha x + offset 1; the
    # saturation and hue maps fix grey (1, 1, 1), so the offset passes them unchanged.
    mean_gray = torch.einsum("c,bc->b", gray, images.float().mean((2, 3)))
    offset = delta + (1 - alpha) * mean_gray  # [B]
    mixed = torch.einsum("bij,bjhw->bihw", matrix.to(images.dtype), images)
    recolored = (mixed + offset.to(images.dtype)[:, None, None, None]).clamp(0, 255)
    return torch.where(gates.any(1)[:, None, None, None], recolored, images)


# --- geometry -------------------------------------------------------------------------------
# Each step is, per sample and axis, x -> scale * x + shift on coordinates normalised to [0, 1]:
# two Tensor[B, 2] (x, y), composed from the first step to the last.

def _compose(outer: tuple[Tensor, Tensor], inner: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    # outer(inner(x)) = so * (si * x + ti) + to
    (so, to), (si, ti) = outer, inner
    return so * si, so * ti + to


def _box_extent(labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The real boxes' union and the longer side of the smallest one, per sample.

    Args:
        labels (Tensor[B, G, 5]): rows ``(class, x1, y1, x2, y2)``, class < 0 = padding.

    Returns:
        (Tensor[B, 2], Tensor[B, 2], Tensor[B]): the union's ``(x1, y1)`` and ``(x2, y2)``
        (``+inf`` and ``-inf`` for a sample without boxes: an empty union, which any window
        contains and any positive scaling keeps empty), and the smallest longer side (``inf``
        without boxes).
    """
    real = (labels[..., 0] >= 0)[..., None]  # [B, G, 1]
    boxes = labels[..., 1:].float()  # [B, G, 4]
    inf = float("inf")
    # One padding row of +-inf keeps the reductions defined when G == 0.
    low = F.pad(torch.where(real, boxes[..., :2], inf), (0, 0, 0, 1), value=inf).amin(1)
    high = F.pad(torch.where(real, boxes[..., 2:], -inf), (0, 0, 0, 1), value=-inf).amax(1)
    longer = (boxes[..., 2:] - boxes[..., :2]).amax(-1, keepdim=True)  # [B, G, 1]
    smallest = F.pad(torch.where(real, longer, inf), (0, 0, 0, 1), value=inf).amin(1)[:, 0]
    return low, high, smallest


def _zoom_out(draws: Tensor, smallest: Tensor, p: float, zoom: tuple[float, float],
              min_box_side: float) -> tuple[Tensor, Tensor]:
    """Place the image in a canvas ``z`` times its size: ``x -> (x + offset) / z``.

    Args:
        draws (Tensor[B, 4]): uniform numbers: gate, factor, x and y position.
        smallest (Tensor[B]): the longer side of each sample's smallest box (``inf``: none).

    Returns:
        (Tensor[B, 2], Tensor[B, 2]): scale and shift (``1`` and ``0`` where off).
    """
    # Cap z so the smallest box keeps min_box_side; the draw spans the allowed range rather than
    # piling up at the cap. Where even lo breaks the rule, z shrinks to 1: no zoom at all.
    cap = smallest / min_box_side if min_box_side > 0 else torch.full_like(smallest, float("inf"))
    high = cap.clamp(max=zoom[1]).clamp(min=1.0)
    low = high.clamp(max=zoom[0])
    z = torch.where(draws[:, 0] < p, low + draws[:, 1] * (high - low), 1.0)[:, None]  # [B, 1]
    offset = draws[:, 2:] * (z - 1)  # [B, 2]: the image's corner anywhere in the canvas
    return (1 / z).expand(-1, 2), offset / z


def _crop(draws: Tensor, low: Tensor, high: Tensor, p: float, crop: tuple[float, float]) -> tuple[Tensor, Tensor]:
    """A window of the canvas containing ``[low, high]``, stretched to it: ``x -> (x - start) / side``.

    Args:
        draws (Tensor[B, 5]): uniform numbers: gate, width, height, x and y position.
        low, high (Tensor[B, 2]): the boxes' union in canvas coordinates (``inf``, ``-inf``: none).

    Returns:
        (Tensor[B, 2], Tensor[B, 2]): scale and shift (``1`` and ``0`` where off).
    """
    # Clamped to the canvas: an empty union becomes (1, 0), whose constraints below are void.
    low, high = low.clamp(0, 1), high.clamp(0, 1)
    # Each side at least the union's extent, so the boxes fit; then the start where the window
    # both contains the union and stays in the canvas: [max(0, high - side), min(low, 1 - side)].
    least = (high - low).clamp(min=crop[0])  # [B, 2]
    side = least + draws[:, 1:3] * (least.clamp(min=crop[1]) - least)
    first, last = (high - side).clamp(min=0), torch.minimum(low, 1 - side)
    start = first + draws[:, 3:5] * (last - first).clamp(min=0)
    on = (draws[:, 0] < p)[:, None]  # [B, 1]
    return torch.where(on, 1 / side, 1.0), torch.where(on, -start / side, 0.0)


def _flip(draws: Tensor, p: float) -> tuple[Tensor, Tensor]:
    """Mirror left-right: ``x -> 1 - x``, ``y`` kept. ``draws`` (Tensor[B]): the gates."""
    on = draws < p
    ones, zeros = torch.ones_like(draws), torch.zeros_like(draws)
    return (torch.stack((torch.where(on, -1.0, 1.0), ones), 1),
            torch.stack((torch.where(on, 1.0, 0.0), zeros), 1))


def _sample_affine(labels: Tensor, draws: Tensor, zoom: tuple[float, float], crop: tuple[float, float],
                   min_box_side: float, p_zoom_out: float, p_crop: float,
                   p_flip: float) -> tuple[Tensor, Tensor, Tensor]:
    """The per-sample map zoom-out, then crop, then flip.

    Args:
        labels (Tensor[B, G, 5]): the boxes the crop must keep.
        draws (Tensor[B, 10]): uniform numbers.

    Returns:
        (Tensor[B, 2], Tensor[B, 2], Tensor[B]): scale and shift per axis, and which
        samples any step moved.
    """
    low, high, smallest = _box_extent(labels)
    zoom_map = _zoom_out(draws[:, 0:4], smallest, p_zoom_out, zoom, min_box_side)
    scale, shift = zoom_map
    # The crop is chosen around the boxes where the zoom-out put them (scale > 0: corners stay in order).
    crop_map = _crop(draws[:, 4:9], scale * low + shift, scale * high + shift, p_crop, crop)
    scale, shift = _compose(_flip(draws[:, 9], p_flip), _compose(crop_map, zoom_map))
    moved = (draws[:, 0] < p_zoom_out) | (draws[:, 4] < p_crop) | (draws[:, 9] < p_flip)
    return scale, shift, moved


def _background_window(low: Tensor, high: Tensor, along: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The largest square window beside the boxes' union, stretched to the image: ``x -> (x - start) / side``.

    Args:
        low, high (Tensor[B, 2]): the union's corners (``inf``, ``-inf``: no box, and the window
            is the whole image).
        along (Tensor[B]): uniform numbers: where the window lies along the side it is on.

    Returns:
        (Tensor[B, 2], Tensor[B, 2], Tensor[B]): scale and shift, and the window's side.
    """
    low, high = low.clamp(0, 1), high.clamp(0, 1)
    room = torch.cat((low, 1 - high), 1)  # [B, 4]: left, above, right, below the union
    side, where = room.max(dim=1)  # [B]
    before = where < 2  # left of or above the union: the window starts at 0, else it ends at 1
    start_across = torch.where(before, 0.0, 1 - side)  # [B], on the axis the union is beside
    start_along = along * (1 - side)  # [B], on the other axis
    vertical = (where % 2 == 1)  # above or below: the window's y is fixed, its x free
    start = torch.stack((torch.where(vertical, start_along, start_across),
                         torch.where(vertical, start_across, start_along)), 1)  # [B, 2]
    side = side.clamp(min=1e-6)[:, None]  # [B, 1]
    return (1 / side).expand(-1, 2), -start / side, side[:, 0]


def _with_background(labels: Tensor, flip_draws: Tensor, draws: Tensor, scale: Tensor, shift: Tensor,
                     moved: Tensor, p: float, min_side: float, p_flip: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Replace the zoom-out and crop of the samples step 5 picks by a banana-free window (then the flip).

    Args:
        labels (Tensor[B, G, 5]): the boxes the window must avoid.
        flip_draws (Tensor[B]): the flip's gates, as :func:`_sample_affine` used them.
        draws (Tensor[B, 2]): uniform numbers: gate, place along the side.
        scale, shift (Tensor[B, 2]), moved (Tensor[B]): :func:`_sample_affine`'s maps.

    Returns:
        (Tensor[B, 2], Tensor[B, 2], Tensor[B], Tensor[B]): the maps, which samples move, and
        which now hold no box.
    """
    low, high, _ = _box_extent(labels)
    window_scale, window_shift, side = _background_window(low, high, draws[:, 1])
    emptied = (draws[:, 0] < p) & (side >= min_side)  # [B]
    window_scale, window_shift = _compose(_flip(flip_draws, p_flip), (window_scale, window_shift))
    on = emptied[:, None]  # [B, 1]
    return (torch.where(on, window_scale, scale), torch.where(on, window_shift, shift), moved | emptied, emptied)


def _warp_images(images: Tensor, scale: Tensor, shift: Tensor, moved: Tensor) -> Tensor:
    """Resample each image under its map (bilinear); outside the image, its mean colour.

    Args:
        images (Tensor[B, 3, H, W]): float ``0..255``.
        scale, shift (Tensor[B, 2]): the maps, input -> output, on ``[0, 1]`` coordinates.
        moved (Tensor[B]): samples to resample; the others are returned as they are.
    """
    # grid_sample asks, for each output pixel, where to read in the input, on [-1, 1] coordinates
    # (g = 2x - 1): the inverse map, g_in = g_out / scale + (1 - 2 shift) / scale - 1.
    theta = torch.zeros(images.shape[0], 2, 3, device=images.device)
    theta[:, 0, 0], theta[:, 1, 1] = 1 / scale[:, 0], 1 / scale[:, 1]
    theta[:, :, 2] = (1 - 2 * shift) / scale - 1
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    # Resampling the image less its mean with zero padding fills the canvas with the mean colour,
    # and blends the image's edge into it as bilinear sampling would blend two pixels.
    mean = images.mean((2, 3), keepdim=True)  # [B, 3, 1, 1]
    warped = F.grid_sample(images - mean, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + mean
    return torch.where(moved[:, None, None, None], warped.clamp(0, 255), images)


def _warp_labels(labels: Tensor, scale: Tensor, shift: Tensor, moved: Tensor) -> Tensor:
    """Map each real box's corners; a mirror swaps ``x1`` and ``x2``, so corners are re-sorted.

    Args:
        labels (Tensor[B, G, 5]): rows ``(class, x1, y1, x2, y2)``.
        scale, shift (Tensor[B, 2]): the maps, as for :func:`_warp_images`.
        moved (Tensor[B]): samples whose boxes move; padding rows never do.
    """
    boxes = labels[..., 1:].float()  # [B, G, 4]
    corners = boxes * scale.repeat(1, 2)[:, None] + shift.repeat(1, 2)[:, None]  # [B, G, 4] * [B, 1, 4]
    first, second = corners[..., :2], corners[..., 2:]
    mapped = torch.cat((torch.minimum(first, second), torch.maximum(first, second)), -1).clamp(0, 1)
    keep = moved[:, None, None] & (labels[..., :1] >= 0)  # [B, G, 1]
    return torch.cat((labels[..., :1], torch.where(keep, mapped.to(labels.dtype), labels[..., 1:])), -1)
