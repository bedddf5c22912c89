"""One vocabulary for checking arguments, and the one error that reports a bad one.

Every public function of vision_core checks its arguments once, when it is called, with these
helpers, and raises :class:`ArgumentError`, which names the argument, what it allows and what
it got. The dashboard's panels show that message as it is (in both languages) instead of
checking again; their components bound what a person can enter in the first place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["ArgumentError", "describe", "is_int", "is_real", "check_int", "check_real", "check_bool",
           "check_choice", "check_pair"]


class ArgumentError(ValueError):
    """A bad argument: ``"{name} must be {allowed}, got {got}"``.

    A ``ValueError``, so code that catches those keeps working. ``name``, ``allowed`` and ``got``
    stay readable on the exception for callers that render their own message.
    """

    def __init__(self, name: str, allowed: str, got: Any):
        self.name, self.allowed, self.got = name, allowed, got
        super().__init__(f"{name} must be {allowed}, got {got}")


def describe(value: Any) -> str:
    """A short account of ``value`` for a message: a tensor's or array's shape, else its type's name."""
    if isinstance(value, (Tensor, np.ndarray)):
        return str(tuple(value.shape))
    return type(value).__name__


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, (Integral, np.integer)) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite real number (Python or numpy), not a bool."""
    return isinstance(value, (Real, np.floating)) and not isinstance(value, bool) and math.isfinite(value)


def check_int(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    """``value`` as an ``int`` in ``[lo, hi]`` (no upper end when ``hi`` is None)."""
    if not is_int(value) or value < lo or (hi is not None and value > hi):
        allowed = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
        raise ArgumentError(name, allowed, repr(value))
    return int(value)


def check_real(value: Any, name: str, lo: float, hi: float | None = None, lo_open: bool = False) -> float:
    """``value`` as a finite ``float`` in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``; no upper end
    when ``hi`` is None)."""
    ok = is_real(value) and (lo < value if lo_open else lo <= value) and (hi is None or value <= hi)
    if not ok:
        if hi is None:
            allowed = f"a finite number {'>' if lo_open else '>='} {lo:g}"
        else:
            allowed = f"a number in {'(' if lo_open else '['}{lo}, {hi}]"
        raise ArgumentError(name, allowed, repr(value))
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    """``value``, which must be ``True`` or ``False`` (not 0 or 1)."""
    if not isinstance(value, bool):
        raise ArgumentError(name, "True or False", repr(value))
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value``, which must be one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(name, f"one of {', '.join(choices)}", repr(value))
    return value


def check_pair(value: Any, name: str, lo: int, hi: int | None = None,
               parts: tuple[str, str] = ("height", "width")) -> tuple[int, int]:
    """``value`` as a pair of integers in ``[lo, hi]``, e.g. an image's ``(height, width)``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ArgumentError(name, f"a pair ({parts[0]}, {parts[1]}) of integers {span}", repr(value))
    return (check_int(value[0], f"{name}[0] ({parts[0]})", lo, hi),
            check_int(value[1], f"{name}[1] ({parts[1]})", lo, hi))
