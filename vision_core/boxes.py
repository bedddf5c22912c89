"""Bounding boxes: format conversion, area, IoU and clipping (d2l 14.3, 14.4).

Three formats are used across the dashboard, named as in ``torchvision.ops.box_convert``:

* ``"xyxy"``   corner format ``(x1, y1, x2, y2)``: upper-left and lower-right corners.
* ``"cxcywh"`` center format ``(cx, cy, w, h)``: the box's center, width and height.
* ``"xywh"``   corner+size format ``(x1, y1, w, h)``: upper-left corner, width and height.

Every function takes any number of leading batch dimensions (``Tensor[..., 4]``), any
floating dtype, on any device, and returns its result on the input's device. Nothing loops
over boxes in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._checks import ArgumentError, check_choice, describe

__all__ = [
    "BOX_FORMATS",
    "box_corner_to_center",
    "box_center_to_corner",
    "box_corner_to_xywh",
    "box_xywh_to_corner",
    "box_convert",
    "box_area",
    "box_iou",
    "clip_boxes_to_image",
    "normalize_boxes",
    "denormalize_boxes",
]

BOX_FORMATS = ("xyxy", "cxcywh", "xywh")


def _check_boxes(boxes: Tensor, name: str = "boxes") -> None:
    # The one box check: anchors.py uses it too.
    if not isinstance(boxes, Tensor) or boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ArgumentError(name, "a torch.Tensor of shape [..., 4]", describe(boxes))


def _upcast(t: Tensor) -> Tensor:
    # 16-bit floats overflow on products of pixel coordinates (300 * 300 > 65504), so areas
    # and intersections are computed in float32 and cast back at the end.
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.float()
    return t


def box_corner_to_center(boxes: Tensor) -> Tensor:
    """Convert boxes from corner ``(x1, y1, x2, y2)`` to center ``(cx, cy, w, h)`` format.

    The book's ``box_corner_to_center``, generalised to any leading shape.

    Args:
        boxes (Tensor[..., 4]): boxes in ``xyxy`` format.

    Returns:
        Tensor[..., 4]: the same boxes in ``cxcywh`` format.
    """
    _check_boxes(boxes)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def box_center_to_corner(boxes: Tensor) -> Tensor:
    """``Tensor[..., 4]`` center ``(cx, cy, w, h)`` -> ``Tensor[..., 4]`` corner ``(x1, y1, x2, y2)``.

    The book's ``box_center_to_corner``: the exact inverse of :func:`box_corner_to_center` (up to
    floating-point rounding).
    """
    _check_boxes(boxes)
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def box_corner_to_xywh(boxes: Tensor) -> Tensor:
    """``Tensor[..., 4]`` corner ``(x1, y1, x2, y2)`` -> ``Tensor[..., 4]`` corner+size ``(x1, y1, w, h)``."""
    _check_boxes(boxes)
    top_left = boxes[..., :2]
    return torch.cat((top_left, boxes[..., 2:] - top_left), dim=-1)


def box_xywh_to_corner(boxes: Tensor) -> Tensor:
    """``Tensor[..., 4]`` corner+size ``(x1, y1, w, h)`` -> ``Tensor[..., 4]`` corner ``(x1, y1, x2, y2)``."""
    _check_boxes(boxes)
    top_left = boxes[..., :2]
    return torch.cat((top_left, top_left + boxes[..., 2:]), dim=-1)


_TO_CORNER = {"xyxy": lambda b: b, "cxcywh": box_center_to_corner, "xywh": box_xywh_to_corner}
_FROM_CORNER = {"xyxy": lambda b: b, "cxcywh": box_corner_to_center, "xywh": box_corner_to_xywh}


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between ``"xyxy"``, ``"cxcywh"`` and ``"xywh"`` (via corner format).

    Same contract as ``torchvision.ops.box_convert``, for any leading shape.

    Args:
        boxes (Tensor[..., 4]): boxes in ``in_fmt``.
        in_fmt (str): one of :data:`BOX_FORMATS`.
        out_fmt (str): one of :data:`BOX_FORMATS`.

    Returns:
        Tensor[..., 4]: boxes in ``out_fmt``; a copy even when the formats are equal.
    """
    check_choice(in_fmt, "in_fmt", BOX_FORMATS)
    check_choice(out_fmt, "out_fmt", BOX_FORMATS)
    _check_boxes(boxes)
    if in_fmt == out_fmt:
        return boxes.clone()
    return _FROM_CORNER[out_fmt](_TO_CORNER[in_fmt](boxes))


def box_area(boxes: Tensor) -> Tensor:
    """Area of corner-format boxes, ``(x2 - x1) * (y2 - y1)``.

    Like ``torchvision.ops.box_area``, an inverted box (``x2 < x1`` xor ``y2 < y1``)
    gives a negative area; validate boxes first where that matters.

    Args:
        boxes (Tensor[..., 4]): boxes in ``xyxy`` format.

    Returns:
        Tensor[...]: the area of each box, float32 for 16-bit inputs.
    """
    _check_boxes(boxes)
    boxes = _upcast(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union of two sets of corner-format boxes.

    The book's ``box_iou``, equal to ``torchvision.ops.box_iou`` on valid boxes, with
    leading batch dimensions broadcast. Degenerate pairs (both boxes of zero area, so a
    zero union) get IoU 0 rather than NaN, and inverted boxes count as empty, so every
    entry lies in ``[0, 1]``.

    Args:
        boxes1 (Tensor[..., N, 4]): boxes in ``xyxy`` format.
        boxes2 (Tensor[..., M, 4]): boxes in ``xyxy`` format.

    Returns:
        Tensor[..., N, M]: ``IoU(boxes1[..., i, :], boxes2[..., j, :])`` in the dtype of
        ``boxes1`` and ``boxes2`` promoted together.
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    if boxes1.dim() < 2 or boxes2.dim() < 2:
        raise ArgumentError("boxes1 and boxes2", "Tensor[..., N, 4] and Tensor[..., M, 4]",
                            f"{describe(boxes1)} and {describe(boxes2)}")
    out_dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    b1 = _upcast(boxes1)[..., :, None, :]  # [..., N, 1, 4]
    b2 = _upcast(boxes2)[..., None, :, :]  # [..., 1, M, 4]
    # One [..., N, M] plane per coordinate: cheaper than [..., N, M, 2] corner pairs
    # (contiguous, and no reduction over a size-2 dimension).
    inter_w = (torch.min(b1[..., 2], b2[..., 2]) - torch.max(b1[..., 0], b2[..., 0])).clamp_(min=0)
    inter_h = (torch.min(b1[..., 3], b2[..., 3]) - torch.max(b1[..., 1], b2[..., 1])).clamp_(min=0)
    inter = inter_w * inter_h  # [..., N, M]
    union = _box_size(b1).prod(-1) + _box_size(b2).prod(-1) - inter  # [..., N, M]
    # A zero union only comes with a zero intersection; clamping it to the smallest normal
    # float gives 0 there (torchvision gives NaN) and keeps gradients finite.
    iou = inter / union.clamp_(min=torch.finfo(union.dtype).tiny if union.is_floating_point() else 1)
    return iou.to(out_dtype) if out_dtype.is_floating_point else iou


def _box_size(boxes: Tensor) -> Tensor:
    # [..., 2] widths and heights of corner boxes, inverted boxes counted as empty.
    return (boxes[..., 2:] - boxes[..., :2]).clamp(min=0)


def clip_boxes_to_image(boxes: Tensor, size: Sequence[int]) -> Tensor:
    """Clip corner-format boxes so they lie inside an image of ``size = (height, width)``.

    Same as ``torchvision.ops.clip_boxes_to_image``, for any leading shape. Pixel
    coordinates; for normalised boxes pass ``size=(1, 1)``.

    Args:
        boxes (Tensor[..., 4]): boxes in ``xyxy`` format.
        size (tuple[int, int]): the image size ``(height, width)``.

    Returns:
        Tensor[..., 4]: the clipped boxes.
    """
    _check_boxes(boxes)
    height, width = _check_size(size)
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def _check_size(size: Sequence[float]) -> tuple[float, float]:
    try:
        height, width = (float(s) for s in size)
    except (TypeError, ValueError):
        raise ArgumentError("size", "(height, width)", repr(size)) from None
    if not (height > 0 and width > 0):
        raise ArgumentError("size", "(height, width) with both > 0", repr(size))
    return height, width


def _xy_scale(size: Sequence[float], like: Tensor) -> Tensor:
    height, width = _check_size(size)
    # Every format stores (x-like, y-like, x-like, y-like), so one scale vector serves all.
    return torch.tensor([width, height, width, height], dtype=like.dtype, device=like.device)


def normalize_boxes(boxes: Tensor, size: Sequence[float]) -> Tensor:
    """Pixel coordinates -> fractions of the image, in any of :data:`BOX_FORMATS`.

    Args:
        boxes (Tensor[..., 4]): boxes in pixels, any format.
        size (tuple[float, float]): the image size ``(height, width)`` in pixels.

    Returns:
        Tensor[..., 4]: x-values divided by ``width``, y-values by ``height``.
    """
    _check_boxes(boxes)
    return boxes / _xy_scale(size, boxes)


def denormalize_boxes(boxes: Tensor, size: Sequence[float]) -> Tensor:
    """Fractions of the image -> pixel coordinates; the inverse of :func:`normalize_boxes`.

    Args:
        boxes (Tensor[..., 4]): normalised boxes, any format.
        size (tuple[float, float]): the image size ``(height, width)`` in pixels.

    Returns:
        Tensor[..., 4]: x-values times ``width``, y-values times ``height``.
    """
    _check_boxes(boxes)
    return boxes * _xy_scale(size, boxes)
