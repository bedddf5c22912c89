"""Single-shot multibox detection: the book's TinySSD, its loss, training and prediction (d2l 14.7).

The book's names and outputs, so ``d2l``'s 14.7 code can call ``vision_core.ssd.X``:

* :class:`TinySSD` is the book's network (``blk_0`` .. ``blk_4``, ``cls_0`` .., ``bbox_0``
  ..), so a state dict maps one to one onto the book's; its forward returns
  ``(anchors, cls_preds, bbox_preds)`` in the book's order. Anchors depend only on the
  feature-map sizes, so they are computed once per size and device and then reused (the
  book recomputes :func:`multibox_prior` on every forward).
* :func:`calc_loss`, :func:`cls_eval`, :func:`bbox_eval` are the book's loss and metrics.
* :func:`train_ssd` is the book's training loop as a generator of :class:`Progress`
  records; :func:`predict` the book's ``predict``; :func:`evaluate_ssd` adds COCO mean
  average precision (torchmetrics, imported only when asked for).
* :func:`save_tiny_ssd` / :func:`load_tiny_ssd` go through the weights registry.

Images are the book's: ``uint8`` or float tensors holding ``0..255`` values (the book feeds
``read_image(...).float()`` without normalising). Labels are the banana reader's: rows
``(class, x1, y1, x2, y2)`` normalised by the image size, ``class = -1`` for padding.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from numbers import Integral, Real
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import weights as _weights
from .anchors import multibox_detection, multibox_prior, multibox_target
from .device import autocast_dtype, get_device, resolve_device
from .progress import Progress

__all__ = [
    "SIZES",
    "RATIOS",
    "NUM_ANCHORS",
    "INPUT_SIZE",
    "SSD_WEIGHTS",
    "cls_predictor",
    "bbox_predictor",
    "flatten_pred",
    "concat_preds",
    "down_sample_blk",
    "base_net",
    "get_blk",
    "blk_forward",
    "TinySSD",
    "calc_loss",
    "cls_eval",
    "bbox_eval",
    "train_ssd",
    "predict",
    "draw_detections",
    "evaluate_ssd",
    "save_tiny_ssd",
    "load_tiny_ssd",
]

# The book's anchor scales: one row per stage, feature maps 32, 16, 8, 4 and 1 for a 256 input.
SIZES = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
RATIOS = [[1, 2, 0.5]] * 5
NUM_ANCHORS = len(SIZES[0]) + len(RATIOS[0]) - 1  # anchors per feature-map pixel: 4
INPUT_SIZE = 256  # the banana images' side, and what :func:`predict` resizes to
SSD_WEIGHTS = "tiny_ssd_bananas"
# The training loop's optimizers by name: the book's SGD, and AdamW (see train_ssd).
OPTIMIZERS = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}
SSD_LICENSE = "MIT (trained by this project on its synthetic banana data)"
SSD_DATA = "vision_core.bananas synthetic, 1000 train / 100 val"
_MAX_DETECTIONS = 100  # COCO's largest maxDets: mAP never looks further down a ranking
_ANCHOR_CACHE_LIMIT = 32


# --- argument checks ------------------------------------------------------------------------

def _check_int(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _check_real(value, name: str, lo: float, hi: float, lo_open: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        raise ValueError(f"{name} must be a number in {'(' if lo_open else '['}{lo}, {hi}], got {value!r}")
    return float(value)


def _check_images(images: Tensor, name: str = "images") -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a tensor of shape [N, 3, H, W], got {shape}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"{name} must be uint8 or floating point (values 0..255), got {images.dtype}")
    if images.shape[0] == 0 or min(images.shape[-2:]) < 8:
        raise ValueError(f"{name} must hold at least one image of at least 8 x 8 pixels, got {tuple(images.shape)}")


def _check_split(split, name: str) -> Tuple[Tensor, Tensor]:
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise ValueError(f"{name} must be a pair (images [N, 3, H, W], labels [N, G, 5]), got {type(split).__name__}")
    images, labels = split
    _check_images(images, f"{name} images")
    _check_labels(labels, images.shape[0], f"{name} labels")
    return images, labels


def _check_labels(labels: Tensor, num_images: int, name: str = "labels") -> None:
    if not isinstance(labels, Tensor) or labels.dim() != 3 or labels.shape[-1] != 5:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{name} must have shape [N, G, 5] (rows class, x1, y1, x2, y2), got {shape}")
    if labels.shape[0] != num_images:
        raise ValueError(f"{name} has {labels.shape[0]} rows but there are {num_images} images")


def _check_net(net) -> None:
    if not isinstance(net, TinySSD):
        raise ValueError(f"net must be a TinySSD, got {type(net).__name__}")


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
    blk: List[nn.Module] = []
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


def blk_forward(X: Tensor, blk: nn.Module, size, ratio, cls_predictor: nn.Module, bbox_predictor: nn.Module):
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
        self.num_classes = _check_int(num_classes, "num_classes", 1, 10_000)
        idx_to_in_channels = [64, 128, 128, 128, 128]
        for i in range(5):
            # Registered in the book's order (blk, cls, bbox per stage), so state dicts list alike.
            setattr(self, f"blk_{i}", get_blk(i))
            setattr(self, f"cls_{i}", cls_predictor(idx_to_in_channels[i], NUM_ANCHORS, num_classes))
            setattr(self, f"bbox_{i}", bbox_predictor(idx_to_in_channels[i], NUM_ANCHORS))
        # A plain dict, not buffers: anchors are not weights and stay out of the state dict.
        self._anchor_cache: Dict[tuple, Tensor] = {}

    def forward(self, X: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
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

    def _anchors(self, fmaps: Tuple[Tuple[int, int], ...], device: torch.device) -> Tensor:
        # [1, A, 4] anchors of all stages for these feature-map sizes, computed once per device.
        key = (fmaps, device)
        anchors = self._anchor_cache.get(key)
        if anchors is None:
            anchors = torch.cat([self.stage_anchors(i, h, w, device) for i, (h, w) in enumerate(fmaps)], dim=1)
            self._anchor_cache[key] = anchors
        return anchors

    def stage_anchors(self, i: int, height: int, width: int, device: Union[str, torch.device] = "cpu") -> Tensor:
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


class _BookMetrics:
    """Running sums for the book's class error and bbox MAE, kept on the device (no sync per batch)."""

    def __init__(self, device: torch.device):
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.abs_error = torch.zeros((), dtype=torch.float64, device=device)
        self.num_cls = 0
        self.num_bbox = 0

    def add(self, cls_preds: Tensor, cls_labels: Tensor, bbox_preds: Tensor, bbox_labels: Tensor,
            bbox_masks: Tensor) -> None:
        self.correct += _cls_correct(cls_preds, cls_labels)
        self.abs_error += _bbox_abs_error(bbox_preds, bbox_labels, bbox_masks)
        self.num_cls += cls_labels.numel()
        self.num_bbox += bbox_labels.numel()

    def result(self, prefix: str = "") -> Dict[str, float]:
        # The one host sync.
        return {f"{prefix}class_err": 1.0 - int(self.correct) / max(self.num_cls, 1),
                f"{prefix}bbox_mae": float(self.abs_error) / max(self.num_bbox, 1)}


# --- device plumbing --------------------------------------------------------------------------

def _net_device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def _amp_dtype(device: torch.device) -> Optional[torch.dtype]:
    # Mixed precision only on CUDA: MPS float16 training would need a GradScaler it may lack,
    # and CPU stays in float32 (see device.autocast_dtype).
    return autocast_dtype(device) if device.type == "cuda" else None


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _as_input(images: Tensor, device: torch.device) -> Tensor:
    # uint8 or float [B, 3, H, W] -> float32 on the device (the book's 0..255 floats), channels
    # last on CUDA where cuDNN's convolutions prefer it.
    X = images.to(device, non_blocking=True).float()
    return X.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else X


def _forward_float(net: nn.Module, X: Tensor, amp: Optional[torch.dtype]) -> Tuple[Tensor, Tensor, Tensor]:
    # The network under autocast; the loss, softmax and offsets in float32.
    with _autocast(X.device, amp):
        anchors, cls_preds, bbox_preds = net(X)
    return anchors, cls_preds.float(), bbox_preds.float()


# --- training ---------------------------------------------------------------------------------

def train_ssd(train: Tuple[Tensor, Tensor], val: Optional[Tuple[Tensor, Tensor]] = None, *, net: TinySSD,
              epochs: int = 20, batch_size: int = 32, lr: float = 0.2, weight_decay: float = 5e-4,
              optimizer: str = "sgd", device: Union[None, str, torch.device] = None, seed: int = 0,
              stop: Optional[threading.Event] = None, preview_image: Optional[Tensor] = None,
              preview_threshold: float = 0.9, record_interval: float = 0.25) -> Iterator[Progress]:
    """Train ``net`` in place as the book does (SGD, :func:`calc_loss`), streaming progress.

    ``optimizer="adamw"`` swaps the book's plain SGD for AdamW, the one departure offered:
    the book's loss averages over all 5,444 anchors, of which about 20 per banana are
    positive, so SGD's steps on them are tiny and it predicts "background" everywhere for
    many epochs; Adam's steps do not scale with the loss, and it leaves that plateau sooner
    (the comparison is in README, TinySSD).

    The caller builds the network (``net = TinySSD(1)``) and keeps it: the generator moves it
    to ``device``, trains it and leaves it there in eval mode. Arguments are checked when
    this is called, before the first record.

    Records (:class:`Progress`, ``total = epochs * batches``):

    * during an epoch, at most one every ``record_interval`` seconds (0: after every batch):
      ``step`` = batches done, metrics ``loss`` (mean per image since the previous record)
      and ``examples_per_s`` (over the same batches, timed with one device sync here);
    * after each epoch (``step`` = all its batches): ``epoch``, ``loss``, ``examples_per_s``
      (training time only), the book's ``class_err`` and ``bbox_mae`` on that epoch's
      training batches (the book's numbers, measured in train mode while training),
      ``val_class_err`` and ``val_bbox_mae`` (eval mode, when ``val`` is given), and a
      ``preview``: ``uint8 [H, W, 3]`` detections on ``preview_image`` (default: the first
      val image). The last epoch's record has ``done=True``;
    * if ``stop`` is set (checked before every batch): one record ``done=True``,
      ``message="stopped"``, with the last epoch's metrics.

    On CUDA: the data is moved to the GPU once (uint8), autocast with
    :func:`vision_core.device.autocast_dtype`, channels-last, a GradScaler only for float16;
    GPU memory is released when the generator ends or is closed. On the CPU, float32 and
    deterministic for a given ``seed`` and initial ``net``.

    Args:
        train ((Tensor[N, 3, H, W], Tensor[N, G, 5])): images (uint8 or float ``0..255``)
            and normalised labels, as :func:`vision_core.bananas.read_bananas` returns them.
        val ((Tensor[M, 3, H, W], Tensor[M, G, 5]), optional): held-out split.
        net (TinySSD): the network to train, required.
        epochs (int): in ``[1, 500]``.
        batch_size (int): in ``[1, 1024]``; the last batch of an epoch may be smaller.
        lr (float): learning rate, in ``(0, 10]`` (the book: 0.2 with SGD; 1e-3 suits AdamW).
        weight_decay (float): in ``[0, 1]``.
        optimizer (str): ``"sgd"`` (the book's) or ``"adamw"``.
        device: where to train; None means :func:`vision_core.device.get_device`.
        seed (int): seeds the shuffling (a private ``torch.Generator``), ``>= 0``.
        stop (threading.Event, optional): set it to stop after the current batch.
        preview_image (Tensor[3, H, W], optional): the image the previews show.
        preview_threshold (float): minimum score of a previewed box, in ``[0, 1]``.
        record_interval (float): seconds between in-epoch records, ``>= 0``.

    Returns:
        Iterator[Progress]: the records.
    """
    _check_net(net)
    train = _check_split(train, "train")
    if val is not None:
        val = _check_split(val, "val")
    epochs = _check_int(epochs, "epochs", 1, 500)
    batch_size = _check_int(batch_size, "batch_size", 1, 1024)
    lr = _check_real(lr, "lr", 0.0, 10.0, lo_open=True)
    weight_decay = _check_real(weight_decay, "weight_decay", 0.0, 1.0)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    seed = _check_int(seed, "seed", 0, 2**63 - 1)
    preview_threshold = _check_real(preview_threshold, "preview_threshold", 0.0, 1.0)
    record_interval = _check_real(record_interval, "record_interval", 0.0, 3600.0)
    if preview_image is None and val is not None:
        preview_image = val[0][0]
    if preview_image is not None:
        _check_images(preview_image[None] if isinstance(preview_image, Tensor) else preview_image, "preview_image")
    device = get_device() if device is None else resolve_device(device)
    return _train_records(train, val, net, epochs, batch_size, lr, weight_decay, optimizer, device, seed, stop,
                          preview_image, preview_threshold, record_interval)


def _train_records(train, val, net, epochs, batch_size, lr, weight_decay, optimizer_name, device, seed, stop,
                   preview_image, preview_threshold, record_interval) -> Iterator[Progress]:
    amp = _amp_dtype(device)
    images = labels = val_images = val_labels = optimizer = None
    try:
        net.to(device)
        if device.type == "cuda":
            net.to(memory_format=torch.channels_last)
        # Moved once: 1000 banana images are 197 MB as uint8; they become float per batch.
        images, labels = train[0].to(device), train[1].to(device, torch.float32)
        if val is not None:
            val_images, val_labels = val[0].to(device), val[1].to(device, torch.float32)
        optimizer = OPTIMIZERS[optimizer_name](net.parameters(), lr=lr, weight_decay=weight_decay)
        scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
        shuffler = torch.Generator().manual_seed(seed)
        num = images.shape[0]
        batches = math.ceil(num / batch_size)
        total = epochs * batches
        step, epoch_metrics = 0, {}
        for epoch in range(epochs):
            net.train()
            order = torch.randperm(num, generator=shuffler).to(device)
            book = _BookMetrics(device)
            epoch_loss = torch.zeros((), dtype=torch.float64, device=device)
            window_loss = torch.zeros((), dtype=torch.float64, device=device)
            window_examples, train_seconds = 0, 0.0
            window_start = time.perf_counter()
            for b in range(batches):
                if stop is not None and stop.is_set():
                    net.eval()
                    yield Progress(step, total, epoch_metrics, message="stopped", done=True)
                    return
                idx = order[b * batch_size:(b + 1) * batch_size]
                loss_sum = _train_step(net, optimizer, scaler, images[idx], labels[idx], amp, book)
                epoch_loss += loss_sum
                window_loss += loss_sum
                step += 1
                window_examples += idx.numel()
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
            epoch_metrics = {"epoch": epoch + 1, "loss": float(epoch_loss) / num,
                             "examples_per_s": num / max(train_seconds, 1e-9), **book.result()}
            if val is not None:
                epoch_metrics.update(_split_metrics(net, val_images, val_labels, batch_size, amp).result("val_"))
            preview = None
            if preview_image is not None:
                preview = draw_detections(preview_image, predict(net, preview_image, preview_threshold)[0])
            done = epoch == epochs - 1
            if done:
                net.eval()
            message = (f"{'done' if done else f'epoch {epoch + 1}/{epochs}'}: class err "
                       f"{epoch_metrics['class_err']:.2e}, bbox mae {epoch_metrics['bbox_mae']:.2e}")
            yield Progress(step, total, epoch_metrics, preview, message=message, done=done)
    finally:
        # Drop the device copies (and the last step's gradients) before emptying the cache, or
        # it has nothing to give back.
        del images, labels, val_images, val_labels, optimizer
        net.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _train_step(net: TinySSD, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, images: Tensor,
                labels: Tensor, amp: Optional[torch.dtype], book: _BookMetrics) -> Tensor:
    """One SGD step on a batch, as the book's loop body; returns the 0-dim sum of per-image losses.

    A function of its own so the batch's activations are freed when it returns.
    """
    X = _as_input(images, images.device)
    optimizer.zero_grad(set_to_none=True)
    anchors, cls_preds, bbox_preds = _forward_float(net, X, amp)
    bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, labels)
    loss = calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)  # [B]
    scaler.scale(loss.mean()).backward()
    scaler.step(optimizer)
    scaler.update()
    with torch.no_grad():
        book.add(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
        return loss.detach().sum(dtype=torch.float64)


def _split_metrics(net: TinySSD, images: Tensor, labels: Tensor, batch_size: int,
                   amp: Optional[torch.dtype]) -> _BookMetrics:
    # The book's metrics on a whole split, eval mode, batched; the result syncs once.
    device = _net_device(net)
    book = _BookMetrics(device)
    with _eval_mode(net), torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            X = _as_input(images[start:start + batch_size], device)
            anchors, cls_preds, bbox_preds = _forward_float(net, X, amp)
            bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, labels[start:start + batch_size].to(device))
            book.add(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
    return book


@contextlib.contextmanager
def _eval_mode(net: nn.Module):
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


# --- prediction -----------------------------------------------------------------------------

def _detect(net: TinySSD, X: Tensor, amp: Optional[torch.dtype]) -> Tensor:
    # The book's predict without the filtering: [B, A, 6] rows (class, conf, normalised xyxy).
    anchors, cls_preds, bbox_preds = _forward_float(net, X, amp)
    cls_probs = F.softmax(cls_preds, dim=2).permute(0, 2, 1)
    return multibox_detection(cls_probs, bbox_preds, anchors)


def predict(net: TinySSD, images: Tensor, threshold: float = 0.9, batch_size: int = 64) -> List[Tensor]:
    """Detect objects (the book's ``predict``, then its ``display`` threshold).

    Images that are not ``256 x 256`` are resized to it (bilinear, antialiased) and the boxes
    scaled back. Runs on the net's device, in eval mode (the net's mode is restored after).

    Args:
        net (TinySSD): the detector.
        images (Tensor[B, 3, H, W] or Tensor[3, H, W]): uint8 or float ``0..255``.
        threshold (float): minimum score kept, in ``[0, 1]``.
        batch_size (int): images per forward pass, in ``[1, 1024]``.

    Returns:
        List[Tensor[K, 6]]: per image, float32 rows ``(class, score, x1, y1, x2, y2)`` in
        pixels of the original image, by decreasing score, on the CPU (boxes may reach
        past the image's edges, as in the book).
    """
    _check_net(net)
    threshold = _check_real(threshold, "threshold", 0.0, 1.0)
    batch_size = _check_int(batch_size, "batch_size", 1, 1024)
    if isinstance(images, Tensor) and images.dim() == 3:
        images = images[None]
    _check_images(images)
    height, width = images.shape[-2:]
    device = _net_device(net)
    amp = _amp_dtype(device)
    scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=device)
    out: List[Tensor] = []
    # no_grad rather than inference_mode: the rows handed back stay ordinary, editable tensors.
    with _eval_mode(net), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            X = _as_input(images[start:start + batch_size], device)
            if (height, width) != (INPUT_SIZE, INPUT_SIZE):
                X = F.interpolate(X, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                                  antialias=True)
            rows = _detect(net, X, amp).float()
            rows[..., 2:] *= scale  # normalised -> pixels of the original size
            keep = (rows[..., 0] >= 0) & (rows[..., 1] >= threshold)
            # Kept rows come first, by decreasing score: one boolean-mask copy per image.
            out += [r[k].cpu() for r, k in zip(rows, keep)]
    return out


def draw_detections(image: Tensor, detections: Tensor, color: str = "white", width: int = 2) -> np.ndarray:
    """Boxes over an image, each labelled with its score (what the book's ``display`` shows).

    Args:
        image (Tensor[3, H, W]): uint8 or float ``0..255``.
        detections (Tensor[K, 6]): :func:`predict` rows, in pixels.
        color (str): box colour (the book draws white).
        width (int): line width in pixels.

    Returns:
        np.ndarray: ``uint8 [H, W, 3]``.
    """
    from torchvision.utils import draw_bounding_boxes

    _check_images(image[None] if isinstance(image, Tensor) else image, "image")
    picture = image.detach().cpu()
    if picture.dtype != torch.uint8:
        picture = picture.clamp(0, 255).round().to(torch.uint8)
    if detections.numel():
        height, width_px = picture.shape[-2:]
        # Clipped for drawing only; draw_bounding_boxes rejects nothing inside the image.
        boxes = detections[:, 2:].float().cpu().clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width_px - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height - 1)
        labels = [f"{float(s):.2f}" for s in detections[:, 1]]
        picture = draw_bounding_boxes(picture, boxes, labels=labels, colors=color, width=width)
    return picture.permute(1, 2, 0).contiguous().numpy()


# --- evaluation -----------------------------------------------------------------------------

def _mean_average_precision():
    # torchmetrics (and a COCO backend) only when mAP is asked for: vision_core imports without them.
    try:
        from torchmetrics.detection import MeanAveragePrecision
    except ImportError as err:
        raise ImportError("mean average precision needs torchmetrics and pycocotools: "
                          "pip install torchmetrics==1.9.0 pycocotools==2.0.11") from err
    backend = "pycocotools"
    try:
        import pycocotools  # noqa: F401
    except ImportError:
        backend = "faster_coco_eval"
    return MeanAveragePrecision(iou_type="bbox", box_format="xyxy", backend=backend)


def _map_from_detections(detections: Sequence[Tensor], targets: Sequence[Tensor], metric=None) -> Dict[str, float]:
    """COCO mAP of detections against ground truth, both in pixels.

    Args:
        detections (Sequence[Tensor[K, 6]]): per image, rows ``(class, score, x1, y1, x2, y2)``.
        targets (Sequence[Tensor[G, 5]]): per image, rows ``(class, x1, y1, x2, y2)``.
        metric (MeanAveragePrecision, optional): a fresh metric to use; made here if omitted.

    Returns:
        Dict[str, float]: ``map`` (IoU 0.50:0.95) and ``map_50``; -1 when there are no targets.
    """
    if len(detections) != len(targets):
        raise ValueError(f"detections and targets must list the same images, got {len(detections)} and {len(targets)}")
    metric = _mean_average_precision() if metric is None else metric
    preds = [{"boxes": d[:, 2:].float().cpu(), "scores": d[:, 1].float().cpu(), "labels": d[:, 0].long().cpu()}
             for d in detections]
    target = [{"boxes": t[:, 1:].float().cpu(), "labels": t[:, 0].long().cpu()} for t in targets]
    metric.update(preds, target)
    result = metric.compute()
    return {"map": float(result["map"]), "map_50": float(result["map_50"])}


def evaluate_ssd(net: TinySSD, images: Tensor, labels: Tensor, device: Union[None, str, torch.device] = None,
                 batch_size: int = 32, with_map: bool = True) -> Dict[str, float]:
    """The book's metrics and COCO mean average precision of ``net`` on a split.

    The book's ``class_err`` (1 - accuracy over all anchors) and ``bbox_mae`` (masked
    absolute offset error over all offsets) against :func:`multibox_target`'s labels, and
    torchmetrics' ``MeanAveragePrecision`` (``map`` at IoU 0.50:0.95, ``map_50``) of
    :func:`multibox_detection`'s rows with class >= 0 (default ``pos_threshold``; the 100
    best per image, all that COCO's metric reads) against the labels in pixels. Images are
    evaluated at their own size, in eval mode, without gradients.

    Args:
        net (TinySSD): the detector; moved to ``device``.
        images (Tensor[N, 3, H, W]): uint8 or float ``0..255``.
        labels (Tensor[N, G, 5]): normalised rows ``(class, x1, y1, x2, y2)``, class -1 = padding.
        device: None means :func:`vision_core.device.get_device`.
        batch_size (int): in ``[1, 1024]``.
        with_map (bool): False skips mAP (and the torchmetrics import).

    Returns:
        Dict[str, float]: ``class_err``, ``bbox_mae`` and, with ``with_map``, ``map_50``, ``map``.

    Raises:
        ImportError: ``with_map`` and torchmetrics (or a COCO backend) is not installed.
    """
    _check_net(net)
    _check_images(images)
    _check_labels(labels, images.shape[0])
    batch_size = _check_int(batch_size, "batch_size", 1, 1024)
    metric = _mean_average_precision() if with_map else None  # fail before the work
    device = get_device() if device is None else resolve_device(device)
    net.to(device)
    amp = _amp_dtype(device)
    height, width = images.shape[-2:]
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    book = _BookMetrics(device)
    detections: List[Tensor] = []
    with _eval_mode(net), torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            X = _as_input(images[start:start + batch_size], device)
            Y = labels[start:start + batch_size].to(device, torch.float32)
            anchors, cls_preds, bbox_preds = _forward_float(net, X, amp)
            bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, Y)
            book.add(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
            if metric is not None:
                cls_probs = F.softmax(cls_preds, dim=2).permute(0, 2, 1)
                # Detections with class >= 0 come first, by decreasing score: a prefix of each image's rows.
                rows = multibox_detection(cls_probs, bbox_preds, anchors)[:, :_MAX_DETECTIONS].float().cpu()
                rows[..., 2:] *= scale  # normalised -> pixels
                detections += [r[r[:, 0] >= 0] for r in rows]
    result = book.result()
    if metric is not None:
        # Clones are ordinary tensors: torchmetrics may edit what it is given.
        detections = [d.clone() for d in detections]
        targets = [torch.cat((t[:, :1], t[:, 1:] * scale), dim=1) for t in labels.float().cpu()]
        targets = [t[t[:, 0] >= 0] for t in targets]
        result.update(_map_from_detections(detections, targets, metric))
    return result


# --- weights --------------------------------------------------------------------------------

def save_tiny_ssd(net: TinySSD, metrics: Dict[str, float], command: str, data_seed: int,
                  name: str = SSD_WEIGHTS, directory: Optional[Path] = None,
                  description: Optional[str] = None) -> _weights.WeightEntry:
    """Record a trained TinySSD in the weights registry (float32 safetensors, about 4 MB).

    Args:
        net (TinySSD): the trained network.
        metrics (Dict[str, float]): its measured quality (e.g. :func:`evaluate_ssd`'s).
        command (str): the command line that trained it, for the manifest's ``source``.
        data_seed (int): the seed of the synthetic banana data it was trained on.
        name (str): the registry name.
        directory (Path, optional): the registry folder; default ``pretrained/``.
        description (str, optional): the manifest's one-line description.

    Returns:
        WeightEntry: the manifest row written.
    """
    _check_net(net)
    # float32 whatever the training precision; int64 counters (num_batches_tracked) as they are.
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    source = {"command": command, "data_seed": data_seed, "data": SSD_DATA}
    if description is None:
        description = f"TinySSD (d2l 14.7), {net.num_classes} class(es), trained on the synthetic banana data"
    return _weights.save_weights(name, state, license=SSD_LICENSE, source=source,
                                 metrics={k: float(v) for k, v in metrics.items()},
                                 description=description, directory=directory)


def load_tiny_ssd(name: str = SSD_WEIGHTS, directory: Optional[Path] = None,
                  device: Union[str, torch.device] = "cpu") -> Tuple[TinySSD, _weights.WeightEntry]:
    """A TinySSD with registered weights, checked against the manifest, in eval mode.

    Args:
        name (str): the registry name.
        directory (Path, optional): the registry folder; default ``pretrained/``.
        device: where to put the network.

    Returns:
        (TinySSD, WeightEntry): the network and its manifest row.

    Raises:
        WeightsError: the weights are unknown, missing, corrupt, or not a TinySSD's.
    """
    entry = _weights.get_entry(name, directory)
    state = _weights.load_state_dict(name, directory, device="cpu")
    head = state.get("cls_0.weight")
    if head is None or head.dim() != 4 or head.shape[0] % NUM_ANCHORS or head.shape[0] // NUM_ANCHORS < 2:
        raise _weights.WeightsError(f"weights {name!r} are not a TinySSD's (no valid cls_0.weight)")
    net = TinySSD(head.shape[0] // NUM_ANCHORS - 1)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise _weights.WeightsError(f"weights {name!r} do not fit TinySSD: {err}") from None
    return net.to(device).eval(), entry
