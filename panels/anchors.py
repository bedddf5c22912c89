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

from vision_core.anchors import (
    ThresholdStep,
    assign_anchor_to_bbox,
    assign_anchor_trace,
    multibox_detection,
    multibox_prior,
    multibox_target,
    nms_trace,
)
from vision_core.boxes import box_iou, normalize_boxes
from vision_core.examples import EXAMPLES, load_example

from .box_table import BoxTable, RowLimit, check_table_size, parse_box_table, row_limited
from .common import (
    Checkbox, Dataframe, Dropdown, Number, SafeImage, Slider, Textbox, as_rgb_image, example_photo,
    parse_floats, rerun_on_picture_changes, shows_errors,
)
from .figures import FIGURE_HEIGHT, boxes_figure, color_for, draw_boxes
from .i18n import bilingual, tr

TITLE = "Anchors"
TITLE_ZH = "锚框"
TAB_ID = "anchors"
PLAY_DELAY = 0.6  # seconds between streamed steps: slow enough to follow by eye

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
# The Chinese for the tables' names in error messages.
_WHAT_ZH = {"ground truth": "真实边界框", "anchors": "锚框", "predictions": "预测"}


def _photo(image: np.ndarray | None) -> np.ndarray:
    return load_example("astronaut") if image is None else as_rgb_image(image, "photo")


# --- anchor boxes ------------------------------------------------------------------------------

def anchors_at(fmap_h: int, fmap_w: int, sizes: Sequence[float], ratios: Sequence[float]) -> torch.Tensor:
    """All anchors of an ``fmap_h x fmap_w`` feature map, as ``Tensor[fmap_h, fmap_w, n+m-1, 4]``."""
    data = torch.zeros(1, 3, fmap_h, fmap_w)
    return multibox_prior(data, sizes=list(sizes), ratios=list(ratios)).reshape(fmap_h, fmap_w, -1, 4)


@shows_errors
def render_anchor_boxes(image: np.ndarray | None, fmap_h: float, fmap_w: float, sizes_text: str, ratios_text: str,
                        cell_row: float, cell_col: float, tinyssd: bool) -> tuple[np.ndarray, pd.DataFrame, str]:
    """The n + m - 1 anchors centred on one feature-map cell, drawn over the photo.

    Returns the annotated photo, the anchors' table and a summary with the anchor counts.
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
    # The feature-map cell itself, in white, so the click and the anchors' centre are visible.
    cell_box = torch.tensor([[col * img_w / w, row * img_h / h, (col + 1) * img_w / w, (row + 1) * img_h / h]])
    boxes, colors, labels = [cell, cell_box], [color_for(i) for i in range(len(cell))] + ["white"], names + ["cell"]
    if tinyssd:
        # Each TinySSD stage's anchors at the image centre, one colour per stage.
        for stage, (fm, stage_sizes) in enumerate(zip(TINYSSD_FMAPS, TINYSSD_SIZES)):
            stage_anchors = anchors_at(fm, fm, stage_sizes, TINYSSD_RATIOS)[fm // 2, fm // 2] * scale
            boxes.append(stage_anchors)
            colors += [color_for(stage + 3)] * len(stage_anchors)
            labels += [f"stage {stage + 1}"] + [""] * (len(stage_anchors) - 1)
    drawn = draw_boxes(rgb, torch.cat(boxes).numpy(), colors, width=max(2, round(max(img_h, img_w) / 300)),
                       labels=labels)
    table = pd.DataFrame(cell.double().numpy().round(1), columns=["x1", "y1", "x2", "y2"])
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
    return drawn, table, summary


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


def _label_frame(steps: Sequence[Any], k: int, anchors: Sequence[str], gts: Sequence[str]) -> tuple[Any, ...]:
    """What the first ``k`` steps have done: (assignment, greedy pick, greyed rows, greyed columns,
    threshold assignments, text)."""
    if k == 0:
        return [-1] * len(anchors), None, (), (), (), "Step 0: nothing assigned yet; the greedy phase takes the largest IoU first."
    step = steps[k - 1]
    if isinstance(step, ThresholdStep):
        greedy = steps[-2] if len(steps) > 1 else None
        given = ", ".join(f"{anchors[a]} → {gts[g]} (IoU {v:.2f})" for a, g, v in step.assigned) or "none"
        text = f"Threshold phase: every other anchor whose best IoU ≥ {step.threshold:g} takes that box: {given}."
        rows = greedy.discarded_rows if greedy else ()  # anchors the greedy phase already placed
        return list(step.assignment), None, rows, (), [(a, g) for a, g, _ in step.assigned], text
    assignment = [-1] * len(anchors)
    for s in steps[:k]:
        assignment[s.anchor] = s.gt
    a, g = anchors[step.anchor], gts[step.gt]
    text = (f"Greedy step {k}: the largest IoU left is {step.iou:.2f}, anchor {a} with {g}; "
            f"{a} gets {g}, then row {a} and column {g} are discarded.")
    return assignment, (step.anchor, step.gt), step.discarded_rows, step.discarded_columns, (), text


@shows_errors
def render_labelling(image: np.ndarray | None, gt_table: Any, anchor_table: Any, threshold: float,
                     step: float) -> tuple[go.Figure, go.Figure, pd.DataFrame, str, dict[str, Any]]:
    """Anchors labelled against ground truth: the drawing, the IoU heatmap at ``step``, the offsets table."""
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
    state, highlight, rows, cols, marks, text = _label_frame(steps, k, anc.labels, gt.labels)
    classes = gt.labels
    labels = [f"{a}: {classes[j]}" if j >= 0 else f"{a}: background" for a, j in zip(anc.labels, state)]
    colors = [color_for(j) if j >= 0 else "#9e9e9e" for j in state]
    fig = boxes_figure(
        rgb, torch.cat([gt.corners_px, anc.corners_px]).numpy(),
        [f"GT {c}" for c in classes] + labels,
        [color_for(j) for j in range(len(classes))] + colors,
        dashed=[True] * len(classes) + [False] * len(labels),
    )
    final = assign_anchor_to_bbox(gt_n, anc_n, anc_n.device, float(threshold))
    labels_t = torch.cat([torch.arange(len(classes), dtype=torch.float32)[:, None], gt_n], dim=1)[None]
    offset, mask, cls = multibox_target(anc_n[None], labels_t)
    offsets = offset.reshape(-1, 4).double().numpy().round(3)
    table = pd.DataFrame(offsets, columns=["offset x", "offset y", "offset w", "offset h"])
    table.insert(0, "class label", cls[0].tolist())
    table.insert(0, "assigned", [classes[j] if j >= 0 else "background" for j in final.tolist()])
    table.insert(0, "anchor", anc.labels)
    summary = f"**Step {k} of {len(steps)}.** {text}"
    return fig, _iou_heatmap(iou, anc.labels, classes, highlight, rows, cols, marks), table, summary, gr.update(maximum=len(steps), value=k)


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


@shows_errors
def render_nms(image: np.ndarray | None, pred_table: Any, threshold: float,
               step: float) -> tuple[go.Figure, pd.DataFrame, str, dict[str, Any]]:
    """NMS at ``step``: kept / suppressed / current colouring, and the final detection table."""
    check_table_size(pred_table, PREDICTIONS)  # first: a table over its limit costs nothing more
    rgb = _photo(image)
    size = rgb.shape[:2]
    parsed, cls_probs = _predictions(pred_table, size)
    boxes_n = normalize_boxes(parsed.corners_px.float(), size)
    conf, cls = cls_probs[1:].max(0)
    steps = nms_trace(boxes_n, conf, float(threshold))
    k = min(max(int(step), 0), len(steps))
    status = ["waiting"] * len(boxes_n)
    text = "Step 0: boxes sorted by score; none chosen yet."
    for s in steps[:k]:
        status[s.chosen] = "kept"
        for j, _ in s.suppressed:
            status[j] = "suppressed"
    if k > 0:
        s = steps[k - 1]
        status[s.chosen] = "current"
        gone = ", ".join(f"#{j} (IoU {v:.2f})" for j, v in s.suppressed) or "nothing"
        text = f"Step {k}: keep #{s.chosen} (score {conf[s.chosen]:.2f}); it suppresses {gone}."
    palette = {"waiting": "#9e9e9e", "kept": "#1a8a3a", "suppressed": "#c62828", "current": "#ef6c00"}
    labels = [f"#{i} {NMS_CLASSES[c]} {p:.2f} ({st})" for i, (c, p, st) in enumerate(zip(cls.tolist(), conf.tolist(), status))]
    fig = boxes_figure(rgb, parsed.corners_px.numpy(), labels, [palette[s] for s in status],
                       dashed=[s == "suppressed" for s in status])
    out = multibox_detection(cls_probs[None], torch.zeros(1, 4 * len(boxes_n)), boxes_n[None], nms_threshold=float(threshold))
    rows = out[0].double().numpy()
    table = pd.DataFrame(rows.round(3), columns=["class", "conf", "x1", "y1", "x2", "y2"])
    return fig, table, f"**Step {k} of {len(steps)}.** {text}", gr.update(maximum=len(steps), value=k)


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
                    ab_view = gr.Image(first[0], interactive=False,
                                       label=tr("Click a pixel to see its anchors", "点击一个像素，查看以它为中心的锚框"),
                                       elem_id="anchors-view", height=FIGURE_HEIGHT)
                    ab_summary = gr.Markdown(first[2], elem_id="anchors-summary")
                    ab_table = Dataframe(first[1], interactive=False,
                                            label=tr("Anchors at the chosen cell (pixels)", "所选单元格的锚框（像素）"),
                                            elem_id="anchors-table")
            ab_inputs = [ab_photo, fmap_h, fmap_w, sizes, ratios, cell_row, cell_col, tinyssd]
            ab_outputs = [ab_view, ab_table, ab_summary]
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
                    lb_summary = gr.Markdown(first[3], elem_id="label-summary")
                    lb_fig = gr.Plot(first[0], label=tr("Anchors coloured by the class they are assigned",
                                                        "按所分配的类别着色的锚框"),
                                     elem_id="label-figure")
                    lb_heat = gr.Plot(first[1], label=tr("IoU matrix", "交并比矩阵"), elem_id="label-heatmap")
                    lb_out = Dataframe(first[2], interactive=False,
                                          label=tr("multibox_target: labels and offsets",
                                                   "multibox_target：类别标签和偏移量"),
                                          elem_id="label-offsets")
            lb_inputs = [lb_photo, gt_table, anchor_table, lb_threshold, lb_step]
            lb_outputs = [lb_fig, lb_heat, lb_out, lb_summary, lb_step]
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
                    nms_summary = gr.Markdown(first[2], elem_id="nms-summary")
                    nms_fig = gr.Plot(first[0],
                                      label=tr("green kept · orange current · red dashed suppressed · grey waiting",
                                               "绿色：保留 · 橙色：当前 · 红色虚线：被抑制 · 灰色：等待中"),
                                      elem_id="nms-figure")
                    nms_out = Dataframe(first[1], interactive=False,
                                           label=tr("multibox_detection: [class, conf, x1, y1, x2, y2] "
                                                    "(normalised; class -1 = removed)",
                                                    "multibox_detection：[类别, 置信度, x1, y1, x2, y2]"
                                                    "（归一化；类别 -1 表示已移除）"),
                                           elem_id="nms-detections")
            nms_inputs = [nms_photo, pred_table, nms_threshold, nms_step]
            nms_outputs = [nms_fig, nms_out, nms_summary, nms_step]
            _wire_stepping(render_nms, play_nms, nms_inputs, nms_outputs, (pred_table,),
                           nms_threshold, nms_step, nms_play, nms_photo, "nms")
