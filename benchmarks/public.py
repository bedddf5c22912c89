"""What one request can cost a public server: per image endpoint, the peak memory for the worst
picture shapes still allowed and for shapes now refused, on the CPU; then, per table endpoint, the
server CPU for the largest table allowed (:mod:`benchmarks.tables`).

    python -m benchmarks.public

Each row calls the panel's handler in this process with the decoded picture, as the server does
after Gradio decodes an upload, and reports the peak resident memory above what the process held
before the call (Linux's high-water mark, reset through ``/proc/self/clear_refs``; elsewhere a
thread samples the RSS every 2 ms), the server CPU time the call used (all threads), what came
back, and the largest picture in it (a picture longer than 16383 px cannot be sent as WebP).
Memory is given back (:func:`panels.common.release_memory`) before every row.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from benchmarks.common import machine_line, print_table

HEADER = ["endpoint", "input", "answer", "peak RSS increase", "server CPU"]

_STATUS = "/proc/self/status"


def rss_bytes() -> int:
    """This process's resident memory now (Linux's ``/proc``; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux and BSD


def _high_water_mark() -> int | None:
    try:
        with open(_STATUS) as f:
            return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) * 1024
    except (OSError, AttributeError):
        return None


def _reset_high_water_mark() -> bool:
    """Start a new peak at the present RSS (Linux 4.0+: writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _high_water_mark() is not None
    except OSError:
        return False


def peak_rss_increase(fn: Callable[[], Any]) -> tuple[Any, int, float]:
    """``(fn()'s result or the error it raised, peak RSS above the start in bytes, CPU seconds)``."""
    from panels.common import release_memory

    release_memory()  # the previous row's freed heap must not hide this one's growth
    start = rss_bytes()
    exact = _reset_high_water_mark()
    sampled, done = [start], threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            sampled.append(rss_bytes())

    sampler = None if exact else threading.Thread(target=sample, daemon=True)
    if sampler:
        sampler.start()
    cpu = time.process_time()
    try:
        result: Any = fn()
    except Exception as err:  # gr.Error (a refusal) or anything else: reported, not raised
        result = err
    cpu = time.process_time() - cpu
    done.set()
    if sampler:
        sampler.join()
    peak = _high_water_mark() if exact else max(sampled)
    return result, max(0, peak - start), cpu


def _pictures(result: Any) -> Iterator[np.ndarray]:
    """The ``[H, W, 3]`` arrays in a handler's result (a tuple of outputs, or one)."""
    for value in result if isinstance(result, (tuple, list)) else (result,):
        if isinstance(value, np.ndarray) and value.ndim == 3:
            yield value


def answer(result: Any) -> str:
    """``"refused: <its message>"`` or ``"answered; largest picture 512 × 512 px"``."""
    if isinstance(result, Exception):
        first = str(result).splitlines()[0] if str(result) else type(result).__name__
        return f"refused: {first[first.find(':') + 1:].strip()[:70]}"
    sides = [(p.shape[1], p.shape[0]) for p in _pictures(result)]
    if not sides:
        return "answered (figures only: sent downscaled to 1024 px)"
    w, h = max(sides, key=lambda s: s[0] * s[1])
    return f"answered; largest picture {w} × {h} px"


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _photo(h: int, w: int) -> np.ndarray:
    """A ``uint8 [h, w, 3]`` picture with some structure (selective search finds regions in it)."""
    y, x = np.ogrid[:h, :w]
    return np.stack([(x * 255 // max(w, 1)) + 0 * y, (y * 255 // max(h, 1)) + 0 * x,
                     ((x // 64 + y // 64) % 2) * 200], axis=2).astype(np.uint8)


def _last(frames: Iterator[Any]) -> Any:
    last = None
    for last in frames:
        pass
    return last


def endpoints(style_steps: int = 2) -> dict[str, Callable[[np.ndarray], Any]]:
    """Each image endpoint's handler with the page's default settings, given a decoded picture."""
    from panels import anchors as A
    from panels import boxes as B
    from panels import regions as R
    from panels import ssd as SSD
    from panels import style as S
    from panels.segmentation import bilinear, segment

    table = {"headers": ["label", "x1", "y1", "x2", "y2"], "data": [["a", 1, 2, 30, 40]]}
    style = _photo(256, 256)
    return {
        "/boxes": lambda rgb: B.render_boxes(rgb, table, "xyxy", "pixels"),
        "/anchor_boxes": lambda rgb: A.render_anchor_boxes(rgb, 4, 4, "0.75, 0.5, 0.25", "1, 2, 0.5", 1, 1, True),
        "/regions": lambda rgb: R.render_regions(rgb, "fast", 30, 3, 16, 2, 2),
        "/ssd_detect": lambda rgb: SSD.detect(rgb, 0.5),
        "/ssd_anchors": lambda rgb: SSD.stage_anchors(rgb, 1),
        "/fcn_segment": lambda rgb: segment.segment(rgb, "fcn"),
        "/bilinear": lambda rgb: bilinear.upsample(rgb, 4),
        "/style_transfer": lambda rgb: _last(S.run(rgb, style, "efficientnet_lite0", 1.0, 4.0, 1.0, 0.1, style_steps,
                                                   S.MAX_HEIGHT, True)),
    }


def shapes() -> list[tuple[str, tuple[int, int]]]:
    """(what it is, (height, width)): the worst shapes still allowed, then shapes refused now."""
    from panels.common import MAX_ASPECT_RATIO, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

    most = int((MAX_IMAGE_PIXELS * 3 / 4) ** 0.5)  # the most pixels, 4:3
    strip = MAX_IMAGE_SIDE // MAX_ASPECT_RATIO + 1  # the longest side at the most extreme aspect allowed
    return [
        ("most pixels allowed", (most, most * 4 // 3)),
        (f"longest strip allowed (1:{MAX_ASPECT_RATIO})", (strip, min(MAX_IMAGE_SIDE, strip * MAX_ASPECT_RATIO))),
        (f"thinnest strip allowed (1:{MAX_ASPECT_RATIO})", (8, 8 * MAX_ASPECT_RATIO)),  # TinySSD needs 8 px
        ("refused: 8 × 20000 strip", (8, 20000)),
        ("refused: 2 × 2000 strip", (2, 2000)),
    ]


def rows(only: set[str] | None = None, style_steps: int = 2) -> list[list[str]]:
    """One row per (image endpoint, shape): ``HEADER``'s columns. ``only``: the endpoints to run."""
    out = []
    pictures = {name: _photo(*shape) for name, shape in shapes()}
    for endpoint, handler in endpoints(style_steps).items():
        if only and endpoint not in only:
            continue
        for name, picture in pictures.items():
            result, peak, cpu = peak_rss_increase(lambda: handler(picture))
            h, w = picture.shape[:2]
            out.append([endpoint, f"{name}: {w} × {h} px", answer(result), _mib(peak), f"{cpu:.2f} s"])
            del result
    return out


def main() -> None:
    from benchmarks import tables

    print(machine_line())  # absolute numbers mean little without the machine they came from
    print("\nPictures: the worst shapes still allowed, and shapes now refused\n")
    print_table(rows(), HEADER)
    print("\nTables: server CPU at each endpoint's largest allowed table\n")
    print_table(tables.rows(), tables.HEADER)


if __name__ == "__main__":
    main()
