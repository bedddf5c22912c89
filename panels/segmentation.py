"""Segmentation panel (d2l 14.10, 14.11): transposed convolution, bilinear upsampling, the book's FCN.

Four sections in one tab, each a thin layer over ``vision_core``:

* transposed convolution on a small editable matrix, stepped one input cell at a time
  (``vision_core.transposed.trans_conv_steps``), beside the book's zero-insertion construction
  (``dilate_and_pad`` + an ordinary convolution with the flipped kernel);
* the bilinear kernel and the book's 2x upsampling demo (``bilinear_upsample``);
* segmentation with the FCN: the session's trained network, else the shipped checkpoint, else a
  note on how to train one; torchvision's FCN-ResNet-50 as a reference when its file is cached;
* live training on the offline synthetic VOC set (``train_fcn``'s progress records into curves,
  a preview and a progress bar; Stop sets this browser session's flag).
"""

from __future__ import annotations

import base64
import io
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.subplots import make_subplots

from vision_core import weights as vc_weights
from vision_core.device import get_device
from vision_core.examples import EXAMPLES, load_example
from vision_core.fcn import (
    FCN,
    FCN_RESNET50_SHA256_PREFIX,
    FCN_WEIGHTS,
    OPTIMIZERS,
    find_resnet18_imagenet,
    load_fcn,
    load_resnet18_imagenet,
    load_torchvision_fcn_resnet50,
    overlay_mask,
    predict_fcn,
    train_fcn,
)
from vision_core.transposed import (
    MAX_STEP_INPUT,
    bilinear_kernel,
    bilinear_upsample,
    dilate_and_pad,
    trans_conv2d,
    trans_conv_by_conv,
    trans_conv_output_size,
    trans_conv_steps,
)
from vision_core.voc import (
    VOC_CLASSES,
    VOC_COLORMAP,
    VOCSegDataset,
    confusion_matrix,
    generate_voc_synthetic,
    mean_iou,
    pixel_accuracy,
    synthetic_voc_dir,
)
from vision_core.weights import WeightsError

from .common import (
    Dataframe, Dropdown, Number, Pace, Radio, SafeImage, Slider, StopFlags, as_rgb_image, example_photo,
    handles_out_of_memory, session_of, shows_errors,
)
from .i18n import bilingual, tr, with_chinese
from .zerogpu import fcn_train_seconds, inference_device, on_gpu, park

TITLE = "Segmentation"
TITLE_ZH = "语义分割"
TAB_ID = "segmentation"
HEAVY = dict(concurrency_id="heavy", concurrency_limit=1)  # one training run at a time per server
PLAY_DELAY = 0.4  # seconds between streamed steps: a few frames a second
FIGURE_HEIGHT = 300

# --- transposed convolution settings
BOOK_X = [[0, 1], [2, 3]]  # d2l 14.10.1's X and K
BOOK_K = [[0, 1], [2, 3]]
MAX_CELL = 1e6  # matrix entries beyond this are refused (the heatmaps' labels stay readable)

# --- bilinear upsampling settings
MAX_UPSAMPLE_SIDE = 768  # larger photos are downscaled first (the book's catdog is 561 x 728)

# --- FCN settings
MAX_SEGMENT_SIDE = 1024  # larger uploads are downscaled before segmenting (CPU time, memory)
MAX_EPOCHS = 50
MAX_BATCH = 64
MAX_SESSION_NETS = 4  # an FCN is ~52 MB: keep trained networks for the most recent sessions only
# Crop sizes offered for training, (height, width), multiples of the FCN's stride 32.
CROPS = {"320x480": (320, 480), "160x224": (160, 224), "128x192": (128, 192), "64x96": (64, 96)}
CROP_LABELS = {"320x480": "320 × 480 (the book)", "160x224": "160 × 224", "128x192": "128 × 192 (CPU)",
               "64x96": "64 × 96 (a quick look)"}
CROP_LABELS_ZH = {"320x480": "320 × 480（书中）", "160x224": "160 × 224", "128x192": "128 × 192（适合 CPU）",
                  "64x96": "64 × 96（快速看一眼）"}
# Each optimizer's usual learning rate: the book's for SGD; for AdamW within vision_core's advice (1e-4..1e-3).
LEARNING_RATES = {"sgd": 0.001, "adamw": 0.0005}
DATA_SEED = 0
# The synthetic set the panel trains on: vision_core.voc's default (600 train / 100 val, 320 x 480),
# cached under $VISION_LAB_DATA. Tests replace it with a tiny set.
SYNTHETIC: Dict[str, int] = {"num_train": 600, "num_val": 100, "height": 320, "width": 480}
NUM_EXAMPLES = 4  # validation images offered in the FCN section's dropdown
# Brush colours for the sketch: the synthetic classes' hues (see vision_core.voc.SYNTH_CLASSES).
SKETCH_COLORS = {"#f5d327": "bird (yellow crescent)", "#e5501c": "boat (red-orange triangle)",
                 "#1fb3a6": "bottle (teal capsule)", "#4f9a3a": "potted plant (green disc)",
                 "#2f5fe0": "tv/monitor (blue rectangle)"}
SKETCH_COLORS_ZH = {"#f5d327": "鸟（黄色月牙）", "#e5501c": "船（橙红色三角形）", "#1fb3a6": "瓶子（青绿色胶囊）",
                    "#4f9a3a": "盆栽植物（绿色圆盘）", "#2f5fe0": "电视/显示器（蓝色矩形）"}
SKETCH_SIZE = (320, 480)  # (height, width) of the sketch canvas: the synthetic images' size

INTRO = """\
**Semantic segmentation** (d2l 14.9-14.11). A transposed convolution scatters every input cell's
scaled kernel onto a larger output; initialised as bilinear interpolation it upsamples images, and
on top of a ResNet-18 trunk it turns 32× smaller feature maps back into one class per pixel: the
fully convolutional network (FCN). Offline, the FCN learns the project's synthetic VOC-layout set
(textured shapes labelled with VOC classes).
"""
INTRO_ZH = (  # one line of Markdown: a line break between Chinese characters would show as a space
    "**语义分割**（d2l 14.9-14.11）。转置卷积把每个输入单元格乘以卷积核后的结果散布到更大的输出上；"
    "用双线性插值初始化时，它可以对图像上采样；接在 ResNet-18 主干之后，它把缩小了 32 倍的特征图"
    "还原为每个像素一个类别：这就是全卷积网络（FCN）。离线时，FCN 学习本项目的合成 VOC 布局数据集"
    "（标注为 VOC 类别的带纹理形状）。"
    "\n"
)

_lock = threading.Lock()
_stops = StopFlags()  # each session's Stop flag, while it trains
_session_nets: "OrderedDict[str, Tuple[FCN, str]]" = OrderedDict()  # session -> (net, description)
_shipped: Dict[str, object] = {}
_reference: Dict[str, object] = {}


def _fmt(value: float) -> str:
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _cells(matrix: torch.Tensor) -> List[List[str]]:
    return [[_fmt(v) for v in row] for row in matrix.tolist()]


def _table(matrix: torch.Tensor) -> pd.DataFrame:
    """A matrix as a table with column numbers; whole numbers shown as integers."""
    values = matrix.double().numpy()
    if np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
        values = values.astype(np.int64)
    else:
        values = values.round(6)
    return pd.DataFrame(values, columns=[f"col {j}" for j in range(values.shape[1])])


# --- transposed convolution ----------------------------------------------------------------------

def parse_matrix(value: Any, name: str, limit: int = MAX_STEP_INPUT) -> torch.Tensor:
    """A table's cells -> ``float64 Tensor[h, w]``, or ValueError naming the bad cell."""
    empty = bilingual(f"{name} is empty: give at least one row and one column of numbers",
                      f"{name} 为空：请至少给出一行一列数字")
    if value is None:
        raise ValueError(empty)
    if isinstance(value, dict):
        value = value.get("data", [])
    if hasattr(value, "values") and hasattr(value, "columns"):  # a pandas DataFrame
        value = value.values.tolist()
    rows = [list(r) if isinstance(r, (list, tuple, np.ndarray)) else [r] for r in value]
    if not rows or not rows[0]:
        raise ValueError(empty)
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(bilingual(
                f"{name} row {i + 1} has {len(row)} cells, row 1 has {width}: every row needs the same count",
                f"{name} 第 {i + 1} 行有 {len(row)} 个单元格，第 1 行有 {width} 个：每行的单元格数必须相同"))
    if len(rows) > limit or width > limit:
        raise ValueError(bilingual(f"{name} is {len(rows)} × {width}; at most {limit} × {limit} cells here "
                                   "(the step-through replays one input cell at a time)",
                                   f"{name} 为 {len(rows)} × {width}；这里最多 {limit} × {limit} 个单元格"
                                   "（逐步演示每次重放一个输入单元格）"))
    out = np.zeros((len(rows), width), np.float64)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            where = f"{name} row {i + 1}, column {j + 1}"
            where_zh = f"{name} 第 {i + 1} 行第 {j + 1} 列"
            if cell is None or (isinstance(cell, str) and not cell.strip()):
                raise ValueError(bilingual(f"{where} is empty: type a number", f"{where_zh}为空：请输入一个数字"))
            if isinstance(cell, bool):
                raise ValueError(bilingual(f"{where}: {cell!r} is not a number", f"{where_zh}：{cell!r} 不是数字"))
            try:
                number = float(cell.strip() if isinstance(cell, str) else cell)
            except (TypeError, ValueError):
                raise ValueError(bilingual(f"{where}: {str(cell)[:20]!r} is not a number",
                                           f"{where_zh}：{str(cell)[:20]!r} 不是数字")) from None
            if not np.isfinite(number):
                raise ValueError(bilingual(f"{where} is {number}: give a finite number",
                                           f"{where_zh}为 {number}：请输入有限的数"))
            if abs(number) > MAX_CELL:
                raise ValueError(bilingual(f"{where} is {_fmt(number)}: values must be within ±{MAX_CELL:g}",
                                           f"{where_zh}为 {_fmt(number)}：数值须在 ±{MAX_CELL:g} 以内"))
            out[i, j] = number
    return torch.from_numpy(out)


def _check_stride_padding(stride, padding) -> Tuple[int, int]:
    try:
        s, p = int(stride), int(padding)
    except (TypeError, ValueError):
        raise ValueError(bilingual("stride and padding must be whole numbers", "步幅和填充必须是整数")) from None
    if not (1 <= s <= 3 and 0 <= p <= 2):
        raise ValueError(bilingual(f"stride must be in 1..3 and padding in 0..2, got {s} and {p}",
                                   f"步幅须在 1..3 之间、填充须在 0..2 之间，收到的是 {s} 和 {p}"))
    return s, p


def _inputs(X_cells, K_cells, stride, padding):
    X = parse_matrix(X_cells, "X")
    K = parse_matrix(K_cells, "K")
    s, p = _check_stride_padding(stride, padding)
    return X, K, s, p


def _colors(Z: np.ndarray) -> dict:
    if Z.size and Z.min() < 0:
        bound = max(float(np.abs(Z).max()), 1e-9)
        return dict(colorscale="RdBu", reversescale=True, zmin=-bound, zmax=bound)
    return dict(colorscale="Blues", zmin=0, zmax=max(float(Z.max(initial=0)), 1e-9))


def _heatmap(fig: go.Figure, Z: torch.Tensor, col: int, name: str, scale: Optional[dict] = None) -> None:
    z = Z.double().numpy()
    fig.add_trace(go.Heatmap(
        z=z, text=_cells(Z), texttemplate="%{text}", showscale=False, xgap=2, ygap=2, name=name,
        hovertemplate=f"{name}[%{{y}}, %{{x}}] = %{{text}}<extra></extra>", **(scale or _colors(z)),
    ), row=1, col=col)


def _grid_figure(panels, titles, height: int = FIGURE_HEIGHT) -> go.Figure:
    """Side-by-side matrices as heatmaps with their values written in; rows go down, as printed."""
    widths = [max(int(Z.shape[1]), 1) for Z, _ in panels]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, column_widths=widths,
                        horizontal_spacing=0.06)
    for col, (Z, name) in enumerate(panels, start=1):
        _heatmap(fig, Z, col, name)
        fig.update_xaxes(row=1, col=col, showgrid=False, zeroline=False, dtick=1,
                         range=[-0.5, Z.shape[1] - 0.5], constrain="domain")
        fig.update_yaxes(row=1, col=col, showgrid=False, zeroline=False, dtick=1, autorange="reversed",
                         scaleanchor=f"x{col if col > 1 else ''}", constrain="domain")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=False,
                      plot_bgcolor="white")
    fig.update_annotations(font_size=12)
    return fig


def _rect(fig: go.Figure, col: int, top: int, left: int, bottom: int, right: int, color: str, dash: str = "solid"):
    fig.add_shape(type="rect", x0=left - 0.5, x1=right - 0.5, y0=top - 0.5, y1=bottom - 0.5,
                  line=dict(color=color, width=3, dash=dash), row=1, col=col)


def _formula(X: torch.Tensor, K: torch.Tensor, s: int, p: int) -> str:
    lines = ["**Output shape** n′ = s·n + k − 2p − s (per dimension)"]
    sizes = []
    for dim, n, k in (("height", X.shape[0], K.shape[0]), ("width", X.shape[1], K.shape[1])):
        size = trans_conv_output_size(int(n), int(k), s, p)
        sizes.append(size)
        lines.append(f"{dim}: n′ = {s}·{n} + {k} − 2·{p} − {s} = **{size}**")
    return "  \n".join(lines) + f"  \nY is **{sizes[0]} × {sizes[1]}** (stride {s}, padding {p})."


@shows_errors
def render_trans_conv(X_cells, K_cells, stride, padding):
    """The transposed convolution of the tables: the output table, the shape formula, the figure,
    and the zero-insertion construction (figure and the parity line)."""
    X, K, s, p = _inputs(X_cells, K_cells, stride, padding)
    Y = trans_conv2d(X[None, None], K[None, None], s, p)[0, 0]
    formula = _formula(X, K, s, p)
    fig = _grid_figure([(X, "X"), (K, "K"), (Y, "Y")],
                       (f"input X ({X.shape[0]}×{X.shape[1]})", f"kernel K ({K.shape[0]}×{K.shape[1]})",
                        f"output Y ({Y.shape[0]}×{Y.shape[1]})"))
    kh, kw = K.shape
    pads = (kh - 1 - p, kw - 1 - p)
    Z = dilate_and_pad(X, s, pads)
    flipped = K.flip(-2, -1)
    by_conv = trans_conv_by_conv(X[None, None], K[None, None], s, p)[0, 0]
    diff = float((by_conv - Y).abs().max())
    conv_fig = _grid_figure(
        [(Z, "Z"), (flipped, "flip(K)"), (by_conv, "conv")],
        (f"X with {s - 1} zero(s) between cells, padded by k − 1 − p", "K flipped both ways",
         f"ordinary convolution ({by_conv.shape[0]}×{by_conv.shape[1]})"))
    pad_text = ", ".join(f"{d} {v}" + (" (negative: crops)" if v < 0 else "")
                         for d, v in zip(("rows", "columns"), pads))
    conv_text = (
        f"Insert s − 1 = {s - 1} zero(s) between the rows and columns of X, pad by k − 1 − p ({pad_text}) "
        f"to get Z ({Z.shape[0]}×{Z.shape[1]}), then run an ordinary stride-1 convolution with K flipped "
        f"left-right and upside-down. **It equals the transposed convolution: max |difference| = {diff:.3g}**"
        + (" (exactly equal)." if diff == 0 else ".")
    )
    return _table(Y), formula, fig, conv_fig, conv_text


@shows_errors
def render_trans_step(X_cells, K_cells, stride, padding, step):
    """Step ``step`` (1 = the first input cell) of the scatter: figure, running sum, summary, slider."""
    X, K, s, p = _inputs(X_cells, K_cells, stride, padding)
    steps = list(trans_conv_steps(X, K, s, p))
    k = min(max(int(step), 1), len(steps))
    return _step_frame(X, K, s, p, steps, k)


def _step_frame(X, K, s, p, steps, k):
    current = steps[k - 1]
    grid = sum(r.contribution for r in steps[:k])  # uncropped running sum
    grid_h, grid_w = grid.shape
    fig = _grid_figure(
        [(X, "X"), (current.contribution, "copy"), (grid, "sum")],
        (f"X[{current.row}, {current.col}] = {_fmt(current.value)}",
         f"{_fmt(current.value)} · K on the uncropped {grid_h}×{grid_w} grid",
         f"running sum after {k} of {len(steps)} cell(s)"))
    _rect(fig, 1, current.row, current.col, current.row + 1, current.col + 1, "#c62828")
    top, left, bottom, right = current.window
    for col in (2, 3):
        _rect(fig, col, top, left, bottom, right, "#c62828")
    if p > 0:  # the part of the grid that the padding keeps: the output
        _rect(fig, 3, p, p, grid_h - p, grid_w - p, "#1a8a3a", "dash")
    running = current.running
    crop = (f" Padding {p} crops {p} row(s) and column(s) from each side of the grid (green dashed: the output)."
            if p else "")
    summary = (
        f"**Step {k} of {len(steps)}.** Input cell X[{current.row}, {current.col}] = {_fmt(current.value)} "
        f"scatters {_fmt(current.value)} · K into grid rows {top}..{bottom - 1}, columns {left}..{right - 1} "
        f"(stride {s}: its window starts at ({current.row}·{s}, {current.col}·{s})); overlapping copies add up."
        + crop
    )
    return fig, _table(running), summary, gr.update(maximum=len(steps), value=k)


def play_trans_conv(X_cells, K_cells, stride, padding):
    """Stream every step of the scatter, one input cell a frame, a few frames a second."""
    try:
        X, K, s, p = _inputs(X_cells, K_cells, stride, padding)
        steps = list(trans_conv_steps(X, K, s, p))
    except ValueError as err:
        raise gr.Error(with_chinese(str(err))) from None
    for k in range(1, len(steps) + 1):
        if k > 1:
            time.sleep(PLAY_DELAY)
        yield _step_frame(X, K, s, p, steps, k)


# --- bilinear upsampling -------------------------------------------------------------------------

@shows_errors
def render_bilinear_kernel(kernel_size):
    """``bilinear_kernel(1, 1, k)`` as a heatmap with its values, and its recipe in words."""
    k = int(kernel_size)
    if not 1 <= k <= 16:
        raise ValueError(bilingual(f"kernel size must be in 1..16, got {k}", f"卷积核大小须在 1..16 之间，收到的是 {k}"))
    W = bilinear_kernel(1, 1, k, dtype=torch.float64)[0, 0]
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    fig = go.Figure(go.Heatmap(
        z=W.numpy(), text=[[f"{v:.3f}".rstrip("0").rstrip(".") if v else "0" for v in row] for row in W.tolist()],
        texttemplate="%{text}" if k <= 10 else None, colorscale="Blues", zmin=0, zmax=1, xgap=1, ygap=1,
        hovertemplate="W[%{y}, %{x}] = %{z:.4f}<extra></extra>",
    ))
    fig.update_xaxes(dtick=1 if k <= 10 else 2, side="top", showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(dtick=1 if k <= 10 else 2, autorange="reversed", scaleanchor="x", showgrid=False,
                     zeroline=False, constrain="domain")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text=f"bilinear_kernel(1, 1, {k})", font=dict(size=13)))
    tent = ", ".join(f"{1 - abs(i - center) / factor:.3g}" for i in range(k))
    text = (f"factor = (k + 1) // 2 = **{factor}**, centre = **{center:g}** "
            f"({'on a cell' if k % 2 else 'between the two middle cells'}). Each weight is the product of two "
            f"tents 1 − |i − centre| / factor: [{tent}]. With stride {factor} and padding {factor // 2} a "
            f"transposed convolution with this kernel upsamples {factor}× by bilinear interpolation.")
    return fig, text


def _data_uri(image: np.ndarray, fmt: str = "JPEG") -> str:
    buf = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(image).save(buf, format="JPEG", quality=92, subsampling=0)
        mime = "image/jpeg"
    else:
        Image.fromarray(image).save(buf, format="PNG")
        mime = "image/png"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fit(rgb: np.ndarray, max_side: int) -> Tuple[np.ndarray, str]:
    """Downscale so the longer side is at most ``max_side``; returns the image and a note (or '')."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb, ""
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    return small, f" (downscaled from {w} × {h} px: at most {max_side} px a side here)"


@shows_errors
def upsample(image, scale=2):
    """The book's demo: the photo enlarged ``scale`` times by a bilinear-initialised transposed convolution.

    Returns the output image, an HTML view of both at their real pixel sizes, and a summary.
    """
    rgb = as_rgb_image(image, "image")
    scale = int(scale)
    if not 2 <= scale <= 4:
        raise ValueError(bilingual(f"scale must be in 2..4, got {scale}", f"放大倍数须在 2..4 之间，收到的是 {scale}"))
    rgb, note = _fit(rgb, MAX_UPSAMPLE_SIDE)
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()
    start = time.perf_counter()
    y = bilinear_upsample(x, scale)
    ms = (time.perf_counter() - start) * 1e3
    out = y.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    (h, w), (oh, ow) = rgb.shape[:2], out.shape[:2]
    k = 2 * scale - scale % 2
    summary = (f"**input {w} × {h} px → output {ow} × {oh} px**{note} · transposed convolution with kernel {k}, "
               f"stride {scale}, padding {scale // 2}, weights bilinear_kernel(3, 3, {k}) · {ms:.1f} ms on the CPU. "
               "Both images below are shown at their real pixel size (scroll sideways for the output).")
    view = (
        '<div style="display:flex;gap:16px;align-items:flex-start;overflow-x:auto;padding-bottom:6px">'
        f'<figure style="margin:0;flex:none"><img src="{_data_uri(rgb)}" width="{w}" height="{h}" '
        f'style="max-width:none" alt="input"><figcaption>input {w} × {h} px</figcaption></figure>'
        f'<figure style="margin:0;flex:none"><img src="{_data_uri(out)}" width="{ow}" height="{oh}" '
        f'style="max-width:none" alt="output"><figcaption>output {ow} × {oh} px (real size)</figcaption></figure>'
        "</div>"
    )
    return out, view, summary


# --- FCN: models ----------------------------------------------------------------------------------

def _remember(session: str, net: FCN, description: str) -> None:
    """Keep ``session``'s trained net, forgetting the oldest beyond MAX_SESSION_NETS (bounded memory)."""
    with _lock:
        _session_nets[session] = (net, description)
        _session_nets.move_to_end(session)
        while len(_session_nets) > MAX_SESSION_NETS:
            _session_nets.popitem(last=False)


def shipped_model() -> Tuple[Optional[FCN], str]:
    """The registry's FCN (loaded and sha256-checked once), or None with the reason."""
    with _lock:
        if "net" not in _shipped:
            try:
                net, entry = load_fcn(FCN_WEIGHTS, device=inference_device())
                m = entry.metrics
                nan = float("nan")
                _shipped["net"] = net
                _shipped["text"] = (f"shipped checkpoint `{entry.file}` (sha256 verified; validation pixel accuracy "
                                    f"{m.get('test_acc', nan):.3f}, mean IoU {m.get('test_mean_iou', nan):.3f})")
            except WeightsError as err:
                _shipped["net"] = None
                _shipped["text"] = f"the shipped checkpoint `{FCN_WEIGHTS}` is not available ({err})"
        return _shipped["net"], _shipped["text"]


def no_model_message(reason: str) -> str:
    return (f"No trained FCN yet: {reason}. Train one in the “Train FCN” section (Start training; on a CPU, "
            "128 × 192 crops and 100 images make a quick run); Segment then uses it in your session. Or, from a "
            "shell: `python -m vision_core train fcn --save fcn_resnet18_synthetic`.")


def no_model_message_zh(reason: str) -> str:
    """:func:`no_model_message` in Chinese (the error's second line; ``reason`` stays as written)."""
    return (f"还没有训练好的 FCN：{reason}。请在“Train FCN”（训练 FCN）部分训练一个（点击“开始训练”；在 CPU 上，"
            "用 128 × 192 的裁剪和 100 张图像可以快速跑一次）；之后“分割”会在你的会话中使用它。也可以在命令行运行："
            "`python -m vision_core train fcn --save fcn_resnet18_synthetic`。")


def reference_path() -> Optional[Path]:
    """Where torchvision's FCN-ResNet-50 file is on this machine (registry folder or torch cache), or None."""
    name = f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth"
    for folder in (vc_weights.PRETRAINED_DIR, vc_weights.torch_cache_dir()):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def reference_texts() -> Tuple[str, str]:
    """The reference model's note in English and in Chinese: where it is, or how to get it."""
    path = reference_path()
    name = f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth"
    if path is not None:
        return (f"**Reference model for real photos:** torchvision's FCN-ResNet-50 (COCO images, the 21 VOC "
                f"classes) found at `{path}`; choose it above.",
                f"**用于真实照片的参考模型**：torchvision 的 FCN-ResNet-50（COCO 图像，21 个 VOC 类别），"
                f"位于 `{path}`；可在上方选择它。")
    command, cache = "python -m vision_core weights fetch fcn_resnet50", vc_weights.torch_cache_dir()
    torchvision_call = "fcn_resnet50(weights='COCO_WITH_VOC_LABELS_V1')"
    return (f"**Reference model for real photos:** torchvision's FCN-ResNet-50 is not on this machine. It needs a "
            f"download (135 MB): on a machine with internet run `{command}` (the same file torchvision's "
            f"`{torchvision_call}` downloads), which saves `{name}` in `{cache}` (or copy the file into "
            "`pretrained/`), then reload this page.",
            f"**用于真实照片的参考模型**：本机上没有 torchvision 的 FCN-ResNet-50。它需要下载（135 MB）："
            f"在能上网的机器上运行 `{command}`（与 torchvision 的 `{torchvision_call}` 下载的是同一个文件），"
            f"它会把 `{name}` 保存到 `{cache}`（或者把该文件复制到 `pretrained/`），然后重新加载本页。")


def reference_note() -> str:
    """The reference model's note in English (what the API and tests read)."""
    return reference_texts()[0]


def reference_model() -> torch.nn.Module:
    """torchvision's FCN-ResNet-50, loaded once (sha256 prefix checked by vision_core)."""
    with _lock:
        if "net" not in _reference:
            try:
                _reference["net"] = load_torchvision_fcn_resnet50(None, device=inference_device())
            except WeightsError as err:
                raise ValueError(bilingual(f"torchvision's FCN-ResNet-50 cannot be used: {err}",
                                           f"无法使用 torchvision 的 FCN-ResNet-50：{err}")) from None
        return _reference["net"]


def active_model(choice: str, request: Optional[gr.Request]) -> Tuple[Any, str]:
    """The network Segment uses: the reference when chosen, else this session's trained net, else the
    shipped checkpoint; ValueError saying how to get one when there is none."""
    if choice == "resnet50":
        return reference_model(), "torchvision's FCN-ResNet-50 (COCO images with VOC labels; reference for real photos)"
    mine = _session_nets.get(session_of(request))
    if mine is not None:
        return mine[0], f"your network, {mine[1]}"
    net, text = shipped_model()
    if net is None:
        raise ValueError(bilingual(no_model_message(text), no_model_message_zh(text)))
    return net, text


# --- FCN: data ------------------------------------------------------------------------------------

def _example_images(count: int = NUM_EXAMPLES) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The first validation images of the synthetic set and their labels, made in a few ms each.

    The generator seeds every image on its own, so these equal the cached set's first ones
    without generating the whole set at start-up.
    """
    h, w = SYNTHETIC["height"], SYNTHETIC["width"]
    with tempfile.TemporaryDirectory() as tmp:
        generate_voc_synthetic(tmp, seed=DATA_SEED, num_train=1, num_val=count, height=h, width=w)
        data = VOCSegDataset(False, (h, w), tmp)
        return {f"synthetic validation #{i}": (data.features[i].permute(1, 2, 0).numpy().copy(),
                                               data.labels[i].numpy().copy())
                for i in range(len(data))}


def voc_root(progress=None) -> Path:
    """The cached synthetic set (generated once, on first use, with a progress bar)."""
    return synthetic_voc_dir(DATA_SEED, progress=progress, **SYNTHETIC)


def _legend(present: List[int]) -> str:
    chips = []
    for c in present:
        r, g, b = VOC_COLORMAP[c]
        chips.append(f'<span style="display:inline-flex;align-items:center;margin:2px 12px 2px 0">'
                     f'<span style="width:16px;height:16px;border:1px solid #888;margin-right:5px;'
                     f'background:rgb({r},{g},{b})"></span>{VOC_CLASSES[c]}</span>')
    return '<div id="seg-fcn-legend-chips" style="display:flex;flex-wrap:wrap">' + "".join(chips) + "</div>"


def _hex(c: int) -> str:
    return "#%02x%02x%02x" % VOC_COLORMAP[c]


@handles_out_of_memory
@shows_errors
def segment(image, model="fcn", request: gr.Request = None, examples: Optional[dict] = None):
    """Segment the image: the overlay, a legend of the classes found, their pixel shares, a summary."""
    rgb = as_rgb_image(image, "image")
    rgb, note = _fit(rgb, MAX_SEGMENT_SIDE)
    if model not in ("fcn", "resnet50"):
        raise ValueError(bilingual(f"model must be 'fcn' or 'resnet50', got {model!r}",
                                   f"模型须为 'fcn' 或 'resnet50'，收到的是 {model!r}"))
    net, which = active_model(model, request)
    x = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    start = time.perf_counter()
    pred = predict_fcn(net, x)
    ms = (time.perf_counter() - start) * 1e3
    overlay = overlay_mask(x, pred)
    counts = torch.bincount(pred.flatten(), minlength=len(VOC_CLASSES)).tolist()
    present = sorted((c for c, n in enumerate(counts) if n), key=lambda c: -counts[c])
    total = pred.numel()
    table = pd.DataFrame(
        [[VOC_CLASSES[c], c, _hex(c), counts[c], round(100 * counts[c] / total, 2)] for c in present],
        columns=["class", "index", "colour", "pixels", "share (%)"])
    h, w = rgb.shape[:2]
    device = next(net.parameters()).device
    summary = (f"**{len(present)} class{'es' if len(present) != 1 else ''} found** in {w} × {h} px{note} · "
               f"{ms:.0f} ms on {device} · model: {which}")
    for name, (photo, label) in (examples or {}).items():
        if photo.shape == rgb.shape and np.array_equal(photo, rgb):
            truth = torch.from_numpy(label).long()
            acc = float(pixel_accuracy(pred, truth))
            miou = float(mean_iou(confusion_matrix(pred, truth, len(VOC_CLASSES))))
            summary += f"  \nAgainst the ground truth of {name}: pixel accuracy **{acc:.3f}**, mean IoU **{miou:.3f}**."
            break
    return overlay, _legend(present), table, summary


def sketch_image(value) -> np.ndarray:
    """The sketch editor's flattened picture, on white where it is transparent."""
    if isinstance(value, dict):  # the editor's {"background", "layers", "composite"}
        value = value.get("composite") if value.get("composite") is not None else value.get("background")
    if value is None:
        raise gr.Error(bilingual("the sketch is empty: draw some shapes first (or upload a picture into the editor)",
                                 "草图为空：请先画一些形状（或者把一张图片上传到编辑器中）"))
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[2] == 4:
        alpha = array[..., 3:4].astype(np.float32) / 255.0
        array = (array[..., :3].astype(np.float32) * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    try:
        return as_rgb_image(array, "sketch")
    except ValueError as err:
        raise gr.Error(with_chinese(str(err))) from None


def _sketch_canvas() -> np.ndarray:
    """A plain canvas with the synthetic background's muted look (a soft grey gradient)."""
    h, w = SKETCH_SIZE
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    base = np.array([196, 192, 184], np.float32) * (1 - ramp) + np.array([168, 172, 176], np.float32) * ramp
    return np.broadcast_to(base, (h, w, 3)).round().astype(np.uint8).copy()


# --- FCN: training --------------------------------------------------------------------------------

def _curves(history: list) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss (the book's)",
                                                        "pixel accuracy and mean IoU"))
    epochs = [h["epoch"] for h in history]
    fig.add_trace(go.Scatter(x=epochs, y=[h.get("loss") for h in history], mode="lines+markers", name="train loss"),
                  row=1, col=1)
    for key, name, dash in [("train_acc", "train acc", "solid"), ("test_acc", "test acc", "dot"),
                            ("test_mean_iou", "test mIoU", "dash")]:
        values = [h.get(key) for h in history]
        fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=name, line=dict(dash=dash)),
                      row=1, col=2)
    fig.update_xaxes(title="epoch", dtick=max(1, len(epochs) // 10))
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    fig.update_annotations(font_size=13)
    return fig


def _enlarge(picture: np.ndarray, min_height: int = 192) -> np.ndarray:
    """Small previews (a 64 x 96 crop) enlarged by a whole factor, nearest neighbour, so classes stay crisp."""
    factor = max(1, -(-min_height // picture.shape[0]))
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1) if factor > 1 else picture


def _check_train_args(epochs, batch_size, lr, num_train, optimizer, crop):
    epochs, batch_size, num_train = int(epochs), int(batch_size), int(num_train)
    lr = float(lr) if lr is not None else float("nan")
    available = SYNTHETIC["num_train"]
    if not 1 <= epochs <= MAX_EPOCHS:
        raise ValueError(bilingual(f"epochs must be in 1..{MAX_EPOCHS}, got {epochs}",
                                   f"迭代周期数须在 1..{MAX_EPOCHS} 之间，收到的是 {epochs}"))
    if not 1 <= num_train <= available:
        raise ValueError(bilingual(f"training images must be in 1..{available}, got {num_train}",
                                   f"训练图像数须在 1..{available} 之间，收到的是 {num_train}"))
    if not 1 <= batch_size <= min(MAX_BATCH, num_train):
        raise ValueError(bilingual(f"batch size must be in 1..{min(MAX_BATCH, num_train)} (at most the training "
                                   f"images; the last partial batch is dropped), got {batch_size}",
                                   f"批量大小须在 1..{min(MAX_BATCH, num_train)} 之间（不超过训练图像数；"
                                   f"最后不完整的小批量会被丢弃），收到的是 {batch_size}"))
    if not (np.isfinite(lr) and 0 < lr <= 10):
        raise ValueError(bilingual(f"learning rate must be in (0, 10], got {lr}",
                                   f"学习率须在 (0, 10] 之间，收到的是 {lr}"))
    if optimizer not in OPTIMIZERS:
        raise ValueError(bilingual(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}",
                                   f"优化器须为 {', '.join(OPTIMIZERS)} 之一，收到的是 {optimizer!r}"))
    if crop not in CROPS:
        raise ValueError(bilingual(f"crop size must be one of {', '.join(CROPS)}, got {crop!r}",
                                   f"裁剪大小须为 {', '.join(CROPS)} 之一，收到的是 {crop!r}"))
    height, width = CROPS[crop]
    if height > SYNTHETIC["height"] or width > SYNTHETIC["width"]:
        raise ValueError(bilingual(f"crop {height} × {width} is larger than the synthetic images "
                                   f"({SYNTHETIC['height']} × {SYNTHETIC['width']}); choose a smaller crop",
                                   f"裁剪大小 {height} × {width} 超过了合成图像的大小"
                                   f"（{SYNTHETIC['height']} × {SYNTHETIC['width']}）；请选择更小的裁剪"))
    return epochs, batch_size, lr, num_train, (height, width)


def _backbone() -> Tuple[Optional[dict], str]:
    try:
        path = find_resnet18_imagenet()
        if path is not None:
            return load_resnet18_imagenet(path), "ImageNet ResNet-18 trunk (as the book)"
    except WeightsError as err:
        return None, f"random trunk ({err})"
    return None, "random trunk (offline: the book starts from ImageNet weights, which need a download)"


@handles_out_of_memory
def train(epochs, batch_size, lr, num_train, optimizer="sgd", crop="320x480", progress=gr.Progress(),
          request: gr.Request = None):
    """Train a fresh FCN on the synthetic set, streaming curves, the epoch preview and the status."""
    try:
        epochs, batch_size, lr, num_train, crop_hw = _check_train_args(epochs, batch_size, lr, num_train,
                                                                        optimizer, crop)
    except ValueError as err:
        raise gr.Error(with_chinese(str(err))) from None
    session = session_of(request)
    history: list = []
    preview = None
    total_images = SYNTHETIC["num_train"] + SYNTHETIC["num_val"]
    yield _curves(history), preview, (f"Preparing the offline synthetic set of {total_images:,} images (generated "
                                      "once on first use, then cached)…")
    stop = _stops.start(request)
    records = None
    try:
        try:
            root = voc_root(progress=lambda done, total: progress(done / total,
                                                                  desc=f"generating image {done}/{total}"))
            train_set = VOCSegDataset(True, crop_hw, root)
            train_set.features, train_set.labels = train_set.features[:num_train], train_set.labels[:num_train]
            test_set = VOCSegDataset(False, crop_hw, root)
            backbone, trunk = _backbone()
            net = FCN(len(VOC_CLASSES), pretrained_backbone=backbone)
            records = train_fcn(train_set, test_set, net=net, epochs=epochs, batch_size=batch_size, lr=lr,
                                optimizer=optimizer, stop=stop, record_interval=0.5)
        except ValueError as err:
            raise gr.Error(with_chinese(str(err))) from None
        status = (f"Starting: {num_train} images, crops {crop_hw[0]} × {crop_hw[1]}, {len(test_set)} test images, "
                  f"{trunk}, on {get_device()}…")
        yield _curves(history), preview, status
        pace = Pace("batch")  # measured in this run: no machine's speed is promised ahead of it
        for record in records:
            progress(record.fraction, desc=f"step {record.step}/{record.total}")
            m = dict(record.metrics)
            if "epoch" in m:
                history.append(m)
                preview = _enlarge(record.preview) if record.preview is not None else preview
            rate = m.get("examples_per_s")
            status = (f"Epoch {len(history) + (0 if 'epoch' in m or record.done else 1)}/{epochs} · "
                      f"step {record.step}/{record.total}"
                      + (f" · loss {m['loss']:.4f}" if "loss" in m else "")
                      + (f" · {rate:,.1f} examples/s on {get_device()}" if rate else ""))
            timing = pace(record.step, record.total, done=record.done)
            status += f" · {timing}" if timing else ""
            if record.done:
                stopped = record.message == "stopped"
                if history:
                    desc = (f"trained here: {len(history)} epoch(s) on {num_train} images, crops "
                            f"{crop_hw[0]} × {crop_hw[1]}" + (" (stopped early)" if stopped else ""))
                    _remember(session, park(net), desc)
                last = history[-1] if history else {}
                status = ("**Stopped.** " if stopped else "**Done.** ") + status + (
                    f" · test pixel accuracy {last['test_acc']:.3f}, test mIoU {last['test_mean_iou']:.3f}"
                    if "test_acc" in last else "") + (
                    " · Segment now uses this network in your session." if history else
                    " · No epoch finished, so Segment keeps its previous model.")
            yield _curves(history), preview, status
    finally:
        if records is not None:
            records.close()  # frees the trainer's memory if the page went away mid-run
        _stops.finish(request, stop)


def stop_training(request: gr.Request = None) -> str:
    return "Stopping after the current batch…" if _stops.stop(request) else "Nothing is training in this session."


# --- layout ------------------------------------------------------------------------------------

def _matrix_input(value, label: str, elem_id: str) -> gr.Dataframe:
    return Dataframe(value=value, type="array", datatype="number", interactive=True, label=label,
                        elem_id=elem_id, headers=[f"col {j}" for j in range(len(value[0]))])


def _build_transposed() -> None:
    gr.Markdown(tr("A transposed convolution (d2l 14.10) scatters each input cell's value times the kernel onto the "
                   "output, `stride` cells apart, adds the overlaps, then crops `padding` cells from every side. "
                   "Edit the tables (up to 8 × 8; add rows or columns from a cell's menu).",
                   "转置卷积（d2l 14.10）把每个输入单元格的值乘以卷积核后散布到输出上，相邻两份相隔 `stride` 个单元格，"
                   "重叠处相加，然后从每一边裁掉 `padding` 个单元格。可以编辑表格（最大 8 × 8；"
                   "通过单元格的菜单添加行或列）。"))
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            X = _matrix_input(BOOK_X, tr("Input X (the book: [[0, 1], [2, 3]])", "输入 X（书中：[[0, 1], [2, 3]]）"),
                              "seg-trans-x")
            K = _matrix_input(BOOK_K, tr("Kernel K (the book: [[0, 1], [2, 3]])", "卷积核 K（书中：[[0, 1], [2, 3]]）"),
                              "seg-trans-k")
            with gr.Row():
                stride = Slider(1, 3, value=1, step=1, label=tr("Stride s", "步幅 s"), elem_id="seg-trans-stride")
                padding = Slider(0, 2, value=0, step=1, label=tr("Padding p", "填充 p"), elem_id="seg-trans-padding")
            compute = gr.Button(tr("Compute", "计算"), variant="primary", elem_id="seg-trans-btn")
        with gr.Column(scale=6, min_width=360):
            first = render_trans_conv(BOOK_X, BOOK_K, 1, 0)
            formula = gr.Markdown(first[1], elem_id="seg-trans-formula")
            output = Dataframe(first[0], interactive=False, label=tr("Output Y = trans_conv(X, K)", "输出 Y = trans_conv(X, K)"),
                                  elem_id="seg-trans-output")
            figure = gr.Plot(first[2], label=tr("X, K and Y", "X、K 和 Y"), elem_id="seg-trans-figure")
    gr.Markdown(tr("### Step through the scatter\nOne input cell at a time: its scaled kernel copy (red frame) on the "
                   "uncropped grid, and the running sum.",
                   "### 逐步查看散布过程\n每次一个输入单元格：它乘以卷积核得到的副本（红框）在未裁剪网格上的位置，以及累加和。"))
    frame = render_trans_step(BOOK_X, BOOK_K, 1, 0, 1)
    with gr.Row():
        step = Slider(1, frame[3]["maximum"], value=1, step=1, label=tr("Step (input cell, row by row)", "步骤（输入单元格，逐行）"),
                         elem_id="seg-trans-step")
        play = gr.Button(tr("▶ Play", "▶ 播放"), variant="primary", elem_id="seg-trans-play")
    step_summary = gr.Markdown(frame[2], elem_id="seg-trans-step-summary")
    step_fig = gr.Plot(frame[0], label=tr("The scatter, step by step", "逐步散布"), elem_id="seg-trans-step-figure")
    running = Dataframe(frame[1], interactive=False, label=tr("Running sum, cropped to the output", "累加和（裁剪到输出大小）"),
                           elem_id="seg-trans-running")
    gr.Markdown(tr("### The same result from an ordinary convolution", "### 用普通卷积得到相同的结果"))
    conv_text = gr.Markdown(first[4], elem_id="seg-trans-conv-check")
    conv_fig = gr.Plot(first[3], label=tr("Zero insertion, flipped kernel, convolution", "插入零、翻转卷积核、卷积"), elem_id="seg-trans-conv-figure")

    inputs = [X, K, stride, padding]
    outputs = [output, formula, figure, conv_fig, conv_text]
    step_inputs = inputs + [step]
    step_outputs = [step_fig, running, step_summary, step]
    compute.click(render_trans_conv, inputs, outputs, api_name="trans_conv").success(
        render_trans_step, step_inputs, step_outputs, api_visibility="private")
    for control in (X, K):
        control.input(render_trans_conv, inputs, outputs, api_visibility="private").success(
            render_trans_step, step_inputs, step_outputs, api_visibility="private")
    for control in (stride, padding):
        control.input(render_trans_conv, inputs, outputs, api_visibility="private",
                      trigger_mode="always_last").success(
            render_trans_step, step_inputs, step_outputs, api_visibility="private")
    step.input(render_trans_step, step_inputs, step_outputs, api_name="trans_conv_step", trigger_mode="always_last")
    play.click(play_trans_conv, inputs, step_outputs, api_name="trans_conv_play")


def _build_bilinear() -> None:
    gr.Markdown(tr("FCN initialises its transposed convolution with **bilinear interpolation** (d2l 14.11.2). "
                   "Its kernel, and the book's demo: a photo enlarged 2× by such a layer.",
                   "FCN 用**双线性插值**初始化它的转置卷积层（d2l 14.11.2）。下面是这样的卷积核，"
                   "以及书中的演示：用这样一层把照片放大 2 倍。"))
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            kernel_size = Slider(2, 16, value=4, step=1, label=tr("Kernel size k (the book's 2× demo: 4)", "卷积核大小 k（书中 2 倍放大演示：4）"),
                                    elem_id="seg-bilinear-k")
            first = render_bilinear_kernel(4)
            kernel_text = gr.Markdown(first[1], elem_id="seg-bilinear-kernel-text")
        with gr.Column(scale=6, min_width=360):
            kernel_fig = gr.Plot(first[0], label=tr("bilinear_kernel", "bilinear_kernel（双线性插值核）"), elem_id="seg-bilinear-kernel")
    kernel_size.input(render_bilinear_kernel, kernel_size, [kernel_fig, kernel_text], api_name="bilinear_kernel",
                      trigger_mode="always_last")
    photo0 = load_example("chelsea")
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            example = Dropdown(list(EXAMPLES), value="chelsea", label=tr("Example photo (offline)", "示例照片（离线）"))
            photo = SafeImage(photo0, type="numpy", image_mode="RGB", sources=["upload", "clipboard"],
                             label=tr("Photo (upload your own)", "照片（可上传你自己的）"), height=240, elem_id="seg-bilinear-photo")
            scale = Slider(2, 4, value=2, step=1, label=tr("Scale (the book: 2)", "放大倍数（书中：2）"))
            run = gr.Button(tr("Upsample", "上采样"), variant="primary", elem_id="seg-bilinear-btn")
        with gr.Column(scale=6, min_width=360):
            out0, view0, summary0 = upsample(photo0, 2)
            summary = gr.Markdown(summary0, elem_id="seg-bilinear-summary")
            with gr.Accordion(tr("Output image file", "输出图像文件"), open=False):
                out_image = gr.Image(out0, interactive=False, format="png", label=tr("Upsampled (download)", "上采样结果（下载）"),
                                     elem_id="seg-bilinear-output")
    view = gr.HTML(view0, elem_id="seg-bilinear-view")
    outputs = [out_image, view, summary]
    run.click(upsample, [photo, scale], outputs, api_name="bilinear")
    scale.input(upsample, [photo, scale], outputs, api_visibility="private", trigger_mode="always_last")
    photo.upload(upsample, [photo, scale], outputs, api_visibility="private")
    example.input(example_photo, example, photo, api_visibility="private").then(
        upsample, [photo, scale], outputs, api_visibility="private")


def _build_segment(examples: dict) -> None:
    first_name = next(iter(examples))
    has_reference = reference_path() is not None
    choices = [(tr("FCN (ResNet-18): trained here, else the shipped checkpoint",
                   "FCN（ResNet-18）：优先用本页训练的，否则用随附的检查点"), "fcn")]
    if has_reference:
        choices.append((tr("torchvision FCN-ResNet-50: reference model for real photos",
                           "torchvision FCN-ResNet-50：用于真实照片的参考模型"), "resnet50"))

    def run(image, model, request: gr.Request = None):
        return segment(image, model, request, examples=examples)

    net, which = shipped_model()
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            example = Dropdown(list(examples), value=first_name, label=tr("Example (offline synthetic validation image)", "示例（离线合成验证集图像）"))
            image = SafeImage(examples[first_name][0], type="numpy", image_mode="RGB", format="png",
                             sources=["upload", "clipboard"], label=tr("Image (upload your own)", "图像（可上传你自己的）"), height=240,
                             elem_id="seg-fcn-image")
            model = Radio(choices, value="fcn", label=tr("Model", "模型"), elem_id="seg-fcn-model")
            segment_btn = gr.Button(tr("Segment", "分割"), variant="primary", elem_id="seg-fcn-btn")
            with gr.Accordion(tr("…or draw a sketch", "……或者画一张草图"), open=False):
                gr.Markdown(tr("Paint shapes like the synthetic classes: " + ", ".join(
                    f"<span style='color:{c}'>■</span> {name}" for c, name in SKETCH_COLORS.items()) + ".",
                    "照着合成数据集的类别画形状：" + "、".join(
                        f"<span style='color:{c}'>■</span> {name}" for c, name in SKETCH_COLORS_ZH.items()) + "。"))
                sketch = gr.ImageEditor(
                    value={"background": _sketch_canvas(), "layers": [], "composite": None},
                    type="numpy", image_mode="RGB", sources=["upload", "clipboard"], label=tr("Sketch", "草图"),
                    brush=gr.Brush(colors=list(SKETCH_COLORS), default_color=next(iter(SKETCH_COLORS)),
                                   default_size=24, color_mode="defaults"),
                    layers=False, transforms=(), canvas_size=(SKETCH_SIZE[1], SKETCH_SIZE[0]), height=360,
                    elem_id="seg-fcn-sketch")
                sketch_btn = gr.Button(tr("Segment the sketch", "分割草图"), elem_id="seg-fcn-sketch-btn")
        with gr.Column(scale=6, min_width=360):
            if net is not None:
                first = run(examples[first_name][0], "fcn")
            else:
                first = (None, "", pd.DataFrame(columns=["class", "index", "colour", "pixels", "share (%)"]),
                         no_model_message(which))
            summary = gr.Markdown(first[3], elem_id="seg-fcn-summary")
            overlay = gr.Image(first[0], interactive=False, label=tr("Predicted classes over the image", "叠加在图像上的预测类别"),
                               elem_id="seg-fcn-overlay", height=360)
            legend = gr.HTML(first[1], elem_id="seg-fcn-legend")
            shares = Dataframe(first[2], interactive=False, label=tr("Pixel share per class", "各类别的像素占比"), elem_id="seg-fcn-shares")
            gr.Markdown(tr(*reference_texts()), elem_id="seg-fcn-reference")
    outputs = [overlay, legend, shares, summary]
    segment_btn.click(run, [image, model], outputs, api_name="fcn_segment")
    image.upload(run, [image, model], outputs, api_visibility="private")
    example.input(lambda name: examples[name][0], example, image, api_visibility="private").then(
        run, [image, model], outputs, api_visibility="private")
    sketch_btn.click(sketch_image, sketch, image, api_visibility="private").success(
        run, [image, model], outputs, api_visibility="private")


def _build_train() -> None:
    available = SYNTHETIC["num_train"]
    default_crop = "320x480" if SYNTHETIC["height"] >= 320 and SYNTHETIC["width"] >= 480 else next(
        c for c, (h, w) in CROPS.items() if h <= SYNTHETIC["height"] and w <= SYNTHETIC["width"])
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            epochs = Slider(1, MAX_EPOCHS, value=5, step=1, label=tr("Epochs (the book: 5)", "迭代周期（书中：5）"))
            batch = Slider(1, MAX_BATCH, value=min(32, available), step=1, label=tr("Batch size (the book: 32)", "批量大小（书中：32）"))
            optimizer = Radio([(tr("SGD (the book)", "SGD（书中）"), "sgd"), (tr("AdamW", "AdamW"), "adamw")],
                                 value="sgd", label=tr("Optimizer", "优化器"),
                                 info=tr("offline the trunk starts random; AdamW leaves the all-background start sooner",
                                         "离线时主干网络从随机初始化开始；AdamW 更快摆脱全是背景的初始预测"))
            lr = Number(LEARNING_RATES["sgd"], minimum=1e-6, maximum=10, label=tr("Learning rate (the book: 0.001)", "学习率（书中：0.001）"))
            num_train = Slider(1, available, value=available, step=1,
                                  label=tr(f"Training images (of {available:,})", f"训练图像数（共 {available:,} 张）"))
            crop = Radio([(tr(CROP_LABELS[c], CROP_LABELS_ZH[c]), c) for c in CROPS], value=default_crop,
                            label=tr("Crop size (height × width)", "裁剪大小（高 × 宽）"),
                            info=tr("multiples of 32, the FCN's stride; smaller crops train much faster on a CPU",
                                    "32 的倍数，即 FCN 的步幅；在 CPU 上，裁剪越小训练越快"))
            with gr.Row():
                start = gr.Button(tr("Start training", "开始训练"), variant="primary", elem_id="seg-fcn-train-btn")
                stop = gr.Button(tr("Stop", "停止"), variant="stop", elem_id="seg-fcn-stop-btn")
            gr.Markdown(tr(f"The data: {available:,} training and {SYNTHETIC['num_val']:,} test images of the offline "
                           f"synthetic set, {SYNTHETIC['height']} × {SYNTHETIC['width']} px, generated on first use. "
                           "On a CPU the book's 600 crops of 320 × 480 train slowly: a 128 × 192 crop has a sixth of "
                           "the pixels, so try it with 100 images for a quick run. While it trains, the status shows "
                           "the time per batch, measured on this machine, and the time left; a GPU is many times "
                           "faster than a CPU.",
                           f"数据：离线合成数据集中的 {available:,} 张训练图像和 {SYNTHETIC['num_val']:,} 张测试图像，"
                           f"{SYNTHETIC['height']} × {SYNTHETIC['width']} 像素，首次使用时生成。在 CPU 上，"
                           "书中 600 张 320 × 480 的裁剪训练得很慢：128 × 192 的裁剪只有其六分之一的像素，"
                           "想快速跑一次，可以用它和 100 张图像试试。训练时，状态栏会显示在本机上测得的每批用时和"
                           "预计剩余时间；GPU 比 CPU 快很多倍。"))
        with gr.Column(scale=6, min_width=360):
            status = gr.Markdown("Not started.", elem_id="seg-fcn-train-status")
            curves = gr.Plot(_curves([]), label=tr("Loss, pixel accuracy and mean IoU per epoch", "每个迭代周期的损失、像素准确率和平均 IoU"), elem_id="seg-fcn-curves")
            preview = gr.Image(None, interactive=False, elem_id="seg-fcn-preview", height=240,
                               label=tr("Each epoch, a test crop: photo · predicted · true classes",
                                        "每个迭代周期的一张测试裁剪：照片 · 预测类别 · 真实类别"))
    optimizer.input(lambda name: LEARNING_RATES.get(name, 0.001), optimizer, lr, api_visibility="private")
    start.click(on_gpu(train, fcn_train_seconds), [epochs, batch, lr, num_train, optimizer, crop],
                [curves, preview, status],
                api_name="fcn_train", **HEAVY)
    stop.click(stop_training, None, status, api_name="fcn_stop")


def build() -> None:
    """Lay out the Segmentation tab (four sections) and wire its events."""
    examples = _example_images()
    gr.Markdown(tr(INTRO, INTRO_ZH))
    with gr.Tabs():
        with gr.Tab(tr("Transposed convolution", "转置卷积"), id="seg-transposed"):
            _build_transposed()
        with gr.Tab(tr("Bilinear upsampling", "双线性上采样"), id="seg-bilinear"):
            _build_bilinear()
        with gr.Tab(tr("FCN", "全卷积网络 FCN"), id="seg-fcn"):
            _build_segment(examples)
        with gr.Tab(tr("Train FCN", "训练 FCN"), id="seg-fcn-train"):
            _build_train()
