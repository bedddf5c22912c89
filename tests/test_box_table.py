"""panels.box_table: every kind of bad row is flagged with its reason; good rows survive."""

import math

import pandas as pd
import pytest
import torch

from panels.box_table import convert_table, parse_box_table

SIZE = (300, 451)  # (height, width) of chelsea


def reasons(parsed):
    return {p.row: p.message for p in parsed.problems}


def test_good_rows_are_kept_in_order():
    parsed = parse_box_table([["a", 1, 2, 30, 40], ["b", "5", " 6 ", "70.5", 80]], "xyxy", "pixels", SIZE)
    assert parsed.rows == [1, 2] and parsed.labels == ["a", "b"] and parsed.problems == []
    torch.testing.assert_close(parsed.corners_px, torch.tensor([[1, 2, 30, 40], [5, 6, 70.5, 80]], dtype=torch.float64))


@pytest.mark.parametrize(
    "row, fmt, units, expected",
    [
        (["inv", 50, 10, 20, 40], "xyxy", "pixels", "x2 < x1: the box is inverted"),
        (["inv", 10, 50, 20, 40], "xyxy", "pixels", "y2 < y1: the box is inverted"),
        (["flat", 10, 10, 10, 40], "xyxy", "pixels", "zero width (x2 = x1)"),
        (["nan", math.nan, 10, 20, 40], "xyxy", "pixels", "x1 is NaN"),
        (["inf", 1, 10, math.inf, 40], "xyxy", "pixels", "x2 is infinite"),
        (["txt", 1, "ten", 20, 40], "xyxy", "pixels", "y1 is not a number ('ten')"),
        (["empty", 1, "", 20, 40], "xyxy", "pixels", "y1 is empty"),
        (["neg", 100, 100, -5, 40], "cxcywh", "pixels", "negative width w"),
        (["neg", 100, 100, 5, -40], "xywh", "pixels", "negative height h"),
        (["far", 500, 10, 600, 40], "xyxy", "pixels", "outside the image (451 x 300 px): not drawn"),
        (["far", 1.5, 0.1, 0.2, 0.2], "xywh", "normalised", "outside the image ([0, 1] (normalised)): not drawn"),
        (["bool", True, 1, 2, 3], "xyxy", "pixels", "x1 is not a number (True)"),
    ],
)
def test_bad_rows_are_flagged_and_not_drawn(row, fmt, units, expected):
    good = ["ok", 10, 10, 20, 20] if fmt != "xyxy" else ["ok", 10, 10, 30, 30]
    good = good if units == "pixels" else ["ok", 0.1, 0.1, 0.2, 0.2]
    parsed = parse_box_table([good, row], fmt, units, SIZE)
    assert reasons(parsed) == {2: expected}
    assert parsed.rows == [1]  # the good row is still drawn
    assert not parsed.problems[0].drawn


def test_partly_outside_is_flagged_but_drawn_clipped():
    parsed = parse_box_table([["edge", 400, 250, 500, 350]], "xyxy", "pixels", SIZE)
    assert reasons(parsed) == {1: "extends outside the image (451 x 300 px): drawn clipped"}
    assert parsed.rows == [1] and parsed.clipped.tolist() == [True] and parsed.problems[0].drawn


def test_several_reasons_are_all_given():
    parsed = parse_box_table([["x", 50, 60, 20, 40]], "xyxy", "pixels", SIZE)
    assert reasons(parsed)[1] == "x2 < x1: the box is inverted; y2 < y1: the box is inverted"


def test_blank_rows_are_skipped_and_pandas_input_works():
    frame = pd.DataFrame([["a", 1, 2, 3, 4], ["", None, None, None, None]], columns=list("lABCD"))
    parsed = parse_box_table(frame, "xyxy", "pixels", SIZE)
    assert parsed.rows == [1] and parsed.problems == []


def test_unknown_format_or_units():
    with pytest.raises(ValueError, match="format must be one of"):
        parse_box_table([], "yolo", "pixels", SIZE)
    with pytest.raises(ValueError, match="units must be one of"):
        parse_box_table([], "xyxy", "inches", SIZE)


def test_convert_table_keeps_bad_rows_as_typed():
    rows = [["a", 10, 20, 110, 220], ["b", "oops", 1, 2, 3]]
    center = convert_table(rows, "xyxy", "cxcywh", "pixels", "pixels", SIZE)
    assert center == [["a", 60.0, 120.0, 100.0, 200.0], ["b", "oops", 1, 2, 3]]
    norm = convert_table(center, "cxcywh", "xyxy", "pixels", "normalised", SIZE)
    assert norm[0] == ["a", round(10 / 451, 4), round(20 / 300, 4), round(110 / 451, 4), round(220 / 300, 4)]
