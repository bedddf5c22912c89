"""Issue 16, item 3: the editable tables (/boxes, /boxes_convert, /nms, /anchor_labelling and their
Play) have row limits, refused with a message before any cell is read, and their figures cost
linear work in the rows. Costs are counted (calls, plotly objects built), never timed: the
seconds are in ``python -m benchmarks.tables``."""

import json

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
from plotly import basedatatypes

from benchmarks.tables import box_table, grid_boxes, labelling_tables, prediction_table, quadratic_boxes_figure
from benchmarks.tables import quadratic_iou_heatmap
from panels import anchors as A
from panels import box_table as BT
from panels import boxes as B
from panels import figures as F
from vision_core.examples import load_example

PHOTO = load_example("astronaut")  # 512 x 512
BOX_HEADERS = ["label", "x1", "y1", "x2", "y2"]
PRED_HEADERS = ["x1", "y1", "x2", "y2", "p(astronaut)", "p(shuttle)"]


def limits():
    """(limit, handler taking the table, the table of ``n`` rows) per table: read when called, so
    the file still collects where the limits do not exist."""
    gt, anchors = A.LABEL_GT, A.LABEL_ANCHORS
    return {
        "boxes": (BT.MAX_BOX_ROWS, lambda t: B.render_boxes(PHOTO, t, "xyxy", "pixels"), box_table),
        "boxes_convert": (BT.MAX_BOX_ROWS, lambda t: B.switch_format(t, PHOTO, "xyxy", "xywh", "pixels", "pixels"),
                          box_table),
        "nms": (A.MAX_PREDICTION_ROWS, lambda t: A.render_nms(PHOTO, t, 0.5, 1), prediction_table),
        "nms_play": (A.MAX_PREDICTION_ROWS, lambda t: next(A.play_nms(PHOTO, t, 0.5)), prediction_table),
        "ground truth": (A.MAX_GROUND_TRUTH_ROWS, lambda t: A.render_labelling(PHOTO, t, anchors, 0.5, 1),
                         lambda n: labelling_tables(n, 5)[0]),
        "anchors": (A.MAX_ANCHOR_ROWS, lambda t: A.render_labelling(PHOTO, gt, t, 0.5, 1),
                    lambda n: labelling_tables(2, n)[1]),
        "labelling_play": (A.MAX_ANCHOR_ROWS, lambda t: next(A.play_labelling(PHOTO, gt, t, 0.5)),
                           lambda n: labelling_tables(2, n)[1]),
    }


TABLES = ["boxes", "boxes_convert", "nms", "nms_play", "ground truth", "anchors", "labelling_play"]


def test_the_limits_are_what_teaching_needs():
    # The book's examples (2 ground-truth boxes, 5 anchors, 4 predictions) fit many times over; a
    # limit above 100 rows would let one request cost seconds again.
    assert 20 <= BT.MAX_BOX_ROWS <= 100
    assert 5 <= A.MAX_GROUND_TRUTH_ROWS <= A.MAX_ANCHOR_ROWS <= 100
    assert 4 <= A.MAX_PREDICTION_ROWS <= 100


@pytest.mark.parametrize("name", TABLES)
def test_a_table_at_its_limit_works_and_one_row_over_is_refused_with_the_limit(name):
    limit, handler, make = limits()[name]
    handler(make(limit))  # the largest allowed table is drawn
    with pytest.raises(gr.Error) as err:
        handler(make(limit + 1))
    message = str(err.value)
    assert f"{limit + 1} rows; at most {limit} are allowed" in message, message
    assert f"最多允许 {limit} 行" in message, message  # and in Chinese


@pytest.mark.parametrize("name", TABLES)
def test_a_100000_row_table_is_refused_before_any_cell_is_read(name, monkeypatch):
    limit, handler, make = limits()[name]

    def too_soon(*args, **kwargs):  # not a ValueError: no handler turns it into a message
        raise AssertionError("a cell was read or the photo drawn before the row limit was checked")

    for owner, fn in [(BT, "_parse_cell"), (BT, "table_rows"), (B, "as_rgb_image"), (A, "as_rgb_image"),
                      (B, "draw_boxes"), (A, "boxes_figure")]:
        monkeypatch.setattr(owner, fn, too_soon)
    with pytest.raises(gr.Error, match=f"100000 rows; at most {limit} are allowed"):
        handler(make(1) * 100_000)


@pytest.mark.parametrize("headers, make, limit_of", [
    (BOX_HEADERS, box_table, lambda: BT.BOX_TABLE),
    (PRED_HEADERS, prediction_table, lambda: A.PREDICTIONS),
])
def test_the_page_input_refuses_a_long_table_before_gradio_validates_it(headers, make, limit_of, monkeypatch):
    # Gradio validates a payload against the component's data model (pydantic, every cell) before
    # the handler runs: the row limit comes first, so the validation never sees the 100000 rows.
    from gradio.components.dataframe import DataframeData

    limit = limit_of()
    component = BT.row_limited(limit)(value=make(2), headers=headers, type="array", interactive=True, render=False)
    assert component.get_block_name() == "dataframe"  # the page draws it as a table
    validated = []
    original = DataframeData.model_validate.__func__
    monkeypatch.setattr(DataframeData, "model_validate",
                        classmethod(lambda cls, obj, *a, **k: validated.append(len(obj["data"])) or original(cls, obj, *a, **k)))
    with pytest.raises(gr.Error, match=f"100000 rows; at most {limit.rows} are allowed"):
        component.data_model.model_validate({"headers": headers, "data": make(1) * 100_000})
    assert validated == []
    component.data_model.model_validate({"headers": headers, "data": make(limit.rows)})
    assert validated == [limit.rows]


def test_a_row_of_a_million_cells_is_refused():
    with pytest.raises(ValueError, match=f"a row of 1000000 cells; at most {BT.MAX_TABLE_COLUMNS}"):
        BT.check_table_size([["a", *range(999_999)]], BT.BOX_TABLE)


def plotly_objects_built(fn):
    """How many plotly objects (traces, annotations, shapes, their fonts and lines…) ``fn()`` builds:
    the figure's validation work, counted."""
    built = [0]
    original = basedatatypes.BasePlotlyType.__init__

    def counted(self, *args, **kwargs):
        built[0] += 1
        original(self, *args, **kwargs)

    basedatatypes.BasePlotlyType.__init__ = counted
    try:
        fn()
    finally:
        basedatatypes.BasePlotlyType.__init__ = original
    return built[0]


def boxes_figure_of(n):
    return lambda: F.boxes_figure(PHOTO, grid_boxes(n), [f"box {i}" for i in range(n)], [F.color_for(i) for i in range(n)])


def heatmap_of(n):
    iou = np.random.default_rng(n).random((n, 3))
    return lambda: A._iou_heatmap(iou, [f"a{i}" for i in range(n)], ["x", "y", "z"], (0, 0), list(range(n)), [0, 1],
                                  [(i, 2) for i in range(n)])


@pytest.mark.parametrize("figure_of", [boxes_figure_of, heatmap_of], ids=["boxes_figure", "iou_heatmap"])
def test_drawing_is_linear_in_the_rows(figure_of):
    # Linear: each 10 more rows build the same number of objects more. The per-row add_* loops of before
    # re-validated every earlier row on each add (10 -> 20 -> 30 rows: 549 - 180 < 1104 - 549).
    c10, c20, c30 = (plotly_objects_built(figure_of(n)) for n in (10, 20, 30))
    assert c30 - c20 == c20 - c10, (c10, c20, c30)


def test_the_figures_add_no_row_one_by_one(monkeypatch):
    calls = []
    for name in ("add_trace", "add_traces", "add_annotation", "add_shape"):
        monkeypatch.setattr(go.Figure, name, lambda self, *a, _n=name, **k: calls.append(_n))
    B.render_boxes(PHOTO, box_table(5), "xyxy", "pixels")
    A.render_labelling(PHOTO, A.LABEL_GT, A.LABEL_ANCHORS, 0.5, 2)
    A.render_nms(PHOTO, A.NMS_PRED, 0.5, 2)
    assert calls == []


def as_json(fig):
    return json.loads(fig.to_json())  # what the browser receives


def test_a_small_figure_is_the_same_as_before():
    boxes = grid_boxes(5)
    labels, colors = ["a", "", "c", "d", "e"], [F.color_for(i) for i in range(5)]
    dashed = [False, True, False, True, False]
    for args in [(PHOTO, boxes, labels, colors, dashed), (PHOTO, boxes[:0], [], []), (PHOTO[:300], boxes, labels, colors)]:
        assert as_json(F.boxes_figure(*args, title="t")) == as_json(quadratic_boxes_figure(*args, title="t"))
        assert as_json(F.boxes_figure(*args)) == as_json(quadratic_boxes_figure(*args))
    iou = np.random.default_rng(0).random((5, 2))
    for args in [(iou, list("abcde"), ["x", "y"]), (iou, list("abcde"), ["x", "y"], (1, 0), (1, 3), (0,), [(2, 1)])]:
        assert as_json(A._iou_heatmap(*args)) == as_json(quadratic_iou_heatmap(*args))


@pytest.mark.app
@pytest.mark.parametrize("api, args_of, limit_of", [
    ("/boxes", lambda t: (None, {"headers": BOX_HEADERS, "data": t}, "xyxy", "pixels"), lambda: BT.MAX_BOX_ROWS),
    ("/nms", lambda t: (None, {"headers": PRED_HEADERS, "data": t}, 0.5, 0), lambda: A.MAX_PREDICTION_ROWS),
    ("/anchor_labelling", lambda t: (None, {"headers": ["class", *BOX_HEADERS[1:]], "data": A.LABEL_GT},
                                     {"headers": ["anchor", *BOX_HEADERS[1:]], "data": t}, 0.5, 0),
     lambda: A.MAX_ANCHOR_ROWS),
])
def test_over_the_limit_through_the_api_is_refused_and_the_server_keeps_serving(client, api, args_of, limit_of):
    from gradio_client.exceptions import AppError

    limit = limit_of()
    make = {"/boxes": box_table, "/nms": prediction_table, "/anchor_labelling": lambda n: labelling_tables(2, n)[1]}[api]
    for n in (limit + 1, 100_000):
        with pytest.raises(AppError) as err:
            client.predict(*args_of(make(1) * n), api_name=api)
        assert f"{n} rows; at most {limit} are allowed" in str(err.value), str(err.value)[:300]
        assert "最多允许" in str(err.value)
    *_, summary = client.predict(None, {"headers": BOX_HEADERS, "data": box_table(1)}, "xyxy", "pixels",
                                 api_name="/boxes")
    assert summary.startswith("**1 box drawn**")
