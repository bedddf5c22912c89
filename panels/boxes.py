"""Boxes panel (d2l 14.3): type boxes in any format and units, see them converted and drawn.

Thin by design: parsing lives in ``box_table``, drawing in ``figures``, and every number
comes from ``vision_core.boxes``. The boxes are burnt into a picture (no plotly: the tab the page
opens on is usable without loading plotly's 3.5 MB, issue 17 item 10); a click on it reads the
pixel's coordinates and the boxes around it, as plotly's hover did. The table shows rounded numbers; a gr.State beside it keeps
each row's exact box (``box_table.ExactRows``), so switching formats and units never moves a box.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import torch

from vision_core.boxes import BOX_FORMATS, box_convert, normalize_boxes
from vision_core.examples import EXAMPLES, load_example

from .box_table import (
    BOX_TABLE,
    DIGITS,
    FORMAT_COLUMNS,
    FORMAT_LABELS,
    FORMAT_LABELS_ZH,
    UNITS,
    UNITS_ZH,
    BoxTable,
    ExactRows,
    check_table_size,
    convert_table_exact,
    parse_box_table,
    round_trip_error,
    row_limited,
    shown_numbers,
    table_rows,
)
from .common import (
    Dataframe,
    Dropdown,
    Radio,
    SafeImage,
    as_rgb_image,
    formula,
    shows_errors,
    try_this,
)
from .figures import color_for, draw_boxes, drawing_scale
from .i18n import bilingual, tr

TITLE = "Boxes"
TITLE_ZH = "边界框"
TAB_ID = "boxes"
DEFAULT_EXAMPLE = "astronaut"
BLANK_SIZE = (480, 640)  # (height, width) of the canvas used when no photo is loaded
# A small upload is enlarged (a whole factor) until its shorter side reaches this, so outlines and
# labels stay legible; the click readout maps back to the photo's own pixels.
PICTURE_MIN_SIDE = 512
OUTLINE_PX = 3

INTRO = """\
**Bounding boxes** (d2l 14.3). Type boxes in one format and see them in the others:
*corner* `(x1, y1, x2, y2)`, *center* `(cx, cy, w, h)` and *corner + size* `(x, y, w, h)`,
in pixels or as fractions of the image. Edit any cell (press Enter), add a row with **Add row**,
or switch the format: the table is rewritten in the new format. Cells show rounded numbers; the
exact ones stay behind them, so switching back gives back exactly what was there.
"""
INTRO_ZH = """\
**边界框**（d2l 14.3）。用一种格式输入边界框，就能看到它在其他格式下的写法：
*角点* `(x1, y1, x2, y2)`、*中心* `(cx, cy, w, h)` 和 *角点 + 尺寸* `(x, y, w, h)`，
单位为像素或占图像的比例。编辑任意单元格（按 Enter），用 **添加一行** 按钮添加行，
或者切换格式：表格会改写成新的格式。单元格显示的是四舍五入后的数，精确值保留在背后，
所以切换回来时得到的正是原来的数。
"""


# Phones: the page sets tables compactly (app.py); a narrower row-number column then lets the
# box table's five columns fit a 390 px screen with normalised numbers (0.0391) uncut.
CSS = """
@media (max-width: 640px) {
  #boxes-table { --size-12: var(--size-8); }
  #boxes-formula .katex-display > .katex { font-size: 1.05em; }  /* KaTeX's 1.21em, smaller */
}
"""

TRY_THIS = (
    ("switch **Input format** to center and predict the astronaut's cx = (x1 + x2) / 2 before the table "
     "shows it; then go to normalised, back to pixels and to corner: is its y2 still exactly 512?"),
    ("把 **输入格式** 切换为中心，先预测宇航员框的 cx = (x1 + x2) / 2，再看表格；然后切到归一化、"
     "再切回像素和角点：它的 y2 还是正好 512 吗？"),
)


FORMAT_NAMES = {"xyxy": "corner", "cxcywh": "center", "xywh": "corner + size"}  # in the summary
POINT_HINT = tr("Click the picture: the pixel's coordinates, in pixels and normalised, and the boxes that hold it.",
              "点击图片：显示该像素的坐标（像素与归一化）以及包含它的边界框。")


def headers(fmt: str) -> list[str]:
    """The table's column names in ``fmt``."""
    return ["label", *FORMAT_COLUMNS[fmt]]


def example_rows(name: str, fmt: str, units: str) -> tuple[pd.DataFrame, ExactRows]:
    """The example's preset boxes, rewritten in ``fmt`` and ``units``, and the exact boxes behind them."""
    image_size = load_example(name).shape[:2]
    rows = [list(b) for b in EXAMPLES[name].boxes]
    rows, exact = convert_table_exact(rows, "xyxy", fmt, "pixels", units, image_size)
    return pd.DataFrame(rows, columns=headers(fmt)), exact


def example_table(name: str, fmt: str, units: str) -> pd.DataFrame:
    """The example's preset boxes, rewritten in ``fmt`` and ``units``."""
    return example_rows(name, fmt, units)[0]


@shows_errors
def choose_example(name: str, fmt: str, units: str) -> tuple[np.ndarray, pd.DataFrame, str, ExactRows]:
    """Load an offline example photo and its preset boxes (and the exact boxes behind them)."""
    table, exact = example_rows(name, fmt, units)
    return load_example(name), table, EXAMPLES[name].caption, exact


@shows_errors
def switch_format(table: Any, image: np.ndarray | None, old_fmt: str, fmt: str, old_units: str,
                  units: str, exact: ExactRows | None = None) -> tuple[pd.DataFrame, str, str, ExactRows]:
    """Rewrite the table when the format or units change, so the boxes themselves stay put.

    Each row is converted from its exact box (``exact``, what the table's rounded numbers stand
    for), and the exact boxes behind the new numbers come back for the next switch.
    """
    size = _image_size(image)
    rows, exact = convert_table_exact(table, old_fmt, fmt, old_units, units, size, exact)
    return pd.DataFrame(rows, columns=headers(fmt)), fmt, units, exact


@shows_errors
def add_row(table: Any, fmt: str) -> pd.DataFrame:
    """The table with one empty row more at the end (up to the table's row limit)."""
    rows = table_rows(table)
    if len(rows) >= BOX_TABLE.rows:
        raise ValueError(bilingual(
            f"{BOX_TABLE.what} already has {len(rows)} rows, the most allowed; edit or remove a row instead.",
            f"{BOX_TABLE.what_zh}已有 {len(rows)} 行，这是允许的最多行数；请修改或删除已有的行。"))
    rows = [(list(r) + [None] * 5)[:5] for r in rows] + [["", None, None, None, None]]
    return pd.DataFrame(rows, columns=headers(fmt), dtype=object)


def _image_size(image: np.ndarray | None) -> tuple[int, int]:
    return BLANK_SIZE if image is None else tuple(np.asarray(image).shape[:2])


def _round_trip_line(parsed: BoxTable, table: Any, size: Sequence[int], exact: ExactRows | None) -> str:
    """What switching formats does to the numbers, measured on this table: the largest drift after a
    round trip through every other format and unit (as the page switches), and the largest
    difference between a shown cell and the exact value behind it."""
    if not len(parsed.rows):
        return ""
    drift = round_trip_error(table, parsed.fmt, parsed.units, size, exact)
    cells = torch.tensor([[float(c) for c in table_rows(table)[r - 1][1:5]] for r in parsed.rows],
                         dtype=torch.float64)  # [K, 4] the drawn rows' cells as shown
    behind = (cells - parsed.boxes).abs().max().item()
    unit = "px" if parsed.units == "pixels" else "of the image"
    return (f"Round trip through the other formats and units, as switching does it (float64, from the numbers "
            f"as typed): max |Δ| = {_plain(drift)} {unit}. The cells show at most {DIGITS[parsed.units]} decimals; "
            f"the exact values behind them differ from what is shown by up to {_plain(behind)} {unit}.")


def _plain(value: float) -> str:
    """A small measured difference in plain decimals (0.000047, not 4.7e-05; 0 for none)."""
    return f"{value:.6f}".rstrip("0").rstrip(".") if value >= 5e-7 else ("0" if value == 0 else f"{value:.1e}")


def _converted_tables(parsed: BoxTable, image_size: Sequence[int]) -> list[pd.DataFrame]:
    corners = parsed.corners_px
    if parsed.units == "normalised":
        corners = normalize_boxes(corners, image_size)
    out = []
    for fmt in BOX_FORMATS:
        values = [shown_numbers(b, parsed.units) for b in box_convert(corners, "xyxy", fmt).tolist()]
        frame = pd.DataFrame(values, columns=list(FORMAT_COLUMNS[fmt]))
        frame.insert(0, "label", parsed.labels)
        frame.insert(0, "row", parsed.rows)
        out.append(frame)
    return out


def _tex_number(value: float, units: str) -> str:
    """A number as a cell shows it (DIGITS[units] decimals, trailing zeros dropped)."""
    text = f"{value:.{DIGITS[units]}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def conversion_formula(parsed: BoxTable, image_size: Sequence[int]) -> str:
    """d2l 14.3's corner -> center conversion (and back), typeset with the first drawn box's numbers.

    In the table's units: the corners (x1, y1, x2, y2) of the first drawn row, its center
    (cx, cy) and size (w, h), from the exact box behind the table.
    """
    if not parsed.rows:
        return r"$$ (c_x,\ c_y,\ w,\ h) = \left(\frac{x_1 + x_2}{2},\ \frac{y_1 + y_2}{2},\ x_2 - x_1,\ y_2 - y_1\right) $$"
    corners = parsed.corners_px[:1]  # [1, 4] exact, in pixels
    if parsed.units == "normalised":
        corners = normalize_boxes(corners, image_size)
    x1, y1, x2, y2 = (_tex_number(v, parsed.units) for v in corners[0].tolist())
    cx, cy, w, h = (_tex_number(v, parsed.units) for v in box_convert(corners, "xyxy", "cxcywh")[0].tolist())
    # Short lines (each equation, then its numbers on the next): the formula fits a phone.
    lines = [
        r"(c_x,\ c_y) &= \left(\frac{x_1 + x_2}{2},\ \frac{y_1 + y_2}{2}\right)",
        rf"&= \left(\frac{{{x1} + {x2}}}{{2}},\ \frac{{{y1} + {y2}}}{{2}}\right)",
        rf"&= ({cx},\ {cy})",
        r"(w,\ h) &= (x_2 - x_1,\ y_2 - y_1)",
        rf"&= ({x2} - {x1},\ {y2} - {y1})",
        rf"&= ({w},\ {h})",
        rf"(x_1,\ y_1) &= \left(c_x - \frac{{w}}{{2}},\ c_y - \frac{{h}}{{2}}\right) = ({x1},\ {y1})",
        rf"(x_2,\ y_2) &= \left(c_x + \frac{{w}}{{2}},\ c_y + \frac{{h}}{{2}}\right) = ({x2},\ {y2})",
    ]
    where = f"Row {parsed.rows[0]}, the first box drawn, in {parsed.units}:"
    return where + "\n\n" + r"$$\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}$$"


def _photo_or_canvas(image: np.ndarray | None) -> np.ndarray:
    """The photo as ``[H, W, 3]`` uint8 RGB, or a white BLANK_SIZE canvas when there is none."""
    return np.full((*BLANK_SIZE, 3), 255, np.uint8) if image is None else as_rgb_image(image, "photo")


def _render(image: np.ndarray | None, table: Any, fmt: str, units: str,
            exact: ExactRows | None) -> tuple[tuple, BoxTable, tuple[int, int]]:
    check_table_size(table, BOX_TABLE)  # first: a table over the limit costs nothing more
    blank = image is None
    rgb = _photo_or_canvas(image)
    size = rgb.shape[:2]
    parsed = parse_box_table(table, fmt, units, size, exact=exact)
    drawn = parsed.corners_px.clamp(min=0)
    drawn = torch.minimum(drawn, torch.tensor([size[1], size[0], size[1], size[0]], dtype=drawn.dtype))
    picture = draw_boxes(rgb, drawn.numpy(), [color_for(r - 1) for r in parsed.rows], width=OUTLINE_PX,
                         labels=parsed.labels, min_side=PICTURE_MIN_SIDE, dashed=parsed.clipped.tolist())
    problems = pd.DataFrame(
        [[p.row, p.label, p.message] for p in parsed.problems], columns=["row", "label", "problem"]
    )
    n_bad = sum(not p.drawn for p in parsed.problems)
    summary = [
        f"**{len(parsed.rows)} box{'es' if len(parsed.rows) != 1 else ''} drawn**"
        + (f", **{n_bad} row{'s' if n_bad != 1 else ''} not drawn** (see below)" if n_bad else "")
        + f" · table in {FORMAT_NAMES[fmt]}, {units} · image {size[1]} × {size[0]} px"
        + (" (no photo: a blank canvas; choose an example or upload one)" if blank else ""),
    ]
    if parsed.problems:
        summary.append(f"{len(parsed.problems)} row(s) flagged: " + "; ".join(f"row {p.row}: {p.message}" for p in parsed.problems[:3]))
    round_trip = _round_trip_line(parsed, table, size, exact)
    if round_trip:
        summary.append(round_trip)
    return (picture, *_converted_tables(parsed, size), problems, "\n\n".join(summary)), parsed, size


@shows_errors
def render_boxes(image: np.ndarray | None, table: Any, fmt: str, units: str, exact: ExactRows | None = None,
                 ) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """Draw the table's good rows over the photo and list the converted boxes and bad rows.

    ``exact`` holds the exact boxes behind the table's rounded numbers (the page's gr.State).
    Returns the picture (``[H', W', 3]`` uint8: the photo, enlarged when small, with the boxes
    burnt in; a clipped box dashed), the boxes in xyxy / cxcywh / xywh, the flagged rows and a summary.
    """
    return _render(image, table, fmt, units, exact)[0]


@shows_errors
def render_view(image: np.ndarray | None, table: Any, fmt: str, units: str, exact: ExactRows | None = None,
                ) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str, str]:
    """What the page shows: :func:`render_boxes`' outputs and the conversion formula with the first box."""
    outputs, parsed, size = _render(image, table, fmt, units, exact)
    return (*outputs, conversion_formula(parsed, size), POINT_HINT)


def boxes_at(corners: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Indices of the boxes that hold the point ``(x, y)``, edges included.

    Args:
        corners: ``Tensor[K, 4]`` boxes in corner format ``(x1, y1, x2, y2)``, pixels.

    Returns:
        ``Tensor[J]`` indices into ``corners``, in order.
    """
    inside = (corners[:, 0] <= x) & (x <= corners[:, 2]) & (corners[:, 1] <= y) & (y <= corners[:, 3])  # [K]
    return inside.nonzero().flatten()


@shows_errors
def point_at(image: np.ndarray | None, table: Any, fmt: str, units: str, exact: ExactRows | None,
             evt: gr.SelectData) -> str:
    """The readout of a click on the picture: the photo's pixel under it (the picture of a small photo
    is enlarged; this maps back), in pixels and normalised, and the drawn rows whose box holds it.

    Pixel centres sit on whole coordinates, as in the book's figures: pixel ``(x, y)`` is the point
    ``(x, y)``, and a box holds it when ``x1 <= x <= x2`` and ``y1 <= y <= y2``.
    """
    rgb = _photo_or_canvas(image)
    h, w = rgb.shape[:2]
    parsed = parse_box_table(table, fmt, units, (h, w), exact=exact)
    scale = drawing_scale(h, w, PICTURE_MIN_SIDE)
    x, y = min(int(evt.index[0] / scale), w - 1), min(int(evt.index[1] / scale), h - 1)
    rows = [f"row {parsed.rows[i]}" + (f" ({parsed.labels[i]})" if parsed.labels[i] else "")
            for i in boxes_at(parsed.corners_px, x, y).tolist()]
    where = "inside " + ", ".join(rows) if rows else "inside no box drawn"
    return f"**Pixel (x {x}, y {y})** of {w} × {h} · normalised ({x / w:.3f}, {y / h:.3f}) · {where}"


def build() -> None:
    """Lay out the Boxes tab inside the current ``gr.Tab`` and wire its events."""
    fmt0, units0 = "xyxy", "pixels"
    photo0, (table0, exact0) = load_example(DEFAULT_EXAMPLE), example_rows(DEFAULT_EXAMPLE, fmt0, units0)
    # Rendered once here so the tab opens drawn, with no round trip to the server.
    picture0, *converted0, problems0, summary0, formula0, _ = render_view(photo0, table0, fmt0, units0, exact0)
    format_labels = {f: tr(FORMAT_LABELS[f], FORMAT_LABELS_ZH[f]) for f in BOX_FORMATS}
    gr.Markdown(tr(INTRO, INTRO_ZH))
    try_this(*TRY_THIS, elem_id="boxes-try")
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
                # Five columns, always: the column menu offers no "Delete column" (which broke the table).
                column_count=(5, "fixed"),
                label=tr("Boxes (editable)", "边界框（可编辑）"),
                elem_id="boxes-table",
            )
            add = gr.Button(tr("Add row", "添加一行"), size="sm", elem_id="boxes-add-row")
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
            # No label badge over the picture: it covered the first box's label; the line below says what to do.
            figure = gr.Image(picture0, interactive=False, buttons=["fullscreen"], elem_id="boxes-figure",
                              label=tr("Boxes drawn over the photo (click it)", "画在照片上的边界框（可点击）"),
                              show_label=False)
            point = gr.Markdown(POINT_HINT, elem_id="boxes-point")
            summary = gr.Markdown(summary0, elem_id="boxes-summary")
            problems = Dataframe(
                problems0, headers=["row", "label", "problem"], interactive=False, label=tr("Flagged rows", "有问题的行"),
                elem_id="boxes-problems", wrap=True,
            )
            formula_md = formula(formula0, elem_id="boxes-formula")
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
    # The exact boxes behind the table's rounded numbers (per session; never part of the API).
    exact = gr.State(exact0)

    render_inputs = [photo, table, fmt, units, exact]
    render_outputs = [figure, *converted, problems, summary]
    render = dict(fn=render_view, inputs=render_inputs, outputs=[*render_outputs, formula_md, point])

    example.input(
        choose_example, [example, fmt, units], [photo, table, caption, exact], api_name="boxes_example"
    ).then(**render, api_visibility="private")
    for control in (fmt, units):
        control.input(
            switch_format, [table, photo, fmt_state, fmt, units_state, units, exact],
            [table, fmt_state, units_state, exact],
            api_name="boxes_convert" if control is fmt else None, api_visibility="public" if control is fmt else "private",
        ).then(**render, api_visibility="private")
    table.input(**render, api_visibility="private")
    photo.upload(**render, api_visibility="private")
    photo.clear(**render, api_visibility="private")
    add.click(add_row, [table, fmt_state], table, api_visibility="private")
    figure.select(point_at, render_inputs, point, api_visibility="private")
    # The API's /boxes: the page's drawing without the formula (its outputs as before).
    gr.Button(tr("Draw", "绘制"), visible=False).click(render_boxes, render_inputs, render_outputs, api_name="boxes")
