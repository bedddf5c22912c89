"""Server CPU of the table endpoints at their largest allowed tables, drawn as before (one
``add_trace`` / ``add_annotation`` / ``add_shape`` per row, the square of the rows) and now (one
figure built from lists, linear).

    python -m benchmarks.tables

Runs the panels' handlers in this process, as the server would (``/boxes``: ``render_boxes``,
``/nms``: ``render_nms``, ``/anchor_labelling``: ``render_labelling``, and the ``_play``
generators with their pause between steps taken out), and measures ``time.process_time``: the
CPU this process spends, which is what an abandoned request keeps costing the server. The
"before" column swaps in :func:`quadratic_boxes_figure` and :func:`quadratic_iou_heatmap`, the
per-row drawing code the panels used before, on the same tables. Asserts nothing: the tests count calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import plotly.graph_objects as go

from benchmarks.common import fmt_time, machine_line, print_table

HEADER = ["endpoint", "rows", "server CPU, per-row drawing (before)", "server CPU now", "ratio"]


def quadratic_boxes_figure(image: np.ndarray, boxes: np.ndarray, labels: Sequence[str], colors: Sequence[str],
                           dashed: Sequence[bool] | None = None, title: str = "", height: int = 520) -> go.Figure:
    """``panels.figures.boxes_figure`` as it was before the tables were bounded: one ``add_trace`` and one
    ``add_annotation`` per box (plotly re-validates the whole figure each time). The reference
    the tests compare the figure with, and the "before" of this benchmark."""
    from panels.figures import image_trace

    fig = go.Figure(image_trace(image))
    dashed = dashed if dashed is not None else [False] * len(labels)
    for (x1, y1, x2, y2), label, color, dash in zip(np.asarray(boxes).tolist(), labels, colors, dashed):
        fig.add_trace(
            go.Scatter(
                x=[x1, x2, x2, x1, x1],
                y=[y1, y1, y2, y2, y1],
                mode="lines",
                line=dict(color=color, width=3 if label else 1, dash="dash" if dash else "solid"),
                name=label or "box",
                hovertemplate=f"{label}<br>x1 {x1:.1f}, y1 {y1:.1f}<br>x2 {x2:.1f}, y2 {y2:.1f}<extra></extra>",
            )
        )
        if not label:
            continue
        fig.add_annotation(
            x=x1, y=y1, text=label, showarrow=False, xanchor="left", yanchor="top",
            font=dict(color="white", size=12), bgcolor=color, borderpad=2,
        )
    h, w = image.shape[:2]
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=36 if title else 10, b=10),
        title=dict(text=title, font=dict(size=14)) if title else None,
        showlegend=False,
        dragmode="pan",
        plot_bgcolor="white",
    )
    fig.update_xaxes(range=[-0.5, w - 0.5], constrain="domain", showgrid=False, zeroline=False)
    fig.update_yaxes(range=[h - 0.5, -0.5], scaleanchor="x", constrain="domain", showgrid=False, zeroline=False)
    return fig


def quadratic_iou_heatmap(iou: np.ndarray, anchor_names: Sequence[str], gt_names: Sequence[str],
                          highlight: tuple[int, int] | None = None, discarded_rows: Sequence[int] = (),
                          discarded_cols: Sequence[int] = (), marks: Sequence[tuple[int, int]] = ()) -> go.Figure:
    """``panels.anchors._iou_heatmap`` as it was before the tables were bounded: one ``add_shape`` per greyed row,
    column and frame."""
    from panels.anchors import FIGURE_HEIGHT

    fig = go.Figure(go.Heatmap(
        z=iou, x=list(gt_names), y=list(anchor_names), text=np.vectorize(lambda v: f"{v:.2f}")(iou),
        texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
        hovertemplate="anchor %{y}, ground truth %{x}: IoU %{text}<extra></extra>",
    ))
    n_rows, n_cols = iou.shape
    grey = dict(type="rect", fillcolor="rgba(120,120,120,0.55)", line=dict(width=0), layer="above")
    for r in discarded_rows:
        fig.add_shape(x0=-0.5, x1=n_cols - 0.5, y0=r - 0.5, y1=r + 0.5, **grey)
    for c in discarded_cols:
        fig.add_shape(x0=c - 0.5, x1=c + 0.5, y0=-0.5, y1=n_rows - 0.5, **grey)
    for (r, c), color in [(m, "#1a8a3a") for m in marks] + ([(highlight, "#c62828")] if highlight else []):
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5, line=dict(color=color, width=4))
    fig.update_layout(height=min(FIGURE_HEIGHT, 120 + 40 * n_rows), margin=dict(l=10, r=10, t=30, b=10),
                      title=dict(text="IoU: anchors × ground truth (grey: discarded; red: greedy pick; "
                                      "green: by threshold)", font=dict(size=13)))
    fig.update_yaxes(autorange="reversed")
    return fig


def grid_boxes(n: int, size: int = 512, seed: int = 0) -> np.ndarray:
    """``[n, 4]`` xyxy boxes in pixels on a ``size x size`` photo, one per cell of a grid with a little
    jitter: no two overlap, so NMS keeps every one (its most steps) and every label shows."""
    side = int(np.ceil(np.sqrt(n)))
    cell = size / side
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    x1 = (k % side) * cell + rng.uniform(1, cell * 0.2, n)
    y1 = (k // side) * cell + rng.uniform(1, cell * 0.2, n)
    w, h = rng.uniform(cell * 0.4, cell * 0.75, (2, n))
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).round(1)


def box_table(n: int, prefix: str = "box") -> list[list[Any]]:
    """The Boxes tab's table: ``n`` rows ``[label, x1, y1, x2, y2]`` in pixels."""
    return [[f"{prefix} {i}", *b] for i, b in enumerate(grid_boxes(n, seed=n).tolist())]


def prediction_table(n: int) -> list[list[float]]:
    """The NMS table: ``n`` rows ``[x1, y1, x2, y2, p(astronaut), p(shuttle)]``, distinct scores."""
    scores = np.linspace(0.9, 0.3, n)
    return [[*b, round(float(p), 4), round(float(1 - p) / 2, 4)] for b, p in zip(grid_boxes(n, seed=7).tolist(), scores)]


def labelling_tables(n_gt: int, n_anchors: int) -> tuple[list[list[Any]], list[list[Any]]]:
    """Ground truth (``n_gt`` rows) and anchors (``n_anchors`` rows) over the same grid, so every
    ground-truth box overlaps some anchor (the greedy phase takes all ``n_gt`` steps)."""
    gt = grid_boxes(n_gt, seed=3)
    rng = np.random.default_rng(5)
    anchors = gt[rng.integers(0, n_gt, n_anchors)] + rng.uniform(-8, 8, (n_anchors, 4))
    anchors[:, 2:] = np.maximum(anchors[:, 2:], anchors[:, :2] + 4)
    return ([[f"g{i}", *b] for i, b in enumerate(gt.tolist())],
            [[f"a{i}", *b] for i, b in enumerate(np.clip(anchors, 0, 511).round(1).tolist())])


@contextmanager
def per_row_drawing():
    """Swap the per-row (quadratic) drawing code into the Anchors panel for the "before" column."""
    import panels.anchors as A

    saved = A.boxes_figure, A._iou_heatmap
    A.boxes_figure, A._iou_heatmap = quadratic_boxes_figure, quadratic_iou_heatmap
    try:
        yield
    finally:
        A.boxes_figure, A._iou_heatmap = saved


def cpu_seconds(fn: Callable[[], object], repeat: int = 3) -> float:
    """Smallest ``time.process_time`` of ``repeat`` calls (CPU of this process, not the wall clock)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _cases() -> list[tuple[str, str, Callable[[], object], bool | None]]:
    """(endpoint, rows, call, whether it plays every step; None where nothing was drawn per row before)
    at each endpoint's largest allowed table."""
    import panels.anchors as A
    import panels.boxes as B
    from panels.box_table import MAX_BOX_ROWS
    from vision_core.examples import load_example

    photo = load_example("astronaut")  # 512 x 512, the photo the tabs open with
    boxes = box_table(MAX_BOX_ROWS)
    preds = prediction_table(A.MAX_PREDICTION_ROWS)
    gt, anchors = labelling_tables(A.MAX_GROUND_TRUTH_ROWS, A.MAX_ANCHOR_ROWS)
    big = [["box", 10.0, 10.0, 50.0, 50.0]] * 100_000  # a payload far over the limit

    def play(player, *args):
        saved, A.PLAY_DELAY = A.PLAY_DELAY, 0.0  # the pause is idle, not CPU; left out for speed
        try:
            return list(player(*args))
        finally:
            A.PLAY_DELAY = saved

    label_rows = f"{A.MAX_GROUND_TRUTH_ROWS} ground truth × {A.MAX_ANCHOR_ROWS} anchors"
    return [
        # Boxes burns its boxes into a picture since issue 17 (no plotly figure): no per-row "before".
        ("/boxes", f"{MAX_BOX_ROWS}", lambda: B.render_boxes(photo, boxes, "xyxy", "pixels"), None),
        ("/boxes_convert", f"{MAX_BOX_ROWS}",
         lambda: B.switch_format(boxes, photo, "xyxy", "cxcywh", "pixels", "normalised"), False),
        ("/nms (last step)", f"{A.MAX_PREDICTION_ROWS}", lambda: A.render_nms(photo, preds, 0.5, 10**6), False),
        ("/nms_play (every frame)", f"{A.MAX_PREDICTION_ROWS}", lambda: play(A.play_nms, photo, preds, 0.5), True),
        ("/anchor_labelling (last step)", label_rows,
         lambda: A.render_labelling(photo, gt, anchors, 0.5, 10**6), False),
        ("/anchor_labelling_play (every frame)", label_rows,
         lambda: play(A.play_labelling, photo, gt, anchors, 0.5), True),
        ("/boxes, refused", "100,000", lambda: _refused(B.render_boxes, photo, big, "xyxy", "pixels"), None),
    ]


def _refused(fn: Callable[..., object], *args: Any) -> None:
    import gradio as gr

    try:
        fn(*args)
    except gr.Error:
        return
    raise AssertionError("a table over the limit was not refused")


def rows(repeat: int = 3) -> list[list[str]]:
    """Markdown rows (see HEADER): each endpoint's server CPU seconds at its largest allowed table,
    with the per-row drawing of before and now."""
    out = []
    for endpoint, n, call, plays in _cases():
        times = 1 if plays else repeat  # a whole Play is tens of frames: once is enough
        now = cpu_seconds(call, times)
        if plays is None:  # nothing drawn per row before
            out.append([endpoint, n, "—", fmt_time(now), "—"])
            continue
        with per_row_drawing():
            before = cpu_seconds(call, times)
        out.append([endpoint, n, fmt_time(before), fmt_time(now), f"{before / max(now, 1e-9):.1f}x"])
    return out


def main() -> None:
    print(machine_line())  # CPU seconds mean little without the machine they came from
    print_table(rows(), HEADER)


if __name__ == "__main__":
    main()
