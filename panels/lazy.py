"""What the page sends at first: pictures arrive when their tab is first opened (issue 17, item 10).

The panels build each view drawn (a figure in every ``gr.Plot``, a picture in an ``gr.HTML``), so
every tab opens complete. Sent as initial values, those drawings made the page's config 1.1 MB
(photos as base64 JPEG inside plotly figures), parsed by the browser before the first tab was
usable. :func:`defer_pictures` takes the large ones of the tabs not shown at first out of the
config after the panels are built, and sends each when its tab is first opened (the tab's
``select`` event). Nothing is recomputed: the values are the ones the panels drew.

:func:`lighten_config` drops from the config what no reader of it uses (duplicated API schemas
and example inputs), see its docstring; :class:`CompressedPage` sends the page and its config
compressed, which Gradio 6.31 does not (its compression goes by file extension, and ``/`` and
``/config`` have none): what remains of the config is mostly the same few keys repeated for every
component, which compresses about tenfold.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

# A value larger than this (bytes of JSON) waits for its tab: an empty plotly figure is ~8 kB
# (plotly's template), a drawn one with a photo ~100 kB; a small HTML legend stays in the page.
DEFER_BYTES = 2048
DEFERRED_TYPES = (gr.Plot, gr.HTML)


@dataclass
class _TabPictures:
    """One tab's deferred values, and the flag that says this session has received them."""

    tab: gr.Tab | None  # None: the page itself (outside every tab)
    components: list[gr.components.Component] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    default_children: list[_TabPictures] = field(default_factory=list)  # shown when this tab opens

    def shown(self) -> Iterator[_TabPictures]:
        """This tab and, recursively, the sub-tabs that open with it (each Tabs' selected one)."""
        yield self
        for child in self.default_children:
            yield from child.shown()


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str))


def _inputs_of_events(demo: gr.Blocks) -> set[int]:
    """Ids of components some event reads: their initial value is also the API's default, so it stays."""
    return {block._id for fn in demo.fns.values() for block in fn.inputs}


def _default_tab(tabs: gr.Tabs) -> gr.Tab | None:
    """The tab a ``gr.Tabs`` shows before anyone clicks: its ``selected`` one, else the first visible."""
    children = [c for c in tabs.children if isinstance(c, gr.Tab)]
    for child in children:
        if tabs.selected is not None and child.id == tabs.selected:
            return child
    return next((c for c in children if c.visible is not False), None)


def _collect(block: gr.blocks.Block, owner: _TabPictures, kept: set[int], registry: list[_TabPictures]) -> None:
    """Walk ``block``'s subtree: each large picture value is recorded under ``owner`` (the innermost
    tab around it); each nested tab gets its own record."""
    for child in getattr(block, "children", []):
        if isinstance(child, gr.Tabs):
            default = _default_tab(child)
            for tab in (c for c in child.children if isinstance(c, gr.Tab)):
                record = _TabPictures(tab)
                registry.append(record)
                if tab is default:
                    owner.default_children.append(record)
                _collect(tab, record, kept, registry)
        elif isinstance(child, DEFERRED_TYPES) and child._id not in kept and child.value is not None \
                and _json_size(child.value) > DEFER_BYTES:
            owner.components.append(child)
            owner.values.append(child.value)
        else:
            _collect(child, owner, kept, registry)


def _sender(records: list[_TabPictures]) -> Callable[..., tuple]:
    """The event handler of one tab: the first time, every picture shown with the tab and a True
    for each flag; afterwards nothing (the learner's own drawings stay)."""
    values = [v for r in records for v in r.values]

    def send(already_sent: bool) -> tuple:
        if already_sent:
            return tuple(gr.skip() for _ in range(len(records) + len(values)))
        return (*[True] * len(records), *values)

    return send


def defer_pictures(demo: gr.Blocks) -> int:
    """Move the large Plot / HTML values of ``demo``'s tabs out of the page's config, each to be
    sent when its tab is first opened. The tabs the page opens on (the first tab, and the first
    section of each of its sections) keep theirs: they are seen at once, and a first view that
    waited for the queue would wait behind other visitors' jobs. Call inside ``with demo:``, after
    the panels are built (their events are known then). Returns how many values were deferred.
    """
    kept = _inputs_of_events(demo)
    page = _TabPictures(None)
    registry: list[_TabPictures] = [page]
    _collect(demo, page, kept, registry)
    opening = {id(r) for r in page.shown()}
    waiting = [r for r in registry if id(r) not in opening]
    for record in waiting:
        for component in record.components:
            component.value = None  # the config now carries an empty component
    sending = [r for r in waiting if any(shown.components for shown in r.shown())]
    flags = {id(r): gr.State(False) for r in sending}  # per tab: "this session has its pictures"
    for record in sending:
        shown = [r for r in record.shown() if id(r) in flags]  # the tab, and the sections opening with it
        outputs = [flags[id(r)] for r in shown] + [c for r in shown for c in r.components]
        # postprocess=False: the values are already what the page's config held (postprocessed once).
        record.tab.select(_sender(shown), flags[id(record)], outputs, postprocess=False,
                          api_visibility="private", show_progress="minimal")
    return sum(len(r.components) for r in waiting)


# Keys of a component's config entry that neither the page (its JavaScript reads none of them),
# nor gradio_client (reads "api_info"), nor the server (reads "api_info_as_input" and
# "api_info_as_output", falling back to "api_info" when they are missing) needs when they repeat
# "api_info"; "example_inputs" the server recomputes from the component.
def lighten_config(config: dict) -> dict:
    """Drop from ``config`` (a Blocks config) the per-component API schemas that repeat
    ``api_info`` and the example inputs: a third of the config's bytes without pictures, and the
    same API documentation (``/info``) as before. Returns ``config``, changed in place."""
    for component in config.get("components", []):
        for key in ("api_info_as_input", "api_info_as_output"):
            if key in component and component[key] == component.get("api_info"):
                del component[key]
        component.pop("example_inputs", None)
    return config


def install_light_config(demo: gr.Blocks) -> None:
    """Make every config ``demo`` builds (at the end of ``with``, at launch) a light one."""
    build = demo.get_config_file

    def get_config_file():
        return lighten_config(build())

    demo.get_config_file = get_config_file


class CompressedPage:
    """ASGI middleware: gzip for the page (``/``) and its config (``/config``) when the browser
    accepts it; every other path (the queue's event streams, files, the API) passes untouched."""

    PATHS = ("", "/config")  # without a trailing slash

    def __init__(self, app: Any, minimum_size: int = 1024, compresslevel: int = 6):
        from starlette.middleware.gzip import GZipMiddleware

        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=compresslevel)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        root = scope.get("root_path", "")
        path = scope.get("path", "")
        path = path[len(root):] if root and path.startswith(root) else path
        if scope.get("type") == "http" and path.rstrip("/") in self.PATHS:
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install_compression(demo: gr.Blocks) -> None:
    """Every launch of ``demo`` (``python app.py``, a Space, the tests, the benchmarks) serves the
    page and its config compressed: :class:`CompressedPage` joins ``launch(app_kwargs=...)``'s
    middleware (Gradio builds its FastAPI app inside ``launch``, and a Starlette app takes no
    middleware once it has served a request)."""
    launch = demo.launch

    def launch_compressed(*args: Any, app_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        from starlette.middleware import Middleware

        app_kwargs = dict(app_kwargs or {})
        app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), Middleware(CompressedPage)]
        return launch(*args, app_kwargs=app_kwargs, **kwargs)

    demo.launch = launch_compressed
