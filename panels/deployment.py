"""How this server is deployed, and the limits that follow from it (docs/ARCHITECTURE.md, "A public
server").

A *shared* server is one strangers can reach: a Hugging Face Space, a ``--share`` link, or any
server started with ``VISION_LAB_SHARED=1``. It gets the per-visitor limits, the cap on one job's
length and no downloads a visitor can start. A local single user (the default ``python app.py``)
gets none of them; ``VISION_LAB_SHARED=0`` turns them off on a Space too.

Settings are read when used, not at import: ``app.py`` builds the page at import time (Spaces
import ``demo``) and parses ``--share`` only afterwards (:func:`configure`).
"""

from __future__ import annotations

import os

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_share_link = False  # set by app.main() when --share is given


def configure(*, share: bool) -> None:
    """Record the launch flags that make a server shared (``app.main`` calls this before launching)."""
    global _share_link
    _share_link = share


def on_space() -> bool:
    """True inside a Hugging Face Space (its runtime sets ``SPACE_ID``)."""
    return bool(os.environ.get("SPACE_ID"))


def shared() -> bool:
    """Whether strangers can reach this server: ``VISION_LAB_SHARED`` when set, else a Space or
    a ``--share`` link."""
    setting = os.environ.get("VISION_LAB_SHARED", "").strip().lower()
    if setting in _TRUE:
        return True
    if setting in _FALSE:
        return False
    return on_space() or _share_link


def visitor_downloads() -> bool:
    """Whether a visitor may make this server download files (VGG-19's 548 MB, say): always on a
    local single user's server; on a shared one only when the operator sets
    ``VISION_LAB_ALLOW_DOWNLOADS=1`` (otherwise the operator fetches them from a shell)."""
    if not shared():
        return True
    return os.environ.get("VISION_LAB_ALLOW_DOWNLOADS", "").strip().lower() in _TRUE


# One heavy job's (a training's, a style transfer's) wall-clock budget on a shared server: the
# job is stopped as if Stop were pressed (it keeps what it trained) and the status says why. The
# page's defaults take a few minutes on a 2-core CPU; the one heavy slot must come round again.
JOB_LIMIT_S = 10 * 60
JOB_LIMIT_ENV = "VISION_LAB_JOB_LIMIT_S"


def job_limit_s(shared_server: bool | None = None) -> float | None:
    """Seconds one heavy job may run, or None for no limit.

    ``VISION_LAB_JOB_LIMIT_S`` when set (``0``: no limit; an operator's or a test's setting,
    shared or not), else :data:`JOB_LIMIT_S` on a shared server and no limit for a local single
    user. ``shared_server`` asks about a shared server (True) or a local one (False) instead of
    this one (the page words its note once, before ``--share`` is known). A value that is not a
    number is an operator's mistake: it fails loudly at the first job.
    """
    setting = os.environ.get(JOB_LIMIT_ENV, "").strip()
    if setting:
        seconds = float(setting)
        if not seconds >= 0:
            raise ValueError(f"{JOB_LIMIT_ENV} must be a number of seconds >= 0 (0: no limit), got {setting!r}")
        return seconds or None
    return JOB_LIMIT_S if (shared() if shared_server is None else shared_server) else None
