"""The Anchors panel through its API (gradio_client): anchors at a cell, labelling stepped, NMS stepped."""

import pytest

from panels import anchors as A

pytestmark = pytest.mark.app


def table(rows, headers):
    return {"headers": headers, "data": rows}


def test_anchor_boxes_at_a_cell(client):
    image, anchors, summary = client.predict(
        None, 4, 4, "0.75, 0.5, 0.25", "1, 2, 0.5", 1, 1, False, api_name="/anchor_boxes"
    )
    assert [r[0] for r in anchors["data"]] == ["s=0.75, r=1", "s=0.5, r=1", "s=0.25, r=1", "s=0.75, r=2", "s=0.75, r=0.5"]
    # centre of cell (1, 1) of a 4 x 4 map on the 512 px photo is (192, 192); s=0.5, r=1 spans 256 px
    assert anchors["data"][1][1:] == [64, 64, 320, 320]
    assert "**5 anchors**" in summary and "4 × 4 × 5 = **80 anchors**" in summary and "1,310,720" in summary


def test_anchor_boxes_tinyssd_count(client):
    *_, summary = client.predict(None, 2, 2, "0.5", "1", 0, 0, True, api_name="/anchor_boxes")
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
    fig, heat, offsets, summary, step = client.predict(None, gt, anc, 0.5, 3, api_name="/anchor_labelling")
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
    fig, detections, summary, step = client.predict(None, preds, 0.5, 1, api_name="/nms")
    assert "Step 1: keep #0" in summary and "#1 (IoU" in summary and "#2 (IoU" in summary
    rows = detections["data"]
    assert [r[0] for r in rows] == [0, 1, -1, -1]  # the book's output: dog 0.9, cat 0.9, then removed
    assert [r[1] for r in rows] == [0.9, 0.9, 0.8, 0.7]
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
    *_, summary, step = client.predict(None, GOOD_GT, GOOD_ANC, 0.5, 1, api_name="/anchor_labelling")
    assert "Step 1 of 3" in summary
