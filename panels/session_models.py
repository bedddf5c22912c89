"""The network each browser session uses in a training panel: the one it trained here, else the
shipped checkpoint (docs/ARCHITECTURE.md, "Trained networks in the page").

The SSD and the segmentation panels each keep one :class:`SessionModels`: a slot per session
for the network trained in it (for the most recent sessions only, so memory stays bounded),
the shipped network loaded once for everyone, and the Stop flags of the session's running
training. A stored network and a Stop flag live apart: evicting a session's network never
touches its flag, which belongs to a job that may still be running.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import gradio as gr
from torch import nn

from vision_core.weights import WeightsError

from .common import StopFlags, session_of
from .zerogpu import park

STOPPING = "Stopping after the current batch…"
IDLE = "Nothing is training in this session."


class SessionModels:
    """One model slot per session: this session's trained network, else the shipped one.

    Args:
        load_shipped: loads the shipped network (sha256-checked by vision_core) and says what it
            is; may raise ``WeightsError``. Called once, on first use.
        unavailable: the text shown instead when loading fails, from the error.
        capacity: how many sessions' trained networks are kept; the least recently stored go.
    """

    def __init__(self, load_shipped: Callable[[], tuple[nn.Module, str]],
                 unavailable: Callable[[WeightsError], str], capacity: int) -> None:
        self._load_shipped, self._unavailable, self.capacity = load_shipped, unavailable, capacity
        self._lock = threading.Lock()
        self._shipped: tuple[nn.Module | None, str] | None = None
        self._trained: OrderedDict[str, tuple[nn.Module, str]] = OrderedDict()  # session -> (net, description)
        self.stops = StopFlags(STOPPING, IDLE)  # each session's Stop flag, while it trains

    def shipped(self) -> tuple[nn.Module | None, str]:
        """The shipped network and what it is (loaded once), or None and why it is not usable."""
        with self._lock:
            if self._shipped is None:
                try:
                    self._shipped = self._load_shipped()
                except WeightsError as err:
                    self._shipped = (None, self._unavailable(err))
            return self._shipped

    def remember(self, request: gr.Request | None, net: nn.Module, description: str) -> None:
        """Keep ``net`` as this session's network (parked on the CPU on ZeroGPU), forgetting the
        least recently stored beyond :attr:`capacity`. Stop flags are left alone."""
        session = session_of(request)
        with self._lock:
            self._trained[session] = (park(net), description)
            self._trained.move_to_end(session)
            while len(self._trained) > self.capacity:
                self._trained.popitem(last=False)

    def sessions(self) -> list[str]:
        """The sessions whose trained network is kept, least recently stored first."""
        with self._lock:
            return list(self._trained)

    def active(self, request: gr.Request | None) -> tuple[nn.Module | None, str]:
        """The network this session uses and what it is: its own trained one, else the shipped one;
        ``(None, why)`` when there is neither (the caller says so where the network is needed)."""
        with self._lock:
            mine = self._trained.get(session_of(request))
        return mine if mine is not None else self.shipped()
