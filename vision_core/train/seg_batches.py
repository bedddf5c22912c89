"""Segmentation data for FCN training and evaluation: checked data sets and reproducible crop batches.

:func:`as_dataset` accepts what :func:`vision_core.fcn.train_fcn` documents (a
:class:`~vision_core.data.voc.VOCSegDataset`, any data set of ``(image, label)`` items, or a pair of
tensors); :class:`Batcher` stacks items into CPU batches, drawing a VOC set's random crops from a
private generator so a run is reproducible without touching the caller's RNG.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from .._checks import ArgumentError, describe
from .._photos import check_photos
from ..data.voc import VOID_INDEX, VOCSegDataset, voc_rand_crop

__all__ = ["SegData", "Batcher", "as_dataset", "item_size", "check_labels"]

SegData = Dataset | tuple[Tensor, Tensor]


class Batcher:
    """Batches ``(images, labels)`` of a data set on the CPU, random crops drawn from a private generator.

    A :class:`VOCSegDataset` is cropped here with :func:`voc_rand_crop` (the book's draws, from
    this generator instead of torch's global one), and its photos stay uint8 until they reach
    the device. Any other data set is indexed as it is.

    Args:
        data (Dataset): the items.
        seed (int): the crops' seed; :meth:`reset` starts the same crops again.
    """

    def __init__(self, data: Dataset, seed: int):
        self.data = data
        self.seed = seed
        self.crops = isinstance(data, VOCSegDataset) and type(data).__getitem__ is VOCSegDataset.__getitem__
        self.generator = torch.Generator().manual_seed(seed)

    def reset(self) -> None:
        """Draw the same crops again from the next call on."""
        self.generator.manual_seed(self.seed)

    def __call__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """The items at ``indices``: ``(images Tensor[B, 3, H, W], labels Tensor[B, H, W])``."""
        if self.crops:
            height, width = self.data.crop_size
            pairs = [voc_rand_crop(self.data.features[i], self.data.labels[i], height, width,
                                   generator=self.generator) for i in indices]
        else:
            pairs = [self.data[i] for i in indices]
        images = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        labels = torch.stack([torch.as_tensor(p[1]) for p in pairs])
        return images, labels


def as_dataset(data: object, name: str) -> Dataset:
    """A data set from ``data`` (a Dataset, or a pair ``(images [N, 3, H, W], labels [N, H, W])``).

    Raises:
        ArgumentError: not a data set with a length, empty, or a pair of mismatched tensors.
    """
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ArgumentError(name, "a Dataset or a pair (images [N, 3, H, W] uint8, labels [N, H, W])",
                                f"a sequence of {len(data)}")
        images, labels = data
        check_photos(images, f"{name} images")
        if not isinstance(labels, Tensor) or labels.dim() != 3 or labels.shape[0] != images.shape[0] \
                or labels.shape[1:] != images.shape[2:]:
            raise ArgumentError(f"{name} labels", f"of shape [N, H, W] = {(images.shape[0], *images.shape[2:])}",
                                describe(labels))
        data = TensorDataset(images, labels)
    if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
        raise ArgumentError(name, "a Dataset of (image [3, H, W], label [H, W]) items (e.g. VOCSegDataset) or a "
                            "pair of tensors", type(data).__name__)
    if len(data) == 0:
        raise ArgumentError(name, "a data set of at least one item", f"an empty {type(data).__name__}")
    return data


def item_size(data: Dataset, name: str) -> tuple[int, int]:
    """``(H, W)`` of the items, checked on the first one (a VOCSegDataset's crop size, without cropping)."""
    if isinstance(data, VOCSegDataset):
        return data.crop_size
    image, label = data[0]
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ArgumentError(f"{name} items", "(image Tensor[3, H, W], label Tensor[H, W])",
                            f"image {describe(image)}")
    if not isinstance(label, Tensor) or tuple(label.shape) != tuple(image.shape[1:]):
        raise ArgumentError(f"{name} items' labels", f"Tensor[H, W] with the image's H, W = {tuple(image.shape[1:])}",
                            describe(label))
    return int(image.shape[1]), int(image.shape[2])


def check_labels(labels: Tensor, num_classes: int, name: str = "labels") -> None:
    """Class indices in ``[0, num_classes)`` or ``VOID_INDEX``; called on CPU batches, before the device."""
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ArgumentError(name, "integer class indices", str(labels.dtype))
    bad = (labels < 0) | ((labels >= num_classes) & (labels != VOID_INDEX))
    if bool(bad.any()):
        raise ArgumentError(name, f"class indices in [0, {num_classes - 1}] or {VOID_INDEX} (void)",
                            f"values from {int(labels.min())} to {int(labels.max())}")
