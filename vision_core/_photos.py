"""Photos as the data readers give them, and as pictures go back out: checked once, converted once.

A photo batch is ``Tensor[N, 3, H, W]``, ``uint8`` or floating point holding ``0..255`` (the
book feeds ``read_image(...).float()``). TinySSD and FCN check their inputs with
:func:`check_photos` and turn a photo into a ``uint8`` picture with :func:`to_uint8`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ._checks import ArgumentError, describe

__all__ = ["check_photos", "to_uint8", "to_numpy_image"]


def check_photos(images: object, name: str = "images", min_side: int = 1) -> None:
    """Raise :class:`ArgumentError` unless ``images`` is a non-empty ``Tensor[N, 3, H, W]`` of
    ``0..255`` values (``uint8`` or floating point) with ``H, W >= min_side``."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ArgumentError(name, "a tensor of shape [N, 3, H, W]", describe(images))
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ArgumentError(name, "uint8 or floating point (values 0..255)", str(images.dtype))
    if images.shape[0] == 0 or min(images.shape[-2:]) < min_side:
        raise ArgumentError(name, f"a batch of at least one image of at least {min_side} x {min_side} pixels",
                            str(tuple(images.shape)))


def to_uint8(image: Tensor) -> Tensor:
    """``[..., H, W]`` ``0..255`` values -> ``uint8`` on the CPU, rounded and clamped (uint8 passes as is)."""
    image = image.detach().cpu()
    return image if image.dtype == torch.uint8 else image.float().clamp(0, 255).round().to(torch.uint8)


def to_numpy_image(image: Tensor) -> np.ndarray:
    """A photo ``Tensor[3, H, W]`` (``0..255``) -> ``uint8 [H, W, 3]`` numpy, what the pages show."""
    return to_uint8(image).permute(1, 2, 0).contiguous().numpy()
