"""The weights registry: every weight file the app can use, checked before it is loaded.

``pretrained/manifest.json`` lists each file: name, file, sha256, bytes, format, license,
where it came from (the project's own training command and data seed, or an upstream URL)
and its measured quality. Resolution order for a name: the file in ``pretrained/`` -> the
user's cache (``$TORCH_HOME/hub/checkpoints``) -> a download, only when asked and allowed
(``VISION_LAB_OFFLINE=1`` forbids it) -> ``None``, and the caller uses its documented
offline alternative. Files are safetensors, or upstream ``.pth`` state dicts loaded with
``torch.load(..., weights_only=True)``: nothing goes through arbitrary pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

__all__ = [
    "PRETRAINED_DIR",
    "WeightsError",
    "WeightEntry",
    "list_weights",
    "get_entry",
    "find_weights",
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
    source: Dict[str, Any] = field(default_factory=dict)
    metrics: Dict[str, Any] = field(default_factory=dict)
    description: str = ""


def _manifest_path(directory: Optional[Path] = None) -> Path:
    return Path(directory or PRETRAINED_DIR) / MANIFEST


def _read_manifest(directory: Optional[Path] = None) -> Dict[str, dict]:
    path = _manifest_path(directory)
    if not path.exists():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["weights"]
        return {row["name"]: row for row in rows}
    except (ValueError, KeyError, TypeError) as err:
        raise WeightsError(f"{path} is not a valid weights manifest: {err}") from None


def list_weights(directory: Optional[Path] = None) -> List[WeightEntry]:
    """Every entry of the manifest, by name."""
    return [WeightEntry(**row) for _, row in sorted(_read_manifest(directory).items())]


def get_entry(name: str, directory: Optional[Path] = None) -> WeightEntry:
    """The manifest entry called ``name``, or WeightsError listing the known names."""
    rows = _read_manifest(directory)
    if name not in rows:
        known = ", ".join(sorted(rows)) or "none"
        raise WeightsError(f"unknown weights {name!r}; the manifest lists: {known}")
    return WeightEntry(**rows[name])


def torch_cache_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``): where torchvision keeps weights it downloaded."""
    return Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"


def find_weights(name: str, directory: Optional[Path] = None) -> Optional[Path]:
    """Where the file of ``name`` is: ``pretrained/``, then the user's torch cache; None if neither."""
    entry = get_entry(name, directory)
    for folder in (Path(directory or PRETRAINED_DIR), torch_cache_dir()):
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


def verify_weights(name: str, directory: Optional[Path] = None) -> Path:
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


def load_state_dict(name: str, directory: Optional[Path] = None, device: str = "cpu") -> Dict[str, torch.Tensor]:
    """Verify and load ``name``'s tensors (safetensors, or a ``weights_only`` state dict)."""
    entry = get_entry(name, directory)
    path = verify_weights(name, directory)
    if entry.format == "safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=device)
    if entry.format == "pth":
        return torch.load(path, map_location=device, weights_only=True)
    raise WeightsError(f"weights {name!r} have format {entry.format!r}; expected one of {', '.join(FORMATS)}")


def save_weights(name: str, state_dict: Dict[str, torch.Tensor], *, license: str, source: Dict[str, Any],
                 metrics: Dict[str, Any], description: str = "", directory: Optional[Path] = None) -> WeightEntry:
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
