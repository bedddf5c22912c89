"""Reading a user-edited table of labelled boxes, row by row, with a reason for each bad row.

Shared by every panel that lets a learner type boxes (boxes, ground truth, predictions).
Cells are parsed one by one because a cell may hold anything; the geometric checks then
run vectorised over all rows. Each table has a row limit (:class:`RowLimit`), checked on the
row count before any cell is read, both by the page's input component (:func:`row_limited`,
before Gradio validates or copies the payload) and by the handlers (for in-process callers).

The table shows rounded numbers (:data:`DIGITS`), but the boxes behind it keep full precision: each
row remembers the numbers it was typed in (:class:`Exact`), and every other format or unit is one
conversion of those, never a conversion of a rounded conversion. Switching to another format and
back therefore gives back exactly what was typed (:func:`convert_table_exact`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import gradio as gr
import torch

from vision_core._checks import check_choice
from vision_core.boxes import BOX_FORMATS, box_convert, denormalize_boxes, normalize_boxes

from .common import Dataframe
from .i18n import bilingual

FORMAT_COLUMNS = {
    "xyxy": ("x1", "y1", "x2", "y2"),
    "cxcywh": ("cx", "cy", "w", "h"),
    "xywh": ("x", "y", "w", "h"),
}
FORMAT_LABELS = {
    "xyxy": "corner (x1, y1, x2, y2)",
    "cxcywh": "center (cx, cy, w, h)",
    "xywh": "corner + size (x, y, w, h)",
}
FORMAT_LABELS_ZH = {  # the same, for the page in Chinese (see panels.i18n)
    "xyxy": "角点 (x1, y1, x2, y2)",
    "cxcywh": "中心 (cx, cy, w, h)",
    "xywh": "角点 + 尺寸 (x, y, w, h)",
}
UNITS = ("pixels", "normalised")
UNITS_ZH = {"pixels": "像素", "normalised": "归一化"}

# The Boxes tab's table. The book's examples have 2 to 5 boxes and a crowded teaching photo a
# few dozen (VOC's busiest images about 40); every row is a traced outline, a label and a row
# of three converted tables, so 50 keeps one request near 0.1 s of server CPU (README).
MAX_BOX_ROWS = 50
# Every table here has 5 or 6 columns; a row far wider is not a table someone typed, and its
# cells would cost validation time before any row limit could refuse it.
MAX_TABLE_COLUMNS = 16
# Decimals a table shows after a conversion: 0.01 px, and 0.0001 of the image (0.05 px of a 512 px
# photo). Only what is shown is rounded; the exact values stay behind the table (Exact).
DIGITS = {"pixels": 2, "normalised": 4}


@dataclass(frozen=True)
class RowLimit:
    """A table's most rows, and its name in the refusal (English, Chinese)."""

    rows: int
    what: str
    what_zh: str


BOX_TABLE = RowLimit(MAX_BOX_ROWS, "the box table", "边界框表格")


@dataclass(frozen=True)
class Problem:
    """One flagged table row: 1-based row number, its label, and why."""

    row: int
    label: str
    message: str
    drawn: bool  # True when the row is still drawn (e.g. clipped to the image)


@dataclass
class BoxTable:
    """The usable rows of a box table, in the table's format and units, plus the flagged ones."""

    fmt: str
    units: str
    rows: list[int] = field(default_factory=list)  # 1-based numbers of usable rows
    labels: list[str] = field(default_factory=list)
    boxes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4, dtype=torch.float64))  # [K, 4]
    corners_px: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4, dtype=torch.float64))  # [K, 4]
    clipped: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))  # [K]
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Exact:
    """One row's box at full precision: the format, units and numbers it was typed (or loaded) in.

    ``size`` is the image ``(height, width)`` the table's shown numbers for the row were computed
    for; a change of units needs it.
    """

    fmt: str
    units: str
    values: tuple[float, float, float, float]
    size: tuple[int, int]


# What a page keeps beside its box table (a gr.State): the numbers a row shows -> its exact box.
ExactRows = dict[tuple[float, ...], Exact]


def check_format(fmt: str, units: str) -> None:
    """Raise vision_core's ArgumentError unless ``fmt`` and ``units`` are known (for callers outside the
    page, whose radios bind both)."""
    check_choice(fmt, "format", BOX_FORMATS)
    check_choice(units, "units", UNITS)


def check_table_size(table: Any, limit: RowLimit) -> None:
    """Raise ValueError (both languages) when ``table`` (a Dataframe value) has more than
    ``limit.rows`` rows, or a row wider than MAX_TABLE_COLUMNS cells.

    The rows are counted before any of them is looked at, so a 100000-row payload costs no more
    to refuse than a 51-row one. What is not a table passes: ``table_rows`` words that refusal.
    """
    if hasattr(table, "shape") and hasattr(table, "columns"):  # pandas.DataFrame
        rows, widest = int(table.shape[0]), int(table.shape[1])
    else:
        data = table.get("data") if isinstance(table, dict) else table
        if not isinstance(data, (list, tuple)):
            return
        rows, widest = len(data), 0
        if rows <= limit.rows:
            widest = max((len(r) for r in data if isinstance(r, (list, tuple))), default=0)
    if rows > limit.rows:
        raise ValueError(bilingual(
            f"{limit.what} has {rows} rows; at most {limit.rows} are allowed. Remove rows and try again.",
            f"{limit.what_zh}有 {rows} 行，最多允许 {limit.rows} 行。请删除一些行后重试。"))
    if widest > MAX_TABLE_COLUMNS:
        raise ValueError(bilingual(
            f"{limit.what} has a row of {widest} cells; at most {MAX_TABLE_COLUMNS} are allowed.",
            f"{limit.what_zh}中有一行包含 {widest} 个单元格，最多允许 {MAX_TABLE_COLUMNS} 个。"))


def row_limited(limit: RowLimit) -> type[gr.Dataframe]:
    """``panels.common.Dataframe`` that refuses a payload over ``limit`` with its message, before
    Gradio validates the payload against its data model (pydantic, a cost in every cell).

    One class per limit (not an instance setting): Gradio rebuilds a component from its
    constructor's arguments when a handler updates it, which would drop an attribute.
    """

    class RowLimited(Dataframe):
        is_template = True  # drawn as the Dataframe it extends
        row_limit = limit

        @property
        def data_model(self) -> Any:
            limited = self.__dict__.get("_row_limited_model")
            if limited is None:
                model = super().data_model  # common's Validated: words a wrong type

                class Limited(model):
                    @classmethod
                    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
                        try:
                            check_table_size(obj, limit)
                        except ValueError as err:
                            raise gr.Error(str(err)) from None
                        return model.model_validate(obj, *args, **kwargs)

                Limited.__name__ = model.__name__
                limited = self.__dict__["_row_limited_model"] = Limited
            return limited

    RowLimited.__name__ = RowLimited.__qualname__ = "Dataframe"
    return RowLimited


def table_rows(table: Any) -> list[list[Any]]:
    """Rows of a Gradio Dataframe value (pandas, dict with 'data', or list of lists)."""
    if table is None:
        return []
    if hasattr(table, "values") and hasattr(table, "columns"):  # pandas.DataFrame
        return [list(r) for r in table.astype(object).values.tolist()]
    if isinstance(table, dict):
        table = table.get("data") or []
    if not isinstance(table, (list, tuple)):
        raise ValueError(bilingual(f"the box table must be a list of rows, got {type(table).__name__}",
                                    f"边界框表格必须是由行组成的列表，收到的是 {type(table).__name__}"))
    return [list(r) if isinstance(r, (list, tuple)) else [r] for r in table]


def _blank(cell: Any) -> bool:
    if cell is None:
        return True
    if isinstance(cell, float) and math.isnan(cell):
        return False  # a NaN the user sent is a value to flag, not an empty cell
    return isinstance(cell, str) and cell.strip() == ""


def _blank_row(row: list[Any]) -> bool:
    # pandas turns an empty number cell into NaN, so a row of nothing but blanks and NaNs
    # is an empty row (the table's spare line), not four NaN values to flag.
    return _blank(row[0]) and all(_blank(c) or (isinstance(c, float) and math.isnan(c)) for c in row[1:])


def _parse_cell(cell: Any, column: str) -> tuple[float, str]:
    """(value, "") for a number, (nan, reason) otherwise."""
    if _blank(cell):
        return math.nan, f"{column} is empty"
    if isinstance(cell, bool):
        return math.nan, f"{column} is not a number ({cell!r})"
    try:
        value = float(cell.strip() if isinstance(cell, str) else cell)
    except (TypeError, ValueError):
        text = str(cell)
        return math.nan, f"{column} is not a number ({text[:20]!r})"
    if math.isnan(value):
        return value, f"{column} is NaN"
    if math.isinf(value):
        return value, f"{column} is infinite"
    return value, ""


def parse_box_table(table: Any, fmt: str, units: str, image_size: Sequence[int],
                    limit: RowLimit = BOX_TABLE, exact: ExactRows | None = None) -> BoxTable:
    """Parse rows ``[label, c1, c2, c3, c4]`` and flag each bad one with its reason.

    Args:
        table: the Dataframe value; blank rows are skipped silently.
        fmt: the coordinates' format, one of ``BOX_FORMATS``.
        units: ``"pixels"`` or ``"normalised"`` (fractions of the image).
        image_size: ``(height, width)`` of the image the boxes belong to.
        limit: the most rows; a longer table is refused before any cell is read.
        exact: the exact boxes behind rounded numbers the table shows (from
            :func:`convert_table_exact`); a row not found there is taken as typed.

    Returns:
        BoxTable: usable rows (drawn) and problems (by row, with the reason).
    """
    check_table_size(table, limit)
    check_format(fmt, units)
    columns = FORMAT_COLUMNS[fmt]
    out = BoxTable(fmt=fmt, units=units)
    numbers, labels, row_ids = [], [], []
    for i, row in enumerate(table_rows(table), start=1):
        row = (row + [None] * 5)[:5]
        if _blank_row(row):
            continue
        label = "" if _blank(row[0]) else str(row[0]).strip()[:40]
        parsed = [_parse_cell(c, col) for c, col in zip(row[1:], columns)]
        reasons = [r for _, r in parsed if r]
        if reasons:
            out.problems.append(Problem(i, label, "; ".join(reasons), drawn=False))
            continue
        numbers.append([v for v, _ in parsed])
        labels.append(label or f"box {i}")
        row_ids.append(i)
    if not numbers:
        out.problems.sort(key=lambda p: p.row)
        return out

    exacts = exact_rows(numbers, fmt, units, image_size, exact)
    boxes = exact_values(exacts, fmt, units, image_size)  # [K, 4] what the rounded cells stand for
    corners_px = exact_values(exacts, "xyxy", "pixels", image_size)  # [K, 4] one conversion from as typed
    height, width = float(image_size[0]), float(image_size[1])
    a, b, c, d = columns
    if fmt == "xyxy":
        checks = [
            (boxes[:, 2] < boxes[:, 0], f"{c} < {a}: the box is inverted"),
            (boxes[:, 3] < boxes[:, 1], f"{d} < {b}: the box is inverted"),
            (boxes[:, 2] == boxes[:, 0], f"zero width ({c} = {a})"),
            (boxes[:, 3] == boxes[:, 1], f"zero height ({d} = {b})"),
        ]
    else:
        checks = [
            (boxes[:, 2] < 0, "negative width w"),
            (boxes[:, 3] < 0, "negative height h"),
            (boxes[:, 2] == 0, "zero width (w = 0)"),
            (boxes[:, 3] == 0, "zero height (h = 0)"),
        ]
    bad = torch.zeros(len(numbers), dtype=torch.bool)
    for mask, _ in checks:
        bad |= mask
    x1, y1, x2, y2 = corners_px.unbind(-1)
    outside = ~bad & ((x2 <= 0) | (y2 <= 0) | (x1 >= width) | (y1 >= height))
    partly = ~bad & ~outside & ((x1 < 0) | (y1 < 0) | (x2 > width) | (y2 > height))
    size = f"{width:g} x {height:g} px" if units == "pixels" else "[0, 1] (normalised)"
    checks.append((outside, f"outside the image ({size}): not drawn"))
    checks.append((partly, f"extends outside the image ({size}): drawn clipped"))

    messages = [[] for _ in numbers]
    for mask, message in checks:
        for k in mask.nonzero().flatten().tolist():
            messages[k].append(message)
    keep = ~(bad | outside)
    for k, msgs in enumerate(messages):
        if msgs:
            out.problems.append(Problem(row_ids[k], labels[k], "; ".join(msgs), drawn=bool(keep[k])))
    out.problems.sort(key=lambda p: p.row)

    idx = keep.nonzero().flatten()
    out.rows = [row_ids[k] for k in idx.tolist()]
    out.labels = [labels[k] for k in idx.tolist()]
    out.boxes = boxes[idx]
    out.corners_px = corners_px[idx]
    out.clipped = partly[idx]
    return out


def convert_boxes(boxes: torch.Tensor, fmt_from: str, fmt_to: str, units_from: str, units_to: str,
                  image_size: Sequence[int]) -> torch.Tensor:
    """``Tensor[K, 4]`` boxes in one format and units -> ``Tensor[K, 4]`` in another, in one step.

    Pixels are normalised after the format change and denormalised before it: each format holds
    (x-like, y-like, x-like, y-like) values, so the order only decides where rounding happens.
    """
    if units_from == "normalised" and units_to == "pixels":
        boxes = denormalize_boxes(boxes, image_size)
    boxes = box_convert(boxes, fmt_from, fmt_to)
    if units_from == "pixels" and units_to == "normalised":
        boxes = normalize_boxes(boxes, image_size)
    return boxes


def exact_values(exacts: Sequence[Exact], fmt: str, units: str,
                 image_size: Sequence[int] | None = None) -> torch.Tensor:
    """``Tensor[K, 4]`` (float64): each row's exact box in ``fmt`` and ``units``.

    A change of units uses ``image_size``, or, when None, each row's own ``size`` (the one its
    shown numbers were computed for). One conversion per kind of row (format, units, size: a few
    kinds, whatever the number of rows), none per row.
    """
    out = torch.zeros(len(exacts), 4, dtype=torch.float64)
    kinds: dict[tuple[str, str, tuple[int, int]], list[int]] = {}
    for k, e in enumerate(exacts):
        size = e.size if image_size is None else tuple(int(s) for s in image_size[:2])
        kinds.setdefault((e.fmt, e.units, size), []).append(k)
    for (fmt_from, units_from, size), rows in kinds.items():
        typed = torch.tensor([exacts[k].values for k in rows], dtype=torch.float64)  # [R, 4]
        out[rows] = convert_boxes(typed, fmt_from, fmt, units_from, units, size)
    return out


def shown_numbers(values: Sequence[float], units: str) -> tuple[float, ...]:
    """The numbers a cell shows for exact ``values``: rounded to DIGITS[units] decimals, with Python's
    correctly rounded ``round`` (``0.377``, where a tensor's round may give ``0.37700000000000006``)."""
    digits = DIGITS[units]
    return tuple(round(v, digits) + 0.0 for v in values)  # + 0.0: no "-0" in a cell


def exact_rows(numbers: Sequence[Sequence[float]], fmt: str, units: str, image_size: Sequence[int],
               exact: ExactRows | None) -> list[Exact]:
    """Each row's exact box: the one ``exact`` says the table showed these numbers for, or else the
    numbers themselves, as typed now in ``fmt`` and ``units``.

    A remembered box counts only where its numbers in ``fmt`` and ``units`` still show as the
    row's (a stale entry from another table is never used). When the photo changed since, and
    the box was typed in the other units, the shown numbers are what the boxes are now (the
    learner sees them): they become the row's exact box, at the new size.
    """
    size = tuple(int(s) for s in image_size[:2])
    out = [Exact(fmt, units, tuple(float(v) for v in row), size) for row in numbers]
    known = [k for k, row in enumerate(numbers) if exact and tuple(row) in exact]
    if not known:
        return out
    remembered = [exact[tuple(numbers[k])] for k in known]
    now = exact_values(remembered, fmt, units)  # [K', 4] at the sizes they were shown for
    for k, e, values in zip(known, remembered, now.tolist()):
        row = tuple(float(v) for v in numbers[k])
        if row != tuple(values) and row != shown_numbers(values, units):
            continue
        out[k] = e if e.units == units or e.size == size else Exact(fmt, units, tuple(values), size)
    return out


def convert_table_exact(table: Any, fmt_from: str, fmt_to: str, units_from: str, units_to: str,
                        image_size: Sequence[int], exact: ExactRows | None = None,
                        limit: RowLimit = BOX_TABLE) -> tuple[list[list[Any]], ExactRows]:
    """Rewrite the table's numeric rows from one format/units to another, and say what is behind them.

    Each row is converted from its exact box (``exact``, else its numbers as shown) in one step and
    shown rounded to DIGITS decimals; the returned ExactRows maps those shown numbers back to the
    exact box, for the next conversion or drawing. Rows that do not parse as four finite numbers
    are left exactly as typed, so switching the format never destroys what the learner wrote.
    A table over ``limit`` is refused first.
    """
    check_table_size(table, limit)
    check_format(fmt_from, units_from)
    check_format(fmt_to, units_to)
    rows = [(r + [None] * 5)[:5] for r in table_rows(table)]
    parsed = [[_parse_cell(c, "")[0] for c in r[1:]] for r in rows]
    good = [i for i, vals in enumerate(parsed) if all(math.isfinite(v) for v in vals)]
    if not good:
        return rows, {}
    size = tuple(int(s) for s in image_size[:2])
    exacts = exact_rows([parsed[i] for i in good], fmt_from, units_from, size, exact)
    values = exact_values(exacts, fmt_to, units_to, size)  # [K, 4]
    behind: ExactRows = {}
    for i, e, v in zip(good, exacts, values.tolist()):
        shown = shown_numbers(v, units_to)
        rows[i] = [rows[i][0], *shown]
        behind[shown] = replace(e, size=size)
    return rows, behind


def convert_table(table: Any, fmt_from: str, fmt_to: str, units_from: str, units_to: str,
                  image_size: Sequence[int], limit: RowLimit = BOX_TABLE) -> list[list[Any]]:
    """The rows of :func:`convert_table_exact`, for a table taken as typed."""
    return convert_table_exact(table, fmt_from, fmt_to, units_from, units_to, image_size, limit=limit)[0]


def round_trip_error(table: Any, fmt: str, units: str, image_size: Sequence[int],
                     exact: ExactRows | None = None) -> float:
    """The largest change of any row's exact box after switching the table to each other format and
    units and back, the way the page switches (:func:`convert_table_exact`): 0 when nothing drifts."""
    rows = table_rows(table)
    numbers = [[_parse_cell(c, "")[0] for c in (r + [None] * 5)[1:5]] for r in rows]
    good = [i for i, vals in enumerate(numbers) if all(math.isfinite(v) for v in vals)]
    if not good:
        return 0.0
    start = exact_values(exact_rows([numbers[i] for i in good], fmt, units, image_size, exact), fmt, units)
    worst = 0.0
    for other_fmt in BOX_FORMATS:
        for other_units in UNITS:
            if (other_fmt, other_units) == (fmt, units):
                continue
            there, behind = convert_table_exact(rows, fmt, other_fmt, units, other_units, image_size, exact)
            back, behind = convert_table_exact(there, other_fmt, fmt, other_units, units, image_size, behind)
            again = [[float(c) for c in back[i][1:5]] for i in good]
            end = exact_values(exact_rows(again, fmt, units, image_size, behind), fmt, units)
            worst = max(worst, (end - start).abs().max().item())
    return worst
