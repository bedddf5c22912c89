"""The book's TinySSD network, its loss and its two metrics (d2l 14.7).

The building blocks keep the book's names (:func:`cls_predictor`, :func:`down_sample_blk`,
:func:`blk_forward`, ...) and :class:`TinySSD` its attribute names (``blk_0`` .. ``blk_4``,
``cls_0`` .., ``bbox_0`` ..), so a state dict maps one to one onto the book's. Its forward returns
``(anchors, cls_preds, bbox_preds)`` in the book's order. Anchors depend only on the feature-map
sizes, so they are computed once per size and device and then reused (the book recomputes
:func:`~vision_core.anchors.multibox_prior` on every forward).

Training, prediction and evaluation are in :mod:`vision_core.ssd`; saving and loading in
:mod:`vision_core.checkpoints`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import ArgumentError, check_int
from ..anchors import multibox_prior, offset_inverse
from ..boxes import box_iou

__all__ = [
    "SIZES",
    "RATIOS",
    "NUM_ANCHORS",
    "cls_predictor",
    "bbox_predictor",
    "flatten_pred",
    "concat_preds",
    "down_sample_blk",
    "base_net",
    "get_blk",
    "blk_forward",
    "TinySSD",
    "check_tiny_ssd",
    "calc_loss",
    "hard_negative_loss",
    "overlapping_negatives",
    "promote_well_boxed",
    "cls_eval",
    "bbox_eval",
    "BookMetrics",
]

# The book's anchor scales: one row per stage, feature maps 32, 16, 8, 4 and 1 for a 256 input.
SIZES = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
RATIOS = [[1, 2, 0.5]] * 5
NUM_ANCHORS = len(SIZES[0]) + len(RATIOS[0]) - 1  # anchors per feature-map pixel: 4
_ANCHOR_CACHE_LIMIT = 32


# --- the network (the book's building blocks) -----------------------------------------------

def cls_predictor(num_inputs: int, num_anchors: int, num_classes: int) -> nn.Conv2d:
    """3x3 conv giving ``num_anchors * (num_classes + 1)`` class scores per pixel."""
    return nn.Conv2d(num_inputs, num_anchors * (num_classes + 1), kernel_size=3, padding=1)


def bbox_predictor(num_inputs: int, num_anchors: int) -> nn.Conv2d:
    """3x3 conv giving ``num_anchors * 4`` offsets per pixel."""
    return nn.Conv2d(num_inputs, num_anchors * 4, kernel_size=3, padding=1)


def flatten_pred(pred: Tensor) -> Tensor:
    """``[B, C, H, W] -> [B, H * W * C]``, channels last so each pixel's predictions are adjacent."""
    return torch.flatten(pred.permute(0, 2, 3, 1), start_dim=1)


def concat_preds(preds: Sequence[Tensor]) -> Tensor:
    """Flatten each stage's predictions and concatenate them: ``[B, sum(H_i * W_i * C_i)]``."""
    return torch.cat([flatten_pred(p) for p in preds], dim=1)


def down_sample_blk(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two (3x3 conv, BatchNorm, ReLU) then a 2x2 max-pool: halves height and width."""
    blk: list[nn.Module] = []
    for _ in range(2):
        blk += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU()]
        in_channels = out_channels
    blk.append(nn.MaxPool2d(2))
    return nn.Sequential(*blk)


def base_net() -> nn.Sequential:
    """Three down-sampling blocks, 3 -> 16 -> 32 -> 64 channels: ``[B, 3, H, W] -> [B, 64, H/8, W/8]``."""
    num_filters = [3, 16, 32, 64]
    return nn.Sequential(*[down_sample_blk(a, b) for a, b in zip(num_filters[:-1], num_filters[1:])])


def get_blk(i: int) -> nn.Module:
    """Stage ``i`` of TinySSD: base net, 64 -> 128, 128 -> 128 twice, then a global max-pool."""
    if i == 0:
        return base_net()
    if i == 1:
        return down_sample_blk(64, 128)
    if i == 4:
        return nn.AdaptiveMaxPool2d((1, 1))
    return down_sample_blk(128, 128)


def blk_forward(X: Tensor, blk: nn.Module, size: Sequence[float], ratio: Sequence[float],
                cls_predictor: nn.Module, bbox_predictor: nn.Module) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One stage, as the book writes it: ``(Y, anchors, cls_preds, bbox_preds)`` (anchors not cached)."""
    Y = blk(X)
    anchors = multibox_prior(Y, sizes=size, ratios=ratio)
    return Y, anchors, cls_predictor(Y), bbox_predictor(Y)


class TinySSD(nn.Module):
    """The book's TinySSD: five stages, each predicting classes and offsets for 4 anchors per pixel.

    Attributes ``blk_i``, ``cls_i``, ``bbox_i`` (``i = 0..4``) have the book's names, so state
    dicts are interchangeable with the book's. 1,010,376 parameters for one class.

    Args:
        num_classes (int): object classes, not counting the background; >= 1.
    """

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = check_int(num_classes, "num_classes", 1, 10_000)
        idx_to_in_channels = [64, 128, 128, 128, 128]
        for i in range(5):
            # Registered in the book's order (blk, cls, bbox per stage), so state dicts list alike.
            setattr(self, f"blk_{i}", get_blk(i))
            setattr(self, f"cls_{i}", cls_predictor(idx_to_in_channels[i], NUM_ANCHORS, num_classes))
            setattr(self, f"bbox_{i}", bbox_predictor(idx_to_in_channels[i], NUM_ANCHORS))
        # A plain dict, not buffers: anchors are not weights and stay out of the state dict.
        self._anchor_cache: dict[tuple, Tensor] = {}

    def forward(self, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Predict classes and offsets for every anchor.

        Args:
            X (Tensor[B, 3, H, W]): float images (the book's ``0..255`` values).

        Returns:
            (Tensor[1, A, 4], Tensor[B, A, num_classes + 1], Tensor[B, A * 4]): normalised
            ``xyxy`` anchors, class scores (logits, background first) and offsets, stage by
            stage and pixel-major as in the book; ``A = 5444`` for a 256 x 256 input. The
            anchors are a cached tensor shared between calls: do not modify it in place.
        """
        fmaps, cls_preds, bbox_preds = [], [], []
        for i in range(5):
            X = getattr(self, f"blk_{i}")(X)
            fmaps.append(tuple(X.shape[-2:]))
            cls_preds.append(getattr(self, f"cls_{i}")(X))
            bbox_preds.append(getattr(self, f"bbox_{i}")(X))
        anchors = self._anchors(tuple(fmaps), X.device)
        cls_preds = concat_preds(cls_preds)
        cls_preds = cls_preds.reshape(cls_preds.shape[0], -1, self.num_classes + 1)
        return anchors, cls_preds, concat_preds(bbox_preds)

    def _anchors(self, fmaps: tuple[tuple[int, int], ...], device: torch.device) -> Tensor:
        # [1, A, 4] anchors of all stages for these feature-map sizes, computed once per device.
        key = (fmaps, device)
        anchors = self._anchor_cache.get(key)
        if anchors is None:
            anchors = torch.cat([self.stage_anchors(i, h, w, device) for i, (h, w) in enumerate(fmaps)], dim=1)
            self._anchor_cache[key] = anchors
        return anchors

    def stage_anchors(self, i: int, height: int, width: int, device: str | torch.device = "cpu") -> Tensor:
        """Stage ``i``'s anchors for a ``height x width`` feature map: ``Tensor[1, H * W * 4, 4]`` (cached)."""
        device = torch.device(device)
        key = (i, height, width, device)
        anchors = self._anchor_cache.get(key)
        if anchors is None:
            if len(self._anchor_cache) >= _ANCHOR_CACHE_LIMIT:
                self._anchor_cache.clear()  # many input sizes seen: start over rather than grow
            # Outside inference mode, so a cache filled by predict() can still be used in training.
            with torch.inference_mode(False), torch.no_grad():
                anchors = multibox_prior(torch.empty((height, width), device=device), SIZES[i], RATIOS[i])
            self._anchor_cache[key] = anchors
        return anchors


def check_tiny_ssd(net: object, name: str = "net") -> None:
    """Raise :class:`~vision_core._checks.ArgumentError` unless ``net`` is a :class:`TinySSD`."""
    if not isinstance(net, TinySSD):
        raise ArgumentError(name, "a TinySSD", type(net).__name__)


# --- loss and the book's metrics ------------------------------------------------------------

def calc_loss(cls_preds: Tensor, cls_labels: Tensor, bbox_preds: Tensor, bbox_labels: Tensor,
              bbox_masks: Tensor) -> Tensor:
    """The book's loss: per-image mean cross-entropy over anchors plus mean masked L1 over offsets.

    Args:
        cls_preds (Tensor[B, A, C + 1]): class logits.
        cls_labels (Tensor[B, A]): int64 class of each anchor, 0 = background.
        bbox_preds (Tensor[B, A * 4]): predicted offsets.
        bbox_labels (Tensor[B, A * 4]): target offsets.
        bbox_masks (Tensor[B, A * 4]): 1.0 for the offsets of labelled anchors, else 0.0.

    Returns:
        Tensor[B]: each image's loss (the book calls ``.mean().backward()`` on it).
    """
    batch_size, num_classes = cls_preds.shape[0], cls_preds.shape[2]
    cls = F.cross_entropy(cls_preds.reshape(-1, num_classes), cls_labels.reshape(-1), reduction="none")
    cls = cls.reshape(batch_size, -1).mean(dim=1)
    bbox = F.l1_loss(bbox_preds * bbox_masks, bbox_labels * bbox_masks, reduction="none").mean(dim=1)
    return cls + bbox


def hard_negative_loss(cls_preds: Tensor, cls_labels: Tensor, bbox_preds: Tensor, bbox_labels: Tensor,
                       bbox_masks: Tensor, neg_ratio: float = 3.0, ignore: Tensor | None = None,
                       min_negatives: int = 1) -> Tensor:
    """SSD's loss (Liu et al. 2016, section 2.2), not the book's: cross-entropy over every positive
    anchor and only the ``neg_ratio`` times as many background anchors the network finds hardest
    (highest loss), plus L1 over the positives' offsets, both divided by the number of positives.

    The book's :func:`calc_loss` averages over all anchors, about 20 of them positive per banana
    against 5,400 background ones, so "background everywhere" is a deep, flat minimum; here each
    image's background counts at most ``neg_ratio`` times its bananas. An image without a positive
    anchor learns from its single hardest background anchor.

    Args: as :func:`calc_loss`, and ``neg_ratio`` (float): hard negatives per positive, ``> 0``;
    ``ignore`` (Tensor[B, A] bool, optional): background anchors never picked as hard negatives
    (e.g. :func:`overlapping_negatives`); ``min_negatives`` (int): at least this many hard
    negatives per image, however few its positives (a small banana has one).

    Returns:
        Tensor[B]: each image's loss.
    """
    batch_size, num_classes = cls_preds.shape[0], cls_preds.shape[2]
    cls = F.cross_entropy(cls_preds.reshape(-1, num_classes), cls_labels.reshape(-1),
                          reduction="none").reshape(batch_size, -1)  # [B, A]
    positive = cls_labels > 0  # [B, A]
    num_pos = positive.sum(dim=1)  # [B]
    # Rank the background anchors by their loss, hardest first; positives rank last.
    skip = positive if ignore is None else positive | ignore  # [B, A]
    background_loss = cls.detach().masked_fill(skip, -1.0)
    rank = background_loss.argsort(dim=1, descending=True).argsort(dim=1)  # [B, A]
    hard = (rank < (neg_ratio * num_pos).clamp(min=min_negatives)[:, None]) & ~skip  # [B, A]
    denominator = num_pos.clamp(min=1).to(cls.dtype)
    cls_loss = (cls * (positive | hard)).sum(dim=1) / denominator
    bbox_loss = F.l1_loss(bbox_preds * bbox_masks, bbox_labels * bbox_masks, reduction="none").sum(dim=1) / denominator
    return cls_loss + bbox_loss


def _predicted_overlap(anchors: Tensor, bbox_preds: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    # Each anchor's own predicted box against the true boxes, out of autograd: the best IoU and
    # the index of that box, both [B, A]; padding rows (class < 0) never match.
    anchors = anchors[0] if anchors.dim() == 3 else anchors  # [A, 4]
    with torch.no_grad():
        boxes = offset_inverse(anchors, bbox_preds.detach().float().reshape(bbox_preds.shape[0], -1, 4))  # [B, A, 4]
        iou = box_iou(boxes, labels[..., 1:].float())  # [B, A, G]
        iou = iou.masked_fill((labels[..., 0] < 0)[:, None, :], 0.0)
        return iou.max(dim=2)


def overlapping_negatives(anchors: Tensor, bbox_preds: Tensor, labels: Tensor, cls_labels: Tensor,
                          iou_threshold: float = 0.5) -> Tensor:
    """Background anchors whose own predicted box already overlaps a true box by ``iou_threshold``
    or more (YOLO's ignore rule), for :func:`hard_negative_loss`'s ``ignore``.

    :func:`~vision_core.anchors.multibox_target` makes an anchor background when its IoU with
    every banana is under 0.5; for a small banana that is every anchor but its assigned one,
    including the neighbours one stride away that see the same pixels. Mined as the hardest
    negatives, three of them per positive, they teach the network that a banana is background
    three times out of four, and its top scores settle near 0.3. Not mining anchors that already
    box the banana well lets the scores rise; NMS removes their duplicate boxes at inference.

    Args:
        anchors (Tensor[1, A, 4] or Tensor[A, 4]): ``xyxy`` anchors, normalised.
        bbox_preds (Tensor[B, A * 4]): predicted offsets (not differentiated through).
        labels (Tensor[B, G, 5]): ``(class, x1, y1, x2, y2)`` normalised; class ``< 0`` pads.
        cls_labels (Tensor[B, A]): :func:`~vision_core.anchors.multibox_target`'s classes (0 background).
        iou_threshold (float): in ``(0, 1]``.

    Returns:
        Tensor[B, A]: bool.
    """
    iou, _ = _predicted_overlap(anchors, bbox_preds, labels)
    return (iou >= iou_threshold) & (cls_labels == 0)


def promote_well_boxed(anchors: Tensor, bbox_preds: Tensor, labels: Tensor, cls_labels: Tensor,
                       iou_threshold: float = 0.75) -> Tensor:
    """``cls_labels`` with every background anchor whose own predicted box overlaps a true box by
    ``iou_threshold`` or more relabelled as that box's class (a score that means "my box is good").

    The book labels an anchor by where it *is* (its IoU with a banana), yet at inference the
    score that NMS and the 0.9 threshold read belongs to the box the anchor *predicts*. Dozens
    of background anchors predict a good banana box; ignored (:func:`overlapping_negatives`),
    they are free to score anything, and the network's top score on a banana it has not seen
    spreads over them and stays below 0.9. Taught as positives, they all learn to score it high.
    Their offsets are not taught (``bbox_masks`` stays the book's). With ``iou_threshold`` 0.75
    any two promoted boxes of one banana overlap each other by 0.5 or more (the Jaccard distance
    is a metric: ``1 - IoU(a, b) <= 2 * (1 - 0.75)``), so promotion gives the book's NMS at 0.5
    no second box to keep (barring an exact tie at 0.5).

    Args:
        anchors, bbox_preds, labels, cls_labels: as :func:`overlapping_negatives`.
        iou_threshold (float): in ``(0, 1]``.

    Returns:
        Tensor[B, A]: int64 classes, 0 background, as ``cls_labels``.
    """
    iou, which = _predicted_overlap(anchors, bbox_preds, labels)  # [B, A] twice
    truth_class = labels[..., 0].long().gather(1, which) + 1  # [B, A]
    return torch.where((iou >= iou_threshold) & (cls_labels == 0), truth_class, cls_labels)


def _cls_correct(cls_preds: Tensor, cls_labels: Tensor) -> Tensor:
    # 0-dim count of anchors whose most likely class is the label; stays on the device.
    return (cls_preds.argmax(dim=-1).type(cls_labels.dtype) == cls_labels).sum()


def _bbox_abs_error(bbox_preds: Tensor, bbox_labels: Tensor, bbox_masks: Tensor) -> Tensor:
    # 0-dim sum of |error| over the offsets of labelled anchors; stays on the device.
    return torch.abs((bbox_labels - bbox_preds) * bbox_masks).sum()


def cls_eval(cls_preds: Tensor, cls_labels: Tensor) -> float:
    """The book's ``cls_eval``: how many anchors get their label as the most likely class.

    Args:
        cls_preds (Tensor[B, A, C + 1]): class scores.
        cls_labels (Tensor[B, A]): int64 labels.

    Returns:
        float: the count; ``1 - count / cls_labels.numel()`` is the book's "class error".
    """
    return float(_cls_correct(cls_preds, cls_labels))


def bbox_eval(bbox_preds: Tensor, bbox_labels: Tensor, bbox_masks: Tensor) -> float:
    """The book's ``bbox_eval``: the sum of absolute offset errors over labelled anchors.

    Args:
        bbox_preds (Tensor[B, A * 4]): predicted offsets.
        bbox_labels (Tensor[B, A * 4]): target offsets.
        bbox_masks (Tensor[B, A * 4]): 1.0 for labelled anchors' offsets.

    Returns:
        float: the sum; divided by ``bbox_labels.numel()`` (all offsets, as the book does,
        not only the masked ones) it is the book's "bbox mae".
    """
    return float(_bbox_abs_error(bbox_preds, bbox_labels, bbox_masks))


class BookMetrics:
    """Running sums of :func:`cls_eval` and :func:`bbox_eval`, kept on the device (no sync per batch).

    :meth:`result` turns them into the book's class error and bbox MAE, with one host sync.
    """

    def __init__(self, device: torch.device):
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.abs_error = torch.zeros((), dtype=torch.float64, device=device)
        self.num_cls = 0
        self.num_bbox = 0

    def add(self, cls_preds: Tensor, cls_labels: Tensor, bbox_preds: Tensor, bbox_labels: Tensor,
            bbox_masks: Tensor) -> None:
        """Count a batch: ``cls_preds [B, A, C + 1]``, ``cls_labels [B, A]``, offsets ``[B, A * 4]``."""
        self.correct += _cls_correct(cls_preds, cls_labels)
        self.abs_error += _bbox_abs_error(bbox_preds, bbox_labels, bbox_masks)
        self.num_cls += cls_labels.numel()
        self.num_bbox += bbox_labels.numel()

    def result(self, prefix: str = "") -> dict[str, float]:
        """``{prefix}class_err`` and ``{prefix}bbox_mae`` of everything counted so far."""
        return {f"{prefix}class_err": 1.0 - int(self.correct) / max(self.num_cls, 1),
                f"{prefix}bbox_mae": float(self.abs_error) / max(self.num_bbox, 1)}
