"""Fully convolutional networks for semantic segmentation: the book's FCN (d2l 14.11).

The book's network, loss, training and prediction, with the book's names where it has them:

* :class:`FCN` is the book's ``net``: torchvision's ResNet-18 without its global pooling and
  classifier (children ``0`` .. ``7``), then ``final_conv`` (1x1, 512 -> classes) and
  ``transpose_conv`` (kernel 64, stride 32, padding 16) initialised with
  :func:`~vision_core.transposed.bilinear_kernel`. It is an ``nn.Sequential`` built the way the
  book builds it, so its state dict has the book's keys (``0.weight``, ``4.0.conv1.weight``,
  ``final_conv.weight``, ...). A ``[B, 3, H, W]`` input gives ``[B, classes, H, W]`` scores when
  ``H`` and ``W`` are multiples of 32.
* :func:`init_fcn_backbone` loads torchvision's ImageNet ResNet-18 state dict (``conv1.*``,
  ``layer1.*``, ...; ``fc.*`` is dropped) into the trunk; :func:`find_resnet18_imagenet` finds
  torchvision's file in the user's cache without the network (offline, the trunk starts random).
* :func:`fcn_loss` is the book's ``loss``, :func:`label2image` its ``label2image``,
  :func:`train_fcn` its ``train_ch13`` run as a generator of :class:`Progress` records (also
  under ``torchrun`` with DistributedDataParallel: see :func:`ddp_main`), :func:`predict_fcn`
  its ``predict``; :func:`evaluate_fcn` adds pixel accuracy and mean IoU.
* :func:`save_fcn` / :func:`load_fcn` go through the weights registry (float16 safetensors);
  :func:`load_torchvision_fcn_resnet50` loads torchvision's own FCN-ResNet-50 from a local file.

Images enter as the readers give them: ``uint8`` photos (``0..255``), normalised here with the
ImageNet mean and standard deviation as :class:`~vision_core.voc.VOCSegDataset` does; float
images in a training set are taken as already normalised (``VOCSegDataset``'s items). Labels are
class indices; :data:`~vision_core.voc.VOID_INDEX` (255) marks pixels that the loss and the
metrics leave out.

Run as a script (``python -m vision_core.fcn --help``), it trains on the synthetic VOC set, or on
a VOC-layout folder, in one process or one per GPU under ``torchrun``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shlex
import sys
import threading
import time
from collections import OrderedDict
from numbers import Integral, Real
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from . import weights as _weights
from .device import autocast_dtype, get_device, resolve_device
from .progress import Progress
from .transposed import bilinear_kernel
from .voc import (
    _IMAGENET_MEAN,
    _IMAGENET_STD,
    VOC_COLORMAP,
    VOID_COLOR,
    VOID_INDEX,
    VOCSegDataset,
    iou_per_class,
    voc_rand_crop,
)

__all__ = [
    "TRUNK_CHILDREN",
    "STRIDE",
    "FCN_WEIGHTS",
    "RESNET18_IMAGENET_SHA256_PREFIX",
    "FCN_RESNET50_SHA256_PREFIX",
    "FCN",
    "init_fcn_backbone",
    "find_resnet18_imagenet",
    "load_resnet18_imagenet",
    "fcn_loss",
    "label2image",
    "overlay_mask",
    "train_fcn",
    "predict_fcn",
    "evaluate_fcn",
    "save_fcn",
    "load_fcn",
    "load_torchvision_fcn_resnet50",
    "ddp_main",
]

# torchvision's names of the ResNet-18 children the FCN keeps, in order: child i of FCN is
# TRUNK_CHILDREN[i] of the ResNet (avgpool and fc are dropped, as in the book).
TRUNK_CHILDREN = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
STRIDE = 32  # the trunk halves height and width five times; transpose_conv multiplies them back
FCN_WEIGHTS = "fcn_resnet18_synthetic"
FCN_LICENSE = "MIT (trained by this project on its synthetic VOC-layout data)"
FCN_DATA = "vision_core.voc synthetic, 600 train / 100 val, 320 x 480"
# torchvision names its checkpoints <stem>-<first 8 hex digits of the file's sha256>.pth.
RESNET18_IMAGENET_SHA256_PREFIX = "f37072fd"
FCN_RESNET50_SHA256_PREFIX = "1167a1af"
OPTIMIZERS = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}
_MAX_SEED = 2**31 - 1  # DistributedSampler seeds with seed + epoch


# --- argument checks ------------------------------------------------------------------------

def _check_int(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _check_real(value, name: str, lo: float, hi: float, lo_open: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        raise ValueError(f"{name} must be a number in {'(' if lo_open else '['}{lo}, {hi}], got {value!r}")
    return float(value)


def _shape(value) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def _check_net(net, name: str = "net") -> None:
    if not isinstance(net, FCN):
        raise ValueError(f"{name} must be an FCN, got {type(net).__name__}")


def _check_images(images, name: str = "images") -> None:
    # Photos as the readers give them: uint8, or float holding 0..255.
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be a tensor of shape [N, 3, H, W] (or [3, H, W]), got {_shape(images)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"{name} must be uint8 or floating point (values 0..255), got {images.dtype}")
    if images.shape[0] == 0 or min(images.shape[-2:]) < 1:
        raise ValueError(f"{name} must hold at least one image of at least 1 x 1 pixels, got {tuple(images.shape)}")


def _check_labels(labels: Tensor, num_classes: int, name: str = "labels") -> None:
    """Class indices in ``[0, num_classes)`` or VOID_INDEX. Called on CPU batches, before the device."""
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got {labels.dtype}")
    bad = (labels < 0) | ((labels >= num_classes) & (labels != VOID_INDEX))
    if bool(bad.any()):
        raise ValueError(f"{name} must hold class indices in [0, {num_classes - 1}] or {VOID_INDEX} (void), "
                         f"got values from {int(labels.min())} to {int(labels.max())}")


# --- the network ----------------------------------------------------------------------------

class FCN(nn.Sequential):
    """The book's fully convolutional network on a ResNet-18 trunk.

    Children, in the book's order and with its names: ``0`` .. ``7`` are torchvision's
    ResNet-18 ``conv1, bn1, relu, maxpool, layer1 .. layer4`` (:data:`TRUNK_CHILDREN`), then
    ``final_conv`` = ``Conv2d(512, num_classes, 1)`` and ``transpose_conv`` =
    ``ConvTranspose2d(num_classes, num_classes, kernel_size=64, padding=16, stride=32)`` whose
    weight starts as :func:`bilinear_kernel` (its bias keeps PyTorch's default init, as in the
    book). 11.2 M trunk parameters plus 1.8 M for 21 classes.

    The trunk is random unless ``pretrained_backbone`` is given (the book starts from
    ImageNet weights; see :func:`find_resnet18_imagenet` for a local copy).

    Args:
        num_classes (int): classes including the background, in ``[1, 1000]``; the book: 21.
        pretrained_backbone (dict, optional): torchvision's ResNet-18 state dict for the trunk,
            loaded with :func:`init_fcn_backbone`.

    Shapes:
        ``[B, 3, H, W]`` float (ImageNet-normalised) -> ``[B, num_classes, H', W']`` scores with
        ``H' = 32 * ceil(H / 32)``: ``H`` when it is a multiple of 32 (the book's 320 x 480).
    """

    def __init__(self, num_classes: int = 21, pretrained_backbone: Optional[Mapping[str, Tensor]] = None):
        num_classes = _check_int(num_classes, "num_classes", 1, 1000)
        resnet = torchvision.models.resnet18(weights=None)
        super().__init__(*list(resnet.children())[:-2])
        self.add_module("final_conv", nn.Conv2d(512, num_classes, kernel_size=1))
        self.add_module("transpose_conv", nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64,
                                                             padding=16, stride=STRIDE))
        with torch.no_grad():
            self.transpose_conv.weight.copy_(bilinear_kernel(num_classes, num_classes, 64))
        self.num_classes = num_classes
        if pretrained_backbone is not None:
            init_fcn_backbone(self, pretrained_backbone)

    def __getitem__(self, idx):
        # nn.Sequential builds a slice as self.__class__(OrderedDict), which FCN's arguments do not
        # take: a slice (e.g. net[:8], the trunk) is a plain Sequential of the same modules.
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)


def init_fcn_backbone(net: FCN, state_dict: Mapping[str, Tensor]) -> FCN:
    """Load torchvision's ResNet-18 weights (e.g. ImageNet's) into the FCN's trunk.

    Keys are torchvision's (``conv1.weight``, ``bn1.running_mean``, ``layer1.0.conv1.weight``,
    ...) and become the FCN's (``0.weight``, ``1.running_mean``, ``4.0.conv1.weight``, ...).
    Strict on the trunk: every trunk tensor must be given, with its shape (BatchNorm's
    ``num_batches_tracked`` counters excepted, which old checkpoints lack), and nothing else but
    the classifier ``fc.*``, which the FCN has no use for. ``final_conv`` and ``transpose_conv``
    are left as they are.

    Args:
        net (FCN): the network, changed in place.
        state_dict (Mapping[str, Tensor]): ``torchvision.models.resnet18().state_dict()``'s keys.

    Returns:
        FCN: ``net``.

    Raises:
        ValueError: keys are missing or unexpected, or a shape differs.
    """
    _check_net(net)
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of torchvision ResNet-18 keys to tensors, "
                         f"got {type(state_dict).__name__}")
    position = {name: str(i) for i, name in enumerate(TRUNK_CHILDREN)}
    renamed, unexpected = {}, []
    for key, value in state_dict.items():
        child, _, rest = str(key).partition(".")
        if child == "fc":
            continue
        if child in position and rest:
            renamed[f"{position[child]}.{rest}"] = value
        else:
            unexpected.append(key)
    trunk_keys = {k for k in net.state_dict() if k.partition(".")[0] in position.values()}
    # BatchNorm's num_batches_tracked counters are optional: checkpoints saved before PyTorch 0.4.1
    # lack them (BatchNorm itself accepts that); the FCN keeps its own.
    missing = sorted(k for k in trunk_keys - renamed.keys() if not k.endswith(".num_batches_tracked"))
    unexpected += sorted(k for k in renamed if k not in trunk_keys)
    if missing or unexpected:
        raise ValueError("state_dict must be a torchvision ResNet-18 state dict (keys conv1.*, bn1.*, layer1-4.*, "
                         f"fc.*): missing {missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected "
                         f"{unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
    try:
        net.load_state_dict(renamed, strict=False)
    except RuntimeError as err:  # a shape mismatch
        raise ValueError(f"state_dict does not fit the FCN's ResNet-18 trunk: {err}") from None
    return net


def find_resnet18_imagenet(directory: Optional[Path] = None) -> Optional[Path]:
    """torchvision's ImageNet ResNet-18 file, if this machine has it; never touches the network.

    Looks for ``resnet18-f37072fd.pth`` (the name ``torchvision.models.resnet18(weights=
    "IMAGENET1K_V1")`` downloads) in the registry folder, then in ``$TORCH_HOME/hub/checkpoints``
    (``TORCH_HOME`` defaults to ``~/.cache/torch``), and checks that the file's sha256 starts with
    the 8 hex digits in its name, as torchvision's downloader does.

    Args:
        directory (Path, optional): the registry folder; default ``pretrained/``.

    Returns:
        Path or None: the file, or None when neither folder has it (offline, the FCN's trunk
        then starts from random weights).

    Raises:
        WeightsError: the file is there but its sha256 does not match.
    """
    return _weights.find_torchvision_checkpoint(f"resnet18-{RESNET18_IMAGENET_SHA256_PREFIX}.pth", directory)


def load_resnet18_imagenet(path: Union[None, str, Path] = None) -> Dict[str, Tensor]:
    """torchvision's ImageNet ResNet-18 state dict, from ``path`` or :func:`find_resnet18_imagenet`.

    Loaded with ``torch.load(..., weights_only=True)``: tensors only, no arbitrary pickle.

    Raises:
        WeightsError: no file was given or found, or it is not a state dict of tensors.
    """
    if path is None:
        path = find_resnet18_imagenet()
        if path is None:
            raise _weights.WeightsError(
                f"resnet18-{RESNET18_IMAGENET_SHA256_PREFIX}.pth is not in {_weights.PRETRAINED_DIR} nor in "
                f"{_weights.torch_cache_dir()}: on a machine with internet, torchvision.models.resnet18(weights="
                "'IMAGENET1K_V1') downloads it; offline, build FCN() without it (random trunk)")
    return _load_pth(Path(path))


def _load_pth(path: Path) -> Dict[str, Tensor]:
    if not path.is_file():
        raise _weights.WeightsError(f"{path} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a plain state dict"
        raise _weights.WeightsError(f"{path} is not a state dict of tensors loadable with weights_only=True: "
                                    f"{type(err).__name__}: {str(err)[:200]}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise _weights.WeightsError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return dict(state)


# --- loss, metrics, pictures ----------------------------------------------------------------

def fcn_loss(inputs: Tensor, targets: Tensor) -> Tensor:
    """The book's ``loss``: per-pixel cross-entropy, averaged over each image's pixels.

    Pixels labelled :data:`VOID_INDEX` are left out of both the sum and the count; with none
    (the book's labels), this is the book's ``F.cross_entropy(..., reduction='none').mean(1).mean(1)``.
    Training sums it over the batch before ``backward``, as the book's ``train_batch_ch13``.

    Args:
        inputs (Tensor[B, C, H, W]): class scores (logits).
        targets (Tensor[B, H, W]): int64 class indices.

    Returns:
        Tensor[B]: each image's mean loss (0 for an image with only void pixels).
    """
    ce = F.cross_entropy(inputs, targets, reduction="none", ignore_index=VOID_INDEX)  # [B, H, W]
    counted = (targets != VOID_INDEX).sum(dim=(1, 2)).clamp(min=1)
    return ce.sum(dim=(1, 2)) / counted


def _palette(device) -> Tensor:
    # [256, 3] uint8: the 21 VOC colours, void's colour at 255, black elsewhere.
    table = torch.zeros(256, 3, dtype=torch.uint8)
    table[: len(VOC_COLORMAP)] = torch.tensor(VOC_COLORMAP, dtype=torch.uint8)
    table[VOID_INDEX] = torch.tensor(VOID_COLOR, dtype=torch.uint8)
    return table.to(device)


def label2image(pred: Tensor) -> Tensor:
    """The book's ``label2image``: each class index replaced by its VOC colour.

    Args:
        pred (Tensor[..., H, W]): integer class indices in ``[0, 255]`` (255 = void).

    Returns:
        Tensor[..., H, W, 3]: uint8 RGB on ``pred``'s device (the book's values; it returns int64).
    """
    if not isinstance(pred, Tensor) or pred.dim() < 2 or pred.is_floating_point() or pred.dtype == torch.bool:
        raise ValueError(f"pred must be an integer Tensor[..., H, W] of class indices, got "
                         f"{_shape(pred) if not isinstance(pred, Tensor) else (tuple(pred.shape), pred.dtype)}")
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) > 255):
        raise ValueError(f"pred must hold class indices in [0, 255], got {int(pred.min())} to {int(pred.max())}")
    return _palette(pred.device)[pred.long()]


def _photo(image: Tensor) -> np.ndarray:
    """``[3, H, W]`` uint8 / float 0..255 -> ``uint8 [H, W, 3]`` numpy."""
    image = image.detach().cpu()
    if image.dtype != torch.uint8:
        image = image.float().clamp(0, 255).round().to(torch.uint8)
    return image.permute(1, 2, 0).contiguous().numpy()


def overlay_mask(image: Tensor, pred: Tensor, alpha: float = 0.5) -> np.ndarray:
    """A photo with its predicted objects tinted in their VOC colours; background left as it is.

    Args:
        image (Tensor[3, H, W]): uint8 or float ``0..255``.
        pred (Tensor[H, W]): class indices (0 = background).
        alpha (float): the colours' opacity, in ``[0, 1]``.

    Returns:
        np.ndarray: ``uint8 [H, W, 3]``.
    """
    alpha = _check_real(alpha, "alpha", 0.0, 1.0)
    if not isinstance(image, Tensor) or image.dim() != 3:
        raise ValueError(f"image must be a tensor of shape [3, H, W], got {_shape(image)}")
    _check_images(image[None], "image")
    if not isinstance(pred, Tensor) or tuple(pred.shape) != tuple(image.shape[-2:]):
        raise ValueError(f"pred must be a Tensor[H, W] with image's H, W = {tuple(image.shape[-2:])}, "
                         f"got {_shape(pred)}")
    photo = torch.from_numpy(_photo(image)).float()
    colours = label2image(pred.cpu()).float()
    weight = alpha * (pred.cpu() != 0).float()[..., None]
    return (photo * (1 - weight) + colours * weight).round().to(torch.uint8).numpy()


class _SegMetrics:
    """Loss sum, image count and confusion matrix of a split, on the device: no host sync per batch.

    ``num_classes`` may be None: it is then read from the first batch's scores.
    """

    def __init__(self, num_classes: Optional[int], device: torch.device):
        self.num_classes = num_classes
        self.device = device
        self.confmat: Optional[Tensor] = None
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)  # (loss over images, images)
        if num_classes is not None:
            self._allocate(num_classes)

    def _allocate(self, num_classes: int) -> None:
        self.num_classes = num_classes
        # One bin past the C x C matrix collects void pixels, so no boolean mask (a sync on CUDA).
        self.confmat = torch.zeros(num_classes * num_classes + 1, dtype=torch.int64, device=self.device)
        self._one = torch.ones(1, dtype=torch.int64, device=self.device)

    def add(self, scores: Tensor, labels: Tensor, loss: Optional[Tensor] = None) -> None:
        if self.confmat is None:
            self._allocate(scores.shape[1])
        c = self.num_classes
        cells = torch.where(labels == VOID_INDEX, c * c, labels * c + scores.argmax(dim=1)).flatten()
        # index_add_, not bincount: CUDA's bincount reads the maximum back to size its output.
        self.confmat.index_add_(0, cells, self._one.expand(cells.numel()))
        self.sums[1] += labels.shape[0]
        if loss is not None:
            self.sums[0] += loss.detach().sum(dtype=torch.float64)

    def all_reduce(self) -> None:
        if _world() > 1 and self.confmat is not None:
            dist.all_reduce(self.confmat)
            dist.all_reduce(self.sums)

    def read(self) -> Tuple[Tensor, float, float]:
        """``(confusion matrix Tensor[C, C] int64 on the CPU (row = true class), loss sum, images)``.

        One host sync: counts travel with the sums as float64 (exact below 2**53 pixels).
        """
        c = self.num_classes or 1
        if self.confmat is None:
            return torch.zeros(c, c, dtype=torch.int64), 0.0, 0.0
        values = torch.cat((self.confmat[: c * c].double(), self.sums)).cpu()
        return values[: c * c].long().reshape(c, c), float(values[-2]), float(values[-1])

    @staticmethod
    def scores(confmat: Tensor, prefix: str) -> Dict[str, float]:
        counted = int(confmat.sum())
        return {f"{prefix}acc": int(confmat.trace()) / counted if counted else math.nan,
                f"{prefix}mean_iou": float(iou_per_class(confmat).nanmean())}


# --- device plumbing ------------------------------------------------------------------------

def _net_device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def _amp_dtype(device: torch.device) -> Optional[torch.dtype]:
    # Mixed precision on CUDA only: CPU stays float32 (see device.autocast_dtype), MPS float16
    # training would need a GradScaler it may lack.
    return autocast_dtype(device) if device.type == "cuda" else None


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


@contextlib.contextmanager
def _eval_mode(net: nn.Module):
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


def _as_input(images: Tensor, device: torch.device) -> Tensor:
    """A batch on the device, ready for the net: float32, ImageNet-normalised, channels-last on CUDA.

    uint8 (and, in :func:`predict_fcn`, float) photos hold 0..255 and are normalised here, on the
    device, after a 4x smaller uint8 copy; float batches from a data set are already normalised.
    """
    X = images.to(device, non_blocking=True)
    if X.dtype == torch.uint8:
        X = _normalize(X.float())
    else:
        X = X.float()
    return X.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else X


def _normalize(pixels: Tensor) -> Tensor:
    # [B, 3, H, W] float 0..255 -> VOCSegDataset.normalize_image's numbers.
    mean = torch.tensor(_IMAGENET_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels / 255 - mean) / std


def _denormalize(X: Tensor) -> Tensor:
    mean = torch.tensor(_IMAGENET_MEAN, device=X.device).view(3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=X.device).view(3, 1, 1)
    return ((X.float() * std + mean) * 255).clamp(0, 255).round().to(torch.uint8)


def _scores(net: nn.Module, X: Tensor, amp: Optional[torch.dtype]) -> Tensor:
    # The net under autocast, its scores in float32; torchvision's segmentation models return a dict.
    with _autocast(X.device, amp):
        out = net(X)
    if isinstance(out, Mapping):
        out = out["out"]
    return out.float()


# --- distributed plumbing -------------------------------------------------------------------

def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _stop_group():
    """A gloo group for the per-batch stop vote: it must not wait on the GPU as an NCCL one would."""
    if _world() == 1:
        return None
    return None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")


def _stop_requested(stop: Optional[threading.Event], group) -> bool:
    local = stop is not None and stop.is_set()
    if _world() == 1:
        return local
    # Every process must stop at the same batch, or the others wait forever in DDP's all-reduce.
    vote = torch.tensor([int(local)])
    dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=group)
    return bool(vote.item())


def _broadcast_buffers(net: nn.Module) -> None:
    # BatchNorm's running statistics are each process's own: rank 0's become everyone's.
    if _world() > 1:
        for buffer in net.buffers():
            dist.broadcast(buffer, src=0)


def _rank_seed(seed: int, rank: int) -> int:
    # Independent crop streams per process, reproducible from (seed, rank).
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1)


# --- data -----------------------------------------------------------------------------------

SegData = Union[Dataset, Tuple[Tensor, Tensor]]


class _Batcher:
    """Batches ``(images, labels)`` of a data set on the CPU, random crops drawn from a private generator.

    A :class:`VOCSegDataset` is cropped here with :func:`voc_rand_crop` (the book's draws, from
    this generator instead of torch's global one, so a run is reproducible without touching
    the caller's RNG), and its photos stay uint8 until they reach the device. Any other data
    set is indexed as it is.
    """

    def __init__(self, data: Dataset, seed: int):
        self.data = data
        self.seed = seed
        self.crops = isinstance(data, VOCSegDataset) and type(data).__getitem__ is VOCSegDataset.__getitem__
        self.generator = torch.Generator().manual_seed(seed)

    def reset(self) -> None:
        self.generator.manual_seed(self.seed)

    def __call__(self, indices: Sequence[int]) -> Tuple[Tensor, Tensor]:
        if self.crops:
            height, width = self.data.crop_size
            pairs = [voc_rand_crop(self.data.features[i], self.data.labels[i], height, width,
                                   generator=self.generator) for i in indices]
        else:
            pairs = [self.data[i] for i in indices]
        images = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        labels = torch.stack([torch.as_tensor(p[1]) for p in pairs])
        return images, labels


def _as_dataset(data, name: str) -> Dataset:
    """A data set from ``data`` (a Dataset, or a pair ``(images, labels)``), its first item checked."""
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"{name} must be a Dataset or a pair (images [N, 3, H, W] uint8, labels [N, H, W]), "
                             f"got a sequence of {len(data)}")
        images, labels = data
        _check_images(images, f"{name} images")
        if not isinstance(labels, Tensor) or labels.dim() != 3 or labels.shape[0] != images.shape[0] \
                or labels.shape[1:] != images.shape[2:]:
            raise ValueError(f"{name} labels must have shape [N, H, W] = {(images.shape[0], *images.shape[2:])}, "
                             f"got {_shape(labels)}")
        data = TensorDataset(images, labels)
    if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
        raise ValueError(f"{name} must be a Dataset of (image [3, H, W], label [H, W]) items (e.g. VOCSegDataset) "
                         f"or a pair of tensors, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{name} must hold at least one item, got an empty {type(data).__name__}")
    return data


def _item_size(data: Dataset, name: str) -> Tuple[int, int]:
    # (H, W) of the items, checked on the first one (a VOCSegDataset's crop size, without cropping).
    if isinstance(data, VOCSegDataset):
        return data.crop_size
    image, label = data[0]
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"{name} items must be (image Tensor[3, H, W], label Tensor[H, W]), got image {_shape(image)}")
    if not isinstance(label, Tensor) or tuple(label.shape) != tuple(image.shape[1:]):
        raise ValueError(f"{name} items' labels must be Tensor[H, W] with the image's H, W = {tuple(image.shape[1:])}, "
                         f"got {_shape(label)}")
    return int(image.shape[1]), int(image.shape[2])


# --- training -------------------------------------------------------------------------------

def train_fcn(train: SegData, test: Optional[SegData] = None, *, net: FCN, epochs: int = 5,
              batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 1e-3, optimizer: str = "sgd",
              device: Union[None, str, torch.device] = None, seed: int = 0,
              stop: Optional[threading.Event] = None, preview: Union[bool, Tensor] = True,
              record_interval: float = 0.25) -> Iterator[Progress]:
    """Train ``net`` in place with the book's recipe, streaming progress.

    The book's ``train_ch13`` for FCN: SGD (lr 1e-3, weight decay 1e-3), :func:`fcn_loss`
    summed over the batch for ``backward``, shuffled batches of random crops, the last partial
    batch dropped (as the book's ``load_data_voc``). ``optimizer="adamw"`` is the one departure
    offered: offline the trunk starts random, not from ImageNet, and Adam's steps leave the
    "all background" start sooner than the book's SGD (use ``lr`` about 1e-3 to 1e-4 there).

    The caller builds and keeps the network (``net = FCN(21)``); the generator moves it to
    ``device``, trains it and leaves it there in eval mode. Arguments are checked when this is
    called, before the first record.

    Distributed: when ``torch.distributed`` is initialised (e.g. under ``torchrun``; gloo on the
    CPU, NCCL on GPUs), every process calls this with the same arguments and its own device and
    must run the generator to its end. ``net`` is wrapped in ``DistributedDataParallel``, a
    ``DistributedSampler`` (seeded with ``seed``) deals the shuffled items out, ``batch_size`` is
    the global batch (``batch_size / world_size`` per process; the loss is scaled so the step is
    the one a single process takes on the whole batch), the test split is divided between the
    processes, and the epoch metrics are summed over all of them: every process yields the same
    epoch records; only rank 0 draws previews. In-epoch records are the process's own.

    Records (:class:`Progress`, ``total = epochs * batches``):

    * during an epoch, at most one every ``record_interval`` seconds (0: after every batch):
      ``step`` = batches done, metrics ``loss`` (mean per image since the previous record) and
      ``examples_per_s`` (over the same batches, timed with one device sync here);
    * after each epoch (``step`` = all its batches): ``epoch``, ``loss`` (the book's train
      loss), ``examples_per_s`` (training time only, all processes), ``train_acc`` and
      ``train_mean_iou`` (on that epoch's training batches, in train mode while training, as
      the book's train acc), and with ``test``: ``test_acc`` and ``test_mean_iou`` (eval mode,
      the same crops every epoch). Pixel accuracy and mean IoU leave void pixels out; mean IoU
      averages the classes present in labels or predictions. ``preview`` is a ``uint8
      [H, W', 3]`` picture: the photo, the predicted classes and the true ones side by side
      in VOC colours (:func:`label2image`). The last epoch's record has ``done=True``;
    * if ``stop`` is set (checked before every batch): one record ``done=True``,
      ``message="stopped"``, with the last epoch's metrics.

    On CUDA: autocast with :func:`vision_core.device.autocast_dtype`, channels-last, a
    GradScaler only for float16, photos moved as uint8 and normalised on the GPU; GPU memory is
    released when the generator ends or is closed. On the CPU: float32 and deterministic for a
    given ``seed`` and initial ``net``.

    Args:
        train (Dataset or (Tensor[N, 3, H, W], Tensor[N, H, W])): a :class:`VOCSegDataset`, any
            data set of ``(image [3, H, W], label [H, W])`` items (uint8 photos ``0..255``, or
            float ones already normalised), or a pair ``(uint8 photos, labels)``. ``H`` and ``W``
            must be multiples of 32; labels are class indices in ``[0, num_classes)`` or 255.
        test (same, optional): the held-out split.
        net (FCN): the network to train, required; its ``num_classes`` sets the metrics'.
        epochs (int): in ``[1, 500]``; the book: 5.
        batch_size (int): in ``[1, 1024]``, at most the training items, a multiple of the
            number of processes; the book: 32.
        lr (float): learning rate, in ``(0, 10]``.
        weight_decay (float): in ``[0, 1]``.
        optimizer (str): ``"sgd"`` (the book's) or ``"adamw"``.
        device: where to train; None means :func:`vision_core.device.get_device`.
        seed (int): seeds the shuffling and the crops, in ``[0, 2**31 - 1]``.
        stop (threading.Event, optional): set it to stop after the current batch.
        preview (bool or Tensor[3, H, W]): True: previews of the first test item (the first
            training item without ``test``); False: none; a uint8 photo: previews of it.
        record_interval (float): seconds between in-epoch records, in ``[0, 3600]``.

    Returns:
        Iterator[Progress]: the records.
    """
    _check_net(net)
    train = _as_dataset(train, "train")
    size = _item_size(train, "train")
    if size[0] % STRIDE or size[1] % STRIDE:
        raise ValueError(f"train items must have height and width multiples of {STRIDE} (the FCN's stride; the "
                         f"book crops 320 x 480), got {size[0]} x {size[1]}")
    if test is not None:
        test = _as_dataset(test, "test")
        test_size = _item_size(test, "test")
        if test_size[0] % STRIDE or test_size[1] % STRIDE:
            raise ValueError(f"test items must have height and width multiples of {STRIDE}, "
                             f"got {test_size[0]} x {test_size[1]}")
    epochs = _check_int(epochs, "epochs", 1, 500)
    batch_size = _check_int(batch_size, "batch_size", 1, 1024)
    world = _world()
    if batch_size % world or batch_size > len(train):
        raise ValueError(f"batch_size must be a multiple of the {world} process(es) and at most the {len(train)} "
                         f"training items (the last partial batch is dropped), got {batch_size}")
    lr = _check_real(lr, "lr", 0.0, 10.0, lo_open=True)
    weight_decay = _check_real(weight_decay, "weight_decay", 0.0, 1.0)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    seed = _check_int(seed, "seed", 0, _MAX_SEED)
    record_interval = _check_real(record_interval, "record_interval", 0.0, 3600.0)
    if isinstance(preview, Tensor):
        _check_images(preview[None] if preview.dim() == 3 else preview, "preview")
        if preview.dim() != 3:
            raise ValueError(f"preview must be True, False or one photo Tensor[3, H, W], got {tuple(preview.shape)}")
    elif not isinstance(preview, bool):
        raise ValueError(f"preview must be True, False or one photo Tensor[3, H, W], got {type(preview).__name__}")
    device = get_device() if device is None else resolve_device(device)
    return _train_records(train, test, net, epochs, batch_size, lr, weight_decay, optimizer, device, seed, stop,
                          preview, record_interval)


def _train_records(train, test, net, epochs, batch_size, lr, weight_decay, optimizer_name, device, seed, stop,
                   preview, record_interval) -> Iterator[Progress]:
    amp = _amp_dtype(device)
    rank, world = _rank(), _world()
    model = optimizer = None
    try:
        net.to(device)
        if device.type == "cuda":
            net.to(memory_format=torch.channels_last)
        model = net
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # Broadcasts rank 0's weights, so every process starts from the same network.
            device_ids = None
            if device.type == "cuda":
                device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
            model = DistributedDataParallel(net, device_ids=device_ids)
        stop_group = _stop_group()
        optimizer = OPTIMIZERS[optimizer_name](net.parameters(), lr=lr, weight_decay=weight_decay)
        scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
        sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        batcher = _Batcher(train, _rank_seed(seed, rank))
        test_batcher = _Batcher(test, seed) if test is not None else None
        local_batch = batch_size // world
        batches = len(sampler) // local_batch
        total = epochs * batches
        # DDP averages gradients over the processes; the book sums the per-image losses of a batch.
        loss_scale = float(world)
        step, epoch_metrics = 0, {}
        for epoch in range(epochs):
            net.train()
            sampler.set_epoch(epoch)
            order = list(sampler)
            metrics = _SegMetrics(net.num_classes, device)
            window_loss = torch.zeros((), dtype=torch.float64, device=device)
            window_examples, train_seconds = 0, 0.0
            window_start = time.perf_counter()
            for b in range(batches):
                if _stop_requested(stop, stop_group):
                    net.eval()
                    yield Progress(step, total, epoch_metrics, message="stopped", done=True)
                    return
                images, labels = batcher(order[b * local_batch:(b + 1) * local_batch])
                _check_labels(labels, net.num_classes, "train labels")
                loss_sum = _train_step(model, optimizer, scaler, _as_input(images, device),
                                       labels.to(device, torch.int64, non_blocking=True), amp, metrics, loss_scale)
                window_loss += loss_sum
                step += 1
                window_examples += labels.shape[0]
                last = b == batches - 1
                if last or time.perf_counter() - window_start >= record_interval:
                    mean_loss = float(window_loss) / window_examples  # the sync that makes the time honest
                    seconds = time.perf_counter() - window_start
                    train_seconds += seconds
                    if not last:
                        yield Progress(step, total, {"loss": mean_loss, "examples_per_s": window_examples / seconds},
                                       message=f"epoch {epoch + 1}/{epochs}, batch {b + 1}/{batches}")
                    # Restarted after the yield: the consumer's time is not the trainer's.
                    window_loss.zero_()
                    window_examples, window_start = 0, time.perf_counter()
            metrics.all_reduce()
            confmat, loss_sum, images_seen = metrics.read()
            epoch_metrics = {"epoch": epoch + 1, "loss": loss_sum / images_seen,
                             "examples_per_s": images_seen / max(train_seconds, 1e-9),
                             **_SegMetrics.scores(confmat, "train_")}
            _broadcast_buffers(net)
            if test is not None:
                test_batcher.reset()  # the same crops every epoch: numbers comparable across epochs
                shard = range(rank, len(test), world)
                test_metrics = _split_metrics(net, test_batcher, shard, local_batch, amp)
                test_metrics.all_reduce()
                epoch_metrics.update(_SegMetrics.scores(test_metrics.read()[0], "test_"))
            picture = _preview(net, preview, test if test is not None else train, seed, amp) if rank == 0 else None
            done = epoch == epochs - 1
            if done:
                net.eval()
            message = (f"{'done' if done else f'epoch {epoch + 1}/{epochs}'}: loss {epoch_metrics['loss']:.3f}, "
                       f"train acc {epoch_metrics['train_acc']:.3f}")
            if test is not None:
                message += (f", test acc {epoch_metrics['test_acc']:.3f}, "
                            f"test mIoU {epoch_metrics['test_mean_iou']:.3f}")
            yield Progress(step, total, epoch_metrics, picture, message=message, done=done)
    finally:
        # Drop the wrapper, the optimizer state and the last gradients before emptying the cache,
        # or it has nothing to give back.
        del model, optimizer
        net.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, X: Tensor,
                Y: Tensor, amp: Optional[torch.dtype], metrics: _SegMetrics, loss_scale: float) -> Tensor:
    """One optimizer step on a batch, as the book's ``train_batch_ch13``; returns the 0-dim loss sum.

    A function of its own so the batch's activations are freed when it returns.
    """
    optimizer.zero_grad(set_to_none=True)
    scores = _scores(model, X, amp)
    loss = fcn_loss(scores, Y)  # [B]
    scaler.scale(loss.sum() * loss_scale).backward()
    scaler.step(optimizer)
    scaler.update()
    with torch.no_grad():
        metrics.add(scores, Y, loss)
        return loss.detach().sum(dtype=torch.float64)


def _split_metrics(net: nn.Module, batcher: _Batcher, indices: Sequence[int], batch_size: int,
                   amp: Optional[torch.dtype]) -> _SegMetrics:
    # Loss and confusion matrix over the given items, eval mode, batched; reading it syncs once.
    device = _net_device(net)
    metrics = _SegMetrics(net.num_classes if isinstance(net, FCN) else None, device)
    indices = list(indices)
    with _eval_mode(net), torch.no_grad():
        for start in range(0, len(indices), batch_size):
            images, labels = batcher(indices[start:start + batch_size])
            _add_batch(net, metrics, images, labels, amp)
    return metrics


def _add_batch(net: nn.Module, metrics: _SegMetrics, images: Tensor, labels: Tensor,
               amp: Optional[torch.dtype]) -> None:
    device = _net_device(net)
    scores = _scores(net, _as_input(images, device), amp)
    if tuple(scores.shape[-2:]) != tuple(labels.shape[-2:]):
        raise ValueError(f"images of {tuple(images.shape[-2:])} pixels give scores of {tuple(scores.shape[-2:])}: "
                         f"an FCN needs heights and widths that are multiples of {STRIDE}")
    _check_labels(labels, scores.shape[1])
    Y = labels.to(device, torch.int64)
    metrics.add(scores, Y, fcn_loss(scores, Y))


def _preview(net: nn.Module, preview, data: Dataset, seed: int, amp: Optional[torch.dtype]) -> Optional[np.ndarray]:
    """``uint8 [H, k*W, 3]``: the photo, the predicted classes and (for a data item) the true ones."""
    if preview is False:
        return None
    if isinstance(preview, Tensor):
        return np.concatenate([_photo(preview), label2image(predict_fcn(net, preview)).numpy()], axis=1)
    images, labels = _Batcher(data, seed)([0])  # the same item and crop every epoch
    device = _net_device(net)
    with _eval_mode(net), torch.no_grad():
        pred = _scores(net, _as_input(images, device), amp).argmax(dim=1)[0].cpu()
    photo = images[0] if images.dtype == torch.uint8 else _denormalize(images[0])
    return np.concatenate([_photo(photo), label2image(pred).numpy(), label2image(labels[0].long()).numpy()], axis=1)


# --- prediction and evaluation ----------------------------------------------------------------

def predict_fcn(net: nn.Module, images: Tensor, batch_size: int = 8) -> Tensor:
    """Class of every pixel: the book's ``predict``, for any image size.

    Photos are normalised as :class:`VOCSegDataset` does, then padded on the right and at the
    bottom to multiples of 32 (the FCN's stride, which the book's 320 x 480 crops already are)
    with zeros after normalising, i.e. the ImageNet mean colour, and the scores cropped back:
    the top-left of the output stays aligned with the photo, and every pixel gets a class
    (the book instead crops test images to 320 x 480). Runs on the net's device in eval mode
    (its mode is restored after), with autocast on CUDA.

    Args:
        net (nn.Module): an :class:`FCN`, or any net mapping ``[N, 3, H, W]`` to scores
            ``[N, C, H, W]`` (or a dict with ``"out"``, as torchvision's segmentation models).
        images (Tensor[N, 3, H, W] or Tensor[3, H, W]): uint8, or float ``0..255``.
        batch_size (int): images per forward pass, in ``[1, 1024]``.

    Returns:
        Tensor[N, H, W] (or Tensor[H, W]): int64 class indices, on the CPU.
    """
    if not isinstance(net, nn.Module):
        raise ValueError(f"net must be a torch.nn.Module (e.g. FCN), got {type(net).__name__}")
    batch_size = _check_int(batch_size, "batch_size", 1, 1024)
    single = isinstance(images, Tensor) and images.dim() == 3
    if single:
        images = images[None]
    _check_images(images)
    height, width = images.shape[-2:]
    pad = (0, -width % STRIDE, 0, -height % STRIDE)  # (left, right, top, bottom)
    device = _net_device(net)
    amp = _amp_dtype(device)
    out: List[Tensor] = []
    with _eval_mode(net), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            X = _normalize(images[start:start + batch_size].to(device).float())
            X = F.pad(X, pad)
            if device.type == "cuda":
                X = X.contiguous(memory_format=torch.channels_last)
            out.append(_scores(net, X, amp)[..., :height, :width].argmax(dim=1).cpu())
    pred = torch.cat(out)
    return pred[0] if single else pred


def evaluate_fcn(net: nn.Module, data: Union[SegData, torch.utils.data.DataLoader],
                 device: Union[None, str, torch.device] = None, batch_size: int = 32,
                 seed: int = 0) -> Dict[str, object]:
    """Pixel accuracy and mean IoU of ``net`` on a split (eval mode, no gradients).

    A :class:`VOCSegDataset` is evaluated on random crops drawn from a generator seeded with
    ``seed``: the same crops on every call. Void pixels (255) are left out.

    Args:
        net (nn.Module): an :class:`FCN` (or a net as :func:`predict_fcn` takes); moved to ``device``.
        data: a data set or pair of tensors as :func:`train_fcn` takes, or a ``DataLoader``
            (e.g. the book's ``test_iter``) yielding ``(images, labels)`` batches.
        device: None means :func:`vision_core.device.get_device`.
        batch_size (int): in ``[1, 1024]`` (a DataLoader keeps its own).
        seed (int): crops' seed, in ``[0, 2**31 - 1]``.

    Returns:
        dict: ``pixel_acc`` (float), ``mean_iou`` (float, over classes present in labels or
        predictions), ``class_iou`` (list of ``num_classes`` floats, NaN for an absent class)
        and ``loss`` (float, :func:`fcn_loss` per image).
    """
    if not isinstance(net, nn.Module):
        raise ValueError(f"net must be a torch.nn.Module (e.g. FCN), got {type(net).__name__}")
    batch_size = _check_int(batch_size, "batch_size", 1, 1024)
    seed = _check_int(seed, "seed", 0, _MAX_SEED)
    device = get_device() if device is None else resolve_device(device)
    net.to(device)
    amp = _amp_dtype(device)
    if isinstance(data, torch.utils.data.DataLoader):
        metrics = _SegMetrics(net.num_classes if isinstance(net, FCN) else None, device)
        with _eval_mode(net), torch.no_grad():
            for images, labels in data:
                _add_batch(net, metrics, images, labels, amp)
    else:
        data = _as_dataset(data, "data")
        metrics = _split_metrics(net, _Batcher(data, seed), range(len(data)), batch_size, amp)
    confmat, loss_sum, images = metrics.read()
    result = _SegMetrics.scores(confmat, "")
    return {"pixel_acc": result["acc"], "mean_iou": result["mean_iou"],
            "class_iou": [float(v) for v in iou_per_class(confmat)], "loss": loss_sum / max(images, 1.0)}


# --- weights --------------------------------------------------------------------------------

def save_fcn(net: FCN, metrics: Mapping[str, object], command: str, data_seed: int, name: str = FCN_WEIGHTS,
             directory: Optional[Path] = None, description: Optional[str] = None, data: str = FCN_DATA,
             license: str = FCN_LICENSE, trunk: Optional[str] = None) -> _weights.WeightEntry:
    """Record a trained FCN in the weights registry, as float16 safetensors (about 26 MB for 21 classes).

    float16 halves the file; :func:`load_fcn` turns it back into float32. Its predictions
    differ from the float32 network's only on pixels whose two best scores are nearly tied.

    Args:
        net (FCN): the trained network.
        metrics (Mapping): its measured quality (e.g. :func:`evaluate_fcn`'s); only finite
            numbers are recorded.
        command (str): the command line that trained it, for the manifest's ``source``.
        data_seed (int): the seed of the synthetic data it was trained on.
        name (str): the registry name.
        directory (Path, optional): the registry folder; default ``pretrained/``.
        description (str, optional): the manifest's one-line description.
        data (str): what it was trained on, for the manifest's ``source``.
        license (str): the manifest's license line.
        trunk (str, optional): how the trunk started (``"random"`` or the ImageNet file), for
            the manifest's ``source``.

    Returns:
        WeightEntry: the manifest row written.
    """
    _check_net(net)
    # float16 for weights and statistics; int64 counters (num_batches_tracked) as they are.
    state = {k: (v.detach().to(torch.float16) if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    source = {"command": command, "data_seed": data_seed, "data": data, "storage": "float16"}
    if trunk is not None:
        source["trunk"] = trunk
    if description is None:
        description = (f"FCN (d2l 14.11), ResNet-18 trunk, {net.num_classes} classes, trained on the synthetic "
                       "VOC-layout data; stored as float16")
    numbers = {k: float(v) for k, v in metrics.items()
               if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)}
    return _weights.save_weights(name, state, license=license, source=source, metrics=numbers,
                                 description=description, directory=directory)


def load_fcn(name: str = FCN_WEIGHTS, directory: Optional[Path] = None,
             device: Union[str, torch.device] = "cpu") -> Tuple[FCN, _weights.WeightEntry]:
    """An FCN with registered weights (checked against the manifest), in float32 and eval mode.

    Args:
        name (str): the registry name.
        directory (Path, optional): the registry folder; default ``pretrained/``.
        device: where to put the network.

    Returns:
        (FCN, WeightEntry): the network and its manifest row.

    Raises:
        WeightsError: the weights are unknown, missing, corrupt, or not an FCN's.
    """
    entry = _weights.get_entry(name, directory)
    state = _weights.load_state_dict(name, directory, device="cpu")
    head = state.get("final_conv.weight")
    if head is None or head.dim() != 4 or tuple(head.shape[1:]) != (512, 1, 1) or not 1 <= head.shape[0] <= 1000:
        raise _weights.WeightsError(f"weights {name!r} are not an FCN's (no valid final_conv.weight)")
    # The new net's random init is overwritten: keep it from advancing the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        net = FCN(int(head.shape[0]))
    try:
        net.load_state_dict(state)  # copies into the float32 parameters
    except RuntimeError as err:
        raise _weights.WeightsError(f"weights {name!r} do not fit FCN: {err}") from None
    return net.to(device).eval(), entry


def load_torchvision_fcn_resnet50(path: Union[None, str, Path] = None, device: Union[str, torch.device] = "cpu",
                                  directory: Optional[Path] = None) -> nn.Module:
    """torchvision's FCN-ResNet-50 (COCO images, the 21 VOC classes) from a local weight file.

    The model is ``torchvision.models.segmentation.fcn_resnet50(weights=None,
    weights_backbone=None, aux_loss=True)``; the file is the state dict torchvision publishes
    (``fcn_resnet50_coco-1167a1af.pth``), loaded with ``weights_only=True``. Nothing is
    downloaded. Its forward returns a dict; :func:`predict_fcn` and :func:`evaluate_fcn` take
    it as it is. It expects ImageNet-normalised input, like :class:`FCN`.

    Args:
        path (str or Path, optional): the ``.pth`` file; None looks for torchvision's file in
            the registry folder and the torch cache (its sha256 prefix checked).
        device: where to put the network.
        directory (Path, optional): the registry folder searched when ``path`` is None.

    Returns:
        nn.Module: the network, in eval mode.

    Raises:
        WeightsError: no file, not a state dict, or not FCN-ResNet-50's keys and shapes.
    """
    from torchvision.models.segmentation import fcn_resnet50

    if path is None:
        path = _weights.find_torchvision_checkpoint(f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth", directory)
        if path is None:
            raise _weights.WeightsError(
                f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth is not in the registry folder nor in "
                f"{_weights.torch_cache_dir()}: pass its path, or train the offline FCN (train_fcn)")
    state = _load_pth(Path(path))
    with torch.random.fork_rng(devices=[]):
        net = fcn_resnet50(weights=None, weights_backbone=None, aux_loss=True)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise _weights.WeightsError(f"{path} does not fit torchvision's fcn_resnet50 (aux_loss=True): "
                                    f"{str(err)[:300]}") from None
    return net.to(device).eval()


def _weights_sha256(net: nn.Module) -> str:
    """sha256 over the state dict's names and bytes: equal for bit-identical networks."""
    digest = hashlib.sha256()
    for key, value in net.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# --- the script: one process, or one per device under torchrun -------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vision_core.fcn",
        description="Train the book's FCN (d2l 14.11) on the synthetic VOC set or a VOC-layout folder. "
        "Under torchrun (torchrun --nproc_per_node=N -m vision_core.fcn ...) it trains with "
        "DistributedDataParallel: NCCL on GPUs, gloo on the CPU; --batch-size is the global batch.")
    parser.add_argument("--voc-dir", type=Path, default=None, metavar="DIR",
                        help="a VOC-layout folder (default: the cached synthetic set, generated on first use)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic set (default: 0)")
    parser.add_argument("--crop", type=int, nargs=2, default=(320, 480), metavar=("H", "W"),
                        help="crop height and width, multiples of 32 (default: 320 480)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="sgd")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights, shuffling and crops")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: cuda:LOCAL_RANK when CUDA is there, else cpu")
    parser.add_argument("--backbone", default="auto", metavar="auto|none|PATH",
                        help="trunk init: auto uses torchvision's ImageNet ResNet-18 file if the cache has it, "
                        "none starts random, or a .pth path (default: auto)")
    parser.add_argument("--init", default=None, metavar="NAME",
                        help="start from these registered weights (sha256-checked) instead of --backbone; the "
                        "manifest then records the chain of commands")
    parser.add_argument("--save", default=None, metavar="NAME", help="record the result in the weights registry")
    parser.add_argument("--weights-dir", type=Path, default=None, metavar="DIR",
                        help="weights registry folder (default: the project's pretrained/)")
    parser.add_argument("--report-dir", type=Path, default=None, metavar="DIR",
                        help="each process writes rank<R>.json there: last metrics and its weights' sha256")
    return parser


def _script_device(choice: str, local_rank: int) -> torch.device:
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"process {local_rank} needs cuda:{local_rank}, but only {torch.cuda.device_count()} "
                         "GPU(s) are visible: lower --nproc_per_node")
    return torch.device("cuda", local_rank)


def _recorded_options(given: Sequence[str]) -> List[str]:
    # The options that decide the weights: where this machine keeps the registry and the
    # reports is not part of the recipe, and a local path would not rerun elsewhere.
    local = ("--weights-dir", "--report-dir")
    kept, skip = [], False
    for arg in given:
        if skip:
            skip = False
        elif arg in local:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in local)):
            kept.append(arg)
    return kept


def ddp_main(args: Optional[Sequence[str]] = None) -> int:
    """Train from the command line, in one process or under ``torchrun``; returns the exit status.

    ``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with more than one process
    this joins the process group (NCCL on CUDA, gloo on the CPU), gives process ``r`` the GPU
    ``cuda:LOCAL_RANK``, and lets :func:`train_fcn` do the rest. Rank 0 prints one line per
    epoch, makes the synthetic set if it is missing and saves the weights (``--save``).
    Bad options exit with status 2 and a message naming the option.
    """
    parser = _parser()
    opts = parser.parse_args(args)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        device = _script_device(opts.device, local_rank)
        crop = (_check_int(opts.crop[0], "--crop H", STRIDE, 4096), _check_int(opts.crop[1], "--crop W", STRIDE, 4096))
        if crop[0] % STRIDE or crop[1] % STRIDE:
            raise ValueError(f"--crop H W must be multiples of {STRIDE} (the FCN's stride), got {crop[0]} {crop[1]}")
        # The rest as train_fcn checks them, but before any data is read or generated.
        _check_int(opts.epochs, "--epochs", 1, 500)
        _check_int(opts.batch_size, "--batch-size", 1, 1024)
        _check_real(opts.lr, "--lr", 0.0, 10.0, lo_open=True)
        _check_real(opts.weight_decay, "--weight-decay", 0.0, 1.0)
        _check_int(opts.seed, "--seed", 0, _MAX_SEED)
        _check_int(opts.data_seed, "--data-seed", 0, _MAX_SEED)
    except ValueError as err:
        parser.error(str(err))
    joined = False
    try:
        if world > 1:
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            joined = True
        voc_dir = opts.voc_dir
        if voc_dir is None:
            from .voc import synthetic_voc_dir

            if rank == 0:
                voc_dir = synthetic_voc_dir(opts.data_seed)
            if joined:
                dist.barrier()  # the others read the set rank 0 made
            voc_dir = synthetic_voc_dir(opts.data_seed)
        train = VOCSegDataset(True, crop, voc_dir)
        test = VOCSegDataset(False, crop, voc_dir)
        backbone, trunk = None, "random"
        if opts.backbone != "none":
            path = find_resnet18_imagenet(opts.weights_dir) if opts.backbone == "auto" else Path(opts.backbone)
            if path is not None:
                backbone, trunk = load_resnet18_imagenet(path), f"ImageNet ResNet-18 from {path}"
        torch.manual_seed(opts.seed)
        net, previous = FCN(21, pretrained_backbone=backbone), None
        if opts.init is not None:
            try:
                net, previous = load_fcn(opts.init, directory=opts.weights_dir)
            except _weights.WeightsError as err:
                raise ValueError(f"--init: {err}") from None
            net.train()
            trunk = previous.source.get("trunk", "unknown")  # how the chain's first run started
        if rank == 0:
            print(f"FCN: {len(train)} train / {len(test)} test crops {crop[0]} x {crop[1]}, {world} process(es) on "
                  f"{device.type}, trunk {trunk}", flush=True)
        records = train_fcn(train, test, net=net, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr,
                            weight_decay=opts.weight_decay, optimizer=opts.optimizer, device=device,
                            seed=opts.seed, preview=False, record_interval=3600.0)
        last, started = None, time.perf_counter()
        for last in records:
            if rank == 0 and "epoch" in last.metrics:
                print(f"{last.message}, {last.metrics['examples_per_s']:.1f} examples/s", flush=True)
        seconds = time.perf_counter() - started
        metrics = dict(last.metrics) if last is not None else {}
        checksum = _weights_sha256(net)
        if opts.report_dir is not None:
            opts.report_dir.mkdir(parents=True, exist_ok=True)
            report = {"rank": rank, "world_size": world, "device": str(device), "metrics": metrics,
                      "weights_sha256": checksum, "seconds": seconds, "stopped": last is not None and
                      last.message == "stopped"}
            (opts.report_dir / f"rank{rank}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        if rank == 0 and opts.save:
            given = _recorded_options(sys.argv[1:] if args is None else list(args))
            launcher = "python -m vision_core train fcn" if world == 1 else (
                f"torchrun --nproc_per_node={world} -m vision_core.fcn")
            command = f"{launcher} {shlex.join(given)}"
            epochs, total_seconds = opts.epochs, seconds
            if previous is not None:  # the whole chain, oldest first, so the file can be made again
                command = f"{previous.source.get('command', '?')} && {command}"
                epochs += int(previous.metrics.get("epochs", 0))
                total_seconds += previous.metrics.get("train_seconds", 0.0)
            entry = save_fcn(net, {**metrics, "epochs": epochs, "train_seconds": round(total_seconds, 1)}, command,
                             opts.data_seed, name=opts.save, directory=opts.weights_dir, trunk=trunk,
                             description=f"FCN (d2l 14.11), ResNet-18 trunk ({trunk}), {epochs} epochs on "
                             f"{world} x {device.type} in {total_seconds:.0f} s; stored as float16")
            print(f"saved {entry.name} ({entry.bytes / 2**20:.1f} MiB)", flush=True)
    except ValueError as err:  # a bad option or data folder, found by the library's checks
        print(f"python -m vision_core.fcn: error: {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        if joined:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(ddp_main())
