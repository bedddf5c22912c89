"""Who may join the queue, and for how long a job nobody reads may stay in it.

Every request that runs an event, from the page (``POST /gradio_api/queue/join``) or from a
program (``POST /gradio_api/call/<api_name>``, gradio_client), is admitted by Gradio's
``Queue.push(body, request, username)``. :func:`install` wraps that method on the built demo's
queue and refuses, before anything is queued:

* **an endpoint that does not exist, or the wrong number of input values** (HTTP 404 / 400), with a
  message saying what exists and what was expected (Gradio answers an empty 500, or queues the
  call and fails it with an empty error);
* **a session hash used from another address** (HTTP 403): a session is bound to the visitor that
  first used it, so a Stop (or any call) sent with someone else's hash, which travels in URLs and
  logs, does not stop their job; and :class:`OnlyOwnersRead` refuses another address's reads of the
  session's messages (its progress and results) too. The binding ends with the session;
* **a heavy job** (training, style transfer: ``panels.streaming.HEAVY``) when
  :data:`MAX_HEAVY_WAITING` already wait (HTTP 503): the queue holds 64, so light calls always
  find room behind any number of heavy ones;
* on a **shared** server (``panels.deployment.shared``) only, **a visitor's job beyond their share**
  (HTTP 429): :data:`MAX_HEAVY_PER_VISITOR` heavy jobs and :data:`MAX_JOBS_PER_VISITOR` jobs of
  any kind queued or running per visitor. Stop is always admitted (the message tells people to
  press it).

Also on a shared server, a job whose result nobody reads is dropped: after
:data:`UNREAD_GRACE_S` seconds with no reader draining its session's messages (a bare
``POST /call/style_transfer`` whose ``GET`` never comes), it is cancelled as a closed tab's is.
A local single user gets none of the shared-server limits: they would only get in their way.

Why a private hook: Gradio 6.31 has no public way to refuse an event by who sent it before it
is queued (``concurrency_limit`` and ``max_size`` count events, not visitors), nor to see a
visitor's queued events. ``Queue.push`` is where both routes meet and where Gradio itself refuses
a full queue; the queue's ``event_ids_to_events``, ``event_queue_per_concurrency_id``,
``pending_messages_per_session`` and ``clean_events`` are what it reads and calls.
``tests/test_admission.py`` pins all of them (signatures, the routes' call, the effect), so a
Gradio upgrade that changes them fails there, loudly, instead of silently admitting everyone.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from gradio import route_utils

from . import deployment
from .common import visitor_of
from .i18n import bilingual, english
from .streaming import HEAVY

if TYPE_CHECKING:
    import fastapi
    import gradio as gr

# Shared servers only. Heavy jobs run one at a time on the whole server; a visitor may have one
# running and one waiting. Visitors are addresses, so a class behind one school address shares these.
MAX_HEAVY_PER_VISITOR = 2
# Shared servers only: a quarter of the queue (64). A page load sends a few light events at once,
# and a class behind one address loads its pages together, so this is not smaller.
MAX_JOBS_PER_VISITOR = 16
# Every server: heavy jobs waiting (not counting the one running). The other 48 of the queue's 64
# places are left to light calls, which take milliseconds to seconds each.
MAX_HEAVY_WAITING = 16
# Shared servers only: seconds a job may wait for a reader of its session's messages (the page's
# or gradio_client's event stream, or the GET of a POST /call) before it is dropped. A page or a
# client opens its stream at once; a test shortens this.
UNREAD_GRACE_S = 30.0
UNREAD_POLL_S = 0.25  # how often an unread job's messages are looked at during its grace period
# Always admitted, whatever a visitor has queued: the way out that the refusals point to.
STOP_ENDPOINTS = frozenset({"ssd_stop", "fcn_stop", "style_stop"})
# How long a session keeps its address after Gradio last knew it (its message queue or events).
BINDING_GRACE_S = 60.0

HEAVY_ID = HEAVY["concurrency_id"]


def _refuse(status: int, en: str, zh: str) -> HTTPException:
    """An HTTP error whose ``detail`` the page shows as the call's error (Gradio's client shows
    ``detail`` for every status but 503, for which it shows its own "busy, try again")."""
    return HTTPException(status_code=status, detail=bilingual(en, zh))


def unknown_endpoint(name: str) -> HTTPException:
    """The 404 for an API name or function index this app does not have."""
    return _refuse(404, f"No endpoint named {name!r} in this app. The list of endpoints and their parameters: "
                        "GET /gradio_api/info, or 'Use via API' at the bottom of the page.",
                   f"本应用没有名为 {name!r} 的接口。所有接口及其参数见 GET /gradio_api/info，或页面底部的“通过 API 使用”。")


def _count_message(fn: Any, got: int) -> HTTPException:
    """The 400 for a call with the wrong number of input values, naming the inputs expected."""
    labels = [english(getattr(block, "label", None) or type(block).__name__) for block in fn.inputs]
    names = ", ".join(labels)
    return _refuse(400, f"/{fn.api_name} takes {len(labels)} input value(s) ({names}), got {got}. Its parameters: "
                        "GET /gradio_api/info.",
                   f"/{fn.api_name} 需要 {len(labels)} 个输入值（{names}），收到 {got} 个。参数说明见 GET /gradio_api/info。")


def _not_yours() -> HTTPException:
    """The 403 for a call or a read with another visitor's session."""
    return _refuse(403, "This session belongs to another visitor (a session is bound to the address that "
                        "first used it). Open the page yourself, or use a gradio_client Client of your own.",
                   "该会话属于另一位访客（会话绑定于最先使用它的地址）。请自己打开页面，或使用你自己的 "
                   "gradio_client Client。")


async def unknown_endpoint_handler(request: fastapi.Request, err: Exception) -> JSONResponse:
    """FastAPI exception handler for ``POST /gradio_api/call/<name>`` with an unknown name (Gradio
    raises ``FnIndexInferError`` before the queue, which FastAPI answers with an empty 500)."""
    name = request.path_params.get("api_name") or str(err)
    refusal = unknown_endpoint("/" + str(name).lstrip("/"))
    return JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code)


class Admission:
    """The door of one demo's queue: ``push`` checks a request, then hands it to Gradio's push.

    Args:
        queue: the demo's ``gradio.queueing.Queue``.
        push: its original bound ``push``.
    """

    def __init__(self, queue: Any, push: Any) -> None:
        self.queue, self._push = queue, push
        self._owners: dict[str, tuple[str, float]] = {}  # session hash -> (visitor, when last seen)
        self._lock: asyncio.Lock | None = None  # made in the server's event loop, on first use
        self._watchers: set[asyncio.Task] = set()  # strong references: the loop keeps only weak ones

    async def push(self, body: Any, request: fastapi.Request, username: str | None) -> tuple[bool, Any, str]:
        """``Queue.push`` with the checks of the module's docstring; raises HTTPException to refuse."""
        fn = self._function(body)
        if fn is None:  # no fn_index: Gradio's own message ("No function index provided.")
            return await self._push(body=body, request=request, username=username)
        visitor = visitor_of(request)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # the check and the queueing are one step: two requests cannot both pass
            self._check_owner(body.session_hash, visitor)
            self._check_room(fn, visitor)
            bare = not body.session_hash  # a bare POST /call: Gradio makes its event its own session
            result = await self._push(body=body, request=request, username=username)
            success, event_id, _ = result
            if success and bare:
                self._bind(self.queue.event_ids_to_events.get(event_id), visitor)
        if success and deployment.shared():
            self._watch_for_a_reader(body.session_hash, event_id)
        return result

    def _function(self, body: Any) -> Any:
        """The event ``body`` names, with its input count checked; None when it names none."""
        if body.fn_index is None:
            return None
        try:
            fn = route_utils.get_fn(self.queue.blocks, None, body)
        except (KeyError, IndexError, route_utils.FnIndexInferError):
            raise unknown_endpoint(f"fn_index {body.fn_index}") from None
        data = body.data
        if fn.fn is not None and not fn.batch and not fn.cancels and (
                not isinstance(data, list) or len(data) != len(fn.inputs)):
            raise _count_message(fn, len(data) if isinstance(data, list) else 0)
        return fn

    def _check_owner(self, session: str | None, visitor: str) -> None:
        """Bind ``session`` to ``visitor`` on first use; refuse it from any other address."""
        now = time.monotonic()
        self._forget_ended_sessions(now)
        if not session:
            return  # a bare POST /call: Gradio makes the event its own session, known to its caller only
        owner = self._owners.get(session)
        if owner is not None and owner[0] != visitor:
            raise _not_yours()
        self._owners[session] = (visitor, now)

    def _bind(self, event: Any, visitor: str) -> None:
        """Bind the session Gradio made for a bare ``POST /call`` to its caller, so the ``GET`` of
        its result is the caller's alone too."""
        if event is not None:
            self._owners.setdefault(event.session_hash, (visitor, time.monotonic()))

    def may_read(self, session: str | None, visitor: str) -> bool:
        """Whether ``visitor`` may read ``session``'s messages: a session nobody has bound yet, or its own."""
        owner = self._owners.get(session) if session else None
        return owner is None or owner[0] == visitor

    def session_of_event(self, event_id: str) -> str | None:
        """The session a queued, running or just-finished event belongs to (None when Gradio has forgotten it)."""
        event = self.queue.event_ids_to_events.get(event_id)
        if event is not None:
            return event.session_hash
        return next((session for session, ids in list(self.queue.pending_event_ids_session.items())
                     if event_id in ids), None)

    def _forget_ended_sessions(self, now: float) -> None:
        """Drop the bindings of sessions Gradio no longer knows (their page closed, or its memory of
        2000 sessions moved on), once they have not been seen for :data:`BINDING_GRACE_S`."""
        queue = self.queue
        live = {event.session_hash for event in list(queue.event_ids_to_events.values())}
        for session, (_, seen) in list(self._owners.items()):
            if (now - seen > BINDING_GRACE_S and session not in live
                    and session not in queue.pending_messages_per_session
                    and session not in queue.pending_event_ids_session):
                del self._owners[session]

    def _check_room(self, fn: Any, visitor: str) -> None:
        """Refuse a heavy job when too many wait, and (shared servers) a visitor's job beyond their share."""
        if fn.api_name in STOP_ENDPOINTS:
            return
        heavy = fn.concurrency_id == HEAVY_ID
        if heavy:
            waiting = self.queue.event_queue_per_concurrency_id.get(HEAVY_ID)
            count = len(waiting.queue) if waiting is not None else 0
            if count >= MAX_HEAVY_WAITING:
                raise _refuse(503, f"{count} trainings or style transfers already wait on this server (at most "
                                   f"{MAX_HEAVY_WAITING}); try again in a few minutes. The other tools answer now.",
                              f"本服务器上已有 {count} 个训练或风格迁移任务在排队（最多 {MAX_HEAVY_WAITING} 个）；"
                              "请过几分钟再试。其他工具现在就可以使用。")
        if not deployment.shared():
            return
        mine = [e for e in list(self.queue.event_ids_to_events.values())
                if e.alive and visitor_of(e.request) == visitor]
        my_heavy = sum(e.fn.concurrency_id == HEAVY_ID for e in mine)
        if heavy and my_heavy >= MAX_HEAVY_PER_VISITOR:
            raise _refuse(429, f"You already have {my_heavy} training or style-transfer job(s) waiting or running "
                               f"(at most {MAX_HEAVY_PER_VISITOR} per visitor on this public server). Wait for one "
                               "to finish, or press its Stop button, then start again.",
                          f"你已有 {my_heavy} 个训练或风格迁移任务在排队或运行（本公共服务器每位访客最多 "
                          f"{MAX_HEAVY_PER_VISITOR} 个）。请等其中一个结束，或按它的“停止”按钮，然后再开始。")
        if len(mine) >= MAX_JOBS_PER_VISITOR:
            raise _refuse(429, f"You already have {len(mine)} requests waiting or running (at most "
                               f"{MAX_JOBS_PER_VISITOR} per visitor on this public server). Wait for them to "
                               "finish, or stop your job, then try again.",
                          f"你已有 {len(mine)} 个请求在排队或运行（本公共服务器每位访客最多 {MAX_JOBS_PER_VISITOR} "
                          "个）。请等它们结束，或停止你的任务，然后再试。")

    def _watch_for_a_reader(self, session: str | None, event_id: str) -> None:
        """Start :meth:`_drop_if_unread` for a just-queued event (the session Gradio gave it when none was sent)."""
        event = self.queue.event_ids_to_events.get(event_id)
        if event is None:
            return
        task = asyncio.get_running_loop().create_task(self._drop_if_unread(event.session_hash, event_id, UNREAD_GRACE_S))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _drop_if_unread(self, session: str, event_id: str, grace_s: float) -> None:
        """Cancel the event unless someone reads its session's messages within ``grace_s`` (the
        :data:`UNREAD_GRACE_S` of when it was queued).

        Gradio puts each message for a session (the queue position at once, then progress and
        results) on an ``asyncio.Queue`` that only a reader empties: the page's or a client's
        event stream, or the ``GET`` that follows a ``POST /call``. Seen empty once, it has a reader.
        """
        queue = self.queue
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            await asyncio.sleep(UNREAD_POLL_S)
            if event_id not in queue.event_ids_to_events:
                return  # finished or cancelled
            messages = queue.pending_messages_per_session.get(session)
            if messages is None or messages.qsize() == 0:
                return  # read (or the session's stream closed, which cancels its events itself)
        # Queued: removed; running: marked dead, so Gradio closes its generator at its next
        # frame and the job's finally frees its memory, as when a tab closes.
        await queue.clean_events(event_id=event_id)


# GET routes that stream a session's messages (its progress and results): the page's event stream,
# and the result of a POST /call (by event id). ``v2`` is gradio_client's form of the latter.
_READ_ROUTES = (re.compile(r"/queue/data/?$"), re.compile(r"/call/(?:v2/)?[^/]+/(?P<event_id>[^/]+)/?$"))


class OnlyOwnersRead:
    """ASGI middleware: a session's messages are streamed only to the visitor it is bound to.

    Refusing another address's requests at the queue's door (``Admission.push``) keeps a forged
    Stop from stopping a job, but Gradio streams a session's outputs to whoever asks for them by
    its hash (``GET /queue/data?session_hash=…``), and the result of a ``POST /call`` to whoever
    has its event id. This answers those requests with 403 when they come from another address.

    Args:
        app: the ASGI app it wraps.
        admission: the :class:`Admission` whose session bindings decide.
    """

    def __init__(self, app: Any, admission: Admission) -> None:
        self.app, self.admission = app, admission

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict) -> JSONResponse | None:
        """The 403 for a read of another visitor's session, else None."""
        from starlette.requests import Request

        path = scope.get("path", "")
        data, call = (pattern.search(path) for pattern in _READ_ROUTES)
        if not (data or call):
            return None
        request = Request(scope)
        if data:
            session = request.query_params.get("session_hash")
        else:
            session = self.admission.session_of_event(call["event_id"])
        if self.admission.may_read(session, visitor_of(request)):
            return None
        refusal = _not_yours()
        return JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code)


def install(demo: gr.Blocks) -> Admission:
    """Put the admission checks on ``demo``'s queue (call after ``demo.queue()``) and give its
    server clear answers for unknown endpoints. Returns the :class:`Admission` (tests read it)."""
    queue = demo._queue
    current = queue.push
    if isinstance(getattr(current, "__self__", None), Admission):
        return current.__self__
    admission = Admission(queue, current)
    queue.push = admission.push  # an instance attribute: routes call blocks._queue.push(...)
    _configure_the_server(demo, admission)
    return admission


def _configure_the_server(demo: gr.Blocks, admission: Admission) -> None:
    """Make ``demo.launch`` give the FastAPI app it creates an exception handler for unknown API
    names and the :class:`OnlyOwnersRead` middleware (``app_kwargs`` is launch's public way to
    configure that app)."""
    from starlette.middleware import Middleware

    launch = demo.launch

    @functools.wraps(launch)
    def launch_with_admission(*args: Any, app_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        app_kwargs = dict(app_kwargs or {})
        handlers = dict(app_kwargs.get("exception_handlers") or {})
        handlers.setdefault(route_utils.FnIndexInferError, unknown_endpoint_handler)
        app_kwargs["exception_handlers"] = handlers
        app_kwargs["middleware"] = [*(app_kwargs.get("middleware") or []), Middleware(OnlyOwnersRead, admission=admission)]
        return launch(*args, app_kwargs=app_kwargs, **kwargs)

    demo.launch = launch_with_admission
