"""Single-shot multibox detection: training, prediction and evaluation of the book's TinySSD (d2l 14.7).

The book's names and outputs, so ``d2l``'s 14.7 code can call ``vision_core.ssd.X``:

* :func:`train_ssd` is the book's training loop as a generator of :class:`Progress` records
  (the epochs run in :func:`vision_core.train.loop.stream_epochs`);
* :func:`predict` is the book's ``predict`` followed by its ``display`` threshold, and
  :func:`draw_detections` draws the result;
* :func:`evaluate_ssd` gives the book's metrics and COCO mean average precision (torchmetrics,
  imported only when asked for).

The network, its loss and the book's ``cls_eval`` / ``bbox_eval`` are in
:mod:`vision_core.models.tiny_ssd`; saving and loading in :mod:`vision_core.checkpoints`.

Images are the book's: ``uint8`` or float tensors holding ``0..255`` values (the book feeds
``read_image(...).float()`` without normalising). Labels are the banana reader's: rows
``(class, x1, y1, x2, y2)`` normalised by the image size, ``class = -1`` for padding.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import ArgumentError, check_bool, check_choice, check_int, check_real, describe
from ._photos import check_photos, to_uint8
from ._runtime import autocast, eval_mode, net_device, to_device_layout
from .anchors import multibox_detection, multibox_target
from .data.augment import ssd_augment
from .device import autocast_dtype, get_device, resolve_device
from .models.tiny_ssd import (BookMetrics, TinySSD, calc_loss, check_tiny_ssd, hard_negative_loss,
                              overlapping_negatives, promote_well_boxed)
from .progress import Progress
from .train.loop import OPTIMIZERS, EpochSteps, Updater, stream_epochs

__all__ = ["INPUT_SIZE", "TinySSD", "train_ssd", "predict", "draw_detections", "evaluate_ssd"]

# The training losses train_ssd offers: the book's, and SSD's hard-negative mining.
# hard_negatives_ignore mines at least this many background anchors per image: with one positive
# anchor (a small banana) three would leave the rest of the picture untaught, and banana-free
# photos then get boxes.
IGNORE_MIN_NEGATIVES = 64
LOSSES: dict[str, Callable[..., Tensor]] = {
    "book": calc_loss, "hard_negatives": hard_negative_loss,
    "hard_negatives_ignore": functools.partial(hard_negative_loss, min_negatives=IGNORE_MIN_NEGATIVES),
    "hard_negatives_promote": functools.partial(hard_negative_loss, min_negatives=IGNORE_MIN_NEGATIVES)}
# Losses whose mining skips background anchors that already box a banana (overlapping_negatives).
_IGNORING = frozenset({"hard_negatives_ignore", "hard_negatives_promote"})
# Losses that first relabel the anchors whose predicted box is good as positives (promote_well_boxed).
_PROMOTING = frozenset({"hard_negatives_promote"})

INPUT_SIZE = 256  # the banana images' side, and what :func:`predict` resizes to
_MAX_DETECTIONS = 100  # COCO's largest maxDets: mAP never looks further down a ranking
_MIN_SIDE = 8  # TinySSD halves an image three times before its first predictions


# --- argument checks ------------------------------------------------------------------------

def _check_labels(labels: object, num_images: int, name: str = "labels") -> None:
    if not isinstance(labels, Tensor) or labels.dim() != 3 or labels.shape[-1] != 5:
        raise ArgumentError(name, "of shape [N, G, 5] (rows class, x1, y1, x2, y2)", describe(labels))
    if labels.shape[0] != num_images:
        raise ArgumentError(name, f"{num_images} rows, one per image", f"{labels.shape[0]} rows")


def _check_split(split: object, name: str) -> tuple[Tensor, Tensor]:
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise ArgumentError(name, "a pair (images [N, 3, H, W], labels [N, G, 5])", type(split).__name__)
    images, labels = split
    check_photos(images, f"{name} images", _MIN_SIDE)
    _check_labels(labels, images.shape[0], f"{name} labels")
    return images, labels


# --- running the network --------------------------------------------------------------------

def _as_input(images: Tensor, device: torch.device) -> Tensor:
    # uint8 or float [B, 3, H, W] -> the book's 0..255 floats on the device (TinySSD is not
    # ImageNet-normalised), channels-last on CUDA.
    return to_device_layout(images.to(device, non_blocking=True).float(), device)


def _forward_float(net: nn.Module, X: Tensor, amp: torch.dtype | None) -> tuple[Tensor, Tensor, Tensor]:
    # The network under autocast; the loss, softmax and offsets in float32.
    with autocast(X.device, amp):
        anchors, cls_preds, bbox_preds = net(X)
    return anchors, cls_preds.float(), bbox_preds.float()


def _add_batch(net: nn.Module, book: BookMetrics, X: Tensor, labels: Tensor,
               amp: torch.dtype | None) -> tuple[Tensor, Tensor, Tensor]:
    # Forward a batch, count the book's metrics against multibox_target's labels; returns the
    # (anchors, cls_preds, bbox_preds) it computed.
    anchors, cls_preds, bbox_preds = _forward_float(net, X, amp)
    bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, labels)
    book.add(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
    return anchors, cls_preds, bbox_preds


# --- training ---------------------------------------------------------------------------------

def train_ssd(train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor] | None = None, *, net: TinySSD,
              epochs: int = 20, batch_size: int = 32, lr: float = 0.2, weight_decay: float = 5e-4,
              optimizer: str = "sgd", device: str | torch.device | None = None, seed: int = 0,
              augment: bool = False, loss: str = "book", stop: threading.Event | None = None,
              preview_image: Tensor | None = None, preview_threshold: float = 0.9,
              record_interval: float = 0.25, cpu_bfloat16: bool = False,
              background_crops: float = 0.0) -> Iterator[Progress]:
    """Train ``net`` in place as the book does (SGD, the book's ``calc_loss``), streaming progress.

    ``optimizer="adamw"`` swaps the book's plain SGD for AdamW, the one departure offered:
    the book's loss averages over all 5,444 anchors, of which about 20 per banana are
    positive, so SGD's steps on them are tiny and it predicts "background" everywhere for
    many epochs; Adam's steps do not scale with the loss, and it leaves that plateau sooner
    (the comparison is in README, TinySSD).

    The caller builds the network (``net = TinySSD(1)``) and keeps it: the generator moves it
    to ``device``, trains it and leaves it there in eval mode. Arguments are checked when
    this is called, before the first record.

    Records (:class:`Progress`, ``total = epochs * batches``):

    * during an epoch, one after the run's first batch, then at most one every
      ``record_interval`` seconds (0: after every batch):
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

    Every record's ``series["loss"]`` holds each batch's mean loss since the previous record
    (:func:`vision_core.train.loop.stream_epochs`): a per-batch curve, however throttled.

    On CUDA: the data is moved to the GPU once (uint8), autocast with
    :func:`vision_core.device.autocast_dtype`, channels-last, a GradScaler only for float16;
    GPU memory is released when the generator ends or is closed. On the CPU, float32 and
    deterministic for a given ``seed`` and initial ``net``, unless ``cpu_bfloat16``.

    Args:
        train ((Tensor[N, 3, H, W], Tensor[N, G, 5])): images (uint8 or float ``0..255``)
            and normalised labels, as :func:`vision_core.data.bananas.read_bananas` returns them.
        val ((Tensor[M, 3, H, W], Tensor[M, G, 5]), optional): held-out split.
        net (TinySSD): the network to train, required.
        epochs (int): in ``[1, 500]``.
        batch_size (int): in ``[1, 1024]``; the last batch of an epoch may be smaller.
        lr (float): learning rate, in ``(0, 10]`` (the book: 0.2 with SGD; 1e-3 suits AdamW).
        weight_decay (float): in ``[0, 1]``.
        optimizer (str): ``"sgd"`` (the book's) or ``"adamw"``.
        device: where to train; None means :func:`vision_core.device.get_device`.
        seed (int): seeds the shuffling (a private ``torch.Generator``) and, with ``augment``,
            the augmentation (another one, seeded ``seed + 1``), ``>= 0``.
        augment (bool): train on batches augmented as SSD does (random zoom-out, crop that
            keeps every box, horizontal flip and colour changes, per image, on the device:
            :func:`vision_core.data.augment.ssd_augment`, default settings). Validation and
            previews stay unaugmented. False (the default) is the book's training, unchanged.
        loss (str): ``"book"`` (:func:`calc_loss`, the default), ``"hard_negatives"`` (SSD's
            :func:`~vision_core.models.tiny_ssd.hard_negative_loss`: positives and the 3 times as
            many hardest background anchors), ``"hard_negatives_ignore"`` (the same, never mining
            the anchors :func:`~vision_core.models.tiny_ssd.overlapping_negatives` names) or
            ``"hard_negatives_promote"`` (the same, after
            :func:`~vision_core.models.tiny_ssd.promote_well_boxed` made the anchors whose own box
            fits a banana positives). The book's metrics count against ``multibox_target``'s labels
            either way, so with promotion its class error rises by the promoted anchors.
        stop (threading.Event, optional): set it to stop after the current batch.
        preview_image (Tensor[3, H, W], optional): the image the previews show.
        preview_threshold (float): minimum score of a previewed box, in ``[0, 1]``.
        record_interval (float): seconds between in-epoch records, ``>= 0``.
        cpu_bfloat16 (bool): on the CPU, train and evaluate under bfloat16 autocast (the loss,
            softmax and offsets stay float32): 2.2 times the float32 speed on a 2-core AMD EPYC
            with AVX-512 BF16 (benchmarks/ssd.py), slower on CPUs without bfloat16 instructions.
            Ignored on other devices.
        background_crops (float): with ``augment``, the share of training samples that become a
            banana-free window of their own picture (``ssd_augment``'s ``p_background``), in
            ``[0, 1]``: every banana picture has a box to find, and these teach the network that a
            picture may have none. 0 (the default) draws no extra random numbers.

    Returns:
        Iterator[Progress]: the records.

    Raises:
        ArgumentError: an argument is out of its range.
    """
    check_tiny_ssd(net)
    train = _check_split(train, "train")
    if val is not None:
        val = _check_split(val, "val")
    epochs = check_int(epochs, "epochs", 1, 500)
    batch_size = check_int(batch_size, "batch_size", 1, 1024)
    lr = check_real(lr, "lr", 0.0, 10.0, lo_open=True)
    weight_decay = check_real(weight_decay, "weight_decay", 0.0, 1.0)
    optimizer = check_choice(optimizer, "optimizer", tuple(OPTIMIZERS))
    seed = check_int(seed, "seed", 0, 2**63 - 1)
    augment = check_bool(augment, "augment")
    loss = check_choice(loss, "loss", tuple(LOSSES))
    preview_threshold = check_real(preview_threshold, "preview_threshold", 0.0, 1.0)
    record_interval = check_real(record_interval, "record_interval", 0.0, 3600.0)
    cpu_bfloat16 = check_bool(cpu_bfloat16, "cpu_bfloat16")
    background_crops = check_real(background_crops, "background_crops", 0.0, 1.0)
    if background_crops > 0 and not augment:
        raise ArgumentError("background_crops", "0 unless augment is True", background_crops)
    if preview_image is None and val is not None:
        preview_image = val[0][0]
    if preview_image is not None:
        check_photos(preview_image[None] if isinstance(preview_image, Tensor) else preview_image, "preview_image",
                     _MIN_SIDE)
    device = get_device() if device is None else resolve_device(device)

    def start() -> _SSDEpochs:
        return _SSDEpochs(net, train, val, batch_size, lr, weight_decay, optimizer, device, seed, preview_image,
                          preview_threshold, augment, LOSSES[loss], cpu_bfloat16, loss in _IGNORING,
                          loss in _PROMOTING, background_crops)

    return stream_epochs(net, device, epochs, start, stop, record_interval)


class _SSDEpochs(EpochSteps):
    """The book's TinySSD epoch: shuffled batches of the data (on the device once), its loss and metrics;
    with ``augment``, each training batch goes through :func:`ssd_augment` first."""

    def __init__(self, net: TinySSD, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor] | None,
                 batch_size: int, lr: float, weight_decay: float, optimizer: str, device: torch.device, seed: int,
                 preview_image: Tensor | None, preview_threshold: float, augment: bool = False,
                 loss_fn: Callable[..., Tensor] = calc_loss, cpu_bfloat16: bool = False,
                 ignore_overlapping: bool = False, promote: bool = False, background_crops: float = 0.0):
        self.net, self.device, self.batch_size = net, device, batch_size
        self.amp = autocast_dtype(device, cpu_bfloat16=cpu_bfloat16)
        # Moved once: 1000 banana images are 197 MB as uint8; they become float per batch.
        self.images, self.labels = train[0].to(device), train[1].to(device, torch.float32)
        self.val = None if val is None else (val[0].to(device), val[1].to(device, torch.float32))
        self.updater = Updater(optimizer, net.parameters(), lr, weight_decay, device, self.amp)
        self.shuffler = torch.Generator().manual_seed(seed)
        # A generator of its own: the shuffle order is the same with and without augmentation.
        self.augmenter = torch.Generator().manual_seed((seed + 1) % 2**63) if augment else None
        self.loss_fn, self.ignore_overlapping, self.promote = loss_fn, ignore_overlapping, promote
        self.background_crops = background_crops
        self.preview_image, self.preview_threshold = preview_image, preview_threshold
        self.batches = math.ceil(self.images.shape[0] / batch_size)

    def start_epoch(self, epoch: int) -> None:
        self.order = torch.randperm(self.images.shape[0], generator=self.shuffler).to(self.device)
        self.book = BookMetrics(self.device)
        self.epoch_loss = torch.zeros((), dtype=torch.float64, device=self.device)

    def train_batch(self, b: int) -> tuple[Tensor, int]:
        # One step as the book's loop body; its activations are freed when it returns.
        idx = self.order[b * self.batch_size:(b + 1) * self.batch_size]
        self.updater.zero_grad()
        X, Y = _as_input(self.images[idx], self.device), self.labels[idx]
        if self.augmenter is not None:
            X, Y = ssd_augment(X, Y, self.augmenter, p_background=self.background_crops)
            X = to_device_layout(X, self.device)  # resampling may have dropped channels-last
        anchors, cls_preds, bbox_preds = _forward_float(self.net, X, self.amp)
        bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, Y)
        if self.ignore_overlapping:
            # The book's metrics below keep multibox_target's labels; only the loss sees promotions.
            taught = promote_well_boxed(anchors, bbox_preds, Y, cls_labels) if self.promote else cls_labels
            ignore = overlapping_negatives(anchors, bbox_preds, Y, taught)
            loss = self.loss_fn(cls_preds, taught, bbox_preds, bbox_labels, bbox_masks, ignore=ignore)  # [B]
        else:
            loss = self.loss_fn(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)  # [B]
        self.updater.step(loss.mean())
        with torch.no_grad():
            self.book.add(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
            loss_sum = loss.detach().sum(dtype=torch.float64)
        self.epoch_loss += loss_sum
        return loss_sum, idx.numel()

    def end_epoch(self, epoch: int, train_seconds: float) -> tuple[dict[str, float], np.ndarray | None, str]:
        num = self.images.shape[0]
        metrics = {"epoch": epoch + 1, "loss": float(self.epoch_loss) / num,
                   "examples_per_s": num / max(train_seconds, 1e-9), **self.book.result()}
        if self.val is not None:
            metrics.update(_split_metrics(self.net, *self.val, self.batch_size, self.amp).result("val_"))
        preview = None
        if self.preview_image is not None:
            rows = predict(self.net, self.preview_image, self.preview_threshold)[0]
            preview = draw_detections(self.preview_image, rows)
        return metrics, preview, f"class err {metrics['class_err']:.2e}, bbox mae {metrics['bbox_mae']:.2e}"


def _split_metrics(net: TinySSD, images: Tensor, labels: Tensor, batch_size: int,
                   amp: torch.dtype | None) -> BookMetrics:
    # The book's metrics on a whole split, eval mode, batched; the result syncs once.
    device = net_device(net)
    book = BookMetrics(device)
    with eval_mode(net), torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            X = _as_input(images[start:start + batch_size], device)
            _add_batch(net, book, X, labels[start:start + batch_size].to(device), amp)
    return book


# --- prediction -----------------------------------------------------------------------------

def _detect(net: TinySSD, X: Tensor, amp: torch.dtype | None) -> Tensor:
    # The book's predict without the filtering: [B, A, 6] rows (class, conf, normalised xyxy).
    anchors, cls_preds, bbox_preds = _forward_float(net, X, amp)
    cls_probs = F.softmax(cls_preds, dim=2).permute(0, 2, 1)
    return multibox_detection(cls_probs, bbox_preds, anchors)


def predict(net: TinySSD, images: Tensor, threshold: float = 0.9, batch_size: int = 64) -> list[Tensor]:
    """Detect objects (the book's ``predict``, then its ``display`` threshold).

    Images that are not ``256 x 256`` are resized to it (bilinear, antialiased) and the boxes
    scaled back. Runs on the net's device, in eval mode (the net's mode is restored after).

    Args:
        net (TinySSD): the detector.
        images (Tensor[B, 3, H, W] or Tensor[3, H, W]): uint8 or float ``0..255``.
        threshold (float): minimum score kept, in ``[0, 1]``.
        batch_size (int): images per forward pass, in ``[1, 1024]``.

    Returns:
        list[Tensor[K, 6]]: per image, float32 rows ``(class, score, x1, y1, x2, y2)`` in
        pixels of the original image (``xyxy``), by decreasing score, on the CPU (boxes may
        reach past the image's edges, as in the book).
    """
    check_tiny_ssd(net)
    threshold = check_real(threshold, "threshold", 0.0, 1.0)
    batch_size = check_int(batch_size, "batch_size", 1, 1024)
    if isinstance(images, Tensor) and images.dim() == 3:
        images = images[None]
    check_photos(images, "images", _MIN_SIDE)
    height, width = images.shape[-2:]
    device = net_device(net)
    amp = autocast_dtype(device)
    scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=device)
    out: list[Tensor] = []
    # no_grad rather than inference_mode: the rows handed back stay ordinary, editable tensors.
    with eval_mode(net), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            X = _as_input(images[start:start + batch_size], device)
            if (height, width) != (INPUT_SIZE, INPUT_SIZE):
                X = F.interpolate(X, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                                  antialias=True)
            rows = _detect(net, X, amp).float()
            rows[..., 2:] *= scale  # [B, A, 4] * [4]: normalised -> pixels of the original size
            keep = (rows[..., 0] >= 0) & (rows[..., 1] >= threshold)
            # Kept rows come first, by decreasing score: one boolean-mask copy per image.
            out += [r[k].cpu() for r, k in zip(rows, keep)]
    return out


def draw_detections(image: Tensor, detections: Tensor, color: str = "white", width: int = 2) -> np.ndarray:
    """Boxes over an image, each labelled with its score (what the book's ``display`` shows).

    Args:
        image (Tensor[3, H, W]): uint8 or float ``0..255``.
        detections (Tensor[K, 6]): :func:`predict` rows, boxes ``xyxy`` in pixels.
        color (str): box colour (the book draws white).
        width (int): line width in pixels.

    Returns:
        np.ndarray: ``uint8 [H, W, 3]``.
    """
    from PIL import ImageColor
    from torchvision.utils import draw_bounding_boxes

    check_photos(image[None] if isinstance(image, Tensor) else image, "image", _MIN_SIDE)
    picture = to_uint8(image)
    if detections.numel():
        height, width_px = picture.shape[-2:]
        # Clipped for drawing only; draw_bounding_boxes rejects nothing inside the image.
        boxes = detections[:, 2:].float().cpu().clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width_px - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height - 1)
        labels = [f"{float(s):.2f}" for s in detections[:, 1]]
        # Each score on a filled tab of the box colour, in black or white text, whichever contrasts
        # more with it: a score written straight on the photo is unreadable where they share a hue.
        red, green, blue = ImageColor.getrgb(color)[:3]
        text = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "white"
        picture = draw_bounding_boxes(picture, boxes, labels=labels, colors=color, width=width, fill_labels=True,
                                      label_colors=text)
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


def _map_from_detections(detections: Sequence[Tensor], targets: Sequence[Tensor], metric=None) -> dict[str, float]:
    """COCO mAP of detections against ground truth, both in pixels.

    Args:
        detections (Sequence[Tensor[K, 6]]): per image, rows ``(class, score, x1, y1, x2, y2)``.
        targets (Sequence[Tensor[G, 5]]): per image, rows ``(class, x1, y1, x2, y2)``.
        metric (MeanAveragePrecision, optional): a fresh metric to use; made here if omitted.

    Returns:
        dict[str, float]: ``map`` (IoU 0.50:0.95) and ``map_50``; -1 when there are no targets.
    """
    if len(detections) != len(targets):
        raise ArgumentError("detections and targets", "lists of the same images",
                            f"{len(detections)} and {len(targets)}")
    metric = _mean_average_precision() if metric is None else metric
    preds = [{"boxes": d[:, 2:].float().cpu(), "scores": d[:, 1].float().cpu(), "labels": d[:, 0].long().cpu()}
             for d in detections]
    target = [{"boxes": t[:, 1:].float().cpu(), "labels": t[:, 0].long().cpu()} for t in targets]
    metric.update(preds, target)
    result = metric.compute()
    return {"map": float(result["map"]), "map_50": float(result["map_50"])}


def evaluate_ssd(net: TinySSD, images: Tensor, labels: Tensor, device: str | torch.device | None = None,
                 batch_size: int = 32, with_map: bool = True) -> dict[str, float]:
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
        dict[str, float]: ``class_err``, ``bbox_mae`` and, with ``with_map``, ``map_50``, ``map``.

    Raises:
        ArgumentError: an argument is out of its range.
        ImportError: ``with_map`` and torchmetrics (or a COCO backend) is not installed.
    """
    check_tiny_ssd(net)
    check_photos(images, "images", _MIN_SIDE)
    _check_labels(labels, images.shape[0])
    batch_size = check_int(batch_size, "batch_size", 1, 1024)
    metric = _mean_average_precision() if with_map else None  # fail before the work
    device = get_device() if device is None else resolve_device(device)
    net.to(device)
    amp = autocast_dtype(device)
    height, width = images.shape[-2:]
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    book = BookMetrics(device)
    detections: list[Tensor] = []
    with eval_mode(net), torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            X = _as_input(images[start:start + batch_size], device)
            Y = labels[start:start + batch_size].to(device, torch.float32)
            anchors, cls_preds, bbox_preds = _add_batch(net, book, X, Y, amp)
            if metric is not None:
                cls_probs = F.softmax(cls_preds, dim=2).permute(0, 2, 1)
                # Detections with class >= 0 come first, by decreasing score: a prefix of each image's rows.
                rows = multibox_detection(cls_probs, bbox_preds, anchors)[:, :_MAX_DETECTIONS].float().cpu()
                rows[..., 2:] *= scale  # [B, K, 4] * [4]: normalised -> pixels
                detections += [r[r[:, 0] >= 0] for r in rows]
    result = book.result()
    if metric is not None:
        # Clones are ordinary tensors: torchmetrics may edit what it is given.
        detections = [d.clone() for d in detections]
        targets = [torch.cat((t[:, :1], t[:, 1:] * scale), dim=1) for t in labels.float().cpu()]
        targets = [t[t[:, 0] >= 0] for t in targets]
        result.update(_map_from_detections(detections, targets, metric))
    return result
