"""The Anchors panel through its API (gradio_client): anchors at a cell, labelling stepped, NMS stepped."""

import numpy as np
import pytest

from panels import anchors as A

pytestmark = pytest.mark.app


def table(rows, headers):
    return {"headers": headers, "data": rows}


def test_anchor_boxes_at_a_cell(client):
    image, anchors, summary, formula = client.predict(
        None, 4, 4, "0.75, 0.5, 0.25", "1, 2, 0.5", 1, 1, False, api_name="/anchor_boxes"
    )
    assert [r[0] for r in anchors["data"]] == ["s=0.75, r=1", "s=0.5, r=1", "s=0.25, r=1", "s=0.75, r=2", "s=0.75, r=0.5"]
    # centre of cell (1, 1) of a 4 x 4 map on the 512 px photo is (192, 192); s=0.5, r=1 spans 256 px
    assert anchors["data"][1][1:] == [64, 64, 320, 320, 256, 256]
    assert "**5 anchors**" in summary and "4 × 4 × 5 = **80 anchors**" in summary and "1,310,720" in summary
    # the formula's anchor is s=0.75, r=2: 0.75·√2·512 = 543.1 px wide, 0.75/√2·512 = 271.5 px high, the table's
    assert anchors["data"][3][5:] == [543.1, 271.5]
    assert "\\mathbf{543.1}" in formula and "\\mathbf{271.5}" in formula and formula.count("\\cdot 512 = 192") == 2


def test_anchor_boxes_tinyssd_count(client):
    *_, summary, _ = client.predict(None, 2, 2, "0.5", "1", 0, 0, True, api_name="/anchor_boxes")
    assert "5,444 anchors" in summary


@pytest.mark.parametrize(
    "sizes, ratios, message",
    [("0.75, big", "1", "sizes: 'big' is not a number"), ("1.5", "1", r"sizes: each value must be in \(0, 1\]"),
     ("0.5", "", "ratios: give at least one number"), ("0.5", "-1", r"ratios: each value must be in")],
)
def test_anchor_boxes_bad_lists(client, sizes, ratios, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(None, 4, 4, sizes, ratios, 0, 0, False, api_name="/anchor_boxes")


def test_labelling_matches_the_books_outcome(client):
    gt = table(A.LABEL_GT, ["class", "x1", "y1", "x2", "y2"])
    anc = table(A.LABEL_ANCHORS, ["anchor", "x1", "y1", "x2", "y2"])
    fig, heat, offsets, summary, _, step = client.predict(None, gt, anc, 0.5, 3, api_name="/anchor_labelling")
    # the book's 14.4.3 result: class labels [0, 1, 2, 0, 2]
    assert [r[2] for r in offsets["data"]] == [0, 1, 2, 0, 2]
    assert [r[1] for r in offsets["data"]] == ["background", "astronaut", "shuttle", "background", "shuttle"]
    assert all(v == 0 for v in offsets["data"][0][3:])  # background anchors get zero offsets
    assert "Step 3 of 3" in summary and step["value"] == 3 and step["maximum"] == 3


def test_labelling_play_streams_every_step(client):
    gt = table(A.LABEL_GT, ["class", "x1", "y1", "x2", "y2"])
    anc = table(A.LABEL_ANCHORS, ["anchor", "x1", "y1", "x2", "y2"])
    job = client.submit(None, gt, anc, 0.5, api_name="/anchor_labelling_play")
    frames = list(job)
    assert [f[3].split(".**")[0] for f in frames] == [f"**Step {k} of 3" for k in range(4)]


def test_nms_steps_and_detection_table(client):
    preds = table(A.NMS_PRED, ["x1", "y1", "x2", "y2", "p(astronaut)", "p(shuttle)"])
    fig, detections, summary, formula, step = client.predict(None, preds, 0.5, 2, api_name="/nms")
    assert "Step 2: keep #3" in summary and "Done: #0, #3 kept" in summary
    rows = detections["data"]
    assert [r[1] for r in rows] == [0, 1, -1, -1]  # the book's output: dog 0.9, cat 0.9, then removed
    assert [r[2] for r in rows] == [0.9, 0.9, 0.8, 0.7]
    assert [r[0] for r in rows] == ["#0", "#3", "#1", "#2"]
    *_, summary, formula, step = client.predict(None, preds, 0.5, 1, api_name="/nms")
    assert "Step 1: keep #0" in summary and "#1 (IoU" in summary and "#2 (IoU" in summary
    assert "0.841 > 0.5" in formula and "0.650 > 0.5" in formula and "0.019 \\le 0.5" in formula
    frames = list(client.submit(None, preds, 0.5, api_name="/nms_play"))
    assert len(frames) == 3 and "Step 2 of 2" in frames[-1][2]


def test_nms_bad_probabilities(client):
    from gradio_client.exceptions import AppError

    preds = table([[1, 1, 50, 50, 0.9, 0.5]], ["x1", "y1", "x2", "y2", "p(astronaut)", "p(shuttle)"])
    with pytest.raises(AppError, match="summing to at most 1"):
        client.predict(None, preds, 0.5, 0, api_name="/nms")


GT_HEADERS = ["class", "x1", "y1", "x2", "y2"]
ANC_HEADERS = ["anchor", "x1", "y1", "x2", "y2"]
GOOD_GT, GOOD_ANC = table(A.LABEL_GT, GT_HEADERS), table(A.LABEL_ANCHORS, ANC_HEADERS)


@pytest.mark.parametrize(
    "api, args, message",
    [
        ("/anchor_labelling", (None, table([], GT_HEADERS), GOOD_ANC, 0.5, 0), "ground truth: give at least one box"),
        ("/anchor_labelling", (None, table([["far", 900, 900, 950, 950]], GT_HEADERS), GOOD_ANC, 0.5, 0),
         "ground truth row 1: outside the image"),
        ("/anchor_labelling", (None, GOOD_GT, table([["a", 1, "x", 3, 4]], ANC_HEADERS), 0.5, 0),
         r"anchors row 1: y1 is not a number \('x'\)"),
        ("/anchor_labelling", (None, GOOD_GT, GOOD_ANC, 1.5, 0), "greater than maximum value 1"),
        ("/anchor_labelling", (None, GOOD_GT, GOOD_ANC, -0.1, 0), "less than minimum value 0"),
        ("/anchor_boxes", (None, 4, 4, "0.5", "0", 0, 0, False), r"ratios: each value must be in \(0, 10\]"),
        ("/anchor_boxes", (None, 4, 4, "0", "1", 0, 0, False), r"sizes: each value must be in \(0, 1\]"),
        ("/anchor_boxes", (None, 100000, 4, "0.5", "1", 0, 0, False), "greater than maximum value 64"),
        ("/nms", (None, table([["a", 1, 2, 3, 0.5, 0.5]], ["x1", "y1", "x2", "y2", "p1", "p2"]), 0.5, 0),
         "predictions row 1: x1 is not a number"),
        ("/nms", (None, table([], ["x1", "y1", "x2", "y2", "p1", "p2"]), 0.5, 0), "predictions: give at least one box"),
    ],
)
def test_bad_input_gets_a_message_and_the_server_keeps_serving(client, api, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name=api)
    *_, summary, _, step = client.predict(None, GOOD_GT, GOOD_ANC, 0.5, 1, api_name="/anchor_labelling")
    assert "Step 1 of 3" in summary


# --- what each view draws and computes, without the server (issue 17) ------------------------------

def _overlaps(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("fmap, cell, tinyssd", [((4, 4), (1, 1), False), ((4, 4), (3, 3), False), ((4, 4), (0, 0), False),
                                                 ((1, 1), (0, 0), True), ((64, 64), (40, 7), False),
                                                 ((3, 8), (2, 0), True)])
def test_anchor_labels_never_overlap_and_stay_on_the_photo(fmap, cell, tinyssd, monkeypatch):
    placed = []
    place = A.place_labels
    monkeypatch.setattr(A, "place_labels", lambda *a, **k: placed.append(place(*a, **k)) or placed[-1])
    A.render_anchor_boxes(None, *fmap, "0.75, 0.5, 0.25", "1, 2, 0.5", *cell, tinyssd)
    rects = [r for r in placed[-1] if r is not None]
    assert len(rects) == 6 + 5 * tinyssd  # five anchors and the cell, and one label per TinySSD stage
    assert all(0 <= r[0] and r[2] <= 512 and 0 <= r[1] and r[3] <= 512 for r in rects), rects
    assert not [(a, b) for i, a in enumerate(rects) for b in rects[i + 1:] if _overlaps(a, b)]


def test_place_labels_keeps_off_reserved_places_and_puts_a_small_box_label_outside():
    boxes = np.array([[100, 100, 300, 300], [100, 100, 140, 140]])
    rects = A.place_labels(boxes, [(60, 16), (40, 16)], (512, 512), outside_first=[False, True])
    assert rects[0] == (100.0, 100.0, 160.0, 116.0)  # inside, at the upper-left corner
    assert rects[1] == (100.0, 141.0, 140.0, 157.0)  # the small box's label just below it, outside
    marker = (110, 110, 130, 130)  # a marker where the first label would go: it moves to the next corner
    rects = A.place_labels(boxes, [(60, 16), (40, 16)], (512, 512), reserved=[marker], outside_first=[False, True])
    assert rects[0] == (240.0, 100.0, 300.0, 116.0)
    assert not _overlaps(rects[1], marker) and not _overlaps(rects[0], rects[1])
    assert A.place_labels(boxes, [(0, 0), (0, 0)], (512, 512)) == [None, None]


def test_the_grid_lines_lie_on_the_cell_borders_and_leave_the_rest_of_the_photo():
    photo = np.full((60, 90, 3), 200, dtype=np.uint8)
    photo[:, 45:] = 20
    gridded = A.with_grid(photo, 3, 2).astype(int)
    changed = np.abs(gridded - photo).sum(axis=2) > 0
    assert changed[[20, 40], :].all() and changed[:, 45].all()  # rows 20, 40 and column 45 of a 3 x 2 map
    assert changed.sum() == 2 * 90 + 60 - 2
    assert (gridded[0, 45] > 20).all() and (gridded[20, 0] < 200).all()  # lighter on dark, darker on light


def test_the_marker_sits_at_the_chosen_cells_centre():
    photo = np.full((512, 512, 3), 128, dtype=np.uint8)
    image, *_ = A.render_anchor_boxes(photo, 4, 4, "0.1", "1", 3, 0, False)
    # cell (3, 0) of a 4 x 4 map: centre (64, 448); a white dot ringed in black
    assert (image[448, 64] == 0).all() and (image[448, 64 + 4] == 255).all() and (image[448, 64 + 7] == 0).all()
    assert (image[192, 192] == 128).all()


def test_the_anchor_formula_follows_multibox_prior_on_a_rectangular_map_and_photo():
    photo = np.zeros((300, 600, 3), dtype=np.uint8)
    _, table, _, formula = A.render_anchor_boxes(photo, 2, 4, "0.5", "1, 4", 1, 2, False)
    s_r4 = table.iloc[1]
    # w = s·√r·(h/w)·W = 0.5·2·(2/4)·600 = 300 px, h = s/√r·H = 0.5/2·300 = 75 px, centre ((2.5/4)·600, (1.5/2)·300)
    assert (s_r4["w"], s_r4["h"]) == (300.0, 75.0)
    assert "\\mathbf{300}" in formula and "\\mathbf{75}" in formula
    assert "\\frac{2.5}{4}\\cdot 600 = 375" in formula and "\\frac{1.5}{2}\\cdot 300 = 225" in formula


def _labelling(k, threshold=0.5):
    return A.render_labelling(None, A.LABEL_GT, A.LABEL_ANCHORS, threshold, k)


def test_labelling_decides_the_greedy_picks_at_their_step_and_the_rest_at_the_last():
    assigned = [list(_labelling(k)[2]["assigned"]) for k in range(4)]
    assert assigned == [
        ["pending"] * 5,
        ["pending", "pending", "shuttle", "pending", "pending"],
        ["pending", "astronaut", "shuttle", "pending", "pending"],
        ["background", "astronaut", "shuttle", "background", "shuttle"],
    ]
    final = _labelling(3)[2]
    for k in range(3):
        table = _labelling(k)[2]
        decided = table["assigned"] != "pending"
        # a decided row is already multibox_target's final row; an undecided one shows nothing
        assert table[decided].astype(str).equals(final[decided].astype(str))
        assert (table.loc[~decided, ["class label", *A.OFFSET_COLUMNS]] == "").all().all()
    _, _, table, *_ = _labelling(3, threshold=0.7)
    assert list(table["assigned"]) == ["background", "astronaut", "shuttle", "background", "background"]


def test_labelling_figure_says_pending_until_decided():
    fig = _labelling(0)[0]
    assert {a.text for a in fig.layout.annotations} >= {"a0: pending", "a4: pending"}
    fig = _labelling(3)[0]
    assert "a0: background" in {a.text for a in fig.layout.annotations}
    assert not any("pending" in a.text for a in fig.layout.annotations)


def test_labelling_formula_has_the_numbers_of_the_pair_decided_and_the_tables_offsets():
    assert "Step 1 fills in" in _labelling(0)[4]
    _, _, table, _, formula, _ = _labelling(1)
    # J(a2, shuttle): a2 = 130 x 295 px, shuttle 120 x 290 px, overlapping 120 x 285 px
    assert "\\frac{34{,}200}{38{,}350 + 34{,}800 - 34{,}200} \\\\ &= \\mathbf{0.878}" in formula
    for column in A.OFFSET_COLUMNS:
        assert f"\\mathbf{{{table.iloc[2][column]:.3f}}}" in formula
    formula = _labelling(3)[4]
    assert "= 0.686 \\\\ &\\ge 0.5 \\Rightarrow \\text{a4} \\to \\text{shuttle}" in formula
    formula = _labelling(3, threshold=0.7)[4]
    assert "= 0.686 \\\\ &< 0.7 \\Rightarrow \\text{a4}\\ \\text{is background}" in formula


def test_nms_ends_with_every_box_kept_or_suppressed():
    preds = A.NMS_PRED
    states = [A.render_nms(None, preds, 0.5, k)[0].layout.annotations for k in range(3)]
    texts = [[a.text for a in annotations] for annotations in states]
    assert texts[1][0].endswith("(current)")
    assert texts[2] == ["#0 astronaut 0.90 (kept)", "#1 astronaut 0.80 (suppressed)", "#2 astronaut 0.70 (suppressed)",
                        "#3 shuttle 0.90 (kept)"]
    tables = [A.render_nms(None, preds, 0.5, k)[1] for k in range(3)]
    assert [list(t["class"]) for t in tables] == [["pending"] * 4, [0.0, "pending", -1.0, -1.0], [0.0, 1.0, -1.0, -1.0]]
    formula = A.render_nms(None, preds, 0.7, 1)[3]
    assert "0.650 \\le 0.7" in formula and "0.841 > 0.7" in formula


def test_latex_text_keeps_table_names_from_breaking_the_formula():
    assert A._tex("cat_1 {$x$}\\") == "\\text{cat1 x}"
    assert A._tex("$$") == "\\text{?}"
