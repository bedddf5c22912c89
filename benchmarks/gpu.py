"""One command that proves the GPU path: vision_core's CUDA checks and every CUDA benchmark row.

    python -m benchmarks.gpu [--device cuda] [--out DIR]     # on a GPU: the issue's sizes
    python -m benchmarks.gpu --device cpu --quick            # the same code paths, small (in the test suite)

What it runs, on ``--device`` (default: cuda when there is one):

* **checks**, the assertions of vision_core's CUDA tests at the level of vision_core (no gradio):
  results stay on the device and equal the CPU's, torchvision's and the book's (d2l); TinySSD and
  FCN train with autocast and channels-last, then give their GPU memory back; one style step
  captured as a CUDA graph gives eager's image; a real out-of-memory error leaves no memory
  behind and the next run works; Stop ends style transfer, SSD and FCN training before the next
  step or batch and gives the memory back; DDP on NCCL (with two or more GPUs).
* **benchmarks**, each ratio measured side by side in this run, with the issue's bars:
  multibox_target, multibox_detection and nms against d2l 1.0.3 and torchvision; a TinySSD
  epoch against the book's loop, and 20 epochs of 1,000 images with the final val metrics; an
  FCN epoch against the book's loop; style transfer 500 steps at 300 x 450, eager / CUDA graph /
  graph + bf16, against the book's loop, with each image's PSNR against eager float32.

It writes ``gpu.md`` (the table) and ``gpu.json`` (every number) under ``--out`` (default:
``$OUT`` when set, else ``gpu-results/``), prints the table, and exits 1 when a check or a
benchmark broke (a bar not met is reported, not a failure: the bars are the issue's record).

Needs torch, torchvision, numpy and vision_core's own needs (safetensors); gradio and plotly are
never imported. The book's rows need d2l 1.0.3, its pure-Python file without its pinned
dependencies: ``bash benchmarks/gpu_deps.sh`` puts it (and the offline style network and
pycocotools for mAP, both optional) into the ignored folder ``.gpu-deps/``, which this script
adds to ``sys.path`` by itself; a row whose baseline is missing says so.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
DEPS = ROOT / ".gpu-deps"
if DEPS.is_dir() and str(DEPS) not in sys.path:
    sys.path.append(str(DEPS))  # appended: the machine's own packages win over carried ones

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision.ops as tv  # noqa: E402

import vision_core as vc  # noqa: E402
from benchmarks import anchors as bench_anchors  # noqa: E402
from benchmarks import segmentation as bench_seg  # noqa: E402
from benchmarks import ssd as bench_ssd  # noqa: E402
from benchmarks import style as bench_style  # noqa: E402
from benchmarks.common import fmt_time, machine_line, time_once, timeit  # noqa: E402
from vision_core import style as vstyle  # noqa: E402
from vision_core.models import style_networks  # noqa: E402
from vision_core.data.bananas import load_bananas  # noqa: E402
from vision_core.device import describe_device, resolve_device  # noqa: E402
from vision_core.examples import load_content_photo, load_style_image  # noqa: E402
from vision_core.fcn import FCN, predict_fcn, train_fcn  # noqa: E402
from vision_core.ssd import TinySSD, evaluate_ssd, predict, train_ssd  # noqa: E402
from vision_core.data.voc_synthetic import synthetic_voc_dir  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """The workloads: the issue's on a GPU, small ones for ``--quick``."""

    batch: int                  # images per multibox_target / multibox_detection call
    fmaps: tuple                # TinySSD's five feature-map sides (256 x 256 input: 32 ... 1)
    nms_boxes: tuple            # boxes per nms call against torchvision
    nms_d2l_boxes: int          # boxes per nms call against the book's (a host sync per kept box)
    ssd_images: int             # training images of one TinySSD epoch
    ssd_val: int
    ssd_epochs: int             # the long TinySSD run
    fcn_items: int              # crops of one FCN epoch
    fcn_crop: tuple
    fcn_batch: int
    style_steps: int
    style_shape: tuple
    repeat: int                 # timed calls per short workload (median)


FULL = Sizes(batch=32, fmaps=(32, 16, 8, 4, 1), nms_boxes=(1000, 10000), nms_d2l_boxes=3000, ssd_images=1000,
             ssd_val=100, ssd_epochs=20, fcn_items=600, fcn_crop=(320, 480), fcn_batch=32, style_steps=500,
             style_shape=(300, 450), repeat=5)
QUICK = Sizes(batch=2, fmaps=(8, 4, 2, 1, 1), nms_boxes=(200,), nms_d2l_boxes=100, ssd_images=8, ssd_val=2,
              ssd_epochs=2, fcn_items=8, fcn_crop=(64, 96), fcn_batch=4, style_steps=4, style_shape=(32, 48),
              repeat=1)

# The bars, for the record; judged on CUDA at the full sizes only.
BARS = {
    "multibox_target": ("ratio", 10.0),
    "multibox_detection": ("ratio", 200.0),
    "ssd_long": ("seconds", 5.0),
    "fcn_epoch": ("ratio", 3.0),
    "style_500": ("seconds", 1.0),
}


class Skip(Exception):
    """A check that cannot run on this machine (e.g. DDP on NCCL with one GPU); not a failure."""


@dataclass
class Row:
    """One benchmark row: ours against a baseline on the same workload, device and run."""

    workload: str
    ours_s: float | None
    baseline: str = ""
    baseline_s: float | None = None
    bar: str = ""
    met: bool | None = None
    note: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.ours_s and self.baseline_s:
            return self.baseline_s / self.ours_s
        return None


class Report:
    """Runs checks and benchmarks one by one; a failure is recorded and the next one still runs."""

    def __init__(self, device: torch.device, sizes: Sizes, quick: bool):
        self.device, self.sizes, self.quick = device, sizes, quick
        self.judge_bars = device.type == "cuda" and not quick
        self.checks: list[dict[str, str]] = []
        self.rows: list[Row] = []
        self.errors: list[str] = []

    def check(self, name: str, fn: Callable[[], str | None]) -> None:
        start = time.perf_counter()
        try:
            status, detail = "pass", fn() or ""
        except Skip as why:
            status, detail = "skip", str(why)
        except Exception as err:  # noqa: BLE001 - one broken check must not hide the others
            status, detail = "fail", _one_line(err)
            traceback.print_exc()
        self.checks.append({"name": name, "status": status, "detail": detail,
                            "seconds": round(time.perf_counter() - start, 3)})
        print(f"[{status}] {name}{': ' + detail if detail else ''}", flush=True)

    def bench(self, name: str, fn: Callable[[], Iterator[Row]]) -> None:
        try:
            for row in fn():
                self.rows.append(row)
                print(f"[bench] {_row_cells(row, self.device)}", flush=True)
        except Exception as err:  # noqa: BLE001
            self.errors.append(f"{name}: {_one_line(err)}")
            self.rows.append(Row(f"{name}: broke", None, note=_one_line(err)))
            traceback.print_exc()

    def judge(self, row: Row, bar: str) -> Row:
        """Fill ``row``'s bar column (``BARS[bar]``) and, on CUDA at full size, whether it holds."""
        kind, value = BARS[bar]
        row.bar = f"≥ {value:g}x" if kind == "ratio" else f"≤ {value:g} s"
        if self.judge_bars:
            got = row.ratio if kind == "ratio" else row.ours_s
            row.met = got is not None and (got >= value if kind == "ratio" else got <= value)
        return row

    @property
    def ok(self) -> bool:
        return not self.errors and all(c["status"] != "fail" for c in self.checks)

    def markdown(self, header: str) -> str:
        lines = [header, "", "| check | result | detail |", "|---|---|---|"]
        lines += [f"| {c['name']} | {c['status']} | {c['detail']} |" for c in self.checks]
        lines += ["", "| workload | device | ours | baseline | ratio | bar | met |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {_row_cells(r, self.device)} |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def as_json(self, header: dict[str, Any]) -> dict[str, Any]:
        rows = [{**asdict(r), "ratio": r.ratio} for r in self.rows]
        return {**header, "ok": self.ok, "checks": self.checks, "benchmarks": rows, "errors": self.errors}


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}"


def _row_cells(row: Row, device: torch.device) -> str:
    ours = fmt_time(row.ours_s) if row.ours_s is not None else "—"
    base = f"{row.baseline} {fmt_time(row.baseline_s)}" if row.baseline_s is not None else row.baseline
    ratio = f"{row.ratio:.1f}x" if row.ratio is not None else ""
    met = "" if row.met is None else ("yes" if row.met else "**no**")
    workload = row.workload + (f" ({row.note})" if row.note else "")
    return " | ".join([workload, device.type, ours, base, ratio, row.bar, met])


# --- the book's code (d2l 1.0.3) ------------------------------------------------------------

def import_d2l():
    """``d2l.torch`` (the book's functions), or None when d2l is not installed.

    d2l's module imports IPython and matplotlib-inline for its plots, which a GPU machine may
    lack; none of the functions used here plot, so stand-ins take their place when missing.
    """
    for name, attrs in (("IPython", ()), ("IPython.display", ("display", "set_matplotlib_formats")),
                        ("matplotlib_inline", ()), ("matplotlib_inline.backend_inline",
                                                    ("set_matplotlib_formats",))):
        try:
            __import__(name)
        except ImportError:
            module = types.ModuleType(name)
            for attr in attrs:
                setattr(module, attr, lambda *args, **kwargs: None)
            sys.modules[name] = module
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)
    try:
        from d2l import torch as d2l
    except ImportError:
        return None
    return d2l


# --- data -----------------------------------------------------------------------------------

def _bananas(sizes: Sizes):
    """(train images, train labels, val images, val labels) of the generated banana set."""
    if sizes is FULL:
        train, val = load_bananas(split="train"), load_bananas(split="val")
    else:
        counts = dict(num_train=sizes.ssd_images, num_val=sizes.ssd_val)
        train, val = load_bananas(split="train", **counts), load_bananas(split="val", **counts)
    return train[0][:sizes.ssd_images], train[1][:sizes.ssd_images], val[0][:sizes.ssd_val], val[1][:sizes.ssd_val]


def _voc_dir(sizes: Sizes) -> Path:
    if sizes is FULL:
        return synthetic_voc_dir(0)
    height, width = sizes.fcn_crop
    return synthetic_voc_dir(0, num_train=sizes.fcn_items, num_val=2, height=height, width=width)


# --- checks ---------------------------------------------------------------------------------

def _allocated(device: torch.device) -> int:
    """Bytes the caching allocator has handed out on ``device`` (0 off CUDA, where it is not measured)."""
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    return torch.cuda.memory_allocated(device)


def _on(t: torch.Tensor, device: torch.device, what: str) -> None:
    if t.device.type != device.type:
        raise AssertionError(f"{what} is on {t.device}, expected {device.type}")


def _nbytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def check_anchors(device: torch.device, d2l) -> str:
    """multibox_prior / multibox_target on the device: stay there, equal the CPU's and the book's."""
    X = torch.zeros(1, 3, 20, 30, device=device)
    anchors = vc.multibox_prior(X, [0.4, 0.2], [1, 2, 0.5])
    _on(anchors, device, "anchors")
    torch.testing.assert_close(anchors.cpu(), vc.multibox_prior(X.cpu(), [0.4, 0.2], [1, 2, 0.5]))
    labels = bench_anchors.random_labels(3, torch.device("cpu"), seed=1, batch=4)
    labels[1, 2:, 0] = -1  # a padding row, as the data loaders make them
    ours = vc.multibox_target(anchors, labels.to(device))
    for got, want, name in zip(ours, vc.multibox_target(anchors.cpu(), labels), ("offsets", "masks", "classes")):
        _on(got, device, name)
        torch.testing.assert_close(got.cpu(), want, atol=1e-5, rtol=1e-5)
    if d2l is None:
        return "equal to the CPU's; d2l missing, so not compared with the book's"
    book = d2l.multibox_target(anchors, labels[:1].to(device))  # d2l reads padding rows as boxes: one image
    for got, want in zip(vc.multibox_target(anchors, labels[:1].to(device)), book):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    return "equal to the CPU's and to d2l.multibox_target on the device"


def check_nms_detection(device: torch.device, d2l) -> str:
    """nms and multibox_detection on the device: equal the CPU's and torchvision's."""
    boxes, scores = bench_anchors.random_boxes(500, torch.device("cpu"), seed=1)
    keep = vc.nms(boxes.to(device), scores.to(device), 0.5)
    _on(keep, device, "nms keep")
    if not torch.equal(keep.cpu(), vc.nms(boxes, scores, 0.5)):
        raise AssertionError("nms on the device keeps other boxes than on the CPU")
    if not torch.equal(keep, tv.nms(boxes.to(device), scores.to(device), 0.5)):
        raise AssertionError("nms on the device differs from torchvision.ops.nms")
    anchors = vc.multibox_prior(torch.zeros(1, 1, 6, 6), [0.5, 0.3], [1, 2, 0.5])
    cls_probs, offsets = bench_anchors.detector_outputs(torch.device("cpu"), seed=2, batch=2,
                                                        num_anchors=anchors.shape[1])
    out = vc.multibox_detection(cls_probs.to(device), offsets.to(device), anchors.to(device))
    _on(out, device, "detections")
    cpu = vc.multibox_detection(cls_probs, offsets, anchors)
    if not torch.equal(out[..., :1].cpu(), cpu[..., :1]):
        raise AssertionError("multibox_detection's classes differ between the device and the CPU")
    torch.testing.assert_close(out.cpu(), cpu, atol=1e-5, rtol=1e-5)
    return "nms = CPU = torchvision; multibox_detection = CPU"


def check_roi(device: torch.device, d2l) -> str:
    """roi_pool_grid and roi_align on the device equal torchvision's there."""
    g = torch.Generator().manual_seed(6)
    features = torch.randn(2, 8, 14, 10, generator=g)
    # Corners on whole feature cells (scale 1/8): no rounding tie can differ between devices.
    corners = torch.randint(0, 10, (40, 4), generator=g).float() * 8
    rois = torch.cat([torch.randint(0, 2, (40, 1), generator=g).float(),
                      torch.minimum(corners[:, :2], corners[:, 2:]), torch.maximum(corners[:, :2], corners[:, 2:])], 1)
    grid = vc.roi_pool_grid(features.to(device), rois.to(device), (3, 3), 1 / 8)
    _on(grid.pooled, device, "pooled")
    if not torch.equal(grid.pooled, tv.roi_pool(features.to(device), rois.to(device), (3, 3), 1 / 8)):
        raise AssertionError("roi_pool_grid differs from torchvision.ops.roi_pool on the device")
    if not torch.equal(grid.pooled.cpu(), vc.roi_pool_grid(features, rois, (3, 3), 1 / 8).pooled):
        raise AssertionError("roi_pool_grid differs between the device and the CPU")
    aligned = vc.roi_align(features.to(device), rois.to(device), 2, spatial_scale=1 / 8)
    if not torch.equal(aligned, tv.roi_align(features.to(device), rois.to(device), 2, spatial_scale=1 / 8)):
        raise AssertionError("roi_align differs from torchvision.ops.roi_align on the device")
    return "roi_pool_grid = torchvision roi_pool = CPU; roi_align = torchvision"


def check_ssd(device: torch.device, data) -> str:
    """TinySSD trains (autocast, channels-last on CUDA), predicts, evaluates and gives its memory back."""
    train_x, train_y, val_x, val_y = data
    torch.manual_seed(0)
    reference = TinySSD(1).eval()
    X = val_x[:2].float()
    cpu, dev = reference(X), _copy(reference, device)(X.to(device))
    torch.testing.assert_close(dev[0].cpu(), cpu[0])
    torch.testing.assert_close(dev[1].cpu(), cpu[1], atol=1e-2, rtol=1e-3)  # TF32 convolutions on CUDA
    before = _allocated(device)
    net = TinySSD(1)
    records = list(train_ssd((train_x[:16], train_y[:16]), (val_x[:4], val_y[:4]), net=net, epochs=2, batch_size=8,
                             device=device, record_interval=0))
    if not records[-1].done or not all(math.isfinite(v) for r in records for v in r.metrics.values()):
        raise AssertionError(f"training did not end with finite metrics: {records[-1]}")
    if next(net.parameters()).device.type != device.type:
        raise AssertionError("the trained network left the device")
    left = _allocated(device) - before
    if left > 8 * _nbytes(net) + (1 << 22):
        raise AssertionError(f"{left / 2**20:.1f} MiB still allocated after training (the net is "
                             f"{_nbytes(net) / 2**20:.1f} MiB)")
    rows = predict(net, val_x[:2], threshold=0.0)
    if len(rows) != 2 or rows[0].device.type != "cpu":
        raise AssertionError("predict did not give one CPU table per image")
    metrics = evaluate_ssd(net, val_x[:4], val_y[:4], device=device, with_map=False)
    if not 0.0 <= metrics["class_err"] <= 1.0:
        raise AssertionError(f"class_err {metrics['class_err']} outside [0, 1]")
    return f"{len(records)} records, {left / 2**20:.1f} MiB left after training (net {_nbytes(net) / 2**20:.1f} MiB)"


def check_fcn(device: torch.device, items) -> str:
    """FCN trains (autocast, channels-last on CUDA), predicts and gives its memory back."""
    images = torch.stack([x for x, _ in items])
    labels = torch.stack([y for _, y in items])
    torch.manual_seed(0)
    net = FCN(21)
    before = _allocated(device)
    records = list(train_fcn((images, labels), net=net, epochs=1, batch_size=min(4, len(items)), device=device,
                             record_interval=0))
    if not records[-1].done or not all(math.isfinite(v) for r in records for v in r.metrics.values()):
        raise AssertionError(f"training did not end with finite metrics: {records[-1]}")
    if records[-1].preview is None:
        raise AssertionError("no preview after the epoch")
    left = _allocated(device) - before
    if left > 8 * _nbytes(net) + (1 << 22):
        raise AssertionError(f"{left / 2**20:.1f} MiB still allocated after training")
    pred = predict_fcn(net, images[0])
    if tuple(pred.shape[-2:]) != tuple(images.shape[-2:]):
        raise AssertionError(f"predict_fcn gave {tuple(pred.shape)} for a {tuple(images.shape[-2:])} image")
    net_cpu = _copy(net, torch.device("cpu")).eval()
    X = images[:1].float() / 255
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(X.to(device)).float().cpu(), net_cpu(X), atol=5e-2, rtol=1e-2)
    return f"{len(records)} records, {left / 2**20:.1f} MiB left after training"


def _copy(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    return copy.deepcopy(net).to(device)


def _style_inputs():
    """A content photo and a style image, uint8 ``[H, W, 3]``, drawn here (no file, no network)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:144]
    content = (np.stack([xx / 144, yy / 96, (xx + yy) / 240], axis=-1) * 200 + 20).astype(np.uint8)
    style = np.clip(127 + 100 * np.sin(xx / 5.0)[..., None] + rng.normal(0, 30, (96, 144, 3)), 0, 255)
    return content, style.astype(np.uint8)


def _style_taps():
    torch.manual_seed(0)
    return style_networks.vgg19_taps(None)  # random weights: the arithmetic, not the picture, is checked


def check_style_graph(device: torch.device) -> str:
    """One style step captured as a CUDA graph gives eager's image and losses."""
    content, style = _style_inputs()
    taps = _style_taps()
    kwargs = dict(steps=12, image_shape=(64, 96), device=device, frame_interval=0, lr=0.05)
    eager = list(vc.style_transfer(content, style, taps, cuda_graph=False, **kwargs))
    if device.type != "cuda":
        if not eager[-1].done or eager[-1].step != 12:
            raise AssertionError(f"the eager run ended at {eager[-1].step}: {eager[-1].message}")
        return "eager only: CUDA graphs need CUDA"
    graph = list(vc.style_transfer(content, style, taps, cuda_graph=True, **kwargs))
    if "CUDA graph unavailable" in graph[-1].message:
        raise AssertionError(graph[-1].message)
    psnr = bench_style._psnr(graph[-1].preview, eager[-1].preview)
    if psnr < 40:
        raise AssertionError(f"the graph's image is {psnr:.1f} dB from eager's (want ≥ 40)")
    a, b = graph[-1].metrics["total"], eager[-1].metrics["total"]
    if not math.isclose(a, b, rel_tol=1e-3):
        raise AssertionError(f"total loss {a} (graph) vs {b} (eager)")
    return f"captured; final image {psnr:.1f} dB from eager's, total loss {a:.5g} vs {b:.5g}"


def check_out_of_memory(device: torch.device) -> str:
    """An out-of-memory error in a step leaves no memory behind, and the next run works.

    On CUDA the step really asks for 1 TiB; elsewhere it raises ``torch.OutOfMemoryError`` itself
    (a CPU allocation that large may succeed lazily, or take the machine's memory).
    """
    content, style = _style_inputs()
    taps = _style_taps()
    kwargs = dict(steps=3, image_shape=(32, 48), device=device, frame_interval=0)
    list(vc.style_transfer(content, style, taps, **kwargs))  # the network now lives on the device
    before = _allocated(device)
    original = vstyle._Run._body

    def greedy(run):
        if device.type == "cuda":
            run.hog = torch.empty(1 << 40, dtype=torch.uint8, device=device)
        else:
            raise torch.OutOfMemoryError("simulated out of memory (CPU)")
        return original(run)

    vstyle._Run._body = greedy
    try:
        list(vc.style_transfer(content, style, taps, **kwargs))
        raise AssertionError("no out-of-memory error reached the caller")
    except torch.OutOfMemoryError:
        pass
    finally:
        vstyle._Run._body = original
    left = _allocated(device) - before
    if left > (1 << 20):
        raise AssertionError(f"{left / 2**20:.1f} MiB still allocated after the out-of-memory error")
    last = list(vc.style_transfer(content, style, taps, **kwargs))[-1]
    if not (last.done and last.message.startswith("done")):
        raise AssertionError(f"the run after it did not finish: {last.message}")
    return f"{left} bytes left after the error; the next run finished"


def _stopped_after(records: Iterator, stop: threading.Event, after: int):
    """Consume ``records``, setting ``stop`` once ``after`` have arrived: (step at Stop, last record)."""
    at, last = None, None
    for k, last in enumerate(records, 1):
        if k == after:
            stop.set()
            at = last.step
    return at, last


def check_stop(device: torch.device, data, items) -> str:
    """Stop ends style transfer, SSD and FCN training before their next step or batch, memory given back."""
    content, style = _style_inputs()
    taps = _style_taps()
    list(vc.style_transfer(content, style, taps, steps=2, image_shape=(32, 48), device=device))
    found = []
    train_x, train_y, _, _ = data
    images = torch.stack([x for x, _ in items])
    labels = torch.stack([y for _, y in items])
    jobs = {
        "style": lambda stop: vc.style_transfer(content, style, taps, steps=2000, image_shape=(64, 96),
                                                device=device, frame_interval=0, stop=stop),
        "ssd": lambda stop: train_ssd((train_x[:16], train_y[:16]), net=TinySSD(1), epochs=50, batch_size=4,
                                      device=device, record_interval=0, stop=stop),
        "fcn": lambda stop: train_fcn((images, labels), net=FCN(21), epochs=50, batch_size=2, device=device,
                                      record_interval=0, preview=False, stop=stop),
    }
    for name, job in jobs.items():
        torch.manual_seed(0)
        before = _allocated(device)
        stop = threading.Event()
        at, last = _stopped_after(job(stop), stop, after=3)
        if not (last.done and "stopped" in last.message):
            raise AssertionError(f"{name}: Stop did not end the run ({last.message})")
        if last.step > at + 1:
            raise AssertionError(f"{name}: Stop at step {at}, the run went on to step {last.step}")
        left = _allocated(device) - before
        # What may stay: a trained network (SSD/FCN, a few MiB); style's network was there before.
        if left > (64 << 20):
            raise AssertionError(f"{name}: {left / 2**20:.1f} MiB still allocated after Stop")
        found.append(f"{name} stopped at step {last.step} (Stop at {at}), {left / 2**20:.1f} MiB left")
    return "; ".join(found)


def check_ddp(device: torch.device, sizes: Sizes) -> str:
    """FCN under torchrun with DDP on NCCL: two GPUs end with bit-identical weights."""
    if device.type != "cuda":
        raise Skip("NCCL needs CUDA GPUs (gloo DDP on the CPU is tested by tests/test_fcn.py)")
    if torch.cuda.device_count() < 2:
        raise Skip(f"DDP on NCCL needs 2 GPUs; this machine has {torch.cuda.device_count()} (NCCL refuses two "
                   "processes on one GPU)")
    voc = _voc_dir(sizes)
    with tempfile.TemporaryDirectory() as reports:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "vision_core", "train",
                   "fcn", "--voc-dir", str(voc), "--crop", "64", "96", "--epochs", "1", "--batch-size", "8",
                   "--backbone", "none", "--device", "cuda", "--report-dir", reports]
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise AssertionError(f"torchrun exited {out.returncode}: {out.stderr.strip().splitlines()[-1:]}")
        sums = {json.loads(p.read_text())["weights_sha256"] for p in Path(reports).glob("rank*.json")}
    if len(sums) != 1:
        raise AssertionError(f"the two processes ended with different weights: {sums}")
    return "2 processes, NCCL, identical weights"


# --- benchmarks -----------------------------------------------------------------------------

def rows_multibox(report: Report, d2l) -> Iterator[Row]:
    """multibox_target and multibox_detection against d2l's, nms against torchvision's and d2l's."""
    device, sizes = report.device, report.sizes
    anchors = bench_anchors.tinyssd_anchors(device, sizes.fmaps)
    count = anchors.shape[1]
    with torch.no_grad():
        for num_gt in (1, 10):
            labels = bench_anchors.random_labels(num_gt, device, batch=sizes.batch)
            yield report.judge(_versus(
                f"multibox_target, batch {sizes.batch} x {count} anchors x {num_gt} GT", device,
                lambda: vc.multibox_target(anchors, labels), "d2l",
                None if d2l is None else (lambda: d2l.multibox_target(anchors, labels)), sizes.repeat),
                "multibox_target")
        cls_probs, offsets = bench_anchors.detector_outputs(device, batch=sizes.batch, num_anchors=count)
        # The book's detection runs a Python loop per kept box: one timed call after one warm-up.
        yield report.judge(_versus(
            f"multibox_detection, batch {sizes.batch} x {count} anchors", device,
            lambda: vc.multibox_detection(cls_probs, offsets, anchors), "d2l",
            None if d2l is None else (lambda: d2l.multibox_detection(cls_probs, offsets, anchors)), 1, warmup=1),
            "multibox_detection")
        for n in sizes.nms_boxes:
            boxes, scores = bench_anchors.random_boxes(n, device)
            yield _versus(f"nms, {n} boxes, threshold 0.5", device, lambda: vc.nms(boxes, scores, 0.5),
                          "torchvision", lambda: tv.nms(boxes, scores, 0.5), sizes.repeat)
        boxes, scores = bench_anchors.random_boxes(sizes.nms_d2l_boxes, device)
        yield _versus(f"nms, {sizes.nms_d2l_boxes} boxes, threshold 0.5", device, lambda: vc.nms(boxes, scores, 0.5),
                      "d2l", None if d2l is None else (lambda: d2l.nms(boxes, scores, 0.5)), sizes.repeat)


def _versus(workload: str, device: torch.device, ours: Callable, name: str, baseline: Callable | None,
            repeat: int, warmup: int = 2) -> Row:
    t_ours = timeit(ours, device, repeat=max(repeat, 1), warmup=warmup)
    if baseline is None:
        return Row(workload, t_ours, f"{name}: not installed")
    return Row(workload, t_ours, name, timeit(baseline, device, repeat=max(repeat, 1), warmup=warmup))


def rows_ssd(report: Report, data, d2l) -> Iterator[Row]:
    """One TinySSD epoch against the book's loop, then the long run with its val metrics."""
    device, sizes = report.device, report.sizes
    train_x, train_y, val_x, val_y = data
    n = train_x.shape[0]
    times = {}
    epochs = {"ours": bench_ssd.ours_epoch}
    if d2l is not None:
        epochs["book"] = bench_ssd.book_epoch
    for name, epoch in epochs.items():
        torch.manual_seed(0)
        epoch(TinySSD(1), train_x[:32], train_y[:32], device)  # warm-up: kernels, allocator, anchors
        torch.manual_seed(0)
        net = TinySSD(1)
        times[name] = time_once(lambda: epoch(net, train_x, train_y, device), device)
    yield Row(f"TinySSD, one epoch of {n} images, batch 32", times["ours"],
              "book's loop" if d2l is not None else "book's loop: d2l not installed", times.get("book"))
    for optimizer, lr in (("sgd", 0.2), ("adamw", 1e-3)):
        torch.manual_seed(0)
        net = TinySSD(1)
        last = {}

        def run():
            for record in train_ssd((train_x, train_y), net=net, epochs=sizes.ssd_epochs, batch_size=32, lr=lr,
                                    optimizer=optimizer, device=device, record_interval=3600):
                last["record"] = record

        seconds = time_once(run, device)
        metrics, note = _ssd_val_metrics(net, val_x, val_y, device)
        recipe = "the book's SGD, lr 0.2" if optimizer == "sgd" else "AdamW, lr 1e-3"
        metrics["train_class_err"] = last["record"].metrics.get("class_err", float("nan"))
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        yield report.judge(Row(f"TinySSD, {sizes.ssd_epochs} epochs of {n} images, {recipe}; val {shown}", seconds,
                               note=note, metrics=metrics), "ssd_long")


def _ssd_val_metrics(net, val_x, val_y, device):
    try:
        return evaluate_ssd(net, val_x, val_y, device=device), ""
    except ImportError:  # torchmetrics or a COCO backend missing: the book's metrics still count
        return evaluate_ssd(net, val_x, val_y, device=device, with_map=False), "no mAP: no COCO backend here"


def rows_fcn(report: Report, items, d2l) -> Iterator[Row]:
    """One FCN epoch against the book's loop (the book's loop needs no d2l: it is written out)."""
    device, sizes = report.device, report.sizes
    times = {}
    for name, epoch in (("book", bench_seg.book_epoch), ("ours", bench_seg.ours_epoch)):
        torch.manual_seed(0)
        epoch(FCN(21), items[:sizes.fcn_batch], device, batch_size=sizes.fcn_batch)  # warm-up
        torch.manual_seed(0)
        net = FCN(21)
        times[name] = time_once(lambda: epoch(net, items, device, batch_size=sizes.fcn_batch), device)
    height, width = sizes.fcn_crop
    yield report.judge(Row(f"FCN, one epoch of {len(items)} crops {height} x {width}, batch {sizes.fcn_batch}",
                           times["ours"], "book's loop", times["book"]), "fcn_epoch")


def rows_style(report: Report) -> Iterator[Row]:
    """Style transfer: eager / CUDA graph / graph + bf16 against the book's loop, PSNR against eager."""
    device, sizes = report.device, report.sizes
    content, style = _style_inputs() if report.quick else (load_content_photo("chelsea"), load_style_image("mosaic"))
    path = style_networks.find_vgg19_imagenet()
    state = torch.load(path, map_location="cpu", weights_only=True) if path is not None else None
    note = "" if state is not None else "VGG-19 with random weights: the step's time does not depend on them"
    steps, shape = sizes.style_steps, sizes.style_shape
    warm = 2 if report.quick else 5
    bench_style.book_style_transfer(content, style, bench_style._book_net(state), warm, shape, device)
    book = time_once(lambda: bench_style.book_style_transfer(content, style, bench_style._book_net(state), steps,
                                                             shape, device), device)
    variants = [("eager, float32", dict(cuda_graph=False))]
    if device.type == "cuda":
        variants += [("CUDA graph", dict(cuda_graph=True)), ("CUDA graph + bf16 autocast", dict(cuda_graph=True,
                                                                                                 amp=True))]
    reference = None
    for name, kwargs in variants:
        taps = style_networks.vgg19_taps(state) if state is not None else _style_taps()
        bench_style._ours(content, style, taps, warm, shape, device, **kwargs)
        seconds, first, image = bench_style._ours(content, style, taps, steps, shape, device, **kwargs)
        psnr = None if reference is None else bench_style._psnr(image, reference)
        reference = image if reference is None else reference
        extra = "" if psnr is None else f"; PSNR {psnr:.1f} dB against eager float32"
        row = Row(f"style transfer, {steps} steps at {shape[0]} x {shape[1]}, VGG-19, {name}{extra}", seconds,
                  "book's loop", book, note=note, metrics={"first_frame_s": first,
                                                          **({"psnr_db": psnr} if psnr is not None else {})})
        yield report.judge(row, "style_500")


# --- the run --------------------------------------------------------------------------------

def run(device: torch.device, quick: bool) -> Report:
    """Every check, then every benchmark, on ``device``."""
    sizes = QUICK if quick else FULL
    report = Report(device, sizes, quick)
    d2l = import_d2l()
    torch.manual_seed(0)
    data = _bananas(sizes)
    items = bench_seg._crops(sizes.fcn_items, _voc_dir(sizes), sizes.fcn_crop)
    report.check("anchors on the device", lambda: check_anchors(device, d2l))
    report.check("nms and detection on the device", lambda: check_nms_detection(device, d2l))
    report.check("RoI pooling on the device", lambda: check_roi(device, d2l))
    report.check("TinySSD: train, predict, evaluate, memory", lambda: check_ssd(device, data))
    report.check("FCN: train, predict, memory", lambda: check_fcn(device, items[:8]))
    report.check("style: CUDA graph = eager", lambda: check_style_graph(device))
    report.check("out of memory: released, next run works", lambda: check_out_of_memory(device))
    report.check("Stop: next step, memory given back", lambda: check_stop(device, data, items[:4]))
    report.check("DDP on NCCL", lambda: check_ddp(device, sizes))
    report.bench("multibox", lambda: rows_multibox(report, d2l))
    report.bench("TinySSD", lambda: rows_ssd(report, data, d2l))
    report.bench("FCN", lambda: rows_fcn(report, items, d2l))
    report.bench("style transfer", lambda: rows_style(report))
    return report


def _header(device: torch.device, quick: bool, seconds: float) -> dict[str, Any]:
    return {"machine": machine_line(), "device": describe_device(device), "torch": torch.__version__,
            "cuda": torch.version.cuda, "quick": quick, "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (default: cuda when there is one)")
    parser.add_argument("--quick", action="store_true", help="small workloads: the same code paths in seconds")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for gpu.md and gpu.json (default: $OUT when set, else gpu-results/)")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    out = args.out or Path(os.environ.get("OUT") or ROOT / "gpu-results")
    out.mkdir(parents=True, exist_ok=True)
    print(machine_line(), flush=True)
    start = time.perf_counter()
    with _quiet_warnings():
        report = run(device, args.quick)
    header = _header(device, args.quick, time.perf_counter() - start)
    title = (f"benchmarks.gpu on {header['device']}, torch {header['torch']} (CUDA {header['cuda']})"
             f"{', quick sizes' if args.quick else ''}; {header['machine']}; {header['seconds']} s in all")
    table = report.markdown(title)
    (out / "gpu.md").write_text(table, encoding="utf-8")
    (out / "gpu.json").write_text(json.dumps(report.as_json(header), indent=2), encoding="utf-8")
    print(table)
    print(f"wrote {out / 'gpu.md'} and {out / 'gpu.json'}; {'all checks passed' if report.ok else 'FAILURES'}")
    return 0 if report.ok else 1


@contextlib.contextmanager
def _quiet_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. TF32 notes, lr_scheduler order on warm-ups
        yield


if __name__ == "__main__":
    sys.exit(main())
