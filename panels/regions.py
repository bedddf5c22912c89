"""Regions panel (d2l 14.8): selective-search proposals, and RoI pooling of one of them beside RoIAlign.

The feature map is a stand-in a learner can read: the photo's brightness averaged over
``stride x stride`` blocks, so a proposal's window on the map covers what it covers on the
photo. Selective search comes from OpenCV contrib; pooling from ``vision_core.regions``.

The "Proposal to pool" slider is never written to while it is the control being moved: its own
events, and the grid's and the stride's, leave it alone; only what changes the number of
proposals (top K, mode, photo) updates its range, and a click on the picture its value.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from vision_core.examples import EXAMPLES, load_example
from vision_core.regions import (
    SELECTIVE_SEARCH_MODES,
    proposal_at,
    roi_align,
    roi_pool_grid,
    selective_search,
)

from .common import (
    Dataframe,
    Dropdown,
    Radio,
    SafeImage,
    Slider,
    as_rgb_image,
    example_photo,
    formula,
    rerun_on_picture_changes,
    shows_errors,
    try_this,
)
from .figures import drawing_scale, draw_boxes
from .i18n import bilingual, tr

TITLE = "Regions"
TITLE_ZH = "区域"
TAB_ID = "regions"
STRIDES = (8, 16, 32)
MAX_TOP_K = 200
_CACHE_SIZE = 8
_proposal_cache: OrderedDict[tuple[str, str], tuple[torch.Tensor, float]] = OrderedDict()

INTRO = """\
**Region-based CNNs** (d2l 14.8). R-CNN starts from *region proposals*; here they come from
selective search (OpenCV contrib). Pick a proposal and see **RoI pooling** cut its window on a
feature map into an n × m grid and keep each cell's maximum, beside **RoIAlign**, which samples
the window bilinearly instead of rounding it to whole cells. The feature map is a stand-in you
can read: the photo's brightness averaged over stride × stride blocks.
"""
INTRO_ZH = """\
**区域卷积神经网络**（d2l 14.8）。R-CNN 从*建议区域*出发；这里的建议区域来自
选择性搜索（OpenCV contrib）。选一个建议区域，看**感兴趣区域汇聚**（RoI pooling）如何把它在
特征图上的窗口切成 n × m 的网格、并保留每个单元格的最大值；旁边是 **RoIAlign**，它对窗口做双线性采样，
而不是把窗口取整到整个单元格。这里的特征图是一个便于阅读的替身：照片的亮度在步幅 × 步幅的块上取平均。
"""
MODES_ZH = {"fast": "快速", "quality": "高质量"}
CSS = """
@media (max-width: 640px) {
  #regions-formula .katex-display > .katex { font-size: 1.05em; }  /* KaTeX's 1.21em, smaller */
}
"""
TRY_THIS = (
    ("set both grid sliders (n and m) to 1 and predict the one pooled value: the largest of the four "
     "values the 2 × 2 grid shows now. Then read it in the table."),
    "把网格的两个滑块（n 和 m）都设为 1，先预测唯一的汇聚值：它就是现在 2 × 2 网格四个值中最大的那个。然后在表格里核对。",
)
CHOSEN_COLOR = "#ef6c00"
# The proposals picture is enlarged (whole factors) until its shorter side reaches this: a 451 x 300
# photo is drawn at 902 x 600, so small proposals are big enough to click and labels to read.
PICTURE_MIN_SIDE = 600


def proposals_for(rgb: np.ndarray, mode: str) -> tuple[torch.Tensor, float, bool]:
    """Selective-search proposals of a photo, cached per (photo, mode): ``(boxes [K, 4], seconds, cached)``."""
    key = (hashlib.sha1(rgb.tobytes()).hexdigest() + str(rgb.shape), mode)
    if key in _proposal_cache:
        _proposal_cache.move_to_end(key)
        boxes, seconds = _proposal_cache[key]
        return boxes, seconds, True
    start = time.perf_counter()
    try:
        boxes = selective_search(rgb, mode=mode, max_proposals=2000)
    except ImportError as err:
        raise ValueError(str(err)) from None
    seconds = time.perf_counter() - start
    _proposal_cache[key] = (boxes, seconds)
    while len(_proposal_cache) > _CACHE_SIZE:
        _proposal_cache.popitem(last=False)
    return boxes, seconds, False


def feature_map(rgb: np.ndarray, stride: int) -> torch.Tensor:
    """The photo's brightness (0..1) averaged over ``stride x stride`` blocks: ``Tensor[1, 1, H/s, W/s]``."""
    gray = torch.from_numpy(rgb).float().mul(torch.tensor([0.299, 0.587, 0.114])).sum(-1) / 255.0  # [H, W]
    return F.avg_pool2d(gray[None, None], kernel_size=stride, stride=stride, ceil_mode=True)


def picture_scale(rgb: np.ndarray) -> float:
    """How many picture pixels :func:`proposals_picture` draws per photo pixel."""
    return drawing_scale(rgb.shape[0], rgb.shape[1], PICTURE_MIN_SIDE)


def proposals_picture(rgb: np.ndarray, shown: torch.Tensor, index: int) -> np.ndarray:
    """The photo with the drawn proposals ``shown`` (``[K, 4]`` photo pixels) outlined in white and
    proposal ``index`` in orange, labelled, on top: ``[H * s, W * s, 3]`` uint8 with ``s =
    picture_scale(rgb)`` (a picture one can click: :func:`pick_proposal`)."""
    others = torch.cat([shown[:index], shown[index + 1:]])
    picture = draw_boxes(rgb, others.numpy(), ["white"] * len(others), width=1, min_side=PICTURE_MIN_SIDE)
    # The chosen one on top, thicker, in the picture's pixels (draw_boxes enlarged the photo).
    return draw_boxes(picture, (shown[index:index + 1] * picture_scale(rgb)).numpy(), [CHOSEN_COLOR], width=4,
                      labels=[f"proposal {index}"])


def _grid_figure(fmap: torch.Tensor, result: Any, index_hint: str) -> go.Figure:
    """The feature map, the RoI's window, its grid cells and each cell's maximum."""
    z = fmap[0, 0].numpy()
    fig = go.Figure(go.Heatmap(z=z, colorscale="Greys", reversescale=True, zmin=0, zmax=1, showscale=False,
                               hovertemplate="row %{y}, col %{x}: %{z:.3f}<extra></extra>"))
    ys, ye, xs, xe = result.roi_windows[0].tolist()
    fig.add_shape(type="rect", x0=xs - 0.5, x1=xe - 0.5, y0=ys - 0.5, y1=ye - 0.5,
                  line=dict(color="#ef6c00", width=4))
    windows = result.windows[0].reshape(-1, 4).tolist()
    for y0, y1, x0, x1 in windows:
        if y1 > y0 and x1 > x0:
            fig.add_shape(type="rect", x0=x0 - 0.5, x1=x1 - 0.5, y0=y0 - 0.5, y1=y1 - 0.5,
                          line=dict(color="#1f5fbf", width=2, dash="dot"))
    arg = result.argmax[0, 0].reshape(-1, 2)
    found = arg[:, 0] >= 0
    fig.add_trace(go.Scatter(
        x=arg[found, 1].tolist(), y=arg[found, 0].tolist(), mode="markers",
        marker=dict(symbol="star", size=16, color="#c62828", line=dict(color="white", width=1)),
        name="cell maximum", hovertemplate="max at row %{y}, col %{x}<extra></extra>",
    ))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=36, b=10), showlegend=False,
                      title=dict(text=f"Feature map {z.shape[0]} × {z.shape[1]}: {index_hint}", font=dict(size=13)))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig


def _small_heatmap(values: np.ndarray, title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=values, colorscale="Greys", reversescale=True, zmin=0, zmax=1, showscale=False,
                               text=np.vectorize(lambda v: f"{v:.3f}")(values), texttemplate="%{text}",
                               hovertemplate="row %{y}, col %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=36, b=10), title=dict(text=title, font=dict(size=13)))
    fig.update_xaxes(dtick=1)
    fig.update_yaxes(dtick=1)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig


def _render(image: np.ndarray | None, mode: str, top_k: float, index: float, stride: int, out_h: float,
            out_w: float) -> tuple[np.ndarray, go.Figure, go.Figure, go.Figure, pd.DataFrame, str, dict[str, Any], str]:
    """Proposals drawn over the photo; RoI pooling and RoIAlign of proposal ``index``.

    Returns the proposals picture, the feature-map figure, the pooled and aligned grids, the
    pooled values as a table, a summary, the index slider's update and the pooling formula.
    """
    rgb = load_example("chelsea") if image is None else as_rgb_image(image, "photo")
    # The radios bind mode and stride, the sliders top K (1..200) and the grid (1..7 each way).
    top_k, index, stride, out_h, out_w = int(top_k), int(index), int(stride), int(out_h), int(out_w)
    boxes, seconds, cached = proposals_for(rgb, mode)
    if len(boxes) == 0:
        raise ValueError(bilingual("selective search found no regions in this photo; try another photo or the quality mode",
                                   "选择性搜索在这张照片中没有找到区域；请换一张照片或使用 quality（高质量）模式"))
    shown = boxes[:top_k]
    index = min(max(index, 0), len(shown) - 1)
    chosen = shown[index]
    picture = proposals_picture(rgb, shown, index)

    fmap = feature_map(rgb, stride)
    rois = torch.cat([torch.zeros(1, 1), chosen[None].float()], dim=1)  # [1, 5] (batch, x1, y1, x2, y2)
    result = roi_pool_grid(fmap, rois, (out_h, out_w), spatial_scale=1.0 / stride)
    aligned = roi_align(fmap, rois, (out_h, out_w), spatial_scale=1.0 / stride, sampling_ratio=2, aligned=True)
    pooled = result.pooled[0, 0].double().numpy()
    x1, y1, x2, y2 = chosen.tolist()
    ys, ye, xs, xe = result.roi_windows[0].tolist()
    ye, xe = min(ye, fmap.shape[2]), min(xe, fmap.shape[3])  # the window as clipped to the map
    grid_fig = _grid_figure(fmap, result, f"proposal {index} → rows {ys}..{ye - 1}, columns {xs}..{xe - 1}")
    table = pd.DataFrame(pooled.round(4), columns=[f"col {j}" for j in range(out_w)])
    table.insert(0, "row", list(range(out_h)))
    regions = f"{len(boxes)} region{'s' if len(boxes) != 1 else ''}"
    summary = (
        f"Selective search ({mode}) proposed **{regions}** in {seconds:.2f} s"
        f"{' (cached)' if cached else ''}; the first {len(shown)} are drawn. "
        f"Proposal {index}: ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) px. "
        f"On the {fmap.shape[2]} × {fmap.shape[3]} feature map (stride {stride}, spatial scale 1/{stride}) "
        f"RoI pooling rounds it to rows {ys}..{ye - 1}, columns {xs}..{xe - 1} and splits that into "
        f"{out_h} × {out_w} cells; each keeps its maximum (red stars). RoIAlign (right) samples the exact "
        "window bilinearly instead, so nothing is rounded away."
    )
    return (
        picture, grid_fig,
        _small_heatmap(pooled, f"RoI pooling {out_h} × {out_w} (= torchvision roi_pool)"),
        _small_heatmap(aligned[0, 0].double().numpy(), f"RoIAlign {out_h} × {out_w}"),
        table, summary, index_slider(len(shown), index), pooling_formula(chosen, result, stride),
    )


@shows_errors
def render_regions(image: np.ndarray | None, mode: str, top_k: float, index: float, stride: int, out_h: float,
                   out_w: float) -> tuple[np.ndarray, go.Figure, go.Figure, go.Figure, pd.DataFrame, str, dict[str, Any]]:
    """The /regions API: proposals drawn over the photo; RoI pooling and RoIAlign of proposal ``index``.

    Returns the proposals picture, the feature-map figure, the pooled and aligned grids, the
    pooled values as a table, a summary and the index slider's update.
    """
    return _render(image, mode, top_k, index, stride, out_h, out_w)[:7]


@shows_errors
def render_pooling(image: np.ndarray | None, mode: str, top_k: float, index: float, stride: int, out_h: float,
                   out_w: float) -> tuple[np.ndarray, go.Figure, go.Figure, go.Figure, pd.DataFrame, str, str]:
    """The page after the index, the grid or the stride moved: everything but the index slider.

    The slider a learner may be dragging is never an output here (a late answer would pull its
    handle back to an older value); the index is clamped on the server instead.
    """
    *outputs, _, tex = _render(image, mode, top_k, index, stride, out_h, out_w)
    return (*outputs, tex)


@shows_errors
def render_proposals(image: np.ndarray | None, mode: str, top_k: float, index: float, stride: int, out_h: float,
                     out_w: float) -> tuple[np.ndarray, go.Figure, go.Figure, go.Figure, pd.DataFrame, str,
                                            dict[str, Any], str]:
    """The page after what sets the number of proposals moved (top K, mode, photo): everything, and
    the index slider's new range; its value only where the old one is past the new range."""
    *outputs, update, tex = _render(image, mode, top_k, index, stride, out_h, out_w)
    if update["value"] == int(index):
        update = {k: v for k, v in update.items() if k != "value"}
    return (*outputs, update, tex)


@shows_errors
def pick_proposal(image: np.ndarray | None, mode: str, top_k: float, evt: gr.SelectData) -> dict[str, Any]:
    """A click on the proposals picture picks the smallest drawn proposal around the click (or the
    nearest one): the index slider's new value."""
    rgb = load_example("chelsea") if image is None else as_rgb_image(image, "photo")
    boxes, _, _ = proposals_for(rgb, mode)
    shown = boxes[: int(top_k)]
    if len(shown) == 0:
        return gr.update()
    # evt.index is in the picture's pixels (the page maps the click to them, whatever the display size).
    x, y = evt.index[0], evt.index[1]
    scale = picture_scale(rgb)
    return gr.update(value=proposal_at(shown, x / scale, y / scale))


def pooling_formula(chosen: torch.Tensor, result: Any, stride: int) -> str:
    """d2l 14.8.2's RoI pooling with the current numbers: the proposal's window on the feature map
    (rounded), its h × w cells split into an h2 × w2 grid of sub-windows of about h/h2 × w/w2, and
    sub-window (0, 0)'s rows and columns as pooled."""
    x1, y1 = chosen[0].item(), chosen[1].item()
    y0, y_end, x0, x_end = result.roi_windows[0].tolist()
    h, w = y_end - y0, x_end - x0
    h2, w2 = result.windows.shape[1:3]
    ys, ye, xs, xe = result.windows[0, 0, 0].tolist()
    # Short lines (each step, then its numbers on the next): the formula fits a phone.
    lines = [
        r"(y_0,\ x_0) &= \left(\mathrm{round}\frac{y_1}{s},\ \mathrm{round}\frac{x_1}{s}\right)",
        rf"&= \left(\mathrm{{round}}\frac{{{y1:.0f}}}{{{stride}}},\ \mathrm{{round}}\frac{{{x1:.0f}}}{{{stride}}}\right)",
        rf"&= ({y0},\ {x0})",
        rf"h \times w &= {h} \times {w},\quad h_2 \times w_2 = {h2} \times {w2}",
        (rf"\frac{{h}}{{h_2}} \times \frac{{w}}{{w_2}} &= \frac{{{h}}}{{{h2}}} \times \frac{{{w}}}{{{w2}}}"
         rf" = {h / h2:.3g} \times {w / w2:.3g}"),
        r"\text{rows}_i &= y_0 + \lfloor i\,h / h_2 \rfloor",
        r"&\ \ldots\ y_0 + \lceil (i + 1)\,h / h_2 \rceil - 1",
        rf"\text{{rows}}_0 &= {ys}..{ye - 1},\ \ \text{{columns}}_0 = {xs}..{xe - 1}",
    ]
    return r"$$\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}$$"


def index_slider(shown: int, index: int) -> dict[str, Any]:
    """The "Proposal to pool" slider's update for ``shown`` proposals drawn, ``index`` chosen.

    A slider needs maximum > minimum (Gradio raises otherwise), so with one proposal drawn (top K
    = 1, or a photo with one region) it keeps the range 0..1 and is locked at 0; render_regions
    clamps any index to the proposals drawn.
    """
    return gr.update(maximum=max(shown - 1, 1), value=index, interactive=shown > 1)


def build() -> None:
    """Lay out the Regions tab and wire its events."""
    photo0 = load_example("chelsea")
    first = _render(photo0, "fast", 30, 0, 16, 2, 2)
    gr.Markdown(tr(INTRO, INTRO_ZH))
    try_this(*TRY_THIS, elem_id="regions-try")
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            example = Dropdown(list(EXAMPLES), value="chelsea",
                                  label=tr("Example photo (offline)", "示例照片（离线）"))
            mode = Radio([(tr(m, MODES_ZH[m]), m) for m in SELECTIVE_SEARCH_MODES], value="fast",
                            label=tr("Selective search mode", "选择性搜索模式"))
            top_k = Slider(1, MAX_TOP_K, value=30, step=1,
                              label=tr("Proposals drawn (top K)", "绘制的建议区域数（前 K 个）"))
            index = Slider(0, first[6]["maximum"], value=0, step=1,
                           label=tr("Proposal to pool (or click one on the picture)", "要汇聚的建议区域（也可在图上点击）"),
                           elem_id="regions-index")
            stride = Radio(list(STRIDES), value=16,
                              label=tr("Feature map stride (pixels per cell)", "特征图的步幅（每个单元格的像素数）"))
            with gr.Row():
                out_h = Slider(1, 7, value=2, step=1, label=tr("Grid rows n (the book: 2)", "网格行数 n（书中：2）"))
                out_w = Slider(1, 7, value=2, step=1, label=tr("Grid columns m (the book: 2)", "网格列数 m（书中：2）"))
            # PNG, not Gradio's lossy WebP: the photo comes back from the page unchanged, so its
            # proposals are the ones drawn at load (and cached), not another search's.
            photo = SafeImage(photo0, type="numpy", image_mode="RGB", sources=["upload", "clipboard"], format="png",
                             label=tr("Photo (upload to replace)", "照片（上传以替换）"), height=200,
                             elem_id="regions-photo")
        with gr.Column(scale=6, min_width=360):
            summary = gr.Markdown(first[5], elem_id="regions-summary")
            proposals = gr.Image(first[0], interactive=False, height=420,
                                 label=tr("Proposals (orange: the one being pooled; click one to pool it)",
                                          "建议区域（橙色：正在汇聚的那个；点击一个即可汇聚它）"),
                                 elem_id="regions-figure")
    with gr.Row():
        grid = gr.Plot(first[1], label=tr("RoI on the feature map: grid cells (blue) and each cell's maximum (red)",
                                          "特征图上的感兴趣区域：网格单元格（蓝色）和每个单元格的最大值（红色）"),
                       elem_id="regions-grid")
        with gr.Column():
            pooled = gr.Plot(first[2], label=tr("RoI pooling", "感兴趣区域汇聚"), elem_id="regions-pooled")
            aligned = gr.Plot(first[3], label=tr("RoIAlign", "RoIAlign"), elem_id="regions-aligned")
    formula_md = formula(first[7], elem_id="regions-formula")
    table = Dataframe(first[4], interactive=False, label=tr("Pooled values", "汇聚后的值"), elem_id="regions-table")
    inputs = [photo, mode, top_k, index, stride, out_h, out_w]
    views = [proposals, grid, pooled, aligned, table, summary]
    # What changes the number of proposals also sets the index slider's range (never while it moves).
    rerun_on_picture_changes(render_proposals, inputs, [*views, index, formula_md], photo, example, example_photo,
                             controls=[top_k])
    mode.input(render_proposals, inputs, [*views, index, formula_md], api_visibility="private")
    # The index itself, the grid and the stride: the index slider is no output of these.
    for control in (index, out_h, out_w):
        control.input(render_pooling, inputs, [*views, formula_md], api_visibility="private",
                      trigger_mode="always_last")
    stride.input(render_pooling, inputs, [*views, formula_md], api_visibility="private")
    # A click on the picture picks a proposal: the index moves (not being dragged), then the page follows.
    proposals.select(pick_proposal, [photo, mode, top_k], index, api_visibility="private").then(
        render_pooling, inputs, [*views, formula_md], api_visibility="private")
    gr.Button(tr("Pool", "汇聚"), visible=False).click(render_regions, inputs, [*views, index], api_name="regions")
