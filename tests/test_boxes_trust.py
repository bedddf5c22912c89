"""Issue 17, items 2, 3, 6 and 9 (Boxes and Regions), below the browser: switching formats and units
never moves a box (the exact boxes stay behind the rounded cells), rows can be added, the views'
formulas carry the current numbers, a click picks a proposal, and the "Proposal to pool" slider is
written only by what is not the slider itself."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch

from panels import boxes as B
from panels import regions as R
from panels.box_table import (
    BOX_TABLE,
    DIGITS,
    convert_table,
    convert_table_exact,
    parse_box_table,
    round_trip_error,
    shown_numbers,
)
from vision_core._checks import ArgumentError
from vision_core.examples import EXAMPLES, load_example
from vision_core.regions import proposal_at

ASTRONAUT = load_example("astronaut")  # 512 x 512
CHELSEA_SIZE = (300, 451)  # (height, width): 451 is no power of two, so x / 451 * 451 may not be x


def astronaut_rows():
    return [list(b) for b in EXAMPLES["astronaut"].boxes]  # corner, pixels: y2 = 512


def switch(state, fmt, units, image=ASTRONAUT):
    """What the page does when the format or units radio changes: (rows, fmt, units, exact)."""
    rows, old_fmt, old_units, exact = state
    table, fmt, units, exact = B.switch_format(rows, image, old_fmt, fmt, old_units, units, exact)
    return table.values.tolist(), fmt, units, exact


# --- item 3: switching never changes the data ------------------------------------------------------

def test_the_issue_sequence_gives_512_back_and_flags_nothing():
    state = (astronaut_rows(), "xyxy", "pixels", {})
    for fmt, units in [("cxcywh", "pixels"), ("cxcywh", "normalised"), ("cxcywh", "pixels"), ("xyxy", "pixels")]:
        state = switch(state, fmt, units)
    rows, fmt, units, exact = state
    assert rows == astronaut_rows()  # 512, not 512.02; every other number exact too
    assert parse_box_table(rows, fmt, units, ASTRONAUT.shape[:2], exact=exact).problems == []
    *_, summary = B.render_boxes(ASTRONAUT, rows, fmt, units, exact)
    assert "max |Δ| = 0 px" in summary and "outside" not in summary


def test_what_the_old_chain_did():
    # Without the exact boxes (each switch from the rounded cells), the same sequence drifts: the
    # page's old behaviour, kept here so this file shows what the state is for.
    rows = astronaut_rows()
    for a, b, ua, ub in [("xyxy", "cxcywh", "pixels", "pixels"), ("cxcywh", "cxcywh", "pixels", "normalised"),
                         ("cxcywh", "cxcywh", "normalised", "pixels"), ("cxcywh", "xyxy", "pixels", "pixels")]:
        rows = convert_table(rows, a, b, ua, ub, ASTRONAUT.shape[:2])
    assert rows[0][4] == 512.02


@pytest.mark.parametrize("seed", range(6))
def test_any_walk_through_formats_and_units_comes_back_exactly(seed):
    rng = random.Random(seed)
    photo = np.zeros((*CHELSEA_SIZE, 3), np.uint8)
    typed = [["edge", 0.0, 0.0, 451.0, 300.0], ["odd", 10.3, 20.7, 333.33, 299.99], ["tiny", 1.0, 1.0, 1.01, 1.01],
             ["bad", "x", 1, 2, 3]]
    state = (typed, "xyxy", "pixels", {})
    for _ in range(25):
        state = switch(state, rng.choice(["xyxy", "cxcywh", "xywh"]), rng.choice(["pixels", "normalised"]), photo)
        rows, fmt, units, exact = state
        # What is shown is the exact box rounded to the units' decimals, never a rounding of a rounding.
        parsed = parse_box_table(rows, fmt, units, CHELSEA_SIZE, exact=exact)
        shown = torch.tensor([r[1:] for r in rows[:3]], dtype=torch.float64)
        assert ((shown - parsed.boxes).abs() <= 0.5 * 10 ** -DIGITS[units]).all()
        # The box touching both far edges is never flagged as outside the image.
        assert [p.row for p in parsed.problems] == [4]
    rows, *_ = switch(state, "xyxy", "pixels", photo)
    assert rows == typed


def test_an_edited_row_is_taken_as_typed():
    state = switch((astronaut_rows(), "xyxy", "pixels", {}), "cxcywh", "normalised")
    rows, fmt, units, exact = state
    rows[0][1] = 0.5  # the learner types a new cx
    edited = list(rows[0])
    rows, *_ = switch((rows, fmt, units, exact), "xyxy", "pixels")
    assert rows[0] == convert_table([edited], "cxcywh", "xyxy", "normalised", "pixels", ASTRONAUT.shape[:2])[0]
    assert rows[1] == astronaut_rows()[1]  # the untouched row is still exact


def test_a_new_photo_takes_the_shown_numbers_in_their_units():
    # Shown in normalised units, typed in pixels: after another photo the table's fractions are the
    # boxes (as the learner sees them), so pixels follow the new photo's size.
    rows, fmt, units, exact = switch((astronaut_rows(), "xyxy", "pixels", {}), "xyxy", "normalised")
    wide = np.zeros((200, 1024, 3), np.uint8)
    parsed = parse_box_table(rows, fmt, units, wide.shape[:2], exact=exact)
    torch.testing.assert_close(parsed.corners_px[1], torch.tensor([352 / 512 * 1024, 0.0, 472 / 512 * 1024, 290 / 512 * 200],
                                                                  dtype=torch.float64))
    rows, *_ = switch((rows, fmt, units, exact), "xyxy", "pixels", wide)
    assert rows[1][1:] == [704.0, 0.0, 944.0, 113.28]


def test_round_trip_error_is_measured_not_claimed():
    rows, fmt, units, exact = switch((astronaut_rows(), "xyxy", "pixels", {}), "cxcywh", "normalised")
    assert round_trip_error(rows, fmt, units, ASTRONAUT.shape[:2], exact) == 0.0
    # Typed fractions come back as typed too: a switch converts from them, never from a rounding.
    assert round_trip_error([["a", 0.1, 0.2, 0.3, 0.4]], "xywh", "normalised", CHELSEA_SIZE, {}) == 0.0
    *_, summary = B.render_boxes(ASTRONAUT, rows, fmt, units, exact)
    assert re.search(r"max \|Δ\| = 0 of the image.*differ from what is shown by up to 0\.0000\d+ of the image", summary)


def test_shown_numbers_are_clean_decimals():
    assert shown_numbers([193 / 512, -1e-9, 512.0000000001], "normalised") == (0.377, 0.0, 512.0)
    assert str(shown_numbers([0.1 + 0.2], "pixels")[0]) == "0.3"


def test_the_exact_rows_are_bounded_by_the_table():
    rows = [["a", i, i, i + 1, i + 1] for i in range(BOX_TABLE.rows)]
    converted, exact = convert_table_exact(rows, "xyxy", "cxcywh", "pixels", "normalised", CHELSEA_SIZE)
    assert len(exact) == BOX_TABLE.rows and len(converted) == BOX_TABLE.rows


# --- item 6: rows can be added; the column count is fixed --------------------------------------------

def test_add_row_appends_an_empty_row_in_the_tables_format():
    table = B.add_row(astronaut_rows(), "cxcywh")
    assert list(table.columns) == ["label", "cx", "cy", "w", "h"]
    assert table.values.tolist()[-1] == ["", None, None, None, None] and len(table) == 3
    assert parse_box_table(table.values.tolist(), "cxcywh", "pixels", (512, 512)).rows == [1, 2]  # blank: skipped


def test_add_row_stops_at_the_row_limit():
    import gradio as gr

    full = [["a", 1, 2, 3, 4]] * BOX_TABLE.rows
    with pytest.raises(gr.Error, match=f"already has {BOX_TABLE.rows} rows"):
        B.add_row(full, "xyxy")


def test_the_box_table_has_a_fixed_column_count():
    import gradio as gr

    with gr.Blocks() as demo:
        B.build()
    table = next(c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "boxes-table")
    assert table.column_count == (5, "fixed")


# --- item 9: formulas with the current numbers --------------------------------------------------------

def test_the_boxes_formula_has_the_first_box_numbers():
    *_, tex, _ = B.render_view(ASTRONAUT, astronaut_rows(), "xyxy", "pixels", {})
    assert tex.startswith("Row 1, the first box drawn, in pixels:\n\n$$") and tex.endswith("$$")
    assert r"\frac{20 + 366}{2}" in tex and "(193,\\ 263)" in tex and "(346,\\ 498)" in tex and "(366,\\ 512)" in tex
    rows, fmt, units, exact = switch((astronaut_rows(), "xyxy", "pixels", {}), "cxcywh", "normalised")
    *_, tex, _ = B.render_view(ASTRONAUT, rows, fmt, units, exact)
    assert "0.377" in tex and "(0.7148,\\ 1)" in tex  # in the table's units, from the exact box


def test_the_regions_formula_matches_the_pooled_windows():
    out = R._render(None, "fast", 30, 3, 16, 2, 3)
    tex, summary = out[7], out[5]
    rows = re.search(r"rounds it to rows (\d+)\.\.(\d+), columns (\d+)\.\.(\d+)", summary).groups()
    y0, x0 = int(rows[0]), int(rows[2])
    assert f"= ({y0},\\ {x0})" in tex and r"\frac{h}{h_2}" in tex and "\\frac{" in tex
    assert re.search(r"\\text\{rows\}_0 &= \d+\.\.\d+,\\ \\ \\text\{columns\}_0 = \d+\.\.\d+", tex)


# --- item 2: the index slider and clicks ----------------------------------------------------------------

def test_the_pooling_render_never_outputs_the_index_slider():
    out = R.render_pooling(None, "fast", 30, 7, 16, 2, 2)
    assert len(out) == 7 and not any(isinstance(o, dict) and "__type__" in o for o in out)
    assert "Proposal 7:" in out[5]


def test_a_change_of_top_k_sets_the_range_and_clamps_only_when_needed():
    *_, update, _ = R.render_proposals(None, "fast", 30, 7, 16, 2, 2)
    assert update["maximum"] == 29 and "value" not in update  # the learner's index is left alone
    *_, summary, update, _ = R.render_proposals(None, "fast", 5, 7, 16, 2, 2)
    assert update == {**update, "maximum": 4, "value": 4} and "Proposal 4:" in summary


def test_proposal_at_picks_the_smallest_containing_else_the_nearest():
    boxes = torch.tensor([[0, 0, 100, 100], [10, 10, 30, 30], [50, 50, 60, 60], [10, 10, 30, 30]], dtype=torch.float32)
    assert proposal_at(boxes, 20, 20) == 1  # inside 0 and 1 (and 3, the same box later): the smallest, first
    assert proposal_at(boxes, 55, 55) == 2
    assert proposal_at(boxes, 80, 80) == 0
    assert proposal_at(boxes[1:], 59, 75) == 1  # in none: the nearest outline (15 px below box 2)
    assert proposal_at(boxes, 200, 200) == 0
    with pytest.raises(ArgumentError, match="Tensor"):
        proposal_at(torch.zeros(0, 4), 1, 1)
    with pytest.raises(ArgumentError, match="finite"):
        proposal_at(boxes, float("nan"), 1)


def test_a_click_on_the_picture_picks_a_proposal():
    import gradio as gr

    boxes, _, _ = R.proposals_for(load_example("chelsea"), "fast")
    shown = boxes[:30]
    k = int(torch.argmin((shown[:, 2] - shown[:, 0]) * (shown[:, 3] - shown[:, 1])))  # the smallest drawn
    cx, cy = ((shown[k, 0] + shown[k, 2]) / 2).item(), ((shown[k, 1] + shown[k, 3]) / 2).item()
    scale = R.picture_scale(load_example("chelsea"))  # the picture is the photo enlarged (902 x 600)
    assert R.proposals_picture(load_example("chelsea"), shown, k).shape[:2] == (300 * scale, 451 * scale)
    evt = gr.SelectData(None, {"index": [cx * scale, cy * scale], "value": None})  # in the picture's pixels
    assert R.pick_proposal(None, "fast", 30, evt)["value"] == k


# --- item 10: a picture instead of a plotly figure, and what a click on it says ---------------------

class _Click:
    """What Gradio hands a ``.select`` handler: the clicked pixel of the picture as shown."""

    def __init__(self, x: int, y: int):
        self.index = [x, y]


def _near(pixel, color: str, tolerance: int = 0) -> bool:
    from PIL import ImageColor

    return bool(np.all(np.abs(pixel.astype(int) - ImageColor.getrgb(color)) <= tolerance))


def test_the_picture_has_each_box_outlined_in_its_row_colour():
    from panels.figures import color_for

    picture, *_ = B.render_boxes(ASTRONAUT, astronaut_rows(), "xyxy", "pixels")
    assert picture.shape == ASTRONAUT.shape and picture.dtype == np.uint8
    assert astronaut_rows() == [["astronaut", 20, 14, 366, 512], ["shuttle", 352, 0, 472, 290]]
    assert _near(picture[300, 20], color_for(0)) and _near(picture[300, 366], color_for(0))  # its left, right edges
    assert _near(picture[100, 472], color_for(1)) and _near(picture[290, 400], color_for(1))  # right, bottom
    assert np.array_equal(picture[250:260, 100:110], ASTRONAUT[250:260, 100:110])  # inside: the photo untouched


def test_a_box_drawn_clipped_is_dashed_and_the_others_solid():
    from panels.figures import draw_boxes

    white = np.full((100, 200, 3), 255, np.uint8)
    picture = draw_boxes(white, np.array([[10, 10, 90, 90], [100, 10, 190, 90]]), ["#c62828", "#1f5fbf"],
                         width=3, dashed=[False, True])
    solid, dashed = picture[10, 10:91], picture[10, 100:191]  # the top edge of each, [81, 3] and [91, 3]
    assert all(_near(p, "#c62828") for p in solid)
    coloured = np.array([_near(p, "#1f5fbf") for p in dashed])
    assert coloured[:12].all() and not coloured[12:18].any() and coloured[18:30].all()  # 12 px dashes, 6 px gaps
    assert (white == 255).all()  # drawn on a copy


def test_a_faded_box_is_its_drawing_blended_into_the_photo():
    from panels.figures import draw_boxes

    photo = np.random.default_rng(0).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    boxes, colors = np.array([[10, 30, 90, 70]]), ["#c62828"]
    solid = draw_boxes(photo, boxes, colors, labels=["best 0.53 < 0.9"], dashed=[True])
    faded = draw_boxes(photo, boxes, colors, labels=["best 0.53 < 0.9"], dashed=[True], opacity=0.5)
    assert (solid != photo).any(axis=2).sum() > 200  # an outline and a label tab were drawn
    # uint8 results of a float blend: within half a level of (drawing + photo) / 2
    assert np.abs(faded - (solid.astype(np.float64) + photo) / 2).max() <= 0.5


def test_a_click_reads_the_pixel_and_the_boxes_that_hold_it():
    rows = astronaut_rows()
    said = B.point_at(ASTRONAUT, rows, "xyxy", "pixels", {}, _Click(400, 150))
    assert said == "**Pixel (x 400, y 150)** of 512 × 512 · normalised (0.781, 0.293) · inside row 2 (shuttle)"
    said = B.point_at(ASTRONAUT, rows, "xyxy", "pixels", {}, _Click(5, 5))
    assert said.endswith("inside no box drawn")
    # the same boxes written in another format hold the same pixels
    rows, fmt, units, exact = switch((rows, "xyxy", "pixels", {}), "cxcywh", "normalised")
    assert B.point_at(ASTRONAUT, rows, fmt, units, exact, _Click(400, 150)).endswith("inside row 2 (shuttle)")


def test_a_small_photo_is_drawn_enlarged_and_a_click_maps_back_to_its_pixels():
    small = np.zeros((100, 160, 3), np.uint8)
    rows = [["box", 20, 10, 60, 50]]
    picture, *_ = B.render_boxes(small, rows, "xyxy", "pixels")
    assert picture.shape == (500, 800, 3)  # enlarged 5 times: the shorter side reaches 512 px at most
    assert B.point_at(small, rows, "xyxy", "pixels", {}, _Click(5 * 40 + 2, 5 * 30 + 2)).startswith(
        "**Pixel (x 40, y 30)** of 160 × 100")
    assert B.point_at(small, rows, "xyxy", "pixels", {}, _Click(5 * 40, 5 * 30)).endswith("inside row 1 (box)")
    assert B.point_at(small, rows, "xyxy", "pixels", {}, _Click(5 * 61, 5 * 30)).endswith("inside no box drawn")


def test_a_click_on_an_edge_counts_as_inside():
    corners = torch.tensor([[10.0, 10.0, 20.0, 20.0], [15.0, 0.0, 30.0, 5.0], [0.0, 0.0, 100.0, 100.0]])
    assert B.boxes_at(corners, 10, 20).tolist() == [0, 2]
    assert B.boxes_at(corners, 20.5, 10).tolist() == [2]
    assert B.boxes_at(corners[:0], 1, 1).tolist() == []
