"""A bounded Gradio file cache: every uploaded and every returned picture lands in it.

:func:`trim_cache` keeps the folder under a size, deleting the oldest files first, and drops
files older than an age. The files already there when the app finished building (the pages'
example pictures, which Gradio cached then and serves as the components' defaults) are never
deleted: that is why Gradio's own ``delete_cache=(frequency, age)`` is not used, as it also
removes those after ``age``. :func:`start_trimming` runs the trim every ``interval`` seconds
on a daemon thread.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any

MAX_CACHE_BYTES = 512 * 1024 * 1024
MAX_CACHE_AGE = 3600.0  # seconds: an upload or a result older than this is deleted
TRIM_INTERVAL = 30.0  # seconds

_protected: set[Path] = set()
_started = threading.Event()


def cache_dir() -> Path:
    """Where Gradio keeps uploads and outputs (its own rule: ``$GRADIO_TEMP_DIR`` or ``<tmp>/gradio``)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def _files(folder: Path) -> Iterator[tuple[float, int, Path]]:
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                stat = path.stat()
                yield stat.st_mtime, stat.st_size, path
        except OSError:  # removed while we looked
            pass


def cache_size(folder: Path | None = None, keep: Iterable[Path] = ()) -> int:
    """Bytes of the files under ``folder`` (default: Gradio's cache), the ``keep`` ones left out."""
    keep = set(keep)
    return sum(size for _, size, path in _files(Path(folder or cache_dir())) if path not in keep)


def trim_cache(max_bytes: int = MAX_CACHE_BYTES, folder: Path | None = None, keep: Iterable[Path] | None = None,
               max_age: float | None = MAX_CACHE_AGE) -> tuple[int, int]:
    """Delete files older than ``max_age`` seconds, then the oldest until the rest (``keep`` left out)
    holds at most ``max_bytes``. Returns (files deleted, bytes left)."""
    folder = Path(folder or cache_dir())
    keep = _protected if keep is None else set(keep)
    files = sorted((f for f in _files(folder) if f[2] not in keep), key=lambda f: f[0])
    total = sum(size for _, size, _ in files)
    now, deleted = time.time(), 0
    for mtime, size, path in files:
        if total <= max_bytes and (max_age is None or now - mtime <= max_age):
            continue
        try:
            path.unlink()
            total -= size
            deleted += 1
            if path.parent != folder and not any(path.parent.iterdir()):
                path.parent.rmdir()  # Gradio keeps one folder per file hash
        except OSError:
            pass
    return deleted, total


def start_trimming(max_bytes: int = MAX_CACHE_BYTES, interval: float = TRIM_INTERVAL) -> None:
    """Protect the files cached so far (call it once the app is built), then trim every ``interval`` seconds."""
    folder = cache_dir()
    _protected.update(path for _, _, path in _files(folder)) if folder.is_dir() else None
    if _started.is_set():
        return
    _started.set()

    def loop() -> None:
        while True:
            trim_cache(max_bytes)
            threading.Event().wait(interval)

    threading.Thread(target=loop, name="vision-lab-cache-trim", daemon=True).start()


def make_image_writes_atomic() -> None:
    """Make Gradio write each cached picture once, atomically.

    Gradio 6.31 (docs/ARCHITECTURE.md, "Gradio facts the code relies on") names a returned picture
    by the hash of its bytes and writes it in place each time, so two visitors getting the same
    picture rewrite the same file, and one of them can be served the half-written file
    (measured: benchmarks/load.py, 20 users, about 1 call in 700). The bytes of a hash never
    change, so an existing file is kept and a new one is written to a temporary name and
    renamed into place.
    """
    import os

    from gradio import processing_utils

    if getattr(processing_utils.save_pil_to_cache, "vision_lab_atomic", False):
        return

    def save_pil_to_cache(img: Any, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        data = processing_utils.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / processing_utils.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        path = (folder / f"{name}.{format}").resolve()
        if not path.exists():
            part = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
            part.write_bytes(data)
            os.replace(part, path)
        return str(path)

    save_pil_to_cache.vision_lab_atomic = True
    processing_utils.save_pil_to_cache = save_pil_to_cache
