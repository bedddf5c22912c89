"""How a network runs on a device: mixed precision, eval mode, memory layout, ImageNet normalisation.

The one copy of the plumbing that TinySSD, FCN and style transfer share. Which dtype autocast
uses is decided by :func:`vision_core.device.autocast_dtype`, not here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "autocast", "eval_mode", "net_device", "to_device_layout",
           "imagenet_normalize", "imagenet_denormalize", "cudnn_autotune"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # channel means of 0..1 pixels, what ImageNet networks expect
IMAGENET_STD = (0.229, 0.224, 0.225)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``device``'s type, or a no-op for ``dtype=None``."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


@contextlib.contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in eval mode inside the block, back in its own mode after it."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


def net_device(net: nn.Module) -> torch.device:
    """The device of ``net``'s first parameter."""
    return next(net.parameters()).device


def to_device_layout(X: Tensor, device: torch.device) -> Tensor:
    """``X`` channels-last on CUDA, where cuDNN's convolutions prefer it; unchanged elsewhere."""
    return X.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else X


def imagenet_normalize(pixels: Tensor) -> Tensor:
    """Float ``0..255`` pixels ``[..., 3, H, W]`` -> ``(pixel / 255 - mean) / std`` per channel."""
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=pixels.device).view(3, 1, 1)
    return (pixels / 255 - mean) / std


def imagenet_denormalize(X: Tensor) -> Tensor:
    """:func:`imagenet_normalize`'s inverse: ``[..., 3, H, W]`` -> ``uint8`` pixels, rounded and clamped."""
    mean = torch.tensor(IMAGENET_MEAN, device=X.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=X.device).view(3, 1, 1)
    return ((X.float() * std + mean) * 255).clamp(0, 255).round().to(torch.uint8)


@contextlib.contextmanager
def cudnn_autotune(enabled: bool) -> Iterator[None]:
    """cuDNN autotuning (``torch.backends.cudnn.benchmark``) on inside the block when ``enabled``.

    The flag is process-wide, so the block puts back the value it found when it ends, however it
    ends: in a generator, when the generator finishes, raises or is closed. Worth it for a run
    that convolves one input shape many times (cuDNN then times its algorithms once and keeps
    the fastest); ``enabled=False`` leaves the flag alone.
    """
    if not enabled:
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous
