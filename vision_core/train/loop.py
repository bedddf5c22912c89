"""The one streaming epoch skeleton: what TinySSD and FCN training share, as a generator of records.

:func:`stream_epochs` runs the epochs and yields :class:`~vision_core.progress.Progress` records;
the model supplies an :class:`EpochSteps` (its batch step and its epoch metrics). The skeleton
owns four things, identical for every model:

* the Stop check before each batch (:meth:`EpochSteps.stop_vote` lets all DDP processes agree);
* the reporting window: an in-epoch record after the run's first batch (so a page draws its
  first point and its pace starts after one batch, not one epoch), then at most every
  ``record_interval`` seconds, with the mean loss per example and ``examples_per_s`` since the
  previous one and every batch's own loss in ``series["loss"]``, read with one device sync, the
  consumer's time left out;
* the epoch record, ``done=True`` on the last epoch, and a ``"stopped"`` record after a Stop;
* the cleanup: the optimizer, a DDP wrapper and data on the device are dropped, the gradients
  freed and the CUDA cache emptied when the generator ends or is closed.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from ..progress import Progress

__all__ = ["OPTIMIZERS", "Updater", "EpochSteps", "stream_epochs"]

# The training loops' optimizers by name: the book's SGD, and AdamW (see train_ssd and train_fcn).
OPTIMIZERS = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}


class Updater:
    """An optimizer from :data:`OPTIMIZERS` and, for float16 autocast, its GradScaler.

    Args:
        name (str): a key of :data:`OPTIMIZERS`.
        params: the parameters to optimise.
        lr (float): learning rate.
        weight_decay (float): weight decay.
        device (torch.device): where training runs.
        amp (torch.dtype, optional): the autocast dtype; float16 needs loss scaling.
    """

    def __init__(self, name: str, params: Iterable[Tensor], lr: float, weight_decay: float, device: torch.device,
                 amp: torch.dtype | None):
        self.optimizer = OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)

    def zero_grad(self) -> None:
        """Drop the previous step's gradients (set to None, not zero-filled)."""
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, loss: Tensor) -> None:
        """Backpropagate the 0-dim ``loss`` (scaled for float16) and take one optimizer step."""
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()


class EpochSteps(ABC):
    """What a model supplies to :func:`stream_epochs`: its batches and its epoch metrics.

    It holds everything training puts on the device (the :class:`Updater`, a DDP wrapper, the
    data), so that dropping it gives the memory back.
    """

    batches: int  # batches per epoch

    def start_epoch(self, epoch: int) -> None:
        """Before the first batch of ``epoch`` (0-based), with the net in train mode: shuffle, reset sums."""

    @abstractmethod
    def train_batch(self, b: int) -> tuple[Tensor, int]:
        """One optimizer step on batch ``b``: ``(0-dim float64 sum of per-example losses on the device, examples)``."""

    @abstractmethod
    def end_epoch(self, epoch: int, train_seconds: float) -> tuple[dict[str, float], np.ndarray | None, str]:
        """After the last batch: ``(epoch metrics, preview uint8 [H, W, 3] or None, summary line)``.

        ``train_seconds`` is the epoch's training time, the records' consumer left out.
        """

    def stop_vote(self, local: bool) -> bool:
        """Whether to stop before the next batch, given this process's Stop flag; DDP makes it a vote."""
        return local


class _Window:
    """The batches since the previous record: their loss sums stay on the device until :meth:`read`."""

    def __init__(self) -> None:
        self.sums: list[Tensor] = []  # 0-dim float64 per batch, on the device
        self.counts: list[int] = []  # examples per batch
        self.examples = 0
        self.start = time.perf_counter()

    @property
    def batches(self) -> int:
        return len(self.sums)

    def add(self, loss_sum: Tensor, examples: int) -> None:
        self.sums.append(loss_sum)
        self.counts.append(examples)
        self.examples += examples

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def read(self) -> tuple[float, float, list[float]]:
        """``(mean loss per example, seconds, each batch's mean loss)``: one device sync, which
        makes the time honest (the batches have run when the losses arrive)."""
        sums = torch.stack(self.sums).tolist()
        seconds = self.seconds()
        return sum(sums) / self.examples, seconds, [s / n for s, n in zip(sums, self.counts)]


def stream_epochs(net: nn.Module, device: torch.device, epochs: int, start: Callable[[], EpochSteps],
                  stop: threading.Event | None, record_interval: float) -> Iterator[Progress]:
    """Train ``net`` on ``device`` for ``epochs`` epochs, yielding :class:`Progress` records.

    Records (``total = epochs * batches``):

    * during an epoch, one after the run's first batch, then at most one every
      ``record_interval`` seconds (0: after every batch): ``step`` = batches done, metrics
      ``loss`` (mean per example since the previous record) and ``examples_per_s`` (over the
      same batches), message ``"epoch e/E, batch b/B"``;
    * after each epoch (``step`` = all its batches): the model's epoch metrics and preview,
      message ``"epoch e/E: <summary>"``, or ``"done: <summary>"`` and ``done=True`` on the last;
    * if ``stop`` is set (checked before every batch): one record ``done=True``,
      ``message="stopped"``, with the last epoch's metrics.

    Every record carries ``series["loss"]``: the mean loss per example of each batch since the
    previous record, oldest first (batches ``step - len + 1 .. step``), so a page can draw a
    per-batch curve however the records are throttled; together the records list every batch
    that ran.

    The net ends in eval mode, on ``device`` (channels-last on CUDA).

    Args:
        net (nn.Module): the network, trained in place.
        device (torch.device): where to train.
        epochs (int): how many epochs.
        start (callable): called once, after the net is on the device, inside the cleanup's
            reach: returns the model's :class:`EpochSteps`.
        stop (threading.Event, optional): set it to stop before the next batch.
        record_interval (float): seconds between in-epoch records.
    """
    steps = None
    try:
        net.to(device)
        if device.type == "cuda":
            net.to(memory_format=torch.channels_last)
        steps = start()
        total = epochs * steps.batches
        step, epoch_metrics = 0, {}
        for epoch in range(epochs):
            net.train()
            steps.start_epoch(epoch)
            window = _Window()
            train_seconds = 0.0
            for b in range(steps.batches):
                if steps.stop_vote(stop is not None and stop.is_set()):
                    net.eval()
                    series = window.read()[2] if window.batches else []
                    yield Progress(step, total, epoch_metrics, message="stopped", done=True,
                                   series={"loss": series})
                    return
                loss_sum, examples = steps.train_batch(b)
                window.add(loss_sum, examples)
                step += 1
                last = b == steps.batches - 1
                if last or step == 1 or window.seconds() >= record_interval:
                    mean_loss, seconds, series = window.read()
                    train_seconds += seconds
                    if not last:
                        yield Progress(step, total, {"loss": mean_loss, "examples_per_s": window.examples / seconds},
                                       message=f"epoch {epoch + 1}/{epochs}, batch {b + 1}/{steps.batches}",
                                       series={"loss": series})
                    # Restarted after the yield: the consumer's time is not the trainer's.
                    window = _Window()
            epoch_metrics, preview, summary = steps.end_epoch(epoch, train_seconds)
            done = epoch == epochs - 1
            if done:
                net.eval()
            yield Progress(step, total, epoch_metrics, preview,
                           message=f"{'done' if done else f'epoch {epoch + 1}/{epochs}'}: {summary}", done=done,
                           series={"loss": series})
    finally:
        # Drop the optimizer state, a DDP wrapper, the data and the last gradients before emptying
        # the cache, or it has nothing to give back.
        del steps
        net.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
