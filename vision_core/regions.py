"""Region-based CNNs: region proposals by selective search, RoI pooling and RoI align (d2l 14.8).

* :func:`selective_search` proposes regions the way R-CNN did, with OpenCV contrib's
  implementation of Uijlings et al. (2013). OpenCV is imported only when it is called, so
  the rest of the package imports with torch and torchvision alone.
* :func:`roi_pool_grid` is RoI max pooling written out as the book describes it: the RoI is
  quantised to the feature map, split into an ``n x m`` grid of sub-windows, and each
  sub-window keeps its maximum. Its output equals ``torchvision.ops.roi_pool`` exactly, and
  it also returns each sub-window's bounds and where each maximum came from, for display.
* :func:`roi_align` is ``torchvision.ops.roi_align`` with the same argument checks, so the
  dashboard can show both poolings side by side.

Boxes are in corner format ``(x1, y1, x2, y2)`` and pixel coordinates. RoIs are given as
``torchvision.ops.roi_pool`` takes them: ``Tensor[K, 5]`` rows ``(batch_index, x1, y1, x2,
y2)``, or a list with one ``Tensor[L, 4]`` of boxes per image.
"""

from __future__ import annotations

import ctypes
import math
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchvision
from torch import Tensor

from ._checks import ArgumentError, check_bool, check_choice, check_int, check_real, describe, is_int, is_real
from .boxes import box_xywh_to_corner

__all__ = [
    "SELECTIVE_SEARCH_MODES",
    "RoIPoolResult",
    "selective_search",
    "roi_pool_grid",
    "roi_align",
    "proposal_at",
]

SELECTIVE_SEARCH_MODES = ("fast", "quality")

_OPENCV_CONTRIB_MISSING = (
    "selective search needs OpenCV's contrib modules: pip install opencv-contrib-python-headless"
)

# OpenCV ranks the proposals of each grouping by ``rand() * level``, with the C library's
# rand(), which Python cannot reach through cv2. Seeding that generator and running the search
# under one lock makes the order reproducible between calls and threads of this process.
_SEARCH_LOCK = threading.Lock()
_C_SRAND = None
_C_SRAND_LOOKED_UP = False

RoIs = Tensor | Sequence[Tensor]


# --- selective search -----------------------------------------------------------------------

def selective_search(
    image: Any,
    mode: str = "fast",
    max_proposals: int | None = 2000,
    min_size: float = 0.0,
    max_side: int | None = 500,
    seed: int | None = 0,
) -> Tensor:
    """Region proposals by selective search (Uijlings et al., 2013), as R-CNN used them.

    Runs OpenCV contrib's ``cv2.ximgproc.segmentation`` selective search (not a re-write),
    converts its ``(x, y, w, h)`` rectangles to corner format and scales them back to the
    input image.

    Selective search takes seconds on a few-hundred-pixel image, and its cost grows faster
    than the pixel count, so an image whose longer side exceeds ``max_side`` is searched at a
    reduced size (longer side ``max_side``, area-averaged) and the boxes are scaled back up;
    they then lie on that coarser grid.

    OpenCV orders proposals by a randomly weighted hierarchy level (smaller regions tend to
    come first), drawing from the C library's ``rand()``. With ``seed`` set, that generator is
    seeded before the search, so equal inputs give equal proposals in equal order (within this
    process; the sequence itself depends on the C library). ``seed=None`` leaves it alone.

    Args:
        image: an RGB image, either ``uint8`` array-like ``[H, W, 3]`` (numpy, PIL) or a
            ``uint8`` ``Tensor[3, H, W]`` on any device.
        mode (str): ``"fast"`` (2 colour spaces x 3 segmentations) or ``"quality"`` (5 x 5,
            several times slower), OpenCV's two presets.
        max_proposals (int, optional): keep at most this many proposals, the first ones in
            OpenCV's order; ``None`` keeps all.
        min_size (float): drop boxes whose width or height, in input pixels, is below this.
        max_side (int, optional): the longest side, in pixels, the search runs at (>= 16);
            ``None`` searches at full size.
        seed (int, optional): seed for the C ``rand()`` OpenCV ranks with, in
            ``[0, 2**32 - 1]``; ``None`` leaves it as it is.

    Returns:
        Tensor[K, 4]: float32 boxes ``(x1, y1, x2, y2)`` in input pixels, inside the image,
        without duplicates, in OpenCV's proposal order; on the input tensor's device, or on
        the CPU for array input.

    Raises:
        ArgumentError (a ValueError): on a bad argument.
        ImportError: when OpenCV or its contrib modules (``cv2.ximgproc``) are missing.
    """
    rgb, device = _as_rgb_array(image)
    check_choice(mode, "mode", SELECTIVE_SEARCH_MODES)
    max_proposals = _check_optional_int(max_proposals, "max_proposals", 1)
    min_size = check_real(min_size, "min_size", 0)
    max_side = _check_optional_int(max_side, "max_side", 16)
    seed = _check_optional_int(seed, "seed", 0, 2**32 - 1)
    cv2 = _import_opencv_contrib()

    height, width = rgb.shape[:2]
    work = rgb
    if max_side is not None and max(height, width) > max_side:
        factor = max_side / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))  # cv2 wants (w, h)
        work = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(work, cv2.COLOR_RGB2BGR)

    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(bgr)
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    with _SEARCH_LOCK:
        if seed is not None:
            _seed_c_rand(seed)
        rects = search.process()

    xywh = torch.from_numpy(np.asarray(rects, dtype=np.float64).reshape(-1, 4))
    scale = torch.tensor(
        [width / work.shape[1], height / work.shape[0]] * 2, dtype=torch.float64
    )
    # Scale in float64 and clip: the far edge of a full-width box must land on `width` exactly.
    boxes = box_xywh_to_corner(xywh) * scale
    boxes = torch.minimum(boxes.clamp(min=0), torch.tensor([width, height] * 2, dtype=torch.float64))
    boxes = _unique_rows_in_order(boxes.float())
    if min_size > 0:
        wh = boxes[:, 2:] - boxes[:, :2]  # [K, 2]
        boxes = boxes[(wh >= min_size).all(dim=1)]
    if max_proposals is not None:
        boxes = boxes[:max_proposals]
    return boxes.to(device)


def _check_optional_int(value: Any, name: str, lo: int, hi: int | None = None) -> int | None:
    if value is None:
        return None
    try:
        return check_int(value, name, lo, hi)
    except ArgumentError as err:
        raise ArgumentError(name, f"{err.allowed} or None", err.got) from None


def _as_rgb_array(image: Any) -> tuple[np.ndarray, torch.device]:
    # -> (uint8 [H, W, 3] C-contiguous numpy array, device the result goes to)
    if isinstance(image, Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ArgumentError("image", "a uint8 Tensor[3, H, W]", f"{image.dtype} {describe(image)}")
        device = image.device
        array = image.detach().permute(1, 2, 0).cpu().numpy()
    else:
        try:
            array = np.asarray(image)
        except Exception:
            raise ArgumentError("image", "a uint8 array [H, W, 3]", describe(image)) from None
        device = torch.device("cpu")
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ArgumentError("image", "a uint8 array [H, W, 3]", f"{array.dtype} {describe(array)}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ArgumentError("image", "at least 1 x 1 pixels", f"{array.shape[0]} x {array.shape[1]}")
    return np.ascontiguousarray(array), device


def _import_opencv_contrib():
    try:
        import cv2
    except ImportError:
        raise ImportError(_OPENCV_CONTRIB_MISSING) from None
    # Plain opencv-python imports fine but has no ximgproc.
    if not hasattr(getattr(cv2, "ximgproc", None), "segmentation"):
        raise ImportError(_OPENCV_CONTRIB_MISSING)
    return cv2


def _seed_c_rand(seed: int) -> None:
    global _C_SRAND, _C_SRAND_LOOKED_UP
    if not _C_SRAND_LOOKED_UP:
        _C_SRAND_LOOKED_UP = True
        # POSIX: the process's global symbols hold the libc that OpenCV links against.
        # Windows: OpenCV's wheels use the universal CRT, whose rand() state is per thread;
        # the search runs on the calling thread, so seeding here still reaches it.
        for name in (None, "ucrtbase"):
            try:
                _C_SRAND = ctypes.CDLL(name).srand
                _C_SRAND.argtypes = [ctypes.c_uint]
                _C_SRAND.restype = None
                break
            except (OSError, AttributeError, TypeError):
                continue
        if _C_SRAND is None:
            warnings.warn("selective_search: cannot reach the C library's srand(); proposal order will vary")
    if _C_SRAND is not None:
        _C_SRAND(seed)


def _unique_rows_in_order(boxes: Tensor) -> Tensor:
    # Drop repeated rows, keeping each row's first occurrence so OpenCV's order survives.
    if boxes.shape[0] == 0:
        return boxes
    _, inverse = torch.unique(boxes, dim=0, return_inverse=True)  # [K]
    positions = torch.arange(boxes.shape[0])
    first = torch.full((int(inverse.max()) + 1,), boxes.shape[0], dtype=torch.long)
    first.scatter_reduce_(0, inverse, positions, reduce="amin")
    return boxes[first.sort().values]


# --- RoI pooling ----------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RoIPoolResult:
    """What :func:`roi_pool_grid` computed, for ``K`` RoIs, ``C`` channels and an ``n x m`` grid.

    All index tensors are ``int64`` cell coordinates of the feature map (``features[b, c, y,
    x]``), on the features' device. Windows are half-open: rows ``y_start <= y < y_end``.

    Attributes:
        pooled (Tensor[K, C, n, m]): each sub-window's maximum; equal to
            ``torchvision.ops.roi_pool``. Empty sub-windows hold 0.
        windows (Tensor[K, n, m, 4]): each sub-window as ``(y_start, y_end, x_start, x_end)``,
            clipped to the feature map; empty where ``y_end <= y_start`` or ``x_end <= x_start``.
        argmax (Tensor[K, C, n, m, 2]): ``(y, x)`` of the cell each maximum was taken from, the
            first in row-major order on ties; ``(-1, -1)`` where nothing was pooled: an empty
            sub-window (pooled 0) or, as in torchvision, one holding only NaN or values <=
            ``-FLT_MAX`` (pooled ``-FLT_MAX``).
        roi_windows (Tensor[K, 4]): each RoI quantised to the feature map, before clipping, as
            ``(y_start, y_end, x_start, x_end)``; the grid divides this window.
        batch_index (Tensor[K]): the image of ``features`` each RoI was pooled from.
    """

    pooled: Tensor
    windows: Tensor
    argmax: Tensor
    roi_windows: Tensor
    batch_index: Tensor


def roi_pool_grid(
    features: Tensor,
    rois: RoIs,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> RoIPoolResult:
    """RoI max pooling, step by step (d2l 14.8.2), equal to ``torchvision.ops.roi_pool``.

    For each RoI, following torchvision's kernel:

    1. Quantise: multiply its corners by ``spatial_scale`` and round half away from zero to
       feature-map cells; the RoI spans ``x_end - x_start + 1`` columns (at least 1), since
       the rounded corner cells are both included.
    2. Split that span into ``m`` sub-windows of ``bin = span / m`` cells: sub-window ``j``
       covers columns ``floor(j * bin)`` to ``ceil((j + 1) * bin)`` (exclusive) from the RoI's
       start, clipped to the map. Neighbouring sub-windows may share a column when ``bin`` is
       not an integer. Rows likewise with ``n``.
    3. Keep each sub-window's maximum per channel; an empty sub-window (all outside the map)
       gives 0.

    The arithmetic runs in the features' dtype, as torchvision's does, so results match it
    bit for bit. Loops over the ``n * m`` sub-windows only; RoIs and channels are batched.

    Args:
        features (Tensor[N, C, H, W]): floating-point feature maps.
        rois (Tensor[K, 5] or list[Tensor[L, 4]]): ``(batch_index, x1, y1, x2, y2)`` rows, or
            ``(x1, y1, x2, y2)`` boxes per image, in input-image pixels; finite, on
            ``features``' device, cast to ``features``' dtype.
        output_size (int or tuple[int, int]): the grid ``(n, m)``, each >= 1.
        spatial_scale (float): feature-map cells per input pixel (> 0), e.g. 1/16 after four
            stride-2 stages.

    Returns:
        RoIPoolResult: ``pooled`` plus the sub-window bounds and argmax locations.
    """
    rois5, (n, m), spatial_scale = _check_roi_args(features, rois, output_size, spatial_scale)
    height, width = features.shape[-2:]
    dtype, device = features.dtype, features.device
    k, channels = rois5.shape[0], features.shape[1]

    batch_index = rois5[:, 0].long()  # C++ truncation; checked to be whole numbers already
    # Scale in the features' dtype (the kernel casts spatial_scale to T), then round like C++.
    corners = _round_half_away_from_zero(rois5[:, 1:] * torch.tensor(spatial_scale, dtype=dtype, device=device))
    x1, y1, x2, y2 = corners.long().unbind(1)  # [K] each
    span_h = (y2 - y1 + 1).clamp(min=1)
    span_w = (x2 - x1 + 1).clamp(min=1)
    ys = _grid_bounds(y1, span_h, n, height, dtype)  # [K, n, 2]
    xs = _grid_bounds(x1, span_w, m, width, dtype)  # [K, m, 2]
    windows = torch.cat(
        (ys[:, :, None, :].expand(k, n, m, 2), xs[:, None, :, :].expand(k, n, m, 2)), dim=-1
    )  # [K, n, m, 4]
    roi_windows = torch.stack((y1, y1 + span_h, x1, x1 + span_w), dim=1)  # [K, 4]

    pooled = features.new_zeros((k, channels, n, m))
    argmax = torch.full((k, channels, n, m, 2), -1, dtype=torch.long, device=device)
    if k > 0 and channels > 0:
        # One host sync: the largest sub-window sets the patch gathered for every RoI.
        max_h, max_w = ((ys[..., 1] - ys[..., 0]).max(), (xs[..., 1] - xs[..., 0]).max())
        max_h, max_w = torch.stack((max_h, max_w)).clamp(min=0).tolist()
        if max_h > 0 and max_w > 0:
            for i in range(n):
                for j in range(m):
                    pooled[:, :, i, j], argmax[:, :, i, j] = _pool_window(
                        features, batch_index, ys[:, i], xs[:, j], max_h, max_w
                    )
    return RoIPoolResult(pooled, windows, argmax, roi_windows, batch_index)


def _round_half_away_from_zero(x: Tensor) -> Tensor:
    # torch.round rounds halves to even, C++ round() away from zero. x - trunc(x) is exact, so
    # this avoids floor(x + 0.5), which rounds 0.49999997 up in float32.
    whole = torch.trunc(x)
    frac = x - whole
    return whole + torch.where(frac.abs() >= 0.5, torch.sign(frac), torch.zeros_like(frac))


def _grid_bounds(start: Tensor, span: Tensor, bins: int, limit: int, dtype: torch.dtype) -> Tensor:
    # [K] RoI starts and spans -> [K, bins, 2] half-open (start, end) per sub-window, clipped.
    span_t = span.to(dtype)
    # A materialised divisor, not a scalar: on CUDA torch turns division by a CPU scalar into
    # multiplication by its reciprocal, which can round differently from the kernel's division.
    bin_size = span_t / torch.full_like(span_t, bins)  # [K]
    index = torch.arange(bins + 1, dtype=dtype, device=start.device)
    edges = index[None, :] * bin_size[:, None]  # [K, bins + 1]
    lo = torch.floor(edges[:, :-1]).long() + start[:, None]
    hi = torch.ceil(edges[:, 1:]).long() + start[:, None]
    return torch.stack((lo, hi), dim=-1).clamp(min=0, max=limit)


def _pool_window(
    features: Tensor, batch_index: Tensor, ys: Tensor, xs: Tensor, max_h: int, max_w: int
) -> tuple[Tensor, Tensor]:
    # One sub-window for every RoI: ys, xs [K, 2] bounds -> pooled [K, C], argmax [K, C, 2].
    height, width = features.shape[-2:]
    rows = ys[:, :1] + torch.arange(max_h, device=ys.device)  # [K, max_h]
    cols = xs[:, :1] + torch.arange(max_w, device=xs.device)  # [K, max_w]
    inside = (rows < ys[:, 1:])[:, :, None] & (cols < xs[:, 1:])[:, None, :]  # [K, max_h, max_w]
    # Clamped indices read a valid cell for the padding; `inside` masks it out below.
    patch = features[
        batch_index[:, None, None], :, rows.clamp(max=height - 1)[:, :, None], cols.clamp(max=width - 1)[:, None, :]
    ]  # [K, max_h, max_w, C]
    patch = patch.flatten(1, 2)  # [K, max_h * max_w, C], row-major within the window
    inside = inside.flatten(1, 2)[:, :, None]  # [K, max_h * max_w, 1]
    # The kernel starts from -FLT_MAX and keeps a value only if strictly greater, so NaN never
    # wins and a window of NaN / -inf yields -FLT_MAX with no argmax. Mirror that.
    patch = patch.masked_fill(~inside | torch.isnan(patch), -math.inf)
    best, flat = patch.max(dim=1)  # [K, C]; ties go to the first, as in the kernel's scan
    floor_value = torch.tensor(-torch.finfo(torch.float32).max, dtype=features.dtype, device=features.device)
    found = best > floor_value
    empty = (ys[:, 1] <= ys[:, 0]) | (xs[:, 1] <= xs[:, 0])  # [K]
    fallback = torch.where(empty[:, None], torch.zeros_like(best), floor_value.expand_as(best))
    pooled = torch.where(found, best, fallback)
    y = rows.gather(1, flat // max_w)  # [K, C]
    x = cols.gather(1, flat % max_w)
    where = torch.stack((y, x), dim=-1).masked_fill(~found[:, :, None], -1)  # [K, C, 2]
    return pooled, where


def roi_align(
    features: Tensor,
    rois: RoIs,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoI align (Mask R-CNN, d2l 14.8.4): ``torchvision.ops.roi_align`` with argument checks.

    Unlike RoI pooling nothing is rounded: each of the ``n x m`` bins averages
    ``sampling_ratio**2`` bilinearly interpolated points of the feature map.

    Args:
        features (Tensor[N, C, H, W]): floating-point feature maps.
        rois (Tensor[K, 5] or list[Tensor[L, 4]]): as for :func:`roi_pool_grid`.
        output_size (int or tuple[int, int]): the grid ``(n, m)``, each >= 1.
        spatial_scale (float): feature-map cells per input pixel (> 0).
        sampling_ratio (int): interpolated points per bin side; <= 0 picks
            ``ceil(roi_size / output_size)`` per RoI, as torchvision does.
        aligned (bool): shift boxes by -0.5 cells so pixel centres line up (Detectron2's
            correction); ``False`` matches the book and torchvision's default.

    Returns:
        Tensor[K, C, n, m]: the pooled features.
    """
    rois5, output_size, spatial_scale = _check_roi_args(features, rois, output_size, spatial_scale)
    if not is_int(sampling_ratio):
        raise ArgumentError("sampling_ratio", "an integer (<= 0 for adaptive)", repr(sampling_ratio))
    aligned = check_bool(bool(aligned) if isinstance(aligned, np.bool_) else aligned, "aligned")
    return torchvision.ops.roi_align(features, rois5, output_size, spatial_scale, int(sampling_ratio), aligned)


def _check_roi_args(
    features: Tensor, rois: RoIs, output_size: Any, spatial_scale: Any
) -> tuple[Tensor, tuple[int, int], float]:
    # -> (rois as Tensor[K, 5] in features' dtype, (n, m), spatial_scale as float)
    if not isinstance(features, Tensor) or features.dim() != 4 or not features.is_floating_point():
        got = f"{features.dtype} {describe(features)}" if isinstance(features, Tensor) else describe(features)
        raise ArgumentError("features", "a floating-point Tensor[N, C, H, W]", got)
    if min(features.shape[2:]) < 1:
        raise ArgumentError("features", "a Tensor[N, C, H, W] with H, W >= 1", describe(features))
    size = (output_size, output_size) if is_int(output_size) else output_size
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(is_int(s) and s >= 1 for s in size)):
        raise ArgumentError("output_size", "an integer >= 1 or a pair (n, m) of integers >= 1", repr(output_size))
    spatial_scale = check_real(spatial_scale, "spatial_scale", 0, lo_open=True)
    rois5 = _rois_to_tensor(rois, features)
    return rois5, (int(size[0]), int(size[1])), spatial_scale


def _rois_to_tensor(rois: RoIs, features: Tensor) -> Tensor:
    num_images = features.shape[0]
    if isinstance(rois, Tensor):
        if rois.dim() != 2 or rois.shape[1] != 5:
            raise ArgumentError("rois", "a Tensor[K, 5] or a list of Tensor[L, 4]", describe(rois))
        rois5 = rois
    elif isinstance(rois, (list, tuple)):
        if len(rois) > num_images:
            raise ArgumentError("rois", f"boxes for at most {num_images} images (as many as features holds)",
                                f"boxes for {len(rois)} images")
        parts = []
        for i, boxes in enumerate(rois):
            if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
                raise ArgumentError(f"rois[{i}]", "a Tensor[L, 4]", describe(boxes))
            if boxes.device != features.device:
                raise ArgumentError(f"rois[{i}]", f"on features' device ({features.device})", str(boxes.device))
            parts.append(torch.cat((torch.full_like(boxes[:, :1], i, dtype=features.dtype), boxes.to(features.dtype)), dim=1))
        rois5 = torch.cat(parts) if parts else features.new_zeros((0, 5))
    else:
        raise ArgumentError("rois", "a Tensor[K, 5] or a list of Tensor[L, 4]", describe(rois))
    if rois5.device != features.device:
        raise ArgumentError("rois", f"on features' device ({features.device})", str(rois5.device))
    if rois5.is_complex():
        raise ArgumentError("rois", "real numbers", str(rois5.dtype))
    rois5 = rois5.to(features.dtype)
    if rois5.shape[0] > 0:
        # One host sync for both checks; the kernels would read out of bounds otherwise.
        finite = torch.isfinite(rois5).all()
        batch = rois5[:, 0]
        batch_ok = ((batch == batch.trunc()) & (batch >= 0) & (batch < num_images)).all()
        finite, batch_ok = torch.stack((finite, batch_ok)).tolist()
        if not finite:
            raise ArgumentError("rois", "finite (no NaN or inf)", "a non-finite value")
        if not batch_ok:
            raise ArgumentError("rois[:, 0] (batch index)", f"whole numbers in [0, {num_images - 1}]",
                                "one outside them")
    return rois5


# --- picking a proposal by a point ------------------------------------------------------------

def proposal_at(proposals: Tensor, x: float, y: float) -> int:
    """The proposal a click at pixel ``(x, y)`` means: the smallest one containing the point, or,
    when none does, the one whose outline is nearest to it.

    Proposals nest (selective search merges small regions into larger ones), so the smallest
    box around a point is the most specific region there; ties go to the earlier proposal.

    Args:
        proposals (Tensor[K, 4]): corner-format boxes ``(x1, y1, x2, y2)`` in pixels, ``K >= 1``.
        x, y (float): the point, in the same pixels.

    Returns:
        int: the chosen proposal's index into ``proposals``.
    """
    if not isinstance(proposals, Tensor) or proposals.dim() != 2 or proposals.shape[-1] != 4 or len(proposals) == 0:
        raise ArgumentError("proposals", "a Tensor[K, 4] with K >= 1", describe(proposals))
    if not (is_real(x) and is_real(y)):
        raise ArgumentError("x and y", "finite numbers", f"{x!r} and {y!r}")
    boxes = proposals.double()
    point = torch.tensor([x, y], dtype=torch.float64)
    # Distance from the point to each box per axis: 0 inside the box's span on that axis.
    gap = (torch.maximum(boxes[:, :2] - point, point - boxes[:, 2:])).clamp(min=0)  # [K, 2]
    distance = gap.norm(dim=1)  # [K]; 0 for boxes containing the point
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)  # [K]
    inside = distance == 0
    # Containing boxes rank by area, the others after them by distance (argmin keeps the first tie).
    key = torch.where(inside, area, area.max() + 1 + distance)
    return int(torch.argmin(key))
