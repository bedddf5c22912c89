"""Anchors panel (d2l 14.4): generate anchors, label them against ground truth, step through NMS.

Three sections in one tab, each a thin layer over ``vision_core.anchors``:
anchor boxes at a clicked pixel, the labelling of anchors (greedy assignment stepped), and
non-maximum suppression (stepped), ending in the book's ``multibox_detection`` table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw, ImageFont

from vision_core.anchors import (
    GreedyStep,
    NMSStep,
    ThresholdStep,
    assign_anchor_trace,
    multibox_detection,
    multibox_prior,
    multibox_target,
    nms_trace,
    offset_boxes,
)
from vision_core.boxes import box_corner_to_center, box_iou, normalize_boxes
from vision_core.examples import EXAMPLES, load_example

from .box_table import BoxTable, RowLimit, check_table_size, parse_box_table, row_limited
from .common import (
    Checkbox, Dataframe, Dropdown, Number, SafeImage, Slider, Textbox, as_rgb_image, example_photo, formula,
    parse_floats, rerun_on_picture_changes, shows_errors, try_this,
)
from .figures import FIGURE_HEIGHT, boxes_figure, color_for, draw_boxes, text_color
from .i18n import bilingual, tr

TITLE = "Anchors"
TITLE_ZH = "锚框"
TAB_ID = "anchors"
PLAY_DELAY = 0.6  # seconds between streamed steps: slow enough to follow by eye
PENDING_COLOR = "#9e9e9e"  # an anchor not labelled yet
BACKGROUND_COLOR = "#424242"  # an anchor labelled background

# Row limits of the three editable tables, refused with a message before any cell is read. The
# book's examples have 2 ground-truth boxes, 5 anchors and 4 predictions. Labelling plays one
# step per ground-truth box and draws an anchors x ground truth heatmap (50 x 20 = 1000 cells at
# most); NMS plays one step per kept prediction, so Play lasts at most 50 x PLAY_DELAY = 30 s.
MAX_GROUND_TRUTH_ROWS = 20
MAX_ANCHOR_ROWS = 50
MAX_PREDICTION_ROWS = 50
GROUND_TRUTH = RowLimit(MAX_GROUND_TRUTH_ROWS, "the ground-truth table", "真实边界框表格")
ANCHORS = RowLimit(MAX_ANCHOR_ROWS, "the anchors table", "锚框表格")
PREDICTIONS = RowLimit(MAX_PREDICTION_ROWS, "the predictions table", "预测表格")

# TinySSD's anchors (d2l 14.7): five stages over a 256 x 256 input.
TINYSSD_SIZES = ((0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))
TINYSSD_RATIOS = (1.0, 2.0, 0.5)
TINYSSD_FMAPS = (32, 16, 8, 4, 1)

# The book's labelling example (14.4.3), re-created on the astronaut photo (512 x 512 px):
# two ground-truth boxes and five anchors at the same relative places as the book's.
LABEL_GT = [["astronaut", 20, 14, 366, 512], ["shuttle", 352, 0, 472, 290]]
LABEL_ANCHORS = [
    ["a0", 0, 51, 102, 154], ["a1", 80, 100, 210, 210], ["a2", 345, 5, 475, 300],
    ["a3", 380, 330, 460, 460], ["a4", 340, 20, 480, 340],
]  # labelled as the book's: background, astronaut (dog), shuttle (cat), background, shuttle
# The book's NMS example (14.4.4): four boxes, probabilities for two classes.
NMS_PRED = [
    [20, 14, 366, 512, 0.9, 0.1], [10, 60, 380, 505, 0.8, 0.2],
    [60, 100, 340, 500, 0.7, 0.3], [352, 0, 472, 290, 0.1, 0.9],
]
NMS_CLASSES = ("astronaut", "shuttle")
SECTION_NOTE = (
    "The book's examples (dog and cat on catdog.jpg) are re-created on the offline astronaut photo: "
    "the astronaut plays the dog, the shuttle model the cat."
)
INTRO = (
    "**Anchor boxes** (d2l 14.4): the boxes a detector starts from, how they are labelled against "
    "ground truth, and how non-maximum suppression thins the predictions. " + SECTION_NOTE
)
INTRO_ZH = (
    "**锚框**（d2l 14.4）：目标检测模型的出发点，锚框如何根据真实边界框标注类别和偏移量，"
    "以及非极大值抑制如何精简预测结果。书中的例子（catdog.jpg 上的狗和猫）在离线的宇航员照片上重现："
    "宇航员扮演狗，航天飞机模型扮演猫。"
)
# The formulas fit a phone: typeset at the text's size there (KaTeX's own is 1.21 times it), and a
# formula made wide by long names scrolls inside its own box instead of widening the page. app.py
# adds this to its CSS.
CSS = """
#anchors-formula .katex-display, #label-formula .katex-display, #nms-formula .katex-display {
  overflow-x: auto; overflow-y: hidden; padding: 2px 0; }
@media (max-width: 767px) {
  #anchors-formula .katex, #label-formula .katex, #nms-formula .katex { font-size: 1em; } }
"""
# The Chinese for the tables' names in error messages.
_WHAT_ZH = {"ground truth": "真实边界框", "anchors": "锚框", "predictions": "预测"}


def _photo(image: np.ndarray | None) -> np.ndarray:
    return load_example("astronaut") if image is None else as_rgb_image(image, "photo")


# --- labels that do not overlap ---------------------------------------------------------------

Rect = tuple[float, float, float, float]  # (x1, y1, x2, y2) in pixels


def _label_candidates(box: Sequence[float], size: tuple[float, float], outside_first: bool) -> np.ndarray:
    """Where the ``size = (w, h)`` label of ``box`` may go, best first, as ``[C, 4]`` rectangles.

    Inside the box at its four corners, then stepped along its left, right, top and bottom edges
    inside, then just outside it (below, above, right, left); ``outside_first`` tries the outside
    places first (for a small box, such as a feature-map cell, whose inside the anchors' labels need).
    """
    x1, y1, x2, y2 = box
    w, h = size
    inside = [(x1, y1), (x2 - w, y1), (x1, y2 - h), (x2 - w, y2 - h)]
    outside = [(x1, y2 + 1), (x1, y1 - h - 1), (x2 + 1, y1), (x1 - w - 1, y1)]
    down = np.arange(1, max(int((y2 - y1) // (h + 1)), 1)) * (h + 1)  # steps down an edge
    across = np.arange(1, max(int((x2 - x1) // (w / 2 + 1)), 1)) * (w / 2 + 1)  # steps along an edge
    stepped = ([(x1, y1 + d) for d in down] + [(x2 - w, y1 + d) for d in down]
               + [(x1 + a, y1) for a in across] + [(x1 + a, y2 - h) for a in across])
    corners = np.array(outside + inside + stepped if outside_first else inside + stepped + outside, dtype=float)
    return np.concatenate([corners, corners + [w, h]], axis=1)


def place_labels(boxes: np.ndarray, sizes: Sequence[tuple[float, float]], bounds: tuple[float, float],
                 reserved: Sequence[Rect] = (), outside_first: Sequence[bool] | None = None) -> list[Rect | None]:
    """A rectangle for each box's label, inside ``bounds = (width, height)``, overlapping no other
    label and no ``reserved`` rectangle (a marker) where any free place exists.

    Labels are placed in order, each at the first free place of :func:`_label_candidates` (where
    none is free: the one overlapping least). Boxes are clipped to ``bounds`` first, so the labels
    of anchors that leave the photo stay on it.

    Args:
        boxes: ``[K, 4]`` ``xyxy`` boxes in pixels.
        sizes: ``K`` label sizes ``(w, h)`` in pixels; ``(0, 0)`` for a box without a label.
        bounds: the picture's ``(width, height)``.
        reserved: rectangles no label may cover.
        outside_first: ``K`` flags, see :func:`_label_candidates`.

    Returns:
        ``K`` rectangles ``(x1, y1, x2, y2)``, None for a box without a label.
    """
    width, height = bounds
    clipped = np.asarray(boxes, dtype=float).reshape(-1, 4).copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, height)
    taken = np.array(list(reserved), dtype=float).reshape(-1, 4)
    placed: list[Rect | None] = []
    for i, (box, (w, h)) in enumerate(zip(clipped, sizes)):
        if w <= 0 or h <= 0:
            placed.append(None)
            continue
        cand = _label_candidates(box, (w, h), bool(outside_first[i]) if outside_first is not None else False)
        # Slid into the picture, then each candidate's overlap (area) with every label placed so far.
        shift = np.stack([np.clip(-cand[:, 0], 0, None) - np.clip(cand[:, 2] - width, 0, None),
                          np.clip(-cand[:, 1], 0, None) - np.clip(cand[:, 3] - height, 0, None)], axis=1)
        cand = cand + np.concatenate([shift, shift], axis=1)
        gap = 1.0  # a pixel between two labels, so their fills do not touch
        over_w = np.minimum(cand[:, None, 2] + gap, taken[None, :, 2]) - np.maximum(cand[:, None, 0] - gap, taken[None, :, 0])
        over_h = np.minimum(cand[:, None, 3] + gap, taken[None, :, 3]) - np.maximum(cand[:, None, 1] - gap, taken[None, :, 1])
        overlap = (over_w.clip(0) * over_h.clip(0)).sum(axis=1)  # [C]
        best = cand[int(np.argmin(overlap))]  # the first free one (argmin takes the first of equal zeros)
        placed.append(tuple(float(v) for v in best))
        taken = np.concatenate([taken, best[None]])
    return placed


def spread_figure_labels(fig: go.Figure, boxes: np.ndarray, labels: Sequence[str],
                         image_size: tuple[int, int]) -> go.Figure:
    """Move ``boxes_figure``'s labels (one annotation per labelled box, at its upper-left corner) to
    places where they do not overlap (:func:`place_labels`), for labels of 12 px text on a photo
    shown about 480 px high (the desktop page; a narrower screen shows them relatively larger).

    Args:
        fig: ``boxes_figure``'s figure, edited in place and returned.
        boxes: ``[K, 4]`` its boxes in pixels; labels: its ``K`` labels; image_size: ``(H, W)``.
    """
    height, width = image_size
    px = max(height, width) / 480  # photo pixels per screen pixel
    sizes = [((7 * len(t) + 8) * px, 19 * px) if t else (0, 0) for t in labels]
    rects = [r for r in place_labels(np.asarray(boxes), sizes, (width, height)) if r is not None]
    for annotation, (x1, y1, _, _) in zip(fig.layout.annotations, rects):
        annotation.update(x=x1, y=y1)
    return fig


def _label_font(image_side: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font, 1/40 of the picture's longer side high (13 px on a 512 px photo)."""
    size = int(min(max(round(image_side / 40), 12), 40))
    try:
        return ImageFont.load_default(size)
    except ImportError:  # Pillow built without FreeType: its small bitmap font
        return ImageFont.load_default()


# --- anchor boxes ------------------------------------------------------------------------------

def anchors_at(fmap_h: int, fmap_w: int, sizes: Sequence[float], ratios: Sequence[float]) -> torch.Tensor:
    """All anchors of an ``fmap_h x fmap_w`` feature map, as ``Tensor[fmap_h, fmap_w, n+m-1, 4]``."""
    data = torch.zeros(1, 3, fmap_h, fmap_w)
    return multibox_prior(data, sizes=list(sizes), ratios=list(ratios)).reshape(fmap_h, fmap_w, -1, 4)


def with_grid(rgb: np.ndarray, fmap_h: int, fmap_w: int, alpha: float = 0.4) -> np.ndarray:
    """The photo ``[H, W, 3]`` with the borders of an ``fmap_h x fmap_w`` feature map's cells as faint
    lines: each line pixel moves ``alpha`` of the way to white on dark pixels, to black on light ones,
    so the grid shows on any photo without hiding it."""
    height, width = rgb.shape[:2]
    thick = max(1, round(max(height, width) / 512))
    ys = (np.round(np.arange(1, fmap_h) * height / fmap_h).astype(int)[:, None] + np.arange(thick)).ravel()
    xs = (np.round(np.arange(1, fmap_w) * width / fmap_w).astype(int)[:, None] + np.arange(thick)).ravel()
    line = np.zeros((height, width), dtype=bool)
    line[ys.clip(0, height - 1), :] = True
    line[:, xs.clip(0, width - 1)] = True
    out = rgb.astype(np.float32)
    luminance = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # [H, W]
    target = np.where(luminance < 128, 255.0, 0.0)[..., None]
    out = np.where(line[..., None], out * (1 - alpha) + target * alpha, out)
    return out.round().astype(np.uint8)


def draw_anchor_picture(rgb: np.ndarray, boxes: np.ndarray, colors: Sequence[str], labels: Sequence[str],
                        fmap: tuple[int, int], centre: tuple[float, float],
                        outside_first: Sequence[bool]) -> np.ndarray:
    """The anchors view: the photo with the feature map's grid, the boxes, a marker at ``centre``
    (the chosen cell's centre, where its anchors are centred) and labels that do not overlap.

    Args:
        rgb: ``[H, W, 3]`` uint8 photo.
        boxes: ``[K, 4]`` ``xyxy`` boxes in the photo's pixels.
        colors, labels, outside_first: ``K`` each (an empty label is not drawn).
        fmap: the feature map's ``(height, width)`` in cells.
        centre: ``(x, y)`` in the photo's pixels.

    Returns:
        ``[H', W', 3]`` uint8 (``draw_boxes``' size: the photo's, or smaller for a huge one).
    """
    drawn = draw_boxes(with_grid(rgb, *fmap), boxes, colors, width=max(2, round(max(rgb.shape[:2]) / 300)))
    sy, sx = drawn.shape[0] / rgb.shape[0], drawn.shape[1] / rgb.shape[1]
    picture = Image.fromarray(np.ascontiguousarray(drawn))
    draw = ImageDraw.Draw(picture)
    side = max(picture.size)
    # The marker: a white dot ringed in black, visible on light and dark photos alike.
    cx, cy, radius = centre[0] * sx, centre[1] * sy, max(6, round(side / 64))
    marker = (cx - radius, cy - radius, cx + radius, cy + radius)
    draw.ellipse(marker, fill="white", outline="black", width=max(2, radius // 3))
    draw.ellipse((cx - 1.5, cy - 1.5, cx + 1.5, cy + 1.5), fill="black")

    font = _label_font(side)
    pad = max(2, round(getattr(font, "size", 12) / 5))
    ascent, descent = font.getmetrics()
    sizes = [(font.getlength(t) + 2 * pad, ascent + descent + 2 * pad) if t else (0, 0) for t in labels]
    scaled = np.asarray(boxes, dtype=float).reshape(-1, 4) * [sx, sy, sx, sy]
    rects = place_labels(scaled, sizes, picture.size, reserved=[marker], outside_first=outside_first)
    for rect, text, color in zip(rects, labels, colors):
        if rect is None:
            continue
        x1, y1, x2, y2 = rect
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=color, outline="black" if color == "white" else None)
        draw.text((x1 + pad, y1 + pad), text, fill=text_color(color), font=font, anchor="la")
    return np.asarray(picture)


def _num(value: float, digits: int = 1) -> str:
    """A number for a formula: at most ``digits`` decimals, no trailing zeros, thousands in groups."""
    text = f"{value:,.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:,.0f}"
    return text.replace(",", "{,}") if text not in ("-0", "") else "0"


def anchor_formula(sizes: Sequence[float], ratios: Sequence[float], fmap: tuple[int, int], cell: tuple[int, int],
                   image: tuple[int, int], anchor: torch.Tensor, which: int) -> str:
    """The book's anchor size and centre for one anchor of the chosen cell, with this view's numbers.

    ``multibox_prior`` makes an anchor of size ``s`` and ratio ``r`` ``s·√r·(h/w)`` of the image
    wide and ``s/√r`` high (``h x w`` the feature map, so ``r`` is a ratio in pixels): ``W·s·√r`` by
    ``H·s/√r`` pixels on a feature map shaped like the photo, the book's ``ws√r`` and ``hs/√r``.

    Args:
        anchor: ``[4]`` the anchor in pixels (its width and height are the formula's results).
        which: its index among the cell's ``n + m - 1`` anchors (the book's order).
    """
    n = len(sizes)
    s, r = (sizes[which], ratios[0]) if which < n else (sizes[0], ratios[which - n + 1])
    (fh, fw), (row, col), (img_h, img_w) = fmap, cell, image
    x1, y1, x2, y2 = anchor.tolist()
    fmap_w, fmap_h = "w_{\\text{map}}", "h_{\\text{map}}"
    return (
        f"Anchor \\(s = {s:g},\\ r = {r:g}\\) of cell \\((i, j) = ({row}, {col})\\), one of "
        f"\\(n + m - 1 = {n} + {len(ratios)} - 1 = {n + len(ratios) - 1}\\) anchors per cell; its size and "
        f"centre in pixels of the {img_w} × {img_h} photo:\n\n"
        "$$\\begin{aligned}"
        f"w &= s\\sqrt{{r}}\\,\\frac{{{fmap_h}}}{{{fmap_w}}}\\,W = {s:g}\\sqrt{{{r:g}}}\\cdot"
        f"\\frac{{{fh}}}{{{fw}}}\\cdot {img_w} = \\mathbf{{{_num(x2 - x1)}}} \\\\ "
        f"h &= \\frac{{s}}{{\\sqrt{{r}}}}\\,H = \\frac{{{s:g}}}{{\\sqrt{{{r:g}}}}}\\cdot {img_h}"
        f" = \\mathbf{{{_num(y2 - y1)}}} \\\\ "
        f"x &= \\frac{{j + 0.5}}{{{fmap_w}}}\\,W = \\frac{{{col + 0.5:g}}}{{{fw}}}\\cdot {img_w} = {_num((x1 + x2) / 2)} \\\\ "
        f"y &= \\frac{{i + 0.5}}{{{fmap_h}}}\\,H = \\frac{{{row + 0.5:g}}}{{{fh}}}\\cdot {img_h} = {_num((y1 + y2) / 2)}"
        "\\end{aligned}$$"
    )


@shows_errors
def render_anchor_boxes(image: np.ndarray | None, fmap_h: float, fmap_w: float, sizes_text: str, ratios_text: str,
                        cell_row: float, cell_col: float, tinyssd: bool) -> tuple[np.ndarray, pd.DataFrame, str, str]:
    """The n + m - 1 anchors centred on one feature-map cell, drawn over the photo with the feature
    map's grid and a marker at the cell's centre.

    Returns the annotated photo, the anchors' table, a summary with the anchor counts, and the
    formula of one anchor's size and centre with this view's numbers.
    """
    rgb = _photo(image)
    h, w = int(fmap_h), int(fmap_w)  # 1..64, bound by their sliders
    sizes = parse_floats(sizes_text, "sizes", 0, 1)
    ratios = parse_floats(ratios_text, "ratios", 0, 10)
    row, col = min(max(int(cell_row), 0), h - 1), min(max(int(cell_col), 0), w - 1)
    img_h, img_w = rgb.shape[:2]
    scale = torch.tensor([img_w, img_h, img_w, img_h], dtype=torch.float32)
    cell = anchors_at(h, w, sizes, ratios)[row, col] * scale  # [n+m-1, 4] pixels
    names = [f"s={s:g}, r={ratios[0]:g}" for s in sizes] + [f"s={sizes[0]:g}, r={r:g}" for r in ratios[1:]]
    # The feature-map cell itself, in white, labelled outside it (the anchors' labels need its inside).
    cell_box = torch.tensor([[col * img_w / w, row * img_h / h, (col + 1) * img_w / w, (row + 1) * img_h / h]])
    boxes, colors = [cell, cell_box], [color_for(i) for i in range(len(cell))] + ["white"]
    labels = names + [f"cell ({row}, {col})"]
    if tinyssd:
        # Each TinySSD stage's anchors at the image centre, one colour per stage.
        for stage, (fm, stage_sizes) in enumerate(zip(TINYSSD_FMAPS, TINYSSD_SIZES)):
            stage_anchors = anchors_at(fm, fm, stage_sizes, TINYSSD_RATIOS)[fm // 2, fm // 2] * scale
            boxes.append(stage_anchors)
            colors += [color_for(stage + 3)] * len(stage_anchors)
            labels += [f"stage {stage + 1}"] + [""] * (len(stage_anchors) - 1)
    outside_first = [False] * len(cell) + [True] + [False] * (len(labels) - len(cell) - 1)
    centre = ((col + 0.5) * img_w / w, (row + 0.5) * img_h / h)
    drawn = draw_anchor_picture(rgb, torch.cat(boxes).numpy(), colors, labels, (h, w), centre, outside_first)
    wh = cell[:, 2:] - cell[:, :2]  # [n+m-1, 2], from the unrounded corners
    table = pd.DataFrame(torch.cat([cell, wh], dim=1).double().numpy().round(1), columns=["x1", "y1", "x2", "y2", "w", "h"])
    table.insert(0, "anchor", names)
    per_cell = len(sizes) + len(ratios) - 1
    summary = (
        f"Cell (row {row}, column {col}) of a {h} × {w} feature map: **{per_cell} anchors** "
        f"(n + m − 1 with n = {len(sizes)} sizes, m = {len(ratios)} ratios). "
        f"All cells: {h} × {w} × {per_cell} = **{h * w * per_cell:,} anchors**. "
        f"One anchor set per pixel of this {img_w} × {img_h} photo would be {img_h * img_w * per_cell:,} "
        "(the book's 561 × 728 image with 3 sizes and 3 ratios: 2,042,040)."
    )
    if tinyssd:
        total = sum(fm * fm * 4 for fm in TINYSSD_FMAPS)
        summary += f"\n\nTinySSD's five stages ({', '.join(f'{f}×{f}' for f in TINYSSD_FMAPS)}, 4 anchors per cell): {total:,} anchors."
    which = len(sizes) if len(ratios) > 1 else 0  # an anchor with r != 1 where there is one: w and h differ
    return drawn, table, summary, anchor_formula(sizes, ratios, (h, w), (row, col), (img_h, img_w), cell[which], which)


def click_to_cell(image: np.ndarray | None, fmap_h: float, fmap_w: float, evt: gr.SelectData) -> tuple[int, int]:
    """Map a click on the photo (pixel x, y) to the feature-map cell under it."""
    h, w = int(fmap_h), int(fmap_w)
    rgb_h, rgb_w = np.asarray(image).shape[:2] if image is not None else (512, 512)
    x, y = evt.index[0], evt.index[1]
    return min(int(y * h / rgb_h), h - 1), min(int(x * w / rgb_w), w - 1)


# --- labelling ---------------------------------------------------------------------------------

def _boxes_from_table(table: Any, size: tuple[int, int], what: str, limit: RowLimit) -> BoxTable:
    """The table's boxes (xyxy, pixels); ValueError for a bad row, an empty table or one over ``limit``."""
    parsed = parse_box_table(table, "xyxy", "pixels", size, limit)
    bad = [p for p in parsed.problems if not p.drawn]
    if bad:
        raise ValueError(bilingual(f"{what} row {bad[0].row}: {bad[0].message}",
                                   f"{_WHAT_ZH.get(what, what)}第 {bad[0].row} 行：{bad[0].message}"))
    if not parsed.rows:
        raise ValueError(bilingual(f"{what}: give at least one box", f"{_WHAT_ZH.get(what, what)}：请至少给出一个框"))
    return parsed


def _iou_heatmap(iou: np.ndarray, anchor_names: Sequence[str], gt_names: Sequence[str],
                 highlight: tuple[int, int] | None = None, discarded_rows: Sequence[int] = (),
                 discarded_cols: Sequence[int] = (), marks: Sequence[tuple[int, int]] = ()) -> go.Figure:
    """The anchors x ground-truth IoU matrix; discarded rows and columns greyed over, not hidden.

    ``highlight`` (row, col) gets a red frame (the greedy pick), ``marks`` green frames
    (assignments by threshold).
    """
    fig = go.Figure(go.Heatmap(
        z=iou, x=list(gt_names), y=list(anchor_names), text=np.vectorize(lambda v: f"{v:.2f}")(iou),
        texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
        hovertemplate="anchor %{y}, ground truth %{x}: IoU %{text}<extra></extra>",
    ))
    n_rows, n_cols = iou.shape
    grey = dict(type="rect", fillcolor="rgba(120,120,120,0.55)", line=dict(width=0), layer="above")
    # All shapes first, set once: plotly re-validates every shape on each add_shape (the square of the rows).
    shapes = [dict(x0=-0.5, x1=n_cols - 0.5, y0=r - 0.5, y1=r + 0.5, **grey) for r in discarded_rows]
    shapes += [dict(x0=c - 0.5, x1=c + 0.5, y0=-0.5, y1=n_rows - 0.5, **grey) for c in discarded_cols]
    shapes += [dict(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5, line=dict(color=color, width=4))
               for (r, c), color in [(m, "#1a8a3a") for m in marks] + ([(highlight, "#c62828")] if highlight else [])]
    fig.update_layout(shapes=shapes, height=min(FIGURE_HEIGHT, 120 + 40 * n_rows), margin=dict(l=10, r=10, t=30, b=10),
                      title=dict(text="IoU: anchors × ground truth (grey: discarded; red: greedy pick; "
                                      "green: by threshold)", font=dict(size=13)))
    fig.update_yaxes(autorange="reversed")
    return fig


def assignment_after(steps: Sequence[GreedyStep | ThresholdStep], k: int, num_anchors: int) -> list[int | None]:
    """Each anchor's label once the first ``k`` steps of ``assign_anchor_trace`` have run: its box's
    index, -1 for background, None while still undecided.

    A greedy pick is decided at its step; every other anchor only at the last (threshold) step,
    where it takes its best box or becomes background.
    """
    if k >= len(steps):
        return list(steps[-1].assignment)
    decided: list[int | None] = [None] * num_anchors
    for step in steps[:k]:  # greedy steps only: the threshold step is the last
        decided[step.anchor] = step.gt
    return decided


def _label_frame(steps: Sequence[GreedyStep | ThresholdStep], k: int, anchors: Sequence[str],
                 gts: Sequence[str]) -> tuple[Any, ...]:
    """What the ``k``-th step shows: (greedy pick, greyed rows, greyed columns, threshold assignments, text)."""
    if k == 0:
        return None, (), (), (), "Step 0: nothing assigned yet; the greedy phase takes the largest IoU first."
    step = steps[k - 1]
    if isinstance(step, ThresholdStep):
        greedy = steps[-2] if len(steps) > 1 else None
        given = ", ".join(f"{anchors[a]} → {gts[g]} (IoU {v:.2f})" for a, g, v in step.assigned) or "none"
        text = (f"Threshold phase: every other anchor whose best IoU ≥ {step.threshold:g} takes that box: {given}; "
                "the rest are background.")
        rows = greedy.discarded_rows if greedy else ()  # anchors the greedy phase already placed
        return None, rows, (), [(a, g) for a, g, _ in step.assigned], text
    a, g = anchors[step.anchor], gts[step.gt]
    text = (f"Greedy step {k}: the largest IoU left is {step.iou:.2f}, anchor {a} with {g}; "
            f"{a} gets {g}, then row {a} and column {g} are discarded.")
    return (step.anchor, step.gt), step.discarded_rows, step.discarded_columns, (), text


OFFSET_COLUMNS = ["offset x", "offset y", "offset w", "offset h"]


def _target_table(anc_n: torch.Tensor, gt_n: torch.Tensor, decided: Sequence[int | None], anchor_names: Sequence[str],
                  classes: Sequence[str]) -> pd.DataFrame:
    """multibox_target's class labels and offsets of the anchors decided so far; undecided rows
    say "pending" and leave their cells blank.

    Once every anchor is decided the rows are ``multibox_target``'s own (the book's function); before,
    the decided ones are computed the same way (``offset_boxes`` to the anchor's box, class = box + 1).
    """
    if all(j is not None for j in decided):
        labels = torch.cat([torch.arange(len(classes), dtype=torch.float32)[:, None], gt_n], dim=1)[None]
        offset, _, cls = multibox_target(anc_n[None], labels)
        offsets, class_labels = offset.reshape(-1, 4), cls[0]
    else:
        box = torch.tensor([j if j is not None and j >= 0 else 0 for j in decided])  # [A]
        positive = torch.tensor([j is not None and j >= 0 for j in decided])[:, None]  # [A, 1]
        offsets = torch.where(positive, offset_boxes(anc_n, gt_n[box]), 0.0)
        class_labels = torch.where(positive[:, 0], box + 1, 0)
    table = pd.DataFrame(offsets.double().numpy().round(3), columns=OFFSET_COLUMNS).astype(object)
    table.insert(0, "class label", pd.Series(class_labels.tolist(), dtype=object))
    table.insert(0, "assigned", ["pending" if j is None else classes[j] if j >= 0 else "background" for j in decided])
    table.insert(0, "anchor", list(anchor_names))
    pending = [j is None for j in decided]
    table.loc[pending, ["class label", *OFFSET_COLUMNS]] = ""
    return table


def _tex(name: str) -> str:
    """A table's name (a class, an anchor) as LaTeX text: the characters LaTeX reads as commands go."""
    kept = "".join(ch for ch in str(name) if ch.isalnum() or ch in " -.,:;()[]+/'")
    return f"\\text{{{kept or '?'}}}"


def _iou_formula(anchor_px: Sequence[float], gt_px: Sequence[float], a: str, g: str) -> str:
    """The IoU (Jaccard index) of an anchor and a box, with their areas in pixels (d2l eq. 14.3.1)."""
    ax1, ay1, ax2, ay2 = anchor_px
    bx1, by1, bx2, by2 = gt_px
    inter = max(min(ax2, bx2) - max(ax1, bx1), 0) * max(min(ay2, by2) - max(ay1, by1), 0)
    area_a, area_b = (ax2 - ax1) * (ay2 - ay1), (bx2 - bx1) * (by2 - by1)
    iou = inter / (area_a + area_b - inter)
    return (f"$$\\begin{{aligned}}J({a}, {g}) &= \\frac{{|A \\cap B|}}{{|A| + |B| - |A \\cap B|}} \\\\ "
            f"&= \\frac{{{_num(inter, 0)}}}{{{_num(area_a, 0)} + {_num(area_b, 0)} - {_num(inter, 0)}}} \\\\ "
            f"&= \\mathbf{{{iou:.3f}}}\\end{{aligned}}$$")


def _offset_formula(anchor_px: torch.Tensor, gt_px: torch.Tensor, offsets: Sequence[float], a: str, g: str) -> str:
    """The book's offsets of an anchor from its box (eq. 14.4.3, μ = 0, σx = σy = 0.1, σw = σh = 0.2),
    with centres and sizes in pixels; ``offsets`` are the table's values."""
    xa, ya, wa, ha = box_corner_to_center(anchor_px.double()).tolist()
    xb, yb, wb, hb = box_corner_to_center(gt_px.double()).tolist()
    ox, oy, ow, oh = offsets
    return (
        f"Offsets of \\({a}\\) from \\({g}\\) (eq. 14.4.3 with \\(\\mu = 0,\\ \\sigma_x = \\sigma_y = 0.1,\\ "
        "\\sigma_w = \\sigma_h = 0.2\\); centres and sizes in pixels):\n\n$$\\begin{aligned}"
        f"\\frac{{(x_b - x_a) / w_a - \\mu_x}}{{\\sigma_x}} &= \\frac{{({_num(xb)} - {_num(xa)}) / {_num(wa)}}}{{0.1}}"
        f" = \\mathbf{{{ox:.3f}}} \\\\ "
        f"\\frac{{(y_b - y_a) / h_a - \\mu_y}}{{\\sigma_y}} &= \\frac{{({_num(yb)} - {_num(ya)}) / {_num(ha)}}}{{0.1}}"
        f" = \\mathbf{{{oy:.3f}}} \\\\ "
        f"\\frac{{\\log(w_b / w_a) - \\mu_w}}{{\\sigma_w}} &= \\frac{{\\log({_num(wb)} / {_num(wa)})}}{{0.2}}"
        f" = \\mathbf{{{ow:.3f}}} \\\\ "
        f"\\frac{{\\log(h_b / h_a) - \\mu_h}}{{\\sigma_h}} &= \\frac{{\\log({_num(hb)} / {_num(ha)})}}{{0.2}}"
        f" = \\mathbf{{{oh:.3f}}}"
        "\\end{aligned}$$"
    )


LABEL_FORMULA_0 = (
    "The greedy phase takes the largest entry left of the matrix \\(X\\), \\(x_{ij} = J(A_i, B_j)\\) with "
    "$$J(\\mathcal{A}, \\mathcal{B}) = \\frac{|\\mathcal{A} \\cap \\mathcal{B}|}{|\\mathcal{A} \\cup \\mathcal{B}|},$$"
    "and each labelled anchor gets the offsets of eq. 14.4.3. Step 1 fills in the numbers of its pick."
)


def label_formula(steps: Sequence[GreedyStep | ThresholdStep], k: int, anc: BoxTable, gt: BoxTable,
                  table: pd.DataFrame) -> str:
    """The formula of the ``k``-th labelling step with its numbers: the IoU of the pair decided now and
    the offsets of that anchor (those of ``table``); at the threshold step, the rule applied to the
    first anchor it labels (or to the best one it leaves as background)."""
    if k == 0:
        return LABEL_FORMULA_0
    step, names, classes = steps[k - 1], anc.labels, gt.labels
    if isinstance(step, GreedyStep):
        a, g, rule = step.anchor, step.gt, ""
    else:
        best, best_gt = box_iou(anc.corners_px.double(), gt.corners_px.double()).max(dim=1)  # [A], [A]
        greedy = set(steps[-2].discarded_rows) if len(steps) > 1 else set()
        others = [i for i in range(len(names)) if i not in greedy]
        if step.assigned:
            a, g, _ = step.assigned[0]
            verdict = f"\\ge {step.threshold:g} \\Rightarrow {_tex(names[a])} \\to {_tex(classes[g])}"
        elif others:
            a = max(others, key=lambda i: float(best[i]))
            g = int(best_gt[a])
            verdict = f"< {step.threshold:g} \\Rightarrow {_tex(names[a])}\\ \\text{{is background}}"
        else:
            return "Every anchor was picked in the greedy phase: the threshold phase has nothing left to label."
        rule = (f"Threshold phase, for each anchor not picked greedily: $$\\begin{{aligned}}\\max_j J({_tex(names[a])}, B_j) &= "
                f"J({_tex(names[a])}, {_tex(classes[g])}) = {float(best[a]):.3f} \\\\ &{verdict}\\end{{aligned}}$$\n\n")
    a_name, g_name = _tex(names[a]), _tex(classes[g])
    text = rule + _iou_formula(anc.corners_px[a].tolist(), gt.corners_px[g].tolist(), a_name, g_name)
    row = table.iloc[a]
    if row["assigned"] not in ("pending", "background"):
        text += "\n\n" + _offset_formula(anc.corners_px[a], gt.corners_px[g], [float(row[c]) for c in OFFSET_COLUMNS],
                                         a_name, g_name)
    return text


@shows_errors
def render_labelling(image: np.ndarray | None, gt_table: Any, anchor_table: Any, threshold: float,
                     step: float) -> tuple[go.Figure, go.Figure, pd.DataFrame, str, str, dict[str, Any]]:
    """Anchors labelled against ground truth at ``step``: the drawing, the IoU heatmap, multibox_target's
    table of what is decided so far, the summary, and the step's formula with its numbers."""
    check_table_size(gt_table, GROUND_TRUTH)  # first: a table over its limit costs nothing more
    check_table_size(anchor_table, ANCHORS)
    rgb = _photo(image)
    size = rgb.shape[:2]
    gt = _boxes_from_table(gt_table, size, "ground truth", GROUND_TRUTH)
    anc = _boxes_from_table(anchor_table, size, "anchors", ANCHORS)
    gt_n = normalize_boxes(gt.corners_px.float(), size)
    anc_n = normalize_boxes(anc.corners_px.float(), size)
    iou = box_iou(anc_n, gt_n).numpy()
    steps = assign_anchor_trace(gt_n, anc_n, iou_threshold=float(threshold))
    k = min(max(int(step), 0), len(steps))
    highlight, rows, cols, marks, text = _label_frame(steps, k, anc.labels, gt.labels)
    decided = assignment_after(steps, k, len(anc.labels))
    classes = gt.labels
    labels = [f"{a}: " + ("pending" if j is None else classes[j] if j >= 0 else "background")
              for a, j in zip(anc.labels, decided)]
    colors = [PENDING_COLOR if j is None else color_for(j) if j >= 0 else BACKGROUND_COLOR for j in decided]
    all_boxes, all_labels = torch.cat([gt.corners_px, anc.corners_px]).numpy(), [f"GT {c}" for c in classes] + labels
    fig = boxes_figure(rgb, all_boxes, all_labels, [color_for(j) for j in range(len(classes))] + colors,
                       dashed=[True] * len(classes) + [False] * len(labels))
    spread_figure_labels(fig, all_boxes, all_labels, size)
    table = _target_table(anc_n, gt_n, decided, anc.labels, classes)
    summary = f"**Step {k} of {len(steps)}.** {text}"
    return (fig, _iou_heatmap(iou, anc.labels, classes, highlight, rows, cols, marks), table, summary,
            label_formula(steps, k, anc, gt, table), gr.update(maximum=len(steps), value=k))


# --- non-maximum suppression -------------------------------------------------------------------

def _predictions(table: Any, size: tuple[int, int]) -> tuple[BoxTable, torch.Tensor]:
    """Boxes and class probabilities from rows [x1, y1, x2, y2, p(class 1), p(class 2)]."""
    check_table_size(table, PREDICTIONS)
    rows = [list(r) for r in (table.values.tolist() if hasattr(table, "values") else table or [])]
    boxes_rows = [["", *r[:4]] for r in rows]
    parsed = _boxes_from_table(boxes_rows, size, "predictions", PREDICTIONS)
    probs = []
    for i in [r - 1 for r in parsed.rows]:
        try:
            p = [float(v) for v in rows[i][4:6]]
        except (TypeError, ValueError):
            raise ValueError(bilingual(f"predictions row {i + 1}: class probabilities must be numbers",
                                       f"预测第 {i + 1} 行：类别概率必须是数字")) from None
        if len(p) != 2 or not all(0 <= v <= 1 for v in p) or sum(p) > 1 + 1e-6:
            raise ValueError(bilingual(f"predictions row {i + 1}: two probabilities in [0, 1] summing to at most 1",
                                       f"预测第 {i + 1} 行：需要两个 [0, 1] 内的概率，且总和不超过 1"))
        probs.append(p)
    probs = torch.tensor(probs, dtype=torch.float32)  # [A, 2]
    cls_probs = torch.cat([(1 - probs.sum(1, keepdim=True)).clamp(min=0), probs], dim=1).T  # [3, A]
    return parsed, cls_probs


def nms_status(steps: Sequence[NMSStep], k: int, num_boxes: int) -> list[str]:
    """Each box's state once the first ``k`` NMS steps have run: "waiting", "kept", "suppressed", or
    "current" for the box kept by step ``k`` while steps remain; after the last step every box is
    "kept" or "suppressed"."""
    status = ["waiting"] * num_boxes
    for s in steps[:k]:
        status[s.chosen] = "kept"
        for j, _ in s.suppressed:
            status[j] = "suppressed"
    if 0 < k < len(steps):
        status[steps[k - 1].chosen] = "current"
    return status


def nms_formula(steps: Sequence[NMSStep], k: int, boxes: torch.Tensor, conf: torch.Tensor, threshold: float) -> str:
    """NMS's rule at step ``k`` with its numbers: the list L by confidence (step 0), then the box kept
    and the IoU of every box left in L with it, against the threshold ε."""
    rule = ("$$\\begin{aligned}B &= \\arg\\max_{B_i \\in L} p_i \\\\ L &\\leftarrow \\{B_j \\in L \\setminus \\{B\\} : "
            f"\\operatorname{{IoU}}(B, B_j) \\le \\epsilon\\}}\\end{{aligned}}$$\n\nwith the threshold "
            f"\\(\\epsilon = {threshold:g}\\).")
    order = torch.sort(conf, descending=True, stable=True).indices.tolist()
    if k == 0:
        listed = ",\\ ".join(f"B_{{{i}}}{{:}}\\ {float(conf[i]):.2f}" for i in order)
        return (f"{rule}\n\nThe list, by confidence: \\(L = ({listed})\\). Each step keeps the first box of "
                "\\(L\\) and drops from \\(L\\) the boxes that overlap it by more than \\(\\epsilon\\).")
    s = steps[k - 1]
    before = list(steps[k - 2].remaining) if k > 1 else order
    rest = [j for j in before if j != s.chosen]
    text = f"{rule}\n\nStep {k} keeps \\(B = B_{{{s.chosen}}}\\ (p = {s.score:.2f})\\)"
    if not rest:
        return text + ", the last box of \\(L\\): NMS is done."
    ious = box_iou(boxes[s.chosen][None].double(), boxes[rest].double())[0].tolist()
    lines = " \\\\ ".join(
        f"\\operatorname{{IoU}}(B_{{{s.chosen}}}, B_{{{j}}}) &= {v:.3f} "
        + (f"> {threshold:g} & &\\Rightarrow \\text{{suppressed}}" if v > threshold
           else f"\\le {threshold:g} & &\\Rightarrow \\text{{stays in }} L")
        for j, v in zip(rest, ious))
    text += f" and compares it with every other box of \\(L\\):$$\\begin{{aligned}}{lines}\\end{{aligned}}$$"
    left = ",\\ ".join(f"B_{{{j}}}" for j in s.remaining)
    return text + (f"Left in \\(L\\): \\(({left})\\)." if s.remaining else "\\(L\\) is now empty: NMS is done.")


@shows_errors
def render_nms(image: np.ndarray | None, pred_table: Any, threshold: float,
               step: float) -> tuple[go.Figure, pd.DataFrame, str, str, dict[str, Any]]:
    """NMS at ``step``: kept / suppressed / current colouring, multibox_detection's table with the
    boxes decided so far, the summary, and the rule with this step's numbers."""
    check_table_size(pred_table, PREDICTIONS)  # first: a table over its limit costs nothing more
    rgb = _photo(image)
    size = rgb.shape[:2]
    parsed, cls_probs = _predictions(pred_table, size)
    boxes_n = normalize_boxes(parsed.corners_px.float(), size)
    conf, cls = cls_probs[1:].max(0)
    steps = nms_trace(boxes_n, conf, float(threshold))
    k = min(max(int(step), 0), len(steps))
    status = nms_status(steps, k, len(boxes_n))
    text = "Step 0: boxes sorted by score; none chosen yet."
    if k > 0:
        s = steps[k - 1]
        gone = ", ".join(f"#{j} (IoU {v:.2f})" for j, v in s.suppressed) or "nothing"
        text = f"Step {k}: keep #{s.chosen} (score {conf[s.chosen]:.2f}); it suppresses {gone}."
        if k == len(steps):
            kept = ", ".join(f"#{st.chosen}" for st in steps)
            text += f" Done: {kept} kept, every other box suppressed."
    palette = {"waiting": "#9e9e9e", "kept": "#1a8a3a", "suppressed": "#c62828", "current": "#ef6c00"}
    labels = [f"#{i} {NMS_CLASSES[c]} {p:.2f} ({st})" for i, (c, p, st) in enumerate(zip(cls.tolist(), conf.tolist(), status))]
    fig = boxes_figure(rgb, parsed.corners_px.numpy(), labels, [palette[s] for s in status],
                       dashed=[s == "suppressed" for s in status])
    spread_figure_labels(fig, parsed.corners_px.numpy(), labels, size)
    out = multibox_detection(cls_probs[None], torch.zeros(1, 4 * len(boxes_n)), boxes_n[None], nms_threshold=float(threshold))
    # multibox_detection's rows: the kept boxes by decreasing score (nms_trace's order), then the others by index.
    kept = [st.chosen for st in steps]
    order = kept + sorted(set(range(len(boxes_n))) - set(kept))
    table = pd.DataFrame(out[0].double().numpy().round(3), columns=["class", "conf", "x1", "y1", "x2", "y2"]).astype(object)
    table.insert(0, "box", [f"#{i}" for i in order])
    table.loc[[status[i] == "waiting" for i in order], "class"] = "pending"  # not decided by this step yet
    return (fig, table, f"**Step {k} of {len(steps)}.** {text}", nms_formula(steps, k, boxes_n, conf, float(threshold)),
            gr.update(maximum=len(steps), value=k))


def play_steps(render: Callable[..., tuple]) -> Callable[..., Iterator[tuple]]:
    """A generator function that streams ``render(*args, step)`` for step 0, 1, ... to the last."""

    def play(*args: Any) -> Iterator[tuple]:
        outputs = render(*args, 0)
        yield outputs
        for k in range(1, outputs[-1]["maximum"] + 1):
            time.sleep(PLAY_DELAY)
            yield render(*args, k)

    return play


play_labelling = play_steps(render_labelling)
play_nms = play_steps(render_nms)


# --- layout ------------------------------------------------------------------------------------

def _table(value: list[list[Any]], headers: list[str], elem_id: str, label: str, limit: RowLimit,
           datatype: list[str] | None = None) -> gr.Dataframe:
    """An editable table (pixels) that refuses more than ``limit`` rows before reading them."""
    return row_limited(limit)(value=value, headers=headers, datatype=datatype or ["str"] + ["number"] * (len(headers) - 1),
                        type="array", interactive=True, label=label, elem_id=elem_id)


def _stepping_controls(threshold_label: str, max_steps: int, prefix: str,
                       photo0: np.ndarray) -> tuple[gr.Slider, gr.Slider, gr.Button, gr.Image]:
    """Threshold slider, step slider with a Play button, and a photo upload."""
    threshold = Slider(0, 1, value=0.5, step=0.05, label=threshold_label)
    with gr.Row():
        step = Slider(0, max_steps, value=0, step=1, label=tr("Step", "步"), elem_id=f"{prefix}-step")
        play = gr.Button(tr("▶ Play", "▶ 播放"), variant="primary", elem_id=f"{prefix}-play")
    photo = SafeImage(photo0, type="numpy", image_mode="RGB", sources=["upload", "clipboard"],
                     label=tr("Photo (upload to replace)", "照片（上传以替换）"), height=200)
    return threshold, step, play, photo


def _wire_stepping(render: Callable[..., tuple], player: Callable[..., Iterator[tuple]], inputs: list[Any],
                   outputs: list[Any], tables: Sequence[gr.Dataframe], threshold: gr.Slider, step: gr.Slider,
                   play: gr.Button, photo: gr.Image, api_name: str) -> None:
    """Re-render on any edit; the step slider and Play are the section's API endpoints."""
    step.input(render, inputs, outputs, api_name=api_name, trigger_mode="always_last")
    threshold.input(render, inputs, outputs, api_visibility="private", trigger_mode="always_last")
    for table in tables:
        table.input(render, inputs, outputs, api_visibility="private")
    photo.upload(render, inputs, outputs, api_visibility="private")
    play.click(player, inputs[:-1], outputs, api_name=f"{api_name}_play")


def build() -> None:
    """Lay out the Anchors tab (three sections) and wire its events."""
    photo0 = load_example("astronaut")
    gr.Markdown(tr(INTRO, INTRO_ZH))
    with gr.Tabs():
        with gr.Tab(tr("Anchor boxes", "生成锚框"), id="anchor-boxes"):
            with gr.Row():
                with gr.Column(scale=4, min_width=300):
                    with gr.Row():
                        fmap_h = Slider(1, 64, value=4, step=1, label=tr("Feature map height", "特征图高度"))
                        fmap_w = Slider(1, 64, value=4, step=1, label=tr("Feature map width", "特征图宽度"))
                    sizes = Textbox("0.75, 0.5, 0.25",
                                       label=tr("Sizes s (fractions of the image, comma-separated)",
                                                "缩放比 s（占图像的比例，用逗号分隔）"))
                    ratios = Textbox("1, 2, 0.5",
                                        label=tr("Aspect ratios r (width / height)", "宽高比 r（宽 / 高）"))
                    with gr.Row():
                        cell_row = Number(1, precision=0, label=tr("Cell row", "单元格的行"), minimum=0)
                        cell_col = Number(1, precision=0, label=tr("Cell column", "单元格的列"), minimum=0)
                    tinyssd = Checkbox(False, label=tr("Overlay TinySSD's five anchor scales (at the centre)",
                                                          "叠加 TinySSD 五个阶段的锚框（位于图像中心）"))
                    ab_example = Dropdown(list(EXAMPLES), value="astronaut",
                                             label=tr("Example photo (offline)", "示例照片（离线）"))
                    ab_photo = SafeImage(photo0, type="numpy", image_mode="RGB", sources=["upload", "clipboard"],
                                        label=tr("Photo (upload to replace)", "照片（上传以替换）"), height=200)
                with gr.Column(scale=6, min_width=360):
                    first = render_anchor_boxes(photo0, 4, 4, "0.75, 0.5, 0.25", "1, 2, 0.5", 1, 1, False)
                    try_this("change the ratios to 1, 2, 0.5, 3 and press Enter. Before you do, predict how many "
                             "anchors each cell will get, and how many the whole feature map.",
                             "把宽高比改成 1, 2, 0.5, 3 并按回车。改之前先预测：每个单元格会有几个锚框？整个特征图一共有多少个？",
                             elem_id="anchors-try")
                    gr.Markdown(tr("**Click the photo** to choose the feature-map cell under the click (faint lines: "
                                   "the cells; white square: the chosen one; dot: its centre, where all its anchors are "
                                   "centred).",
                                   "**点击照片**，选中点击处的特征图单元格（淡线：单元格的边界；白色方框：选中的单元格；"
                                   "圆点：它的中心，它的所有锚框都以此为中心）。"))
                    ab_view = gr.Image(first[0], interactive=False, show_label=False,
                                       label=tr("Click a pixel to see its anchors", "点击一个像素，查看以它为中心的锚框"),
                                       elem_id="anchors-view", height=FIGURE_HEIGHT)
                    ab_summary = gr.Markdown(first[2], elem_id="anchors-summary")
                    ab_formula = formula(first[3], elem_id="anchors-formula")
                    ab_table = Dataframe(first[1], interactive=False,
                                            label=tr("Anchors at the chosen cell (pixels)", "所选单元格的锚框（像素）"),
                                            elem_id="anchors-table")
            ab_inputs = [ab_photo, fmap_h, fmap_w, sizes, ratios, cell_row, cell_col, tinyssd]
            ab_outputs = [ab_view, ab_table, ab_summary, ab_formula]
            for control in (fmap_h, fmap_w, tinyssd):
                control.change(render_anchor_boxes, ab_inputs, ab_outputs, api_visibility="private")
            for control in (sizes, ratios):  # on Enter or leaving the box, not on every keystroke
                control.submit(render_anchor_boxes, ab_inputs, ab_outputs, api_visibility="private")
                control.blur(render_anchor_boxes, ab_inputs, ab_outputs, api_visibility="private")
            rerun_on_picture_changes(render_anchor_boxes, ab_inputs, ab_outputs, ab_photo, ab_example, example_photo,
                                     controls=[cell_row, cell_col])
            ab_view.select(click_to_cell, [ab_photo, fmap_h, fmap_w], [cell_row, cell_col],
                           api_visibility="private").then(render_anchor_boxes, ab_inputs, ab_outputs,
                                                          api_visibility="private")
            gr.Button(tr("Draw", "绘制"), visible=False).click(render_anchor_boxes, ab_inputs, ab_outputs,
                                                              api_name="anchor_boxes")

        with gr.Tab(tr("Labelling", "标注锚框"), id="labelling"):
            first = render_labelling(photo0, LABEL_GT, LABEL_ANCHORS, 0.5, 0)
            with gr.Row():
                with gr.Column(scale=4, min_width=300):
                    gt_table = _table(LABEL_GT, ["class", "x1", "y1", "x2", "y2"], "label-gt",
                                      tr("Ground truth (pixels)", "真实边界框（像素）"), GROUND_TRUTH)
                    anchor_table = _table(LABEL_ANCHORS, ["anchor", "x1", "y1", "x2", "y2"], "label-anchors",
                                          tr("Anchors (pixels)", "锚框（像素）"), ANCHORS)
                    lb_threshold, lb_step, lb_play, lb_photo = _stepping_controls(
                        tr("IoU threshold (the book: 0.5)", "交并比阈值（书中：0.5）"), first[-1]["maximum"], "label",
                        photo0)
                with gr.Column(scale=6, min_width=360):
                    try_this("raise the IoU threshold to 0.7 and step to the end. Before you do, find in the IoU "
                             "matrix which anchor will go back to background.",
                             "把交并比阈值调到 0.7 并走到最后一步。调之前先在交并比矩阵里找一找：哪个锚框会变回背景？",
                             elem_id="label-try")
                    lb_summary = gr.Markdown(first[3], elem_id="label-summary")
                    lb_fig = gr.Plot(first[0], label=tr("Anchors coloured by the class they are assigned",
                                                        "按所分配的类别着色的锚框"),
                                     elem_id="label-figure")
                    lb_heat = gr.Plot(first[1], label=tr("IoU matrix", "交并比矩阵"), elem_id="label-heatmap")
                    lb_formula = formula(first[4], elem_id="label-formula")
                    lb_out = Dataframe(first[2], interactive=False,
                                          label=tr("multibox_target: labels and offsets",
                                                   "multibox_target：类别标签和偏移量"),
                                          elem_id="label-offsets")
            lb_inputs = [lb_photo, gt_table, anchor_table, lb_threshold, lb_step]
            lb_outputs = [lb_fig, lb_heat, lb_out, lb_summary, lb_formula, lb_step]
            _wire_stepping(render_labelling, play_labelling, lb_inputs, lb_outputs, (gt_table, anchor_table),
                           lb_threshold, lb_step, lb_play, lb_photo, "anchor_labelling")

        with gr.Tab(tr("NMS", "非极大值抑制"), id="nms"):
            first = render_nms(photo0, NMS_PRED, 0.5, 0)
            with gr.Row():
                with gr.Column(scale=4, min_width=300):
                    pred_table = _table(NMS_PRED, ["x1", "y1", "x2", "y2", "p(astronaut)", "p(shuttle)"], "nms-pred",
                                        tr("Predicted boxes (pixels) and class probabilities",
                                           "预测边界框（像素）和类别概率"), PREDICTIONS,
                                        datatype=["number"] * 6)
                    nms_threshold, nms_step, nms_play, nms_photo = _stepping_controls(
                        tr("NMS IoU threshold (the book: 0.5)", "非极大值抑制的交并比阈值（书中：0.5）"),
                        first[-1]["maximum"], "nms", photo0)
                with gr.Column(scale=6, min_width=360):
                    try_this("raise the NMS threshold to 0.7 and press Play. Before you do, predict from the IoUs "
                             "below which red dashed box will survive this time, and which will not.",
                             "把非极大值抑制的阈值调到 0.7 并点击播放。调之前先根据下面的交并比预测：哪个红色虚线框这次会保留下来，"
                             "哪个仍会被抑制？",
                             elem_id="nms-try")
                    nms_summary = gr.Markdown(first[2], elem_id="nms-summary")
                    nms_fig = gr.Plot(first[0],
                                      label=tr("green kept · orange kept at this step · red dashed suppressed · "
                                               "grey waiting",
                                               "绿色：保留 · 橙色：本步保留 · 红色虚线：被抑制 · 灰色：等待中"),
                                      elem_id="nms-figure")
                    nms_formula = formula(first[3], elem_id="nms-formula")
                    nms_out = Dataframe(first[1], interactive=False,
                                           label=tr("multibox_detection: [class, conf, x1, y1, x2, y2] of each box "
                                                    "(normalised; class -1 = removed, pending = not decided yet)",
                                                    "multibox_detection：每个框的 [类别, 置信度, x1, y1, x2, y2]"
                                                    "（归一化；类别 -1 表示已移除，pending 表示尚未决定）"),
                                           elem_id="nms-detections")
            nms_inputs = [nms_photo, pred_table, nms_threshold, nms_step]
            nms_outputs = [nms_fig, nms_out, nms_summary, nms_formula, nms_step]
            _wire_stepping(render_nms, play_nms, nms_inputs, nms_outputs, (pred_table,),
                           nms_threshold, nms_step, nms_play, nms_photo, "nms")
