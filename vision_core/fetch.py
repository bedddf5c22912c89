"""One place that fetches the book's real data and weights, where there is internet.

Offline, every panel runs on stand-ins: generated bananas and VOC-layout scenes, an FCN with a
random trunk, EfficientNet-Lite0 for style transfer. With internet (a Space has it), the book's
own files can be fetched into the caches the rest of the package already reads:

================  =============================================  =========  ==========================
name              file                                           checked    goes to
================  =============================================  =========  ==========================
``bananas``       d2l's ``banana-detection.zip`` (14.6)          SHA-1      ``book_dir()/banana-detection``
``voc2012``       ``VOCtrainval_11-May-2012.tar`` (14.9), 2 GB   SHA-1      ``book_dir()/VOCdevkit/VOC2012``
``resnet18``      torchvision's ImageNet ResNet-18, the FCN      sha256     ``$TORCH_HOME/hub/checkpoints``
                  trunk (14.11), 45 MB
``fcn_resnet50``  torchvision's FCN-ResNet-50, 136 MB            sha256     the same
``vgg19``         torchvision's ImageNet VGG-19 (14.12), 548 MB  sha256     the same
================  =============================================  =========  ==========================

Every download resumes where a broken one stopped (:func:`vision_core.weights.download_file`),
is checked before it is used (the book's SHA-1, or the sha256 prefix in torchvision's file
name), and is refused before any connection when ``VISION_LAB_OFFLINE`` is set. Nothing here runs
unless asked: by ``python -m vision_core fetch NAME``, by :func:`fetch`, or at a server's start-up
through ``VISION_LAB_FETCH`` (:func:`fetch_at_startup`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ._checks import check_choice
from .progress import Progress

__all__ = ["ASSETS", "Asset", "book_dir", "fetched", "fetch_records", "fetch", "fetch_at_startup", "startup_status"]


def book_dir() -> Path:
    """Where the book's data sets go: ``$VISION_LAB_DATA/book`` (default ``~/.cache/vision_lab/book``)."""
    parent = os.environ.get("VISION_LAB_DATA")
    return (Path(parent).expanduser() if parent else Path.home() / ".cache" / "vision_lab") / "book"


def _torchvision_file(name: str) -> str:
    from .models.fcn import FCN_RESNET50_SHA256_PREFIX, RESNET18_IMAGENET_SHA256_PREFIX
    from .models.style_networks import VGG19_FILE

    return {"vgg19": VGG19_FILE, "resnet18": f"resnet18-{RESNET18_IMAGENET_SHA256_PREFIX}.pth",
            "fcn_resnet50": f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth"}[name]


def _bananas_found() -> Path | None:
    folder = book_dir() / "banana-detection"
    return folder if (folder / "bananas_val" / "label.csv").is_file() else None


def _bananas_records() -> Iterator[Progress]:
    from .data.downloads import download_bananas_records

    return download_bananas_records(book_dir())


def _voc_found() -> Path | None:
    from .data.voc import _has_layout

    folder = book_dir() / "VOCdevkit" / "VOC2012"
    return folder if _has_layout(folder) else None


def _voc_records() -> Iterator[Progress]:
    from .data.downloads import download_voc_records

    return download_voc_records(book_dir())


def _torchvision_found(name: str) -> Callable[[], Path | None]:
    def found() -> Path | None:
        from .weights import WeightsError, find_torchvision_checkpoint

        try:
            return find_torchvision_checkpoint(_torchvision_file(name))
        except WeightsError:  # there but corrupt: fetching again replaces it
            return None

    return found


def _torchvision_records(name: str) -> Callable[[], Iterator[Progress]]:
    def records() -> Iterator[Progress]:
        from .weights import download_torchvision_checkpoint

        return download_torchvision_checkpoint(_torchvision_file(name))

    return records


@dataclass(frozen=True)
class Asset:
    """One thing :func:`fetch` can download: what it is for, its size, and how to find or fetch it."""

    name: str
    title: str
    size: str
    records: Callable[[], Iterator[Progress]]
    found: Callable[[], Path | None]


ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset("bananas", "the book's banana-detection data (d2l 14.6)", "1,100 photos of 256 × 256", _bananas_records, _bananas_found),
    Asset("voc2012", "Pascal VOC 2012 (d2l 14.9)", "2 GB", _voc_records, _voc_found),
    Asset("resnet18", "torchvision's ImageNet ResNet-18, the FCN's trunk (d2l 14.11)", "45 MB",
          _torchvision_records("resnet18"), _torchvision_found("resnet18")),
    Asset("fcn_resnet50", "torchvision's FCN-ResNet-50, the reference segmentation model", "136 MB",
          _torchvision_records("fcn_resnet50"), _torchvision_found("fcn_resnet50")),
    Asset("vgg19", "torchvision's ImageNet VGG-19, the book's style network (d2l 14.12)", "548 MB",
          _torchvision_records("vgg19"), _torchvision_found("vgg19")),
)}


def fetched(name: str) -> Path | None:
    """The fetched folder or file of ``name`` (a key of :data:`ASSETS`) if this machine has it; never downloads."""
    return ASSETS[check_choice(name, "name", tuple(ASSETS))].found()


def fetch_records(name: str) -> Iterator[Progress]:
    """Fetch ``name`` (a key of :data:`ASSETS`) as a long job: one record when it is already here.

    Raises:
        ValueError: an unknown name; offline (``VISION_LAB_OFFLINE``), a network failure (a later
            call resumes), a checksum mismatch, or an unsafe archive; the message says which.
    """
    return ASSETS[check_choice(name, "name", tuple(ASSETS))].records()


def fetch(name: str, progress: Callable[[int, int], object] | None = None) -> Path:
    """Run :func:`fetch_records` to the end; returns what :func:`fetched` then finds.

    Args:
        progress: called as ``progress(done, total)`` per record (bytes, then extracted files).
    """
    for record in fetch_records(name):
        if progress is not None:
            progress(record.step, record.total)
    path = fetched(name)
    if path is None:  # pragma: no cover - each records() ends by putting it there
        raise ValueError(f"{name} was fetched but is not where it should be")
    return path


# --- at a server's start-up ---------------------------------------------------------------------

_status: dict[str, str] = {}
_status_lock = threading.Lock()


def _set_status(name: str, text: str) -> None:
    with _status_lock:
        _status[name] = text


def startup_status() -> dict[str, str]:
    """What :func:`fetch_at_startup` is doing, per name: ``queued``, ``fetching 12 %``, ``ready`` or
    ``failed: <reason>`` (empty when it was not asked for)."""
    with _status_lock:
        return dict(_status)


def _names(setting: str) -> list[str]:
    words = [w.strip().lower() for w in setting.replace(" ", ",").split(",") if w.strip()]
    if words in ([], ["0"], ["false"], ["no"]):
        return []
    if words in (["all"], ["1"], ["true"], ["yes"]):
        return list(ASSETS)
    for word in words:
        check_choice(word, "VISION_LAB_FETCH", tuple(ASSETS) + ("all",))
    return [w for w in ASSETS if w in words]


def _fetch_quietly(names: list[str], log: Callable[[str], object]) -> None:
    for name in names:
        try:
            for record in fetch_records(name):
                share = f"{100 * record.step / record.total:.0f} %" if record.total else ""
                _set_status(name, "ready" if record.done else f"fetching {share}".strip())
            log(f"vision_core.fetch: {name} ready in {fetched(name)}")
        except Exception as err:  # noqa: BLE001 - a failed fetch leaves the offline stand-in, and says why
            _set_status(name, f"failed: {err}")
            log(f"vision_core.fetch: {name} failed: {err}")


def fetch_at_startup(setting: str | None = None, log: Callable[[str], object] = print) -> threading.Thread | None:
    """Fetch the assets ``setting`` names in a background thread (for a Space, at start-up).

    ``setting`` defaults to ``$VISION_LAB_FETCH``: ``all``, or names from :data:`ASSETS` separated
    by commas (e.g. ``bananas,resnet18``); empty or unset fetches nothing. The assets are fetched
    one after another; :func:`startup_status` says how far each one is.

    Returns:
        The started daemon thread, or None when nothing is to be fetched.

    Raises:
        ValueError: a name that is not in :data:`ASSETS` (before anything starts).
    """
    setting = os.environ.get("VISION_LAB_FETCH", "") if setting is None else setting
    names = _names(setting)
    if not names:
        return None
    for name in names:
        _set_status(name, "queued")
    thread = threading.Thread(target=_fetch_quietly, args=(names, log), name="vision_core.fetch", daemon=True)
    thread.start()
    return thread
