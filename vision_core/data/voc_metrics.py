"""Segmentation metrics over VOC-style class indices: pixel accuracy, the confusion matrix, IoU.

Pixels labelled :data:`~vision_core.data.voc.VOID_INDEX` (255, VOC's object borders) are left
out by default, as ``CrossEntropyLoss(ignore_index=255)`` leaves them out of the loss. The
confusion matrix has torchmetrics' orientation (row = true class, column = predicted class),
and :func:`mean_iou` is torchmetrics' macro ``MulticlassJaccardIndex``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import ArgumentError, check_int, describe
from .voc import VOID_INDEX

__all__ = ["pixel_accuracy", "confusion_matrix", "iou_per_class", "mean_iou"]


def _predictions(pred: Tensor, label: Tensor) -> Tensor:
    if pred.dim() == label.dim() + 1 and pred.is_floating_point():  # scores (N, C, H, W): take the argmax
        pred = pred.argmax(dim=1)
    if pred.shape != label.shape:
        raise ArgumentError("pred", f"of label's shape {tuple(label.shape)} (or scores with classes on dim 1)",
                            describe(pred))
    return pred


def _counted(label: Tensor, ignore_index: int | None) -> Tensor:
    """Which pixels count: ``Tensor[N, H, W]`` bool, False where ``label == ignore_index``."""
    return label != ignore_index if ignore_index is not None else torch.ones_like(label, dtype=torch.bool)


def pixel_accuracy(pred: Tensor, label: Tensor, ignore_index: int | None = VOID_INDEX) -> Tensor:
    """Share of pixels whose predicted class is right, pixels labelled ``ignore_index`` left out.

    Args:
        pred (Tensor[N, H, W] or Tensor[N, C, H, W]): class indices, or float scores (argmax on dim 1).
        label (Tensor[N, H, W]): class indices (any shape, as long as ``pred`` matches).
        ignore_index (int, optional): label value to leave out; None counts every pixel.

    Returns:
        Tensor[]: float32 in [0, 1]; NaN when no pixel counts.
    """
    pred = _predictions(pred, label)
    valid = _counted(label, ignore_index)
    correct = ((pred == label) & valid).sum()
    return correct.float() / valid.sum().float()


def confusion_matrix(pred: Tensor, label: Tensor, num_classes: int,
                     ignore_index: int | None = VOID_INDEX) -> Tensor:
    """Pixel counts by (true class, predicted class), in one ``bincount``.

    Args:
        pred (Tensor[N, H, W] or Tensor[N, C, H, W]): class indices in [0, num_classes), or scores.
        label (Tensor[N, H, W]): class indices in [0, num_classes), or ``ignore_index``.
        num_classes (int): >= 1.
        ignore_index (int, optional): label value to leave out.

    Returns:
        Tensor[num_classes, num_classes]: int64; row = true class, column = predicted class
        (torchmetrics' orientation), on the inputs' device.
    """
    check_int(num_classes, "num_classes", 1)
    pred = _predictions(pred, label)
    valid = _counted(label, ignore_index)
    label, pred = label[valid].long(), pred[valid].long()
    bad = (label < 0) | (label >= num_classes) | (pred < 0) | (pred >= num_classes)
    if bool(bad.any()):
        raise ArgumentError("pred and label", f"class indices in [0, {num_classes - 1}] (label may also be "
                            f"ignore_index={ignore_index})", "values outside")
    counts = torch.bincount(label * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(confmat: Tensor) -> Tensor:
    """Intersection over union of every class: ``Tensor[C]`` float32, NaN for a class that is
    neither in the labels nor in the predictions.

    Args:
        confmat (Tensor[C, C]): from :func:`confusion_matrix`.
    """
    if not isinstance(confmat, Tensor) or confmat.dim() != 2 or confmat.shape[0] != confmat.shape[1]:
        raise ArgumentError("confmat", "a square Tensor[C, C] from confusion_matrix()", describe(confmat))
    confmat = confmat.double()  # counts above 2**24 stay exact
    hits = confmat.diagonal()
    union = confmat.sum(0) + confmat.sum(1) - hits
    return torch.where(union > 0, hits / union.clamp(min=1), torch.full_like(hits, math.nan)).float()


def mean_iou(confmat: Tensor) -> Tensor:
    """Mean IoU over the classes present in labels or predictions (torchmetrics' macro
    ``MulticlassJaccardIndex``): ``Tensor[]`` float32, NaN for an empty matrix.

    Args:
        confmat (Tensor[C, C]): from :func:`confusion_matrix`.
    """
    return iou_per_class(confmat).nanmean()
