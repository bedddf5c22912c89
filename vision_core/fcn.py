"""Fully convolutional networks for semantic segmentation: training, prediction, evaluation, pictures (d2l 14.11).

The book's names where it has them, so ``d2l``'s 14.11 code can call ``vision_core.fcn.X``:

* :func:`train_fcn` is the book's ``train_ch13`` for the FCN, run as a generator of
  :class:`Progress` records (the epochs run in :func:`vision_core.train.loop.stream_epochs`;
  also under ``torchrun`` with DistributedDataParallel, see ``python -m vision_core train fcn``);
* :func:`predict_fcn` is the book's ``predict``, for any image size; :func:`evaluate_fcn` adds
  pixel accuracy and mean IoU;
* :func:`label2image` is the book's ``label2image``; :func:`overlay_mask` tints a photo with it.

The network (:class:`FCN`), its loss and the trunk's ImageNet weights are in
:mod:`vision_core.models.fcn`; saving and loading this project's files in
:mod:`vision_core.checkpoints`.

Images enter as the readers give them: ``uint8`` photos (``0..255``), normalised here with the
ImageNet mean and standard deviation as :class:`~vision_core.data.voc.VOCSegDataset` does; float
images in a training set are taken as already normalised (``VOCSegDataset``'s items). Labels are
class indices; :data:`~vision_core.data.voc.VOID_INDEX` (255) marks pixels that the loss and the
metrics leave out.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ._checks import ArgumentError, check_choice, check_int, check_real, describe
from ._photos import check_photos, to_numpy_image
from ._runtime import autocast, eval_mode, imagenet_denormalize, imagenet_normalize, net_device, to_device_layout
from .data.voc import VOC_COLORMAP, VOID_COLOR, VOID_INDEX
from .data.voc_metrics import iou_per_class
from .device import autocast_dtype, get_device, resolve_device
from .models.fcn import FCN, STRIDE, check_fcn, fcn_loss
from .progress import Progress
from .train import distributed
from .train.loop import OPTIMIZERS, EpochSteps, Updater, stream_epochs
from .train.seg_batches import Batcher, SegData, as_dataset, check_labels, item_size

__all__ = ["FCN", "label2image", "overlay_mask", "train_fcn", "predict_fcn", "predict_fcn_confidence", "evaluate_fcn"]

_MAX_SEED = 2**31 - 1  # DistributedSampler seeds with seed + epoch


# --- pictures -------------------------------------------------------------------------------

def _palette(device: torch.device) -> Tensor:
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
        got = describe(pred) if not isinstance(pred, Tensor) else f"{tuple(pred.shape)} {pred.dtype}"
        raise ArgumentError("pred", "an integer Tensor[..., H, W] of class indices", got)
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) > 255):
        raise ArgumentError("pred", "class indices in [0, 255]", f"{int(pred.min())} to {int(pred.max())}")
    return _palette(pred.device)[pred.long()]


def overlay_mask(image: Tensor, pred: Tensor, alpha: float = 0.5) -> np.ndarray:
    """A photo with its predicted objects tinted in their VOC colours; background left as it is.

    Args:
        image (Tensor[3, H, W]): uint8 or float ``0..255``.
        pred (Tensor[H, W]): class indices (0 = background).
        alpha (float): the colours' opacity, in ``[0, 1]``.

    Returns:
        np.ndarray: ``uint8 [H, W, 3]``.
    """
    alpha = check_real(alpha, "alpha", 0.0, 1.0)
    if not isinstance(image, Tensor) or image.dim() != 3:
        raise ArgumentError("image", "a tensor of shape [3, H, W]", describe(image))
    check_photos(image[None], "image")
    if not isinstance(pred, Tensor) or tuple(pred.shape) != tuple(image.shape[-2:]):
        raise ArgumentError("pred", f"a Tensor[H, W] with image's H, W = {tuple(image.shape[-2:])}", describe(pred))
    photo = torch.from_numpy(to_numpy_image(image)).float()
    colours = label2image(pred.cpu()).float()
    weight = alpha * (pred.cpu() != 0).float()[..., None]  # [H, W, 1], broadcast over the colours
    return (photo * (1 - weight) + colours * weight).round().to(torch.uint8).numpy()


# --- running the network and counting pixels ------------------------------------------------

def _as_input(images: Tensor, device: torch.device) -> Tensor:
    """A batch on the device, ready for the net: float32, ImageNet-normalised, channels-last on CUDA.

    uint8 photos hold 0..255 and are normalised here, on the device, after a 4x smaller uint8
    copy; float batches from a data set are already normalised.
    """
    X = images.to(device, non_blocking=True)
    return to_device_layout(imagenet_normalize(X.float()) if X.dtype == torch.uint8 else X.float(), device)


def _scores(net: nn.Module, X: Tensor, amp: torch.dtype | None) -> Tensor:
    # The net under autocast, its scores in float32; torchvision's segmentation models return a dict.
    with autocast(X.device, amp):
        out = net(X)
    if isinstance(out, Mapping):
        out = out["out"]
    return out.float()


class _SegMetrics:
    """Loss sum, image count and confusion matrix of a split, on the device: no host sync per batch.

    ``num_classes`` may be None: it is then read from the first batch's scores.
    """

    def __init__(self, num_classes: int | None, device: torch.device):
        self.num_classes = num_classes
        self.device = device
        self.confmat: Tensor | None = None
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)  # (loss over images, images)
        if num_classes is not None:
            self._allocate(num_classes)

    def _allocate(self, num_classes: int) -> None:
        self.num_classes = num_classes
        # One bin past the C x C matrix collects void pixels, so no boolean mask (a sync on CUDA).
        self.confmat = torch.zeros(num_classes * num_classes + 1, dtype=torch.int64, device=self.device)
        self._one = torch.ones(1, dtype=torch.int64, device=self.device)

    def add(self, scores: Tensor, labels: Tensor, loss: Tensor | None = None) -> None:
        """Count scores ``[B, C, H, W]`` against int64 labels ``[B, H, W]``, and the loss ``[B]``."""
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
        """Sum the counts over all DDP processes (nothing in a single process)."""
        if distributed.world_size() > 1 and self.confmat is not None:
            dist.all_reduce(self.confmat)
            dist.all_reduce(self.sums)

    def read(self) -> tuple[Tensor, float, float]:
        """``(confusion matrix Tensor[C, C] int64 on the CPU (row = true class), loss sum, images)``.

        One host sync: counts travel with the sums as float64 (exact below 2**53 pixels).
        """
        c = self.num_classes or 1
        if self.confmat is None:
            return torch.zeros(c, c, dtype=torch.int64), 0.0, 0.0
        values = torch.cat((self.confmat[: c * c].double(), self.sums)).cpu()
        return values[: c * c].long().reshape(c, c), float(values[-2]), float(values[-1])

    @staticmethod
    def scores(confmat: Tensor, prefix: str) -> dict[str, float]:
        """``{prefix}acc`` (pixel accuracy) and ``{prefix}mean_iou`` of a confusion matrix."""
        counted = int(confmat.sum())
        return {f"{prefix}acc": int(confmat.trace()) / counted if counted else math.nan,
                f"{prefix}mean_iou": float(iou_per_class(confmat).nanmean())}


def _add_batch(net: nn.Module, metrics: _SegMetrics, images: Tensor, labels: Tensor, amp: torch.dtype | None) -> None:
    device = net_device(net)
    scores = _scores(net, _as_input(images, device), amp)
    if tuple(scores.shape[-2:]) != tuple(labels.shape[-2:]):
        raise ArgumentError("images", f"heights and widths that are multiples of {STRIDE} (an FCN's stride)",
                            f"{tuple(images.shape[-2:])} pixels, giving scores of {tuple(scores.shape[-2:])}")
    check_labels(labels, scores.shape[1])
    Y = labels.to(device, torch.int64)
    metrics.add(scores, Y, fcn_loss(scores, Y))


def _split_metrics(net: nn.Module, batcher: Batcher, indices: Sequence[int], batch_size: int,
                   amp: torch.dtype | None) -> _SegMetrics:
    # Loss and confusion matrix over the given items, eval mode, batched; reading it syncs once.
    metrics = _SegMetrics(net.num_classes if isinstance(net, FCN) else None, net_device(net))
    indices = list(indices)
    with eval_mode(net), torch.no_grad():
        for start in range(0, len(indices), batch_size):
            _add_batch(net, metrics, *batcher(indices[start:start + batch_size]), amp)
    return metrics


# --- training -------------------------------------------------------------------------------

def _check_size(data: Dataset, name: str) -> None:
    height, width = item_size(data, name)
    if height % STRIDE or width % STRIDE:
        raise ArgumentError(f"{name} items", f"of a height and width that are multiples of {STRIDE} (the FCN's "
                            "stride; the book crops 320 x 480)", f"{height} x {width}")


def _check_preview(preview: object) -> None:
    allowed = "True, False or one photo Tensor[3, H, W]"
    if isinstance(preview, Tensor):
        check_photos(preview[None] if preview.dim() == 3 else preview, "preview")
        if preview.dim() != 3:
            raise ArgumentError("preview", allowed, describe(preview))
    elif not isinstance(preview, bool):
        raise ArgumentError("preview", allowed, type(preview).__name__)


def train_fcn(train: SegData, test: SegData | None = None, *, net: FCN, epochs: int = 5,
              batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 1e-3, optimizer: str = "sgd",
              device: str | torch.device | None = None, seed: int = 0,
              stop: threading.Event | None = None, preview: bool | Tensor = True,
              record_interval: float = 0.25, cpu_bfloat16: bool = False) -> Iterator[Progress]:
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

    * during an epoch, one after the run's first batch, then at most one every
      ``record_interval`` seconds (0: after every batch):
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

    Every record's ``series["loss"]`` holds each batch's mean loss since the previous record
    (:func:`vision_core.train.loop.stream_epochs`): a per-batch curve, however throttled.

    On CUDA: autocast with :func:`vision_core.device.autocast_dtype`, channels-last, a
    GradScaler only for float16, photos moved as uint8 and normalised on the GPU; GPU memory is
    released when the generator ends or is closed. On the CPU: float32 and deterministic for a
    given ``seed`` and initial ``net``, unless ``cpu_bfloat16``.

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
        cpu_bfloat16 (bool): on the CPU, train and evaluate under bfloat16 autocast (the
            transposed convolution stays float32): about 1.8 times the float32 speed on a Xeon
            with AMX, slower on CPUs without bfloat16 instructions. Ignored on other devices.

    Returns:
        Iterator[Progress]: the records.

    Raises:
        ArgumentError: an argument is out of its range, or the data is not as described.
    """
    check_fcn(net)
    train = as_dataset(train, "train")
    _check_size(train, "train")
    if test is not None:
        test = as_dataset(test, "test")
        _check_size(test, "test")
    epochs = check_int(epochs, "epochs", 1, 500)
    batch_size = check_int(batch_size, "batch_size", 1, 1024)
    world = distributed.world_size()
    if batch_size % world or batch_size > len(train):
        raise ArgumentError("batch_size", f"a multiple of the {world} process(es) and at most the {len(train)} "
                            "training items (the last partial batch is dropped)", batch_size)
    lr = check_real(lr, "lr", 0.0, 10.0, lo_open=True)
    weight_decay = check_real(weight_decay, "weight_decay", 0.0, 1.0)
    optimizer = check_choice(optimizer, "optimizer", tuple(OPTIMIZERS))
    seed = check_int(seed, "seed", 0, _MAX_SEED)
    record_interval = check_real(record_interval, "record_interval", 0.0, 3600.0)
    _check_preview(preview)
    device = get_device() if device is None else resolve_device(device)

    amp = autocast_dtype(device, cpu_bfloat16=bool(cpu_bfloat16))

    def start() -> _FCNEpochs:
        return _FCNEpochs(net, train, test, batch_size, lr, weight_decay, optimizer, device, seed, preview, amp)

    return stream_epochs(net, device, epochs, start, stop, record_interval)


class _FCNEpochs(EpochSteps):
    """The book's FCN epoch: shuffled crops dealt out to the processes, its loss, pixel metrics, previews."""

    def __init__(self, net: FCN, train: Dataset, test: Dataset | None, batch_size: int, lr: float,
                 weight_decay: float, optimizer: str, device: torch.device, seed: int, preview: bool | Tensor,
                 amp: torch.dtype | None):
        self.net, self.test, self.device, self.seed, self.preview = net, test, device, seed, preview
        self.rank, world = distributed.rank(), distributed.world_size()
        self.amp = amp
        self.model = distributed.wrap(net, device)
        self.stop_group = distributed.stop_group()
        self.updater = Updater(optimizer, net.parameters(), lr, weight_decay, device, self.amp)
        self.sampler = DistributedSampler(train, num_replicas=world, rank=self.rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.batcher = Batcher(train, distributed.rank_seed(seed, self.rank))
        self.test_batcher = Batcher(test, seed) if test is not None else None
        self.preview_data = test if test is not None else train
        self.local_batch = batch_size // world
        self.batches = len(self.sampler) // self.local_batch
        # DDP averages gradients over the processes; the book sums the per-image losses of a batch.
        self.loss_scale = float(world)

    def stop_vote(self, local: bool) -> bool:
        return distributed.stop_vote(local, self.stop_group)

    def start_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.order = list(self.sampler)
        self.metrics = _SegMetrics(self.net.num_classes, self.device)

    def train_batch(self, b: int) -> tuple[Tensor, int]:
        # One step as the book's train_batch_ch13; its activations are freed when it returns.
        images, labels = self.batcher(self.order[b * self.local_batch:(b + 1) * self.local_batch])
        check_labels(labels, self.net.num_classes, "train labels")
        X, Y = _as_input(images, self.device), labels.to(self.device, torch.int64, non_blocking=True)
        self.updater.zero_grad()
        scores = _scores(self.model, X, self.amp)
        loss = fcn_loss(scores, Y)  # [B]
        self.updater.step(loss.sum() * self.loss_scale)
        with torch.no_grad():
            self.metrics.add(scores, Y, loss)
            return loss.detach().sum(dtype=torch.float64), labels.shape[0]

    def end_epoch(self, epoch: int, train_seconds: float) -> tuple[dict[str, float], np.ndarray | None, str]:
        self.metrics.all_reduce()
        confmat, loss_sum, images_seen = self.metrics.read()
        metrics = {"epoch": epoch + 1, "loss": loss_sum / images_seen,
                   "examples_per_s": images_seen / max(train_seconds, 1e-9), **_SegMetrics.scores(confmat, "train_")}
        distributed.broadcast_buffers(self.net)
        if self.test is not None:
            self.test_batcher.reset()  # the same crops every epoch: numbers comparable across epochs
            shard = range(self.rank, len(self.test), distributed.world_size())
            test_metrics = _split_metrics(self.net, self.test_batcher, shard, self.local_batch, self.amp)
            test_metrics.all_reduce()
            metrics.update(_SegMetrics.scores(test_metrics.read()[0], "test_"))
        picture = _preview(self.net, self.preview, self.preview_data, self.seed, self.amp) if self.rank == 0 else None
        summary = f"loss {metrics['loss']:.3f}, train acc {metrics['train_acc']:.3f}"
        if self.test is not None:
            summary += f", test acc {metrics['test_acc']:.3f}, test mIoU {metrics['test_mean_iou']:.3f}"
        return metrics, picture, summary


def _preview(net: nn.Module, preview: bool | Tensor, data: Dataset, seed: int,
             amp: torch.dtype | None) -> np.ndarray | None:
    """``uint8 [H, k*W, 3]``: the photo, the predicted classes and (for a data item) the true ones."""
    if preview is False:
        return None
    if isinstance(preview, Tensor):
        return np.concatenate([to_numpy_image(preview), label2image(predict_fcn(net, preview)).numpy()], axis=1)
    images, labels = Batcher(data, seed)([0])  # the same item and crop every epoch
    with eval_mode(net), torch.no_grad():
        pred = _scores(net, _as_input(images, net_device(net)), amp).argmax(dim=1)[0].cpu()
    photo = images[0] if images.dtype == torch.uint8 else imagenet_denormalize(images[0])
    return np.concatenate([to_numpy_image(photo), label2image(pred).numpy(), label2image(labels[0].long()).numpy()],
                          axis=1)


# --- prediction and evaluation ----------------------------------------------------------------

def _check_module(net: object) -> None:
    if not isinstance(net, nn.Module):
        raise ArgumentError("net", "a torch.nn.Module (e.g. FCN)", type(net).__name__)


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
    return _predict(net, images, batch_size, with_confidence=False)[0]


def predict_fcn_confidence(net: nn.Module, images: Tensor, batch_size: int = 8) -> tuple[Tensor, Tensor]:
    """Class of every pixel, and how sure the network is of it: :func:`predict_fcn` plus the
    softmax probability of the chosen class.

    A network trained on one kind of picture can be confidently wrong on another, so a high
    confidence does not prove a class right; a low one (near ``1 / C``, the chance of guessing
    among ``C`` classes) says the pixel is unlike what it learned.

    Args: as :func:`predict_fcn`.

    Returns:
        (Tensor[N, H, W], Tensor[N, H, W]) (or ``[H, W]`` each): int64 class indices and float32
        probabilities in ``[1 / C, 1]``, on the CPU.
    """
    return _predict(net, images, batch_size, with_confidence=True)


def _predict(net: nn.Module, images: Tensor, batch_size: int, with_confidence: bool) -> tuple[Tensor, Tensor | None]:
    _check_module(net)
    batch_size = check_int(batch_size, "batch_size", 1, 1024)
    single = isinstance(images, Tensor) and images.dim() == 3
    if single:
        images = images[None]
    check_photos(images, "images")
    height, width = images.shape[-2:]
    pad = (0, -width % STRIDE, 0, -height % STRIDE)  # (left, right, top, bottom)
    device = net_device(net)
    amp = autocast_dtype(device)
    classes: list[Tensor] = []
    sure: list[Tensor] = []
    with eval_mode(net), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            X = imagenet_normalize(images[start:start + batch_size].to(device).float())
            X = to_device_layout(F.pad(X, pad), device)
            scores = _scores(net, X, amp)[..., :height, :width]  # [B, C, H, W]
            if with_confidence:
                probability, best = F.softmax(scores, dim=1).max(dim=1)  # [B, H, W] each
                sure.append(probability.cpu())
            else:
                best = scores.argmax(dim=1)
            classes.append(best.cpu())
    pred = torch.cat(classes)
    confidence = torch.cat(sure) if with_confidence else None
    if single:
        return pred[0], None if confidence is None else confidence[0]
    return pred, confidence


def evaluate_fcn(net: nn.Module, data: SegData | DataLoader, device: str | torch.device | None = None,
                 batch_size: int = 32, seed: int = 0) -> dict[str, object]:
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
    _check_module(net)
    batch_size = check_int(batch_size, "batch_size", 1, 1024)
    seed = check_int(seed, "seed", 0, _MAX_SEED)
    device = get_device() if device is None else resolve_device(device)
    net.to(device)
    amp = autocast_dtype(device)
    if isinstance(data, DataLoader):
        metrics = _SegMetrics(net.num_classes if isinstance(net, FCN) else None, device)
        with eval_mode(net), torch.no_grad():
            for images, labels in data:
                _add_batch(net, metrics, images, labels, amp)
    else:
        data = as_dataset(data, "data")
        metrics = _split_metrics(net, Batcher(data, seed), range(len(data)), batch_size, amp)
    confmat, loss_sum, images = metrics.read()
    result = _SegMetrics.scores(confmat, "")
    return {"pixel_acc": result["acc"], "mean_iou": result["mean_iou"],
            "class_iou": [float(v) for v in iou_per_class(confmat)], "loss": loss_sum / max(images, 1.0)}
