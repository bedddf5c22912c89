"""The network each browser session uses in a training panel: the shipped checkpoint or the one it
trained here, as its "shipped / mine" switch says (docs/ARCHITECTURE.md, "Trained networks in the page").

The SSD and the segmentation panels each keep one :class:`SessionModels`: a slot per session
for the network trained in it, the shipped network loaded once for everyone, which of the two the
session uses (its "shipped / mine" switch: a training moves it to "mine", and "shipped" is one
click back), and the Stop flags of the session's running training. Memory stays bounded per
*visitor* (a client address, see ``panels.common.visitor_of``), not per server: a visitor keeps
the networks of its most recent sessions, and all visitors' networks together fit a byte budget.
A visitor's trainings evict its own networks first, so one visitor cannot push out another's
until the server is at its budget.
A session whose network was dropped is remembered (a bounded set), so Detect / Segment say so
instead of silently answering with the shipped checkpoint.

A stored network and a Stop flag live apart: evicting a session's network never touches its
flag, which belongs to a job that may still be running.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import gradio as gr
from torch import nn

from vision_core.weights import WeightsError

from .common import Radio, StopFlags, session_of, visitor_of
from .i18n import tr
from .zerogpu import park

SHIPPED, MINE = "shipped", "mine"  # the switch's values: the shipped checkpoint, or this session's network
STOPPING = "Stopping after the current batch…"
IDLE = "Nothing is training in this session."
MAX_DROPPED_REMEMBERED = 4096  # sessions told "your network was dropped" (~100 bytes each), oldest forgotten first
MiB = 2**20
DEFAULT_MAX_BYTES = 256 * MiB  # for a slot made without a budget (the panels pass their own)


class _Stored(NamedTuple):
    net: nn.Module
    description: str
    visitor: str
    nbytes: int  # parameters and buffers: what keeping the network costs


def network_bytes(net: nn.Module) -> int:
    """Bytes of ``net``'s parameters and buffers (what a stored network holds in memory)."""
    return sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers()))


class SessionModels:
    """One model slot per session: this session's trained network, else the shipped one.

    Args:
        load_shipped: loads the shipped network (sha256-checked by vision_core) and says what it
            is; may raise ``WeightsError``. Called once, on first use.
        unavailable: the text shown instead when loading fails, from the error.
        capacity: how many networks one visitor keeps (its most recently used sessions').
        max_bytes: the bytes of all visitors' stored networks together; beyond it the least
            recently used network of the visitor holding the most goes first.
    """

    def __init__(self, load_shipped: Callable[[], tuple[nn.Module, str]],
                 unavailable: Callable[[WeightsError], str], capacity: int,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._load_shipped, self._unavailable = load_shipped, unavailable
        self.capacity, self.max_bytes = capacity, max_bytes
        self._lock = threading.Lock()
        self._shipped: tuple[nn.Module | None, str] | None = None
        self._trained: OrderedDict[str, _Stored] = OrderedDict()  # session -> its network, least recently used first
        self._dropped: OrderedDict[str, str] = OrderedDict()  # session -> why its network went ("visitor" / "budget")
        self._use_shipped: set[str] = set()  # sessions with a network of their own that switched back to shipped
        self._speeds: OrderedDict[str, tuple[float, str]] = OrderedDict()  # session -> the speed it measured last
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

    def adopt(self, request: gr.Request | None, net: nn.Module, batches: int, description: str, user: str) -> str:
        """The one Stop rule of both training panels: a run that trained ``batches`` >= 1, finished
        or stopped, becomes this session's "mine" and the switch moves to it; a run stopped before
        its first batch trained nothing and changes nothing. Returns the status's closing words for
        ``user``, the view that predicts with the network ("Detect")."""
        if batches == 0:
            return f" · No batch ran, so nothing was trained: {user} keeps its weights."
        self.remember(request, net, description)
        return f" · {user} now uses this network (weights: “mine”); “shipped” is one click back beside {user}."

    def remember(self, request: gr.Request | None, net: nn.Module, description: str) -> None:
        """Keep ``net`` as this session's network ("mine", which the session now uses; parked on the
        CPU on ZeroGPU), then evict what is over the visitor's :attr:`capacity` or the server's
        :attr:`max_bytes`. Stop flags are left alone."""
        for parameter in net.parameters():
            parameter.grad = None  # a stored network only predicts: its last gradients would double its bytes
        session, visitor = session_of(request), visitor_of(request)
        with self._lock:
            self._trained[session] = _Stored(park(net), description, visitor, network_bytes(net))
            self._trained.move_to_end(session)
            self._dropped.pop(session, None)
            self._use_shipped.discard(session)  # the switch moves to "mine"; the status says so
            mine = [s for s, stored in self._trained.items() if stored.visitor == visitor]
            for old in mine[:max(0, len(mine) - self.capacity)]:  # the visitor's least recently used
                self._drop(old, "visitor")
            while sum(stored.nbytes for stored in self._trained.values()) > self.max_bytes:
                victim = self._over_budget_victim(keep=session)
                if victim is None:
                    break  # only the new network is left: a budget below one network still keeps it
                self._drop(victim, "budget")

    def _over_budget_victim(self, keep: str) -> str | None:
        """The session to drop when over budget: the least recently used network of the visitor
        holding the most (with one network each, the globally least recently used); never ``keep``."""
        counts = Counter(stored.visitor for stored in self._trained.values())
        most = max(counts.values())
        return next((s for s, stored in self._trained.items() if s != keep and counts[stored.visitor] == most),
                    next((s for s in self._trained if s != keep), None))

    def _drop(self, session: str, why: str) -> None:
        """Forget ``session``'s network and remember why (for its next Detect / Segment); lock held."""
        del self._trained[session]
        self._use_shipped.discard(session)
        self._dropped[session] = why
        self._dropped.move_to_end(session)
        while len(self._dropped) > MAX_DROPPED_REMEMBERED:
            self._dropped.popitem(last=False)

    def sessions(self) -> list[str]:
        """The sessions whose trained network is kept, least recently used first."""
        with self._lock:
            return list(self._trained)

    def active(self, request: gr.Request | None) -> tuple[nn.Module | None, str]:
        """The network this session uses and what it is, named by the switch's value: its own
        trained one (``"mine — …"``, now its most recently used) unless it switched to the shipped
        one (``"shipped — …"``); ``(None, why)`` when the shipped one is not usable (the caller
        says so where the network is needed). :meth:`dropped_note` says whether the session's own
        was evicted."""
        session = session_of(request)
        with self._lock:
            mine = self._trained.get(session)
            if mine is not None and session in self._use_shipped:
                mine = None
            if mine is not None:
                self._trained.move_to_end(session)
        if mine is not None:
            return mine.net, f"{MINE} — {mine.description}"
        net, what = self.shipped()
        return (net, f"{SHIPPED} — {what}") if net is not None else (None, what)

    def has_mine(self, request: gr.Request | None) -> bool:
        """Whether this session has a network of its own (trained here and not evicted)."""
        with self._lock:
            return session_of(request) in self._trained

    def choice(self, request: gr.Request | None) -> str:
        """The switch's value for this session: :data:`MINE` while it uses its own network, else :data:`SHIPPED`."""
        session = session_of(request)
        with self._lock:
            return MINE if session in self._trained and session not in self._use_shipped else SHIPPED

    def choose(self, request: gr.Request | None, which: str) -> str:
        """Set this session's switch to ``which`` (:data:`SHIPPED` or :data:`MINE`); returns the value
        now in force (``"shipped"`` when "mine" is asked for but the session has no network)."""
        session = session_of(request)
        with self._lock:
            if which == MINE and session in self._trained:
                self._use_shipped.discard(session)
                return MINE
            if session in self._trained:
                self._use_shipped.add(session)
            return SHIPPED

    def note_speed(self, request: gr.Request | None, rate: float, text: str) -> None:
        """Remember the training speed this session measured: ``rate`` examples per second, and its
        words (``"14.2 images/s at batch 16 on cpu"``)."""
        session = session_of(request)
        with self._lock:
            self._speeds[session] = (rate, text)
            self._speeds.move_to_end(session)
            while len(self._speeds) > MAX_DROPPED_REMEMBERED:
                self._speeds.popitem(last=False)

    def speed(self, request: gr.Request | None) -> tuple[float, str] | None:
        """The training speed this session measured last (:meth:`note_speed`), or None."""
        with self._lock:
            return self._speeds.get(session_of(request))

    def switch(self, request: gr.Request | None) -> dict:
        """The update that shows this session's switch as it is: its value, and "mine" offered
        (the radio active) only while the session has a network of its own."""
        return gr.update(value=self.choice(request), interactive=self.has_mine(request))

    def dropped_note(self, request: gr.Request | None) -> str:
        """A Markdown line in English and Chinese when this session's trained network was evicted
        (it now uses the shipped checkpoint), else ``""``: eviction is never silent."""
        with self._lock:
            why = self._dropped.get(session_of(request))
        if why is None:
            return ""
        if why == "visitor":
            keeps = f"the networks of each visitor's {self.capacity} most recently used sessions"
            keeps_zh = f"每位访客最近使用的 {self.capacity} 个会话的网络"
        else:
            keeps = (f"at most {self.max_bytes / MiB:.0f} MiB of trained networks for all visitors together, "
                     "dropping the least recently used")
            keeps_zh = f"所有访客合计最多 {self.max_bytes / MiB:.0f} MiB 的训练网络，最久未用的先被移除"
        return (f"  \n**Your trained network was dropped to make room** (the server keeps {keeps}); train again "
                f"— using the shipped checkpoint.  \n**你训练的网络已被移除以腾出空间**（服务器只保留{keeps_zh}）；"
                "请重新训练——现在使用的是随附的检查点。")


def training_begins() -> tuple[dict, dict]:
    """Start inactive and Stop active while this session trains (the page's Start click)."""
    return gr.update(interactive=False), gr.update(interactive=True)


def weights_switch(elem_id: str, network: str, network_zh: str) -> gr.Radio:
    """The "shipped / mine" switch beside Detect / Segment, inactive (on "shipped") until the
    session has trained a network: ``network`` names what the switch picks ("detector")."""
    return Radio([(tr("shipped (the project's checkpoint)", "随附（本项目的检查点）"), SHIPPED),
                  (tr("mine (trained in this session)", "我的（在本会话中训练）"), MINE)],
                 value=SHIPPED, interactive=False, label=tr(f"Weights of the {network}", f"{network_zh}的权重"),
                 info=tr("“mine” is offered once you have trained one in this session; each training switches to it",
                         "在本会话中训练过一个之后即可选择“我的”；每次训练后都会自动切换到它"),
                 elem_id=elem_id)
