"""Hugging Face ZeroGPU: GPU work runs inside ``@spaces.GPU`` when the ``spaces`` package is there
(docs/ARCHITECTURE.md, "ZeroGPU").

On a ZeroGPU Space a GPU is attached to the process only while a function decorated with
``spaces.GPU`` runs, for at most the ``duration`` it asked for; a shorter request gets a
visitor through the Space's queue sooner. So each job asks for what its own settings need:
``duration`` is a function of the job's arguments (steps, image size, epochs, images), called
by ``spaces`` with the same arguments as the job, not one fixed number.

Elsewhere (``spaces`` not importable: a laptop, a plain GPU server, CI) :func:`on_gpu` returns
the function itself, so nothing changes. The panels wrap their handlers when they wire events
(the plain function stays callable at build time, e.g. to pre-fill a result). vision_core
never calls ``torch.compile``, which ZeroGPU does not support; models are loaded on the CPU and
moved to the device inside the decorated call, where ZeroGPU has the GPU attached.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch

MIN_SECONDS = 10   # model loading and the first CUDA call fit in this
# A visitor's daily ZeroGPU quota is 2 minutes unauthenticated, 3.5 signed in (docs, 2026), and a call
# asking for more than is left is refused: so no job asks for more than 2 minutes. ZeroGPU ends
# a longer job at that point; the page keeps the curves and preview it had streamed.
MAX_SECONDS = 120

Duration = float | Callable[..., float]
M = TypeVar("M", bound=torch.nn.Module)


def zero_gpu() -> bool:
    """Whether the ``spaces`` package (Hugging Face's ZeroGPU runtime) is importable here."""
    try:
        return importlib.util.find_spec("spaces") is not None
    except (ImportError, ValueError):
        return False


def clamp_seconds(value: Any) -> int:
    """A duration in whole seconds within [MIN_SECONDS, MAX_SECONDS]; MAX_SECONDS when it is not a number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return MAX_SECONDS
    if not math.isfinite(value):
        return MAX_SECONDS
    return int(min(max(math.ceil(value), MIN_SECONDS), MAX_SECONDS))


def on_gpu(fn: Callable, duration: Duration) -> Callable:
    """``fn`` wrapped in ``spaces.GPU(duration=...)`` on ZeroGPU; ``fn`` itself elsewhere.

    Args:
        fn: the event handler (a function or a generator function).
        duration: seconds, or a function of ``fn``'s arguments returning seconds; the result is
            clamped to [MIN_SECONDS, MAX_SECONDS]. Arguments it cannot read (bad input, which
            ``fn`` itself will reject with a message) give MAX_SECONDS.
    """
    if not zero_gpu():
        return fn
    import spaces

    def seconds(*args: Any, **kwargs: Any) -> int:
        if not callable(duration):
            return clamp_seconds(duration)
        try:
            return clamp_seconds(duration(*args, **kwargs))
        except (TypeError, ValueError, ZeroDivisionError):
            return MAX_SECONDS

    return spaces.GPU(duration=seconds)(fn)


def _number(value: Any, default: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) and value > 0 else default


def style_seconds(content: Any, style: Any, network: Any, content_weight: Any, style_log10: Any, tv_log10: Any,
                  lr: Any, steps: Any, height: Any, *rest: Any, **kwargs: Any) -> float:
    """Style transfer: VGG-19 eager takes about 4.3 s for the book's 500 steps at 300 x 450 on an
    H200 (docs/ARCHITECTURE.md, "ZeroGPU"); 8 ms per step per 135,000 pixels, twice that for margin,
    plus loading."""
    pixels = (_number(height, 300) ** 2) * 1.5
    return 10 + 0.016 * _number(steps, 500) * pixels / 135_000


def ssd_train_seconds(epochs: Any, batch_size: Any, lr: Any, num_train: Any, *rest: Any, **kwargs: Any) -> float:
    """TinySSD training: about 1 s per 1,000 images on a GPU (an estimate, not yet measured on a named GPU);
    three times that for margin."""
    return 15 + 3e-3 * _number(epochs, 20) * _number(num_train, 1000)


def fcn_train_seconds(epochs: Any, batch_size: Any, lr: Any, num_train: Any, *rest: Any, **kwargs: Any) -> float:
    """FCN training on 320 x 480 crops: about 10 ms per image on a GPU (an estimate, not yet measured on a
    named GPU); four times that for margin, plus generating the synthetic set on first use (about 20 s on
    the 2-core CPU of an earlier session, model not recorded)."""
    return 30 + 0.04 * _number(epochs, 5) * _number(num_train, 600)


INFERENCE_SECONDS = 15  # one detection or segmentation, model load included


def park(module: M) -> M:
    """On ZeroGPU, move a module kept between calls back to the CPU (the GPU leaves with the call).

    Elsewhere the module stays where it is. Returns the module.
    """
    return module.cpu() if zero_gpu() else module


def inference_device() -> str | torch.device:
    """Where one-image inference runs: the CPU on ZeroGPU (50-70 ms there, less than attaching a
    GPU costs a visitor), else the app's device."""
    from vision_core.device import get_device

    return "cpu" if zero_gpu() else get_device()
