"""The one place that decides where tensors live and which autocast dtype to use.

Order of preference is ``cuda`` > ``mps`` > ``cpu``. The app's ``--device`` flag (or a
notebook call to :func:`set_device`) overrides it for the whole process.
"""

from __future__ import annotations

import torch

__all__ = [
    "DEVICE_CHOICES",
    "resolve_device",
    "set_device",
    "get_device",
    "autocast_dtype",
    "describe_device",
]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")

_chosen: torch.device | None = None


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(preference: str | torch.device = "auto") -> torch.device:
    """Turn a preference into a usable ``torch.device``.

    Args:
        preference: ``"auto"`` (cuda > mps > cpu), ``"cpu"``, ``"cuda"``, ``"cuda:N"``,
            ``"mps"`` or a ``torch.device``.

    Returns:
        torch.device: the device to run on.

    Raises:
        ValueError: the preference is unknown, or names an accelerator this machine lacks.
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    pref = str(preference).strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = pref.partition(":")
    if kind not in DEVICE_CHOICES or (index and not index.isdigit()):
        raise ValueError(
            f"device must be one of {', '.join(DEVICE_CHOICES)} or 'cuda:N', got {preference!r}"
        )
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU here; use --device auto or cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(
                f"device {pref!r} was asked for, but only {torch.cuda.device_count()} CUDA GPU(s) are visible"
            )
    if kind == "mps" and not _mps_available():
        raise ValueError("device 'mps' was asked for, but this PyTorch build has no usable Apple MPS backend")
    if index and kind != "cuda":
        raise ValueError(f"only cuda takes an index, got {preference!r}")
    return torch.device(pref)


def set_device(preference: str | torch.device = "auto") -> torch.device:
    """Fix the process-wide device (what ``--device`` does) and return it."""
    global _chosen
    _chosen = resolve_device(preference)
    return _chosen


def get_device() -> torch.device:
    """The process-wide device: the one :func:`set_device` fixed, else ``auto``."""
    return _chosen if _chosen is not None else resolve_device("auto")


def autocast_dtype(device: torch.device | str | None = None, *, cpu_bfloat16: bool = False) -> torch.dtype | None:
    """The mixed-precision dtype for ``torch.autocast`` on ``device``, or None for full fp32.

    The one place that decides it: TinySSD and FCN training and inference, and style transfer
    with ``amp=True``, all use this. CUDA gets bfloat16 where the GPU supports it (Ampere and
    newer), float16 otherwise (training adds a GradScaler then). MPS and the CPU run in float32:
    float16 training on MPS would need a GradScaler that backend may lack, and bfloat16 autocast
    on a CPU is slower than float32 on most laptops and changes results learners compare with
    the book. ``cpu_bfloat16=True`` asks for bfloat16 on the CPU anyway: CPUs with AMX or
    AVX-512 BF16 (e.g. Xeon Sapphire Rapids) train convolutions markedly faster in it.
    """
    device = get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_bfloat16:
        return torch.bfloat16
    return None


def describe_device(device: torch.device | str | None = None) -> str:
    """One human line naming the device, e.g. ``"cuda:0 (NVIDIA H100 80GB HBM3)"``."""
    device = get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        try:
            index = device.index if device.index is not None else torch.cuda.current_device()
            return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
        except (RuntimeError, AssertionError):  # e.g. ZeroGPU before a GPU is attached to the process
            return "cuda"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"
