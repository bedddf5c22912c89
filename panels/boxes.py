"""Boxes panel (d2l 14.3): type boxes in any format and units, see them converted and drawn.

Thin by design: parsing lives in ``box_table``, drawing in ``figures``, and every number
comes from ``vision_core.boxes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from vision_core.boxes import BOX_FORMATS, box_convert, normalize_boxes
from vision_core.examples import EXAMPLES, load_example

from .box_table import (
    BOX_TABLE,
    FORMAT_COLUMNS,
    FORMAT_LABELS,
    FORMAT_LABELS_ZH,
    UNITS,
    UNITS_ZH,
    BoxTable,
    check_table_size,
    convert_table,
    parse_box_table,
    row_limited,
)
from .common import Dataframe, Dropdown, Radio, SafeImage, as_rgb_image, shows_errors
from .figures import boxes_figure, color_for
from .i18n import tr

TITLE = "Boxes"
TITLE_ZH = "边界框"
TAB_ID = "boxes"
DEFAULT_EXAMPLE = "astronaut"
BLANK_SIZE = (480, 640)  # (height, width) of the canvas used when no photo is loaded

INTRO = """\
**Bounding boxes** (d2l 14.3). Type boxes in one format and see them in the others:
*corner* `(x1, y1, x2, y2)`, *center* `(cx, cy, w, h)` and *corner + size* `(x, y, w, h)`,
in pixels or as fractions of the image. Edit any cell (press Enter), add rows with the
table's + button, or switch the format: the table is rewritten in the new format.
"""
INTRO_ZH = """\
**边界框**（d2l 14.3）。用一种格式输入边界框，就能看到它在其他格式下的写法：
*角点* `(x1, y1, x2, y2)`、*中心* `(cx, cy, w, h)` 和 *角点 + 尺寸* `(x, y, w, h)`，
单位为像素或占图像的比例。编辑任意单元格（按 Enter），用表格的 + 按钮添加行，
或者切换格式：表格会改写成新的格式。
"""


def headers(fmt: str) -> list[str]:
    """The table's column names in ``fmt``."""
    return ["label", *FORMAT_COLUMNS[fmt]]


def example_table(name: str, fmt: str, units: str) -> pd.DataFrame:
    """The example's preset boxes, rewritten in ``fmt`` and ``units``."""
    image_size = load_example(name).shape[:2]
    rows = [list(b) for b in EXAMPLES[name].boxes]
    return pd.DataFrame(convert_table(rows, "xyxy", fmt, "pixels", units, image_size), columns=headers(fmt))


@shows_errors
def choose_example(name: str, fmt: str, units: str) -> tuple[np.ndarray, pd.DataFrame, str]:
    """Load an offline example photo and its preset boxes."""
    return load_example(name), example_table(name, fmt, units), EXAMPLES[name].caption


@shows_errors
def switch_format(table: Any, image: np.ndarray | None, old_fmt: str, fmt: str, old_units: str,
                  units: str) -> tuple[pd.DataFrame, str, str]:
    """Rewrite the table when the format or units change, so the boxes themselves stay put."""
    size = _image_size(image)
    rows = convert_table(table, old_fmt, fmt, old_units, units, size)
    return pd.DataFrame(rows, columns=headers(fmt)), fmt, units


def _image_size(image: np.ndarray | None) -> tuple[int, int]:
    return BLANK_SIZE if image is None else tuple(np.asarray(image).shape[:2])


def _round_trip_errors(parsed: BoxTable) -> str:
    """Largest |in - back(convert(in))| over the rows, per other format, in float32."""
    if not len(parsed.rows):
        return ""
    boxes = parsed.boxes.float()  # the dashboard's working precision
    parts = []
    for other in BOX_FORMATS:
        if other == parsed.fmt:
            continue
        back = box_convert(box_convert(boxes, parsed.fmt, other), other, parsed.fmt)
        err = (back - boxes).abs().max().item()
        scale = boxes.abs().max().item() or 1.0
        parts.append(f"via {other}: {err:.2g} ({err / scale:.1g} relative)")
    unit = "px" if parsed.units == "pixels" else "(normalised)"
    return f"Round trip in float32, max |Δ| {unit}: " + "; ".join(parts)


def _converted_tables(parsed: BoxTable, image_size: Sequence[int]) -> list[pd.DataFrame]:
    corners = parsed.corners_px
    if parsed.units == "normalised":
        corners = normalize_boxes(corners, image_size)
    digits = 4 if parsed.units == "normalised" else 2
    out = []
    for fmt in BOX_FORMATS:
        values = box_convert(corners, "xyxy", fmt).numpy().round(digits)
        frame = pd.DataFrame(values, columns=list(FORMAT_COLUMNS[fmt]))
        frame.insert(0, "label", parsed.labels)
        frame.insert(0, "row", parsed.rows)
        out.append(frame)
    return out


@shows_errors
def render_boxes(image: np.ndarray | None, table: Any, fmt: str,
                 units: str) -> tuple[go.Figure, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """Draw the table's good rows over the photo and list the converted boxes and bad rows.

    Returns the figure, the boxes in xyxy / cxcywh / xywh, the flagged rows and a summary.
    """
    check_table_size(table, BOX_TABLE)  # first: a table over the limit costs nothing more
    blank = image is None
    rgb = np.full((*BLANK_SIZE, 3), 255, np.uint8) if blank else as_rgb_image(image, "photo")
    size = rgb.shape[:2]
    parsed = parse_box_table(table, fmt, units, size)
    drawn = parsed.corners_px.clamp(min=0)
    drawn = torch.minimum(drawn, torch.tensor([size[1], size[0], size[1], size[0]], dtype=drawn.dtype))
    fig = boxes_figure(
        rgb,
        drawn.numpy(),
        parsed.labels,
        [color_for(r - 1) for r in parsed.rows],
        dashed=parsed.clipped.tolist(),
    )
    problems = pd.DataFrame(
        [[p.row, p.label, p.message] for p in parsed.problems], columns=["row", "label", "problem"]
    )
    n_bad = sum(not p.drawn for p in parsed.problems)
    summary = [
        f"**{len(parsed.rows)} box{'es' if len(parsed.rows) != 1 else ''} drawn**"
        + (f", **{n_bad} row{'s' if n_bad != 1 else ''} not drawn** (see below)" if n_bad else "")
        + f" · image {size[1]} × {size[0]} px"
        + (" (no photo: a blank canvas; choose an example or upload one)" if blank else ""),
    ]
    if parsed.problems:
        summary.append(f"{len(parsed.problems)} row(s) flagged: " + "; ".join(f"row {p.row}: {p.message}" for p in parsed.problems[:3]))
    round_trip = _round_trip_errors(parsed)
    if round_trip:
        summary.append(round_trip)
    return (fig, *_converted_tables(parsed, size), problems, "\n\n".join(summary))


def build() -> None:
    """Lay out the Boxes tab inside the current ``gr.Tab`` and wire its events."""
    fmt0, units0 = "xyxy", "pixels"
    photo0, table0 = load_example(DEFAULT_EXAMPLE), example_table(DEFAULT_EXAMPLE, fmt0, units0)
    # Rendered once here so the tab opens drawn, with no round trip to the server.
    fig0, *converted0, problems0, summary0 = render_boxes(photo0, table0, fmt0, units0)
    format_labels = {f: tr(FORMAT_LABELS[f], FORMAT_LABELS_ZH[f]) for f in BOX_FORMATS}
    gr.Markdown(tr(INTRO, INTRO_ZH))
    with gr.Row():
        with gr.Column(scale=5, min_width=320):
            with gr.Row():
                example = Dropdown(
                    choices=list(EXAMPLES), value=DEFAULT_EXAMPLE, label=tr("Example photo (offline)", "示例照片（离线）"),
                    scale=1,
                )
                fmt = Radio(
                    choices=[(format_labels[f], f) for f in BOX_FORMATS], value=fmt0, label=tr("Input format", "输入格式"),
                    scale=2,
                )
            units = Radio(choices=[(tr(u, UNITS_ZH[u]), u) for u in UNITS], value=units0, label=tr("Units", "单位"))
            table = row_limited(BOX_TABLE)(
                value=table0,
                headers=headers(fmt0),
                datatype=["str", "number", "number", "number", "number"],
                type="array",  # keeps an empty cell as None, where pandas would make it NaN
                interactive=True,
                show_row_numbers=True,
                label=tr("Boxes (editable)", "边界框（可编辑）"),
                elem_id="boxes-table",
            )
            caption = gr.Markdown(EXAMPLES[DEFAULT_EXAMPLE].caption, elem_id="boxes-caption")
            photo = SafeImage(
                value=photo0,
                type="numpy",
                image_mode="RGB",
                sources=["upload", "clipboard"],
                label=tr("Photo (upload your own to replace it)", "照片（上传你自己的照片来替换）"),
                height=260,
                elem_id="boxes-photo",
            )
        with gr.Column(scale=6, min_width=360):
            figure = gr.Plot(fig0, label=tr("Boxes drawn over the photo", "画在照片上的边界框"), elem_id="boxes-figure")
            summary = gr.Markdown(summary0, elem_id="boxes-summary")
            problems = Dataframe(
                problems0, headers=["row", "label", "problem"], interactive=False, label=tr("Flagged rows", "有问题的行"),
                elem_id="boxes-problems", wrap=True,
            )
    gr.Markdown(tr("**The same boxes in every format** (in the chosen units)", "**同一组边界框的各种格式**（使用所选单位）"))
    with gr.Row():
        converted = [
            Dataframe(frame, headers=["row", "label", *FORMAT_COLUMNS[f]], interactive=False, label=format_labels[f],
                         elem_id=f"boxes-{f}")
            for f, frame in zip(BOX_FORMATS, converted0)
        ]
    # What the table is written in now. Hidden radios rather than gr.State so that the
    # /boxes_convert API takes both ends of the conversion explicitly.
    fmt_state = Radio(choices=list(BOX_FORMATS), value=fmt0, visible=False, label=tr("from format", "原格式"))
    units_state = Radio(choices=list(UNITS), value=units0, visible=False, label=tr("from units", "原单位"))

    render_inputs = [photo, table, fmt, units]
    render_outputs = [figure, *converted, problems, summary]
    render = dict(fn=render_boxes, inputs=render_inputs, outputs=render_outputs)

    example.input(
        choose_example, [example, fmt, units], [photo, table, caption], api_name="boxes_example"
    ).then(**render, api_visibility="private")
    for control in (fmt, units):
        control.input(
            switch_format, [table, photo, fmt_state, fmt, units_state, units], [table, fmt_state, units_state],
            api_name="boxes_convert" if control is fmt else None, api_visibility="public" if control is fmt else "private",
        ).then(**render, api_visibility="private")
    table.input(**render, api_name="boxes")
    photo.upload(**render, api_visibility="private")
    photo.clear(**render, api_visibility="private")
