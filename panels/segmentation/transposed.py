"""The transposed-convolution section of the Segmentation tab (d2l 14.10): the scatter of an
editable matrix, stepped one input cell at a time, beside the book's zero-insertion construction.

Every number comes from ``vision_core.transposed``: ``trans_conv2d``, ``trans_conv_steps`` (the
scatter replayed cell by cell) and ``dilate_and_pad`` + ``trans_conv_by_conv`` (an ordinary
convolution with the flipped kernel). The panel parses the two tables and draws the heatmaps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from vision_core.transposed import (
    MAX_STEP_INPUT,
    TransConvStep,
    dilate_and_pad,
    trans_conv2d,
    trans_conv_by_conv,
    trans_conv_output_size,
    trans_conv_steps,
)

from ..common import Dataframe, Slider, formula, shows_errors, try_this
from ..i18n import bilingual, tr

PLAY_DELAY = 0.4  # seconds between streamed steps: a few frames a second
FIGURE_HEIGHT = 300
BOOK_X = [[0, 1], [2, 3]]  # d2l 14.10.1's X and K
BOOK_K = [[0, 1], [2, 3]]
MAX_CELL = 1e6  # matrix entries beyond this are refused (the heatmaps' labels stay readable)


def _fmt(value: float) -> str:
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _cells(matrix: torch.Tensor) -> list[list[str]]:
    return [[_fmt(v) for v in row] for row in matrix.tolist()]


def _table(matrix: torch.Tensor) -> pd.DataFrame:
    """A matrix as a table with column numbers; whole numbers shown as integers."""
    values = matrix.double().numpy()
    if np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
        values = values.astype(np.int64)
    else:
        values = values.round(6)
    return pd.DataFrame(values, columns=[f"col {j}" for j in range(values.shape[1])])



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


def _operands(X_cells: Any, K_cells: Any, stride: float, padding: float) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """The two tables as matrices, and stride and padding as integers (their sliders bound them;
    ``trans_conv2d`` refuses an output that would be empty)."""
    return parse_matrix(X_cells, "X"), parse_matrix(K_cells, "K"), int(stride), int(padding)


def _colors(Z: np.ndarray) -> dict[str, Any]:
    if Z.size and Z.min() < 0:
        bound = max(float(np.abs(Z).max()), 1e-9)
        return dict(colorscale="RdBu", reversescale=True, zmin=-bound, zmax=bound)
    return dict(colorscale="Blues", zmin=0, zmax=max(float(Z.max(initial=0)), 1e-9))


def _heatmap(fig: go.Figure, Z: torch.Tensor, col: int, name: str, scale: dict[str, Any] | None = None) -> None:
    z = Z.double().numpy()
    fig.add_trace(go.Heatmap(
        z=z, text=_cells(Z), texttemplate="%{text}", showscale=False, xgap=2, ygap=2, name=name,
        hovertemplate=f"{name}[%{{y}}, %{{x}}] = %{{text}}<extra></extra>", **(scale or _colors(z)),
    ), row=1, col=col)


def _grid_figure(panels: Sequence[tuple[torch.Tensor, str]], titles: Sequence[str],
                 height: int = FIGURE_HEIGHT) -> go.Figure:
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


def _rect(fig: go.Figure, col: int, top: int, left: int, bottom: int, right: int, color: str,
          dash: str = "solid") -> None:
    fig.add_shape(type="rect", x0=left - 0.5, x1=right - 0.5, y0=top - 0.5, y1=bottom - 0.5,
                  line=dict(color=color, width=3, dash=dash), row=1, col=col)


def _dims(X: torch.Tensor, K: torch.Tensor) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
    """``(subscript, n, k)`` for the height and the width of ``X`` and ``K``."""
    return ("h", int(X.shape[0]), int(K.shape[0])), ("w", int(X.shape[1]), int(K.shape[1]))


def _formula(X: torch.Tensor, K: torch.Tensor, s: int, p: int) -> str:
    """The output size per dimension, (n − 1)·s − 2p + k, typeset with this example's numbers."""
    rows, sizes = [], []
    for d, n, k in _dims(X, K):
        size = trans_conv_output_size(n, k, s, p)
        sizes.append(size)
        rows.append(f"n_{d}' &= (n_{d} - 1)\\,s_{d} - 2p_{d} + k_{d} \\\\ "
                    f"&= ({n} - 1) \\cdot {s} - 2 \\cdot {p} + {k} = \\mathbf{{{size}}}")
    return ("$$\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}$$\n\n"
            f"Y is **{sizes[0]} × {sizes[1]}** (stride {s}, padding {p}).")


def _zero_insertion_formula(X: torch.Tensor, K: torch.Tensor, s: int, p: int) -> str:
    """The zero-insertion construction's sizes, typeset: X with s − 1 zeros between cells and k − 1 − p
    more on each side is z = (n − 1)·s + 1 + 2(k − 1 − p) cells a side; a stride-1 convolution with
    k leaves z − k + 1, the transposed convolution's (n − 1)·s − 2p + k."""
    rows = []
    for d, n, k in _dims(X, K):
        z = (n - 1) * s + 1 + 2 * (k - 1 - p)
        rows.append(f"z_{d} &= (n_{d} - 1)\\,s_{d} + 1 + 2\\,(k_{d} - 1 - p_{d}) \\\\ "
                    f"&= ({n} - 1) \\cdot {s} + 1 + 2 \\cdot ({k} - 1 - {p}) = {z} \\\\ "
                    f"n_{d}' &= z_{d} - k_{d} + 1 = {z} - {k} + 1 = \\mathbf{{{z - k + 1}}}")
    return "$$\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}$$"


Frame = tuple[go.Figure, pd.DataFrame, str, dict[str, Any]]  # a step's figure, running sum, summary, slider


@shows_errors
def render_trans_conv(X_cells: Any, K_cells: Any, stride: float,
                      padding: float) -> tuple[pd.DataFrame, str, go.Figure, go.Figure, str]:
    """The transposed convolution of the tables: the output table, the shape formula, the figure,
    and the zero-insertion construction (figure and the parity line)."""
    X, K, s, p = _operands(X_cells, K_cells, stride, padding)
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
        + (" (exactly equal)." if diff == 0 else ".") + "\n\n" + _zero_insertion_formula(X, K, s, p)
    )
    return _table(Y), formula, fig, conv_fig, conv_text


@shows_errors
def render_trans_step(X_cells: Any, K_cells: Any, stride: float, padding: float, step: float) -> Frame:
    """Step ``step`` (1 = the first input cell) of the scatter: figure, running sum, summary, slider."""
    X, K, s, p = _operands(X_cells, K_cells, stride, padding)
    steps = list(trans_conv_steps(X, K, s, p))
    k = min(max(int(step), 1), len(steps))
    return _step_frame(X, K, s, p, steps, k)


def _step_frame(X: torch.Tensor, K: torch.Tensor, s: int, p: int, steps: Sequence[TransConvStep], k: int) -> Frame:
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


@shows_errors
def play_trans_conv(X_cells: Any, K_cells: Any, stride: float, padding: float) -> Iterator[Frame]:
    """Stream every step of the scatter, one input cell a frame, a few frames a second."""
    X, K, s, p = _operands(X_cells, K_cells, stride, padding)
    steps = list(trans_conv_steps(X, K, s, p))
    for k in range(1, len(steps) + 1):
        if k > 1:
            time.sleep(PLAY_DELAY)
        yield _step_frame(X, K, s, p, steps, k)


def _matrix_input(value: list[list[float]], label: str, elem_id: str) -> gr.Dataframe:
    return Dataframe(value=value, type="array", datatype="number", interactive=True, label=label,
                     elem_id=elem_id, headers=[f"col {j}" for j in range(len(value[0]))])


def build() -> None:
    """Lay out the transposed-convolution section and wire its events."""
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
            try_this("Before you set the stride s to 2, work out Y's size with the formula below and guess which "
                     "cells of Y no longer get overlapping copies; then set it and compare.",
                     "把步幅 s 调到 2 之前，先用下面的公式算出 Y 的大小，并猜一猜 Y 的哪些单元格不再有重叠的副本相加；"
                     "然后调过去对照一下。", elem_id="seg-trans-try")
            size_formula = formula(first[1], elem_id="seg-trans-formula")
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
    conv_text = formula(first[4], elem_id="seg-trans-conv-check")
    conv_fig = gr.Plot(first[3], label=tr("Zero insertion, flipped kernel, convolution", "插入零、翻转卷积核、卷积"), elem_id="seg-trans-conv-figure")

    inputs = [X, K, stride, padding]
    outputs = [output, size_formula, figure, conv_fig, conv_text]
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


