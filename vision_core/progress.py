"""Progress records: what every long job (training, optimisation, stepping) yields.

A job is a generator of :class:`Progress`. The dashboard turns records into page updates,
the command line into a progress bar (:func:`run_with_bar`), tests read them directly.
Stopping is cooperative: a job takes a ``threading.Event`` and checks it every step.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TextIO

__all__ = ["Progress", "run_with_bar"]


@dataclass(frozen=True)
class Progress:
    """One step of a long job.

    Attributes:
        step: steps done so far (0 before the first).
        total: steps in the whole job.
        metrics: numbers measured at this step (read-only mapping), e.g. ``{"loss": 0.3}``.
        preview: an optional picture of the current state (``uint8 [H, W, 3]`` numpy array).
        message: one human line about this step.
        done: True on the job's last record (finished or stopped).
        series: per-step values since the previous record (lists, oldest first), for jobs that
            measure every step but report less often (e.g. every preview on a GPU).
    """

    step: int
    total: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    preview: Any | None = None
    message: str = ""
    done: bool = False
    series: Mapping[str, Sequence[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        object.__setattr__(self, "series", MappingProxyType({k: tuple(v) for k, v in dict(self.series).items()}))

    @property
    def fraction(self) -> float:
        """Share of the job done, in [0, 1]."""
        return min(max(self.step / self.total, 0.0), 1.0) if self.total else 1.0


def run_with_bar(records: Iterable[Progress], file: TextIO = sys.stderr, width: int = 30,
                 min_interval: float = 0.2) -> Progress | None:
    """Drive a job to the end, drawing a text progress bar; returns its last record."""
    last, shown = None, 0.0
    for last in records:
        now = time.monotonic()
        if now - shown < min_interval and not last.done:
            continue
        shown = now
        filled = int(round(width * last.fraction))
        metrics = "  ".join(f"{k} {v:.4g}" for k, v in last.metrics.items())
        file.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {last.step}/{last.total}  {metrics}  {last.message}"[:200])
        file.flush()
    if last is not None:
        file.write("\n")
    return last
