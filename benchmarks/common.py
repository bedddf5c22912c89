"""Timing helpers for the benchmark scripts: median wall time, synchronised on CUDA, and the
machine the numbers come from (an absolute time means little without its CPU or GPU)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch


def cpu_description(cpuinfo: str | None = None) -> str:
    """``"AMD EPYC, 2 cores, AVX2 (no AVX-512)"``: the CPU's model, the cores this process may use,
    and the x86 vector extensions PyTorch's CPU kernels pick from (AVX-512's vectors are twice as
    wide as AVX2's). ``cpuinfo``: the text of ``/proc/cpuinfo`` (read here when None); where it
    is missing (not Linux) the model is ``platform.processor()`` and the extensions are left out.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's; all are alike
    model = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = [model, f"{cores} core{'s' if cores != 1 else ''}"]
    if "flags" in fields:
        flags = set(fields["flags"].split())
        avx2, avx512 = "avx2" in flags, "avx512f" in flags
        parts.append("AVX2, AVX-512" if avx2 and avx512 else "AVX2 (no AVX-512)" if avx2 else
                     "AVX-512" if avx512 else "no AVX2")
    return ", ".join(parts)


def machine_line() -> str:
    """The machine a benchmark ran on, for the first line of its output, e.g.
    ``"AMD EPYC, 2 cores, AVX2 (no AVX-512), torch 2.14.1"``, then ``", GPU: <name>"`` where CUDA
    is available. README quotes absolute times together with this line."""
    line = f"{cpu_description()}, torch {torch.__version__.split('+')[0]}"
    if torch.cuda.is_available():
        line += f", GPU: {torch.cuda.get_device_name(0)}"
    return line


def timeit(fn: Callable[[], object], device: torch.device, repeat: int = 7, warmup: int = 2) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` runs after ``warmup`` runs."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of ``fn`` (a whole epoch or run), synchronised on CUDA at both ends."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def print_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    """A GitHub-flavoured Markdown table, pasteable into README."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def devices() -> list[torch.device]:
    out = [torch.device("cpu")]
    if torch.cuda.is_available():
        out.append(torch.device("cuda"))
    return out


def save_labelled_grid(rows: Sequence[Sequence[tuple[str, object]]], tile_shape: tuple[int, int], path: str) -> None:
    """Write pictures side by side, each under its label: ``rows`` of ``(label, uint8 [h, w, 3])``
    tiles, all ``tile_shape = (h, w)``; the folder is made if missing."""
    from pathlib import Path

    from PIL import Image, ImageDraw

    h, w, label_h = tile_shape[0], tile_shape[1], 18
    canvas = Image.new("RGB", (w * max(len(r) for r in rows), (h + label_h) * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, tiles in enumerate(rows):
        for c, (label, image) in enumerate(tiles):
            canvas.paste(Image.fromarray(image), (c * w, r * (h + label_h) + label_h))
            draw.text((c * w + 4, r * (h + label_h) + 3), label, fill="black")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
