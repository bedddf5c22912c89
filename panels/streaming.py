"""Streamed jobs in the page: a job's progress records turned into curves, the latest preview and
a status line with the pace measured in this run (docs/ARCHITECTURE.md, "Streaming and Stop").

The three streaming panels (SSD training, FCN training, style transfer) read their records with
one :class:`Stream` each: it keeps the epoch history (or the per-step loss series), the newest
preview and the pace; :func:`outcome` words the last record. No time is promised before a run
(a machine's speed is not known ahead of it): the status shows the time per step measured so
far and the time left at that pace.

A heavy job's Stop flag is a :class:`JobFlag`: on a shared server it also sets itself when the
job has run for ``panels.deployment.job_limit_s()``, and :func:`outcome` then says the job met
the server's limit (the one place that limit is enforced; the panels pass their flag to it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from vision_core.progress import Progress

from . import deployment

# One heavy job (a training or an optimisation) at a time per server: they share the device.
HEAVY: dict[str, Any] = dict(concurrency_id="heavy", concurrency_limit=1)


def duration(seconds: float) -> str:
    """A measured time as a reader rounds it: ``"850 ms"``, ``"4.2 s"``, ``"42 s"``, ``"3 min"``, ``"1 h 5 min"``."""
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def pace_text(done: int, total: int, elapsed: float, unit: str = "step", since: int = 0) -> str:
    """``"161 ms/step · about 42 s left"``: the pace of a job measured in this run, and its time left.

    Steps ``since + 1 .. done`` took ``elapsed`` seconds; the ``total - done`` steps still to run
    are assumed to take their mean each. No time is promised ahead of the run (a machine's speed
    is not known before it works), so before a step is timed the text is empty; once the job is
    at its end (``done >= total``) only the pace is given.
    """
    timed = done - since
    if timed <= 0 or not elapsed > 0:
        return ""
    each = elapsed / timed
    text = f"{duration(each)}/{unit}"
    left = total - done
    return f"{text} · about {duration(left * each)} left" if left > 0 else text


class Pace:
    """The pace of one streamed job, for its status line: ``pace(record.step, record.total)``.

    Timed from the job's first record, so loading and the first step's warm-up are left out;
    everything after it counts (a training's evaluation after each epoch too), so the time left
    is what the rest of the job takes at the pace so far. On the job's last record (``done=True``,
    finished or stopped) only the pace is given.
    """

    def __init__(self, unit: str = "step", clock: Callable[[], float] = time.perf_counter) -> None:
        self.unit, self._clock = unit, clock
        self._origin: tuple[int, float] | None = None  # (step, time) of the first record

    def __call__(self, step: int, total: int, done: bool = False) -> str:
        now = self._clock()
        if self._origin is None:
            self._origin = (step, now)
            return ""
        first, start = self._origin
        return pace_text(step, step if done else total, now - start, self.unit, since=first)


MAX_CURVE_POINTS = 1500  # a per-batch curve longer than this is drawn as means of neighbouring batches


class Stream:
    """What a streamed job has shown so far, read from its records one by one.

    Args:
        unit: what one step of the job is, for the pace (``"batch"``, ``"step"``).
        series: the per-step values to keep from each record's ``series`` (a style transfer's
            losses); a training keeps its epoch records in :attr:`history` instead.
        picture: turns a record's preview into the picture shown (e.g. enlarges a small crop).
        epochs: a training's epochs: each batch's loss (the records' ``series["loss"]``) is then
            kept in :attr:`batch_loss`, placed at its epoch with a fraction (batch 3 of 12 in the
            second epoch is at 1.25).
    """

    def __init__(self, unit: str, series: Sequence[str] = (),
                 picture: Callable[[np.ndarray], np.ndarray] | None = None, epochs: int | None = None) -> None:
        self.history: list[dict[str, float]] = []  # one entry per finished epoch, oldest first
        self.series: dict[str, list[float]] = {key: [] for key in series}
        self.batch_loss: tuple[list[float], list[float]] = ([], [])  # (epochs with fractions, loss), oldest first
        self.preview: np.ndarray | None = None  # the newest preview
        self.step, self.total = 0, 0  # of the newest record
        self._epochs = epochs
        self._picture = picture
        self._pace = Pace(unit)

    def read(self, record: Progress) -> dict[str, float]:
        """Take in ``record``: its epoch metrics, its per-step values and its preview. Returns its metrics."""
        metrics = dict(record.metrics)
        if "epoch" in metrics:
            self.history.append(metrics)
        for key, values in self.series.items():
            values.extend(record.series.get(key, ()))
        losses = record.series.get("loss", ())
        if self._epochs and losses and record.total:
            per_epoch = record.total / self._epochs  # batches per epoch
            first = record.step - len(losses) + 1  # the series covers batches first .. step
            self.batch_loss[0].extend((first + i) / per_epoch for i in range(len(losses)))
            self.batch_loss[1].extend(losses)
        if record.preview is not None:
            self.preview = record.preview if self._picture is None else self._picture(record.preview)
        self.step, self.total = record.step, record.total
        return metrics

    def batch_curve(self, max_points: int = MAX_CURVE_POINTS) -> tuple[list[float], list[float]]:
        """:attr:`batch_loss` to draw: every batch, or, past ``max_points``, the means of runs of
        neighbouring batches (a GPU run of thousands of batches stays a light figure)."""
        xs, ys = self.batch_loss
        if len(xs) <= max_points:
            return list(xs), list(ys)
        size = -(-len(xs) // max_points)  # batches per point
        return ([float(np.mean(xs[i:i + size])) for i in range(0, len(xs), size)],
                [float(np.mean(ys[i:i + size])) for i in range(0, len(ys), size)])

    def epochs_trained(self) -> float:
        """Epochs trained so far, with a fraction (0.25: a quarter of the first epoch's batches)."""
        return self.step * self._epochs / self.total if self._epochs and self.total else 0.0

    def status(self, record: Progress, text: str) -> str:
        """``text`` followed by the pace measured so far and the time left (nothing on the first record)."""
        timing = self._pace(record.step, record.total, done=record.done)
        return f"{text} · {timing}" if timing else text


class JobFlag(threading.Event):
    """A heavy job's Stop flag that also sets itself when the job's time budget runs out.

    On a shared server one job may run for :func:`panels.deployment.job_limit_s` seconds (counted
    from when its flag is made, i.e. when it leaves the queue and starts). Stopping at the limit is
    Stop's own path, cooperative: the job reads ``is_set()`` before every step or batch, so it ends
    at a step boundary with its last record (a training keeps the network trained so far), and the
    panel's ``finally`` closes the job's generator, which frees its memory. No timer thread: the
    deadline is checked when the job asks. :attr:`out_of_time` tells :func:`outcome` why it stopped.

    Args:
        limit_s: seconds the job may run; None for no limit.
        clock: monotonic seconds (a test may pass its own).
    """

    def __init__(self, limit_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.limit_s, self._clock = limit_s, clock
        self._deadline = None if limit_s is None else clock() + limit_s
        self.out_of_time = False  # set when the deadline, not Stop, set the flag

    def is_set(self) -> bool:
        """Whether the job must stop: Stop was pressed, or its time is up (which sets the flag)."""
        if super().is_set():
            return True
        if self._deadline is not None and self._clock() >= self._deadline:
            self.out_of_time = True
            self.set()
            return True
        return False


def job_flag() -> JobFlag:
    """A fresh Stop flag for a heavy job, with this server's time budget (panels.common.StopFlags makes them)."""
    return JobFlag(deployment.job_limit_s())


def limit_text(limit_s: float) -> str:
    """What a job stopped at the time limit says first, in both languages (the page also says
    the limit under its header: app.py)."""
    limit = duration(limit_s)
    return (f"**Stopped at this server's limit of {limit} per job.** For longer jobs run Vision Lab on your own "
            f"computer (`python app.py`: no limit there). 已达到本服务器每个任务 {limit} 的上限而停止；"
            "更长的任务请在自己的电脑上运行（`python app.py`，没有上限）。")


def outcome(record: Progress, flag: threading.Event | None = None) -> str:
    """How a job's last record begins its status: ``"**Stopped.**"`` when it stopped early (Stop,
    or a job that gave up, e.g. on a NaN loss; its message says why), :func:`limit_text` when its
    ``flag`` (a :class:`JobFlag`) ran out of time, else ``"**Done.**"``."""
    if not stopped(record):
        return "**Done.**"
    if isinstance(flag, JobFlag) and flag.out_of_time and flag.limit_s is not None:
        return limit_text(flag.limit_s)
    return "**Stopped.**"


def stopped(record: Progress) -> bool:
    """Whether the job ended before its last step: its last record's message begins "stopped"."""
    return record.message.startswith("stopped")


def training_status(record: Progress, metrics: Mapping[str, float], epoch: int, epochs: int,
                    device: object, rate_format: str = ",.0f") -> str:
    """``"Epoch 2/5 · step 40/100 · loss 0.3012 · 850 examples/s on cuda"`` for one training record
    (a rate under 10 with one decimal, so a slow CPU's 0.6 examples/s does not read as 0)."""
    rate = metrics.get("examples_per_s")
    if rate and rate < 10:
        rate_format = ",.1f"
    return (f"Epoch {epoch}/{epochs} · step {record.step}/{record.total}"
            + (f" · loss {metrics['loss']:.4f}" if "loss" in metrics else "")
            + (f" · {rate:{rate_format}} examples/s on {device}" if rate else ""))


def epoch_axis(span: float) -> dict[str, Any]:
    """The x axis of training curves, in epochs with fractions, from 0 to ``span`` (epochs trained,
    at least 1): about ten ticks at most; quarters inside the first epoch, halves up to the third."""
    span = max(1.0, span)
    dtick = 0.25 if span <= 1 else 0.5 if span <= 3 else max(1, round(span / 10))
    return {"title": "epoch", "range": [0, span * 1.02], "dtick": dtick}


def current_epoch(record: Progress, epochs: int) -> int:
    """The epoch ``record`` is in, from 1: the last one with a batch done (``"Epoch 1/2"`` while its
    batches run and when a Stop ends it there)."""
    return max(1, -(-record.step * epochs // record.total)) if record.total else 1


def stacked_curves(fig: go.Figure, span: float, epoch_rows: int = 2) -> go.Figure:
    """Lay out a training's two stacked plots (the per-batch loss above, the epoch metrics below)
    in epochs with fractions up to ``span``; until the first epoch ends the lower one says when
    its points come, so it does not look broken."""
    fig.update_xaxes(**epoch_axis(span))
    if span < 1:
        fig.add_annotation(text="its points come after each epoch", xref=f"x{epoch_rows} domain",
                           yref=f"y{epoch_rows} domain", x=0.5, y=0.5, showarrow=False, font={"color": "#888"})
    fig.update_layout(height=540, margin={"l": 10, "r": 10, "t": 64, "b": 80}, showlegend=True,  # also before data
                      legend={"orientation": "h", "y": -0.14, "yanchor": "top"})
    fig.update_annotations(font_size=13)
    return fig


def trained_amount(step: int, total: int, epochs: int) -> str:
    """``"2 epochs"``, ``"1 epoch"`` or ``"0.3 epochs (4 of 13 batches)"``: how much a run trained."""
    per_epoch = total // epochs if epochs else 0
    if not per_epoch or step % per_epoch == 0:
        whole = step // per_epoch if per_epoch else 0
        return f"{whole} epoch{'s' if whole != 1 else ''}"
    return (f"{step / per_epoch:.1f} epochs ({step % per_epoch} of {per_epoch} batches"
            + (f" after {step // per_epoch} full epoch{'s' if step // per_epoch != 1 else ''})" if step >= per_epoch
               else ")"))


def log_curves(traces: Iterable[go.Scatter], title: str, xaxis: Mapping[str, Any], height: int) -> go.Figure:
    """Curves on a log scale with a small title and the legend below (the panels' loss plots)."""
    fig = go.Figure()
    for trace in traces:
        fig.add_trace(trace)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), yaxis_type="log",
                      title=dict(text=title, font=dict(size=13)), xaxis=dict(xaxis),
                      legend=dict(orientation="h", y=-0.25))
    return fig
