"""Anchor boxes: generation, labelling, offsets and prediction with NMS (d2l 14.4, 14.7).

The book's functions, with its names, signatures and outputs, so ``d2l.X`` can be swapped
for ``vision_core.X``:

* :func:`multibox_prior` generates ``n + m - 1`` anchors per pixel of a feature map.
* :func:`assign_anchor_to_bbox` labels each anchor with a ground-truth box (or ``-1``),
  :func:`multibox_target` turns that into class labels, offsets and masks for training.
* :func:`offset_boxes` / :func:`offset_inverse` are the book's ``10 / 5``-scaled offsets.
* :func:`nms` and :func:`multibox_detection` turn class probabilities and offsets into
  detections.

Boxes are corner format ``(x1, y1, x2, y2)``, normalised to the image (``0..1``) where the
book does so. Fast paths are vectorised over the batch and over boxes, and run on the
inputs' device. :func:`nms_trace` and :func:`assign_anchor_trace` replay the book's greedy
algorithms one step at a time, in Python, for stepping through them in the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torchvision
from torch import Tensor

from ._checks import ArgumentError, check_real, describe
from .boxes import _check_boxes, box_center_to_corner, box_corner_to_center, box_iou

__all__ = [
    "multibox_prior",
    "assign_anchor_to_bbox",
    "assign_anchor_to_bbox_batch",
    "offset_boxes",
    "offset_inverse",
    "multibox_target",
    "nms",
    "multibox_detection",
    "NMSStep",
    "nms_trace",
    "GreedyStep",
    "ThresholdStep",
    "assign_anchor_trace",
]


# --- argument checks ------------------------------------------------------------------------

def _check_unit(value: Any, name: str) -> float:
    # A one-element tensor counts as its number: thresholds often come out of tensor arithmetic.
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    return check_real(value, name, 0, 1)


def _check_positive_list(values: Sequence[float], name: str, device: torch.device) -> Tensor:
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ArgumentError(name, "a non-empty list of numbers > 0", repr(values)) from None
    if not floats or not all(math.isfinite(v) and v > 0 for v in floats):
        raise ArgumentError(name, "a non-empty list of finite numbers > 0", repr(values))
    # Python floats, like the book's d2l.tensor(sizes): the default dtype.
    return torch.tensor(floats, device=device)


def _check_matrix(boxes: Tensor, name: str) -> None:
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ArgumentError(name, "a torch.Tensor of shape [N, 4]", describe(boxes))


def _squeeze_anchors(anchors: Tensor) -> Tensor:
    # The book passes multibox_prior's (1, A, 4) output and squeezes it; (A, 4) works too.
    if isinstance(anchors, Tensor) and anchors.dim() == 3 and anchors.shape[0] == 1:
        anchors = anchors[0]
    if not isinstance(anchors, Tensor) or anchors.dim() != 2 or anchors.shape[-1] != 4:
        raise ArgumentError("anchors", "a torch.Tensor of shape [1, A, 4] or [A, 4]", describe(anchors))
    return anchors


def _nms_dtype(boxes: Tensor, scores: Tensor) -> torch.dtype:
    dtype = torch.promote_types(boxes.dtype, scores.dtype)
    if not dtype.is_floating_point:
        raise ArgumentError("boxes and scores", "floating point", f"{boxes.dtype} and {scores.dtype}")
    # torchvision's CPU kernel has no 16-bit version.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check_nms_args(boxes: Tensor, scores: Tensor, iou_threshold: float) -> tuple[Tensor, Tensor, float]:
    _check_matrix(boxes, "boxes")
    if not isinstance(scores, Tensor) or scores.shape != boxes.shape[:1]:
        raise ArgumentError("scores", f"a torch.Tensor of shape [N] = [{boxes.shape[0]}] to match boxes",
                            describe(scores))
    threshold = _check_unit(iou_threshold, "iou_threshold")
    dtype = _nms_dtype(boxes, scores)
    return boxes.to(dtype), scores.to(dtype), threshold


# --- anchor generation ----------------------------------------------------------------------

def multibox_prior(data: Tensor, sizes: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """Anchor boxes centred on every pixel of a feature map (the book's ``multibox_prior``).

    With ``n`` sizes and ``m`` ratios each pixel gets ``n + m - 1`` anchors, in the book's
    order: ``(s_i, r_0)`` for every size, then ``(s_0, r_j)`` for ``j >= 1``. An anchor of
    size ``s`` and ratio ``r`` is ``s * sqrt(r) * H / W`` wide and ``s / sqrt(r)`` high, in
    fractions of the image, so ``r`` is the width-to-height ratio in pixels. Centres lie at
    ``((j + 0.5) / W, (i + 0.5) / H)``.

    Args:
        data (Tensor[..., H, W]): the feature map; only its last two sizes and its device are
            used.
        sizes (Sequence[float]): anchor sizes, fractions of the image, each > 0.
        ratios (Sequence[float]): width-to-height ratios, each > 0.

    Returns:
        Tensor[1, H * W * (n + m - 1), 4]: normalised ``xyxy`` anchors, pixel-major (all
        anchors of pixel ``(0, 0)``, then of ``(0, 1)``, ...), in the default dtype on
        ``data.device``, like the book.
    """
    if not isinstance(data, Tensor) or data.dim() < 2 or data.shape[-1] == 0 or data.shape[-2] == 0:
        raise ArgumentError("data", "a tensor of shape [..., H, W] with H, W >= 1", describe(data))
    in_height, in_width = data.shape[-2:]
    device = data.device
    size_t = _check_positive_list(sizes, "sizes", device)
    ratio_t = _check_positive_list(ratios, "ratios", device)

    # The same float operations in the same order as the book, so the anchors agree to the bit.
    center_h = (torch.arange(in_height, device=device) + 0.5) * (1.0 / in_height)
    center_w = (torch.arange(in_width, device=device) + 0.5) * (1.0 / in_width)
    shift_y, shift_x = torch.meshgrid(center_h, center_w, indexing="ij")
    centers = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1).reshape(-1, 1, 4)  # [H*W, 1, 4]

    sqrt_r = torch.sqrt(ratio_t)
    # Widths are scaled by H / W so that a ratio-1 anchor is square in pixels.
    w = torch.cat((size_t * sqrt_r[0], size_t[0] * sqrt_r[1:])) * in_height / in_width
    # The book's `sizes[0] / tensor` runs as `tensor.reciprocal() * sizes[0]` (Tensor.__rtruediv__),
    # which can differ from a true division in the last bit.
    h = torch.cat((size_t / sqrt_r[0], sqrt_r[1:].reciprocal() * size_t[0]))
    half = torch.stack((-w, -h, w, h), dim=-1) / 2  # [n+m-1, 4]

    return (centers + half).reshape(1, -1, 4)  # [H*W, n+m-1, 4] -> [1, H*W*(n+m-1), 4]


# --- labelling anchors ----------------------------------------------------------------------

def assign_anchor_to_bbox(
    ground_truth: Tensor, anchors: Tensor, device: torch.device | None, iou_threshold: float = 0.5
) -> Tensor:
    """Assign a ground-truth box to each anchor, or ``-1`` (the book's ``assign_anchor_to_bbox``).

    The book's two rules. Greedy: take the largest IoU ``x_ij`` left in the anchor-by-box
    IoU matrix, give box ``j`` to anchor ``i``, discard row ``i`` and column ``j``; repeat
    once per box, so every box gets an anchor. Threshold: every other anchor gets the box it
    overlaps most if that IoU is at least ``iou_threshold``. Ties go to the first entry in
    anchor-major order, as the book's ``argmax`` does.

    Two deliberate differences: two empty boxes have IoU 0 here, NaN in the book; and the
    flat argmax index is split by integer division, where the book's float32 division can
    name the wrong anchor once the matrix has more than ``2**24`` entries.

    Args:
        ground_truth (Tensor[G, 4]): ``xyxy`` boxes.
        anchors (Tensor[A, 4]): ``xyxy`` anchors.
        device (torch.device or None): where to put the result; ``None`` means
            ``anchors.device``.
        iou_threshold (float): in ``[0, 1]``.

    Returns:
        Tensor[A]: int64, the index of each anchor's box, ``-1`` for background.
    """
    _check_matrix(ground_truth, "ground_truth")
    _check_matrix(anchors, "anchors")
    out = assign_anchor_to_bbox_batch(ground_truth[None], anchors, iou_threshold)[0]
    return out if device is None else out.to(device)


def assign_anchor_to_bbox_batch(
    ground_truth: Tensor, anchors: Tensor, iou_threshold: float = 0.5, valid: Tensor | None = None
) -> Tensor:
    """:func:`assign_anchor_to_bbox` for a batch of images with padded box lists.

    Image ``b`` is labelled as the book would label it with only its valid boxes, in their
    order; the indices returned still refer to positions in ``ground_truth[b]``.

    Args:
        ground_truth (Tensor[B, G, 4]): ``xyxy`` boxes, padded to a common ``G``.
        anchors (Tensor[A, 4]): ``xyxy`` anchors shared by all images.
        iou_threshold (float): in ``[0, 1]``.
        valid (Tensor[B, G], optional): bool, ``False`` for padding rows; all valid if omitted.

    Returns:
        Tensor[B, A]: int64, the index into ``ground_truth[b]`` of each anchor's box, ``-1``
        for background.
    """
    if not isinstance(ground_truth, Tensor) or ground_truth.dim() != 3 or ground_truth.shape[-1] != 4:
        raise ArgumentError("ground_truth", "a torch.Tensor of shape [B, G, 4]", describe(ground_truth))
    _check_matrix(anchors, "anchors")
    threshold = _check_unit(iou_threshold, "iou_threshold")
    if valid is None:
        valid = torch.ones(ground_truth.shape[:2], dtype=torch.bool, device=ground_truth.device)
    elif not isinstance(valid, Tensor) or valid.shape != ground_truth.shape[:2]:
        raise ArgumentError("valid", f"a torch.Tensor of shape [B, G] = {list(ground_truth.shape[:2])}",
                            describe(valid))
    jaccard = box_iou(anchors, ground_truth)  # [A, 4] x [B, G, 4] -> [B, A, G]
    return _assign_from_iou(jaccard, valid.to(device=jaccard.device, dtype=torch.bool), threshold)


def _assign_from_iou(jaccard: Tensor, valid: Tensor, threshold: float) -> Tensor:
    # jaccard [B, A, G], valid [B, G] -> [B, A]
    batch, num_anchors, num_gt = jaccard.shape
    device = jaccard.device
    out = torch.full((batch, num_anchors), -1, dtype=torch.long, device=device)
    if num_anchors == 0 or num_gt == 0:
        return out
    # Padding columns score -1, below every real IoU: the value the greedy phase gives
    # discarded entries, so they can never be chosen while a real entry is left.
    jaccard = jaccard.masked_fill(~valid[:, None, :], -1)

    # Threshold rule first, as in the book: the greedy picks below overwrite it.
    max_ious, best_gt = jaccard.max(dim=-1)  # [B, A]; first box on ties
    out = torch.where(max_ious >= threshold, best_gt, out)

    rows, work = _greedy_candidates(jaccard)  # [B, K], [B, K, G]
    num_rows = rows.shape[1]
    num_valid = valid.sum(dim=-1)  # [B]
    row_ids = torch.arange(num_rows, device=device)
    col_ids = torch.arange(num_gt, device=device)
    picked_anchor, picked_gt = [], []
    # The greedy rule is sequential (each pick depends on what earlier picks discarded), so
    # this loops once per box, but over whole batches and without host syncs.
    for step in range(min(num_anchors, num_gt)):
        flat = work.flatten(1).argmax(dim=1)  # [B]; first maximum in anchor-major order
        row, col = flat // num_gt, flat % num_gt
        anchor = rows.gather(1, row[:, None])[:, 0]
        # An image whose boxes are all placed parks its pick in a scratch column (index A).
        picked_anchor.append(torch.where(step < num_valid, anchor, num_anchors))
        picked_gt.append(col)
        discard = (row_ids == row[:, None])[:, :, None] | (col_ids == col[:, None])[:, None, :]  # [B, K, G]
        work = work.masked_fill(discard, -1)
    if picked_anchor:
        out = torch.cat((out, out.new_full((batch, 1), -1)), dim=1)
        out = out.scatter(1, torch.stack(picked_anchor, dim=1), torch.stack(picked_gt, dim=1))[:, :num_anchors]

    # With more boxes than anchors the book's later argmax calls see an all-discarded matrix
    # and return index 0 each time: anchor 0 ends up with the first box.
    first_gt = valid.to(torch.uint8).argmax(dim=-1)  # [B]
    out[:, 0] = torch.where(num_valid > num_anchors, first_gt, out[:, 0])
    return out


def _greedy_candidates(jaccard: Tensor) -> tuple[Tensor, Tensor]:
    """Rows of ``jaccard [B, A, G]`` that the greedy phase can pick, in anchor order.

    Before a pick from column ``j``, at most ``G - 1`` rows have been discarded, so the row
    picked is among the first ``G`` of column ``j`` ordered by (IoU descending, anchor
    ascending). Keeping only those rows (at most ``G * G``) turns each greedy step from a
    pass over all anchors into one over a few rows, with the same picks and tie-breaks.

    Returns:
        (Tensor[B, K], Tensor[B, K, G]): anchor indices, ascending, and their IoU rows;
        rows that repeat an anchor hold -2 so they are never picked.
    """
    batch, num_anchors, num_gt = jaccard.shape
    k = min(num_anchors, num_gt)
    if k * num_gt >= num_anchors:
        return torch.arange(num_anchors, device=jaccard.device).expand(batch, -1), jaccard
    kth = jaccard.topk(k, dim=1).values[:, k - 1 :, :]  # [B, 1, G]
    # topk does not promise which of several equal values it returns, so rank by an integer
    # key that is unique per column: anchors above the k-th value first, then the ties at the
    # k-th value by ascending anchor index.
    key_dtype = torch.int32 if 2 * num_anchors < 2**31 else torch.int64
    idx = torch.arange(num_anchors, device=jaccard.device, dtype=key_dtype)[None, :, None]  # [1, A, 1]
    zero = torch.zeros((), dtype=key_dtype, device=jaccard.device)
    key = torch.where(jaccard > kth, 2 * num_anchors - idx, torch.where(jaccard == kth, num_anchors - idx, zero))
    rows = key.topk(k, dim=1).indices.flatten(1).sort(dim=1).values  # [B, k*G]
    work = jaccard.gather(1, rows[:, :, None].expand(-1, -1, num_gt))  # [B, K, G]
    repeat = torch.cat((torch.zeros_like(rows[:, :1], dtype=torch.bool), rows[:, 1:] == rows[:, :-1]), dim=1)
    return rows, work.masked_fill(repeat[:, :, None], -2)


# --- offsets --------------------------------------------------------------------------------

def offset_boxes(anchors: Tensor, assigned_bb: Tensor, eps: float = 1e-6) -> Tensor:
    """Offsets of boxes from their anchors (the book's ``offset_boxes``).

    In center format, ``(10 * (x - x_a) / w_a, 10 * (y - y_a) / h_a, 5 * log(eps + w / w_a),
    5 * log(eps + h / h_a))``: the book's scaling with ``mu = 0``, ``sigma_xy = 0.1`` and
    ``sigma_wh = 0.2``.

    Args:
        anchors (Tensor[..., A, 4]): ``xyxy`` anchors.
        assigned_bb (Tensor[..., A, 4]): ``xyxy`` boxes, broadcastable with ``anchors``.
        eps (float): keeps the log finite for empty boxes.

    Returns:
        Tensor[..., A, 4]: the offsets.
    """
    _check_boxes(anchors, "anchors")
    _check_boxes(assigned_bb, "assigned_bb")
    c_anc = box_corner_to_center(anchors)
    c_bb = box_corner_to_center(assigned_bb)
    offset_xy = 10 * (c_bb[..., :2] - c_anc[..., :2]) / c_anc[..., 2:]
    offset_wh = 5 * torch.log(eps + c_bb[..., 2:] / c_anc[..., 2:])
    return torch.cat((offset_xy, offset_wh), dim=-1)


def offset_inverse(anchors: Tensor, offset_preds: Tensor) -> Tensor:
    """Boxes from anchors and predicted offsets: the inverse of :func:`offset_boxes`.

    Exact up to rounding and the ``eps`` in :func:`offset_boxes` (which adds ``eps * w_a`` to
    each width and height).

    Args:
        anchors (Tensor[..., A, 4]): ``xyxy`` anchors.
        offset_preds (Tensor[..., A, 4]): offsets, broadcastable with ``anchors``.

    Returns:
        Tensor[..., A, 4]: the predicted ``xyxy`` boxes.
    """
    _check_boxes(anchors, "anchors")
    _check_boxes(offset_preds, "offset_preds")
    anc = box_corner_to_center(anchors)
    pred_xy = offset_preds[..., :2] * anc[..., 2:] / 10 + anc[..., :2]
    pred_wh = torch.exp(offset_preds[..., 2:] / 5) * anc[..., 2:]
    return box_center_to_corner(torch.cat((pred_xy, pred_wh), dim=-1))


# --- training targets -----------------------------------------------------------------------

def multibox_target(anchors: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Class labels and offset targets of every anchor (the book's ``multibox_target``).

    Rows of ``labels`` whose class is negative are padding (the banana reader pads with
    ``-1``) and are ignored; the book's version would label anchors with them.

    Args:
        anchors (Tensor[1, A, 4] or Tensor[A, 4]): normalised ``xyxy`` anchors.
        labels (Tensor[B, G, 5]): rows ``[class, x1, y1, x2, y2]``, normalised.

    Returns:
        (Tensor[B, A*4], Tensor[B, A*4], Tensor[B, A]): ``bbox_offset`` (:func:`offset_boxes`
        to each anchor's box, 0 for background), ``bbox_mask`` (1.0 for the four offsets of
        each labelled anchor, else 0.0) and ``class_labels`` (int64, box class + 1, 0 for
        background), on the anchors' device.
    """
    anchors = _squeeze_anchors(anchors)
    if not isinstance(labels, Tensor) or labels.dim() != 3 or labels.shape[-1] != 5:
        raise ArgumentError("labels", "a torch.Tensor of shape [B, G, 5] (rows class, x1, y1, x2, y2)",
                            describe(labels))
    batch = labels.shape[0]
    labels = labels.to(anchors.device)
    if labels.shape[1] == 0:
        # One padding row keeps the gathers below well-defined.
        labels = torch.full((batch, 1, 5), -1.0, dtype=labels.dtype, device=labels.device)
    cls, gt = labels[..., 0], labels[..., 1:]
    anchors_bbox_map = assign_anchor_to_bbox_batch(gt, anchors, valid=cls >= 0)  # [B, A]
    positive = anchors_bbox_map >= 0
    gt_idx = anchors_bbox_map.clamp(min=0)

    # The book keeps assigned boxes in float32 whatever the labels' dtype.
    assigned_bb = gt.gather(1, gt_idx[:, :, None].expand(-1, -1, 4)).float()  # [B, A, 4]
    offsets = offset_boxes(anchors, assigned_bb)  # [B, A, 4]
    # where, not the book's multiply by the mask: background rows may hold log(0) or padding.
    bbox_offset = torch.where(positive[:, :, None], offsets, offsets.new_zeros(()))
    bbox_mask = positive[:, :, None].float().expand(-1, -1, 4)
    class_labels = torch.where(positive, cls.gather(1, gt_idx).long() + 1, 0)
    return bbox_offset.reshape(batch, -1), bbox_mask.reshape(batch, -1), class_labels


# --- prediction -----------------------------------------------------------------------------

def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression (the book's ``nms``, computed by ``torchvision.ops.nms``).

    Repeatedly keeps the highest-scoring box left and drops the boxes whose IoU with it is
    greater than ``iou_threshold``.

    Args:
        boxes (Tensor[N, 4]): ``xyxy`` boxes.
        scores (Tensor[N]): their scores.
        iou_threshold (float): in ``[0, 1]``.

    Returns:
        Tensor[K]: int64 indices of the kept boxes, by decreasing score, on ``boxes.device``.
    """
    boxes, scores, threshold = _check_nms_args(boxes, scores, iou_threshold)
    return torchvision.ops.nms(boxes, scores, threshold)


def multibox_detection(
    cls_probs: Tensor,
    offset_preds: Tensor,
    anchors: Tensor,
    nms_threshold: float = 0.5,
    pos_threshold: float = 0.009999999,
) -> Tensor:
    """Detections from class probabilities and offsets (the book's ``multibox_detection``).

    Per image: each anchor's class is its most likely non-background class, its box is
    :func:`offset_inverse` of its offsets; class-agnostic NMS over all anchors keeps some.
    Rows come kept-first by decreasing confidence, then the others by anchor index, with
    class ``-1``. Rows whose confidence is below ``pos_threshold`` also get class ``-1``,
    and confidence ``1 - conf`` (the book's convention). Kept rows with equal confidence
    come by anchor index (the book's unstable ``argsort`` leaves that open), and NMS
    compares IoUs computed in float64, the book in float32: they can disagree only for a
    pair within about ``1e-7`` of ``nms_threshold``.

    Args:
        cls_probs (Tensor[B, C + 1, A]): class probabilities, background first.
        offset_preds (Tensor[B, A * 4]): predicted offsets.
        anchors (Tensor[1, A, 4] or Tensor[A, 4]): normalised ``xyxy`` anchors.
        nms_threshold (float): IoU above which NMS suppresses, in ``[0, 1]``.
        pos_threshold (float): confidence below which a row is background, in ``[0, 1]``.

    Returns:
        Tensor[B, A, 6]: rows ``[class, conf, x1, y1, x2, y2]``.
    """
    anchors = _squeeze_anchors(anchors)
    if not isinstance(cls_probs, Tensor) or cls_probs.dim() != 3 or cls_probs.shape[1] < 2:
        raise ArgumentError("cls_probs", "a torch.Tensor of shape [B, C + 1, A] with C >= 1", describe(cls_probs))
    batch, _, num_anchors = cls_probs.shape
    if num_anchors != anchors.shape[0]:
        raise ArgumentError("cls_probs", f"[B, C + 1, A] with A = {anchors.shape[0]}, the number of anchors",
                            f"A = {num_anchors}")
    if not isinstance(offset_preds, Tensor) or offset_preds.numel() != batch * num_anchors * 4:
        raise ArgumentError("offset_preds", f"a torch.Tensor of shape [B, A * 4] = [{batch}, {num_anchors * 4}]",
                            describe(offset_preds))
    nms_threshold = _check_unit(nms_threshold, "nms_threshold")
    pos_threshold = _check_unit(pos_threshold, "pos_threshold")

    conf, class_id = cls_probs[:, 1:].max(dim=1)  # [B, A]; first class on ties, as the book
    predicted_bb = offset_inverse(anchors, offset_preds.reshape(batch, num_anchors, 4))  # [B, A, 4]
    order, kept = _nms_order(predicted_bb, conf, nms_threshold)  # [B, A], [B, A]
    class_id = torch.where(kept, class_id, -1).gather(1, order)
    conf = conf.gather(1, order)
    predicted_bb = predicted_bb.gather(1, order[:, :, None].expand(-1, -1, 4))
    below = conf < pos_threshold
    class_id = torch.where(below, -1, class_id)
    conf = torch.where(below, 1 - conf, conf)
    out_dtype = torch.promote_types(conf.dtype, predicted_bb.dtype)
    columns = (class_id[:, :, None], conf[:, :, None], predicted_bb)
    return torch.cat([c.to(out_dtype) for c in columns], dim=-1)


def _nms_order(boxes: Tensor, scores: Tensor, iou_threshold: float) -> tuple[Tensor, Tensor]:
    """Class-agnostic NMS in each image of ``boxes [B, A, 4]``, in one ``batched_nms`` call.

    Returns:
        (Tensor[B, A], Tensor[B, A]): per image, the anchor order of the book (kept anchors
        by decreasing score, then the others by index) and whether each anchor was kept.
    """
    batch, num_anchors = scores.shape
    device = scores.device
    flat = boxes.reshape(-1, 4).double()
    image = torch.arange(batch, device=device).repeat_interleave(num_anchors)  # [B*A]
    if flat.numel():
        # batched_nms may shift each group by `group * (max + 1)`, which keeps groups apart
        # only for coordinates >= 0; predicted boxes can be negative, so translate first.
        # Float64, so neither shift rounds the IoUs that decide what is kept.
        flat = flat - flat.min()
    keep = torchvision.ops.batched_nms(flat, scores.reshape(-1).double(), image, iou_threshold)
    kept = torch.zeros(batch * num_anchors, dtype=torch.bool, device=device)
    kept[keep] = True
    kept = kept.reshape(batch, num_anchors)
    # Order by our own sort rather than keep's, whose order among equal scores is unspecified:
    # kept anchors by decreasing score (equal scores by index), then the rest by index.
    by_score = scores.argsort(dim=1, descending=True, stable=True)  # [B, A]
    ids = torch.arange(num_anchors, device=device).expand(batch, -1)
    score_rank = torch.empty_like(by_score).scatter_(1, by_score, ids)  # inverse permutation
    key = torch.where(kept, score_rank, num_anchors + ids)
    return key.argsort(dim=1), kept


# --- traces for stepping through the greedy algorithms --------------------------------------

@dataclass(frozen=True)
class NMSStep:
    """One iteration of the book's NMS loop.

    Attributes:
        step: 0-based iteration number.
        chosen: index of the box kept in this iteration (highest score left).
        score: its score.
        suppressed: ``(index, iou)`` of each box dropped now (IoU with ``chosen`` above the
            threshold), by decreasing score.
        remaining: indices still in the running after this iteration, by decreasing score.
    """

    step: int
    chosen: int
    score: float
    suppressed: tuple[tuple[int, float], ...]
    remaining: tuple[int, ...]


def nms_trace(boxes: Tensor, scores: Tensor, iou_threshold: float) -> list[NMSStep]:
    """The book's NMS, one :class:`NMSStep` per box kept; same result as :func:`nms`.

    Args:
        boxes (Tensor[N, 4]): ``xyxy`` boxes.
        scores (Tensor[N]): their scores (equal scores: the lower index first).
        iou_threshold (float): in ``[0, 1]``.

    Returns:
        list[NMSStep]: the ``chosen`` indices, in order, are :func:`nms`'s output.
    """
    boxes, scores, threshold = _check_nms_args(boxes, scores, iou_threshold)
    boxes, scores = boxes.cpu(), scores.cpu()
    remaining = torch.sort(scores, descending=True, stable=True).indices.tolist()
    steps: list[NMSStep] = []
    while remaining:
        chosen, rest = remaining[0], remaining[1:]
        # Compared in float64, like torchvision's kernel compares its IoU with the threshold.
        ious = box_iou(boxes[chosen][None], boxes[rest])[0].double().tolist() if rest else []
        suppressed = tuple((j, iou) for j, iou in zip(rest, ious) if iou > threshold)
        remaining = [j for j, iou in zip(rest, ious) if not iou > threshold]
        steps.append(NMSStep(len(steps), chosen, float(scores[chosen]), suppressed, tuple(remaining)))
    return steps


@dataclass(frozen=True)
class GreedyStep:
    """One pick of the greedy phase of anchor labelling.

    Attributes:
        step: 0-based pick number.
        anchor: the row of the largest IoU left; this anchor gets box ``gt``.
        gt: the column of that IoU.
        iou: the IoU taken (-1.0 when every entry was already discarded, which happens
            only with more boxes than anchors).
        discarded_rows: anchors discarded so far, in the order they were discarded.
        discarded_columns: boxes discarded so far, in the order they were discarded.
    """

    step: int
    anchor: int
    gt: int
    iou: float
    discarded_rows: tuple[int, ...]
    discarded_columns: tuple[int, ...]


@dataclass(frozen=True)
class ThresholdStep:
    """The threshold phase of anchor labelling, and the final assignment.

    Attributes:
        threshold: the IoU threshold.
        assigned: ``(anchor, gt, iou)`` for each anchor not picked greedily whose best IoU
            is at least ``threshold``, by anchor.
        assignment: the final box index of every anchor, -1 for background.
    """

    threshold: float
    assigned: tuple[tuple[int, int, float], ...]
    assignment: tuple[int, ...]


def assign_anchor_trace(
    ground_truth: Tensor, anchors: Tensor, iou_threshold: float = 0.5
) -> list[GreedyStep | ThresholdStep]:
    """The book's anchor labelling, step by step; same result as :func:`assign_anchor_to_bbox`.

    Args:
        ground_truth (Tensor[G, 4]): ``xyxy`` boxes.
        anchors (Tensor[A, 4]): ``xyxy`` anchors.
        iou_threshold (float): in ``[0, 1]``.

    Returns:
        list[GreedyStep | ThresholdStep]: ``G`` :class:`GreedyStep` (none without anchors), then one
        :class:`ThresholdStep` whose ``assignment`` is the final labelling.
    """
    _check_matrix(ground_truth, "ground_truth")
    _check_matrix(anchors, "anchors")
    threshold = _check_unit(iou_threshold, "iou_threshold")
    jaccard = box_iou(anchors.cpu(), ground_truth.cpu())  # [A, G]
    num_anchors, num_gt = jaccard.shape
    assignment = [-1] * num_anchors
    steps: list[GreedyStep | ThresholdStep] = []
    work = jaccard.clone()
    rows: dict[int, None] = {}  # insertion-ordered sets
    cols: dict[int, None] = {}
    for step in range(num_gt if num_anchors else 0):
        anchor, gt = divmod(int(work.argmax()), num_gt)  # the first largest, anchor-major
        iou = float(work[anchor, gt])
        assignment[anchor] = gt
        work[anchor, :] = -1
        work[:, gt] = -1
        rows[anchor], cols[gt] = None, None
        steps.append(GreedyStep(step, anchor, gt, iou, tuple(rows), tuple(cols)))

    assigned = []
    if num_gt:
        max_ious, best_gt = jaccard.max(dim=1)
        for anchor in torch.nonzero(max_ious >= threshold).flatten().tolist():
            if anchor not in rows:
                assignment[anchor] = int(best_gt[anchor])
                assigned.append((anchor, assignment[anchor], float(max_ious[anchor])))
    steps.append(ThresholdStep(threshold, tuple(assigned), tuple(assignment)))
    return steps
