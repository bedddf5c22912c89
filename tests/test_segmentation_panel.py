"""The Segmentation panel through its API (gradio_client), on a small app holding only this panel.

The FCN parts run on a tiny synthetic set (8 train / 4 val images of 128 x 192 px) generated
into a temporary $VISION_LAB_DATA, and with no shipped checkpoint, whatever the registry holds.
"""

import re
from collections import OrderedDict

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from panels import segmentation as S
from panels.segmentation import models, segment, training, transposed
from tests.conftest import HANG_GUARD_S, counting_steps, serving

pytestmark = pytest.mark.app
HANG_GUARD = HANG_GUARD_S  # the suite's one hang guard (tests/conftest.py): a limit for a hang, never a measurement

BOOK_Y = [[0, 0, 1], [0, 4, 6], [4, 12, 9]]  # d2l 14.10.1: trans_conv(X, K)
TINY_SET = {"num_train": 8, "num_val": 4, "height": 128, "width": 192}


def table(rows):
    return {"headers": [str(j) for j in range(len(rows[0]) if rows else 0)], "data": rows}


X, K = table(transposed.BOOK_X), table(transposed.BOOK_K)


@pytest.fixture(scope="module")
def seg_url(tmp_path_factory):
    """A Blocks app with just this panel, launched in-process; the FCN data and registry made small."""
    mp = pytest.MonkeyPatch()
    mp.setenv("VISION_LAB_DATA", str(tmp_path_factory.mktemp("vision_lab_data")))
    for key, value in TINY_SET.items():  # in place: the Segment section's examples read it too
        mp.setitem(training.SYNTHETIC, key, value)
    mp.setattr(models.sessions, "_shipped", (None, f"the shipped checkpoint `{models.FCN_WEIGHTS}` is not available "
                                                   "(test)"))
    mp.setattr(models.sessions, "_trained", OrderedDict())
    mp.setattr(transposed, "PLAY_DELAY", 0.05)
    with serving(S.build) as url:
        yield url
    mp.undo()


@pytest.fixture(scope="module")
def seg(seg_url):
    from gradio_client import Client

    return Client(seg_url, verbose=False)


def fresh(seg_url):
    """Another browser session: its own Stop flag and trained network."""
    from gradio_client import Client

    return Client(seg_url, verbose=False)


# --- transposed convolution ----------------------------------------------------------------------

def test_trans_conv_gives_the_books_output_and_the_formula(seg):
    out, formula, fig, conv_fig, conv_text = seg.predict(X, K, 1, 0, api_name="/trans_conv")
    assert out["data"] == BOOK_Y
    assert "n_h' &= (n_h - 1)\\,s_h - 2p_h + k_h" in formula  # typeset (KaTeX), the numbers filled in
    assert "(2 - 1) \\cdot 1 - 2 \\cdot 0 + 2 = \\mathbf{3}" in formula and "Y is **3 × 3**" in formula
    assert "It equals the transposed convolution: max |difference| = 0" in conv_text


def test_stride_and_padding_shape_matches_the_formula(seg):
    out, formula, *_ = seg.predict(X, K, 2, 1, api_name="/trans_conv")
    # the book's stride-2 output [[0,0,0,1],[0,0,2,3],[0,2,0,3],[4,6,6,9]] without its outer ring
    assert out["data"] == [[0, 2], [2, 0]]
    sizes = [int(v) for v in re.findall(r"\\mathbf\{(\d+)\}", formula)]
    assert sizes == [2 * 2 + 2 - 2 * 1 - 2] * 2 == [len(out["data"]), len(out["data"][0])]


def test_play_streams_one_frame_per_input_cell(seg):
    frames = list(seg.submit(X, K, 1, 0, api_name="/trans_conv_play"))
    assert len(frames) == 4
    assert [f[2].split(".**")[0] for f in frames] == [f"**Step {k} of 4" for k in range(1, 5)]
    assert frames[-1][1]["data"] == BOOK_Y  # the last running sum is the output
    assert frames[0][1]["data"] == [[0, 0, 0], [0, 0, 0], [0, 0, 0]]  # X[0, 0] = 0 adds nothing
    assert "X[0, 1] = 1" in frames[1][2]


def test_step_endpoint_with_padding_shows_the_crop(seg):
    fig, running, summary, step = seg.predict(X, K, 2, 1, 4, api_name="/trans_conv_step")
    assert running["data"] == [[0, 2], [2, 0]] and step["value"] == 4 and step["maximum"] == 4
    assert "Padding 1 crops" in summary


@pytest.mark.parametrize("x, k, stride, padding, message", [
    (table([["a", 1], [2, 3]]), K, 1, 0, r"X row 1, column 1: 'a' is not a number"),
    (table([[0, ""], [2, 3]]), K, 1, 0, r"X row 1, column 2 is empty"),
    (X, table([[0, 1], [2, None]]), 1, 0, r"K row 2, column 2 is empty"),
    (table([[1] * 9] * 9), K, 1, 0, r"X is 9 × 9; at most 8 × 8"),
    (table([[1]]), table([[1]]), 1, 2, r"padding must be .*output height .* = -3"),  # trans_conv2d's own check
    (table([]), K, 1, 0, r"X is empty"),
    (table([[1e9, 1]]), K, 1, 0, r"values must be within"),
])
def test_bad_matrices_get_a_message_and_the_server_keeps_serving(seg, x, k, stride, padding, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        seg.predict(x, k, stride, padding, api_name="/trans_conv")
    with pytest.raises(AppError, match=message):
        seg.predict(x, k, stride, padding, api_name="/trans_conv_play")
    assert seg.predict(X, K, 1, 0, api_name="/trans_conv")[0]["data"] == BOOK_Y


# --- bilinear upsampling ---------------------------------------------------------------------------

def test_bilinear_doubles_the_image(seg, tmp_path):
    path = tmp_path / "small.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path)
    out, view, summary = seg.predict(handle_file(str(path)), 2, api_name="/bilinear")
    assert Image.open(out).size == (80, 60)
    assert "input 40 × 30 px → output 80 × 60 px" in summary
    assert 'width="80" height="60"' in view


def test_bilinear_kernel_matches_the_book(seg):
    fig, text = seg.predict(4, api_name="/bilinear_kernel")
    assert "factor = (k + 1) // 2 = **2**" in text and "[0.25, 0.75, 0.75, 0.25]" in text


# --- FCN ---------------------------------------------------------------------------------------------

def example_file(tmp_path):
    name, (photo, _) = next(iter(segment.example_images(1).items()))
    path = tmp_path / "example.png"
    Image.fromarray(photo).save(path)
    return path


def test_segment_without_a_trained_fcn_says_how_to_get_one(seg_url, tmp_path):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"No trained FCN yet: .*Train FCN"):
        fresh(seg_url).predict(handle_file(str(example_file(tmp_path))), "fcn", api_name="/fcn_segment")


def test_stop_when_idle(seg_url):
    assert fresh(seg_url).predict(api_name="/fcn_stop") == "Nothing is training in this session."


def test_train_streams_then_segment_uses_the_session_network(seg, tmp_path):
    frames = list(seg.submit(1, 4, 0.001, 8, "sgd", "64x96", api_name="/fcn_train"))
    assert len(frames) >= 3
    curves, preview, status = frames[-1]
    assert status.startswith("**Done.**") and "Epoch 1/1" in status and "test mIoU" in status
    assert "Segment now uses this network" in status
    assert Image.open(preview).size == (3 * 96 * 3, 64 * 3)  # photo · predicted · true, enlarged 3x
    assert "test mIoU" in curves["plot"]
    assert seg.predict(api_name="/fcn_stop") == "Nothing is training in this session."

    overlay, legend, shares, summary = seg.predict(handle_file(str(example_file(tmp_path))), "fcn",
                                                   api_name="/fcn_segment")
    assert Image.open(overlay).size == (TINY_SET["width"], TINY_SET["height"])
    assert "model: mine — your network, trained here: 1 epoch on 8 images, crops 64 × 96" in summary
    assert re.search(r"Against the ground truth of synthetic validation #0: pixel accuracy \*\*[01]\.\d{3}\*\*", summary)
    rows = shares["data"]
    assert rows and abs(sum(r[4] for r in rows) - 100) < 0.1
    assert all(r[0] == segment.VOC_CLASSES[r[1]] and r[0] in legend for r in rows)


def test_the_weights_switch_picks_shipped_or_mine(seg_url, tmp_path):
    # Issue 17, item 5: a training moves the session to "mine"; "shipped" is one click back (here
    # the test app ships none, so Segment says so), and "mine" again needs no new training.
    from gradio_client.exceptions import AppError

    client, picture = fresh(seg_url), handle_file(str(example_file(tmp_path)))
    switch, *_ = client.predict("mine", None, "fcn", "overlay", api_name="/fcn_weights")
    # Nothing trained in this session: "mine" cannot be picked, and the switch stays inactive.
    assert switch["value"] == "shipped" and not switch["interactive"]
    status = list(client.submit(1, 4, 0.001, 8, "sgd", "64x96", api_name="/fcn_train"))[-1][2]
    assert "Segment now uses this network (weights: “mine”)" in status
    assert "model: mine — your network" in client.predict(picture, "fcn", api_name="/fcn_segment")[3]
    with pytest.raises(AppError, match=r"No trained FCN yet: the shipped checkpoint"):
        client.predict("shipped", picture, "fcn", "overlay", api_name="/fcn_weights")
    switch, *_, summary = client.predict("mine", picture, "fcn", "overlay", api_name="/fcn_weights")
    assert switch["value"] == "mine" and switch["interactive"]
    assert "model: mine — your network, trained here: 1 epoch" in summary


def test_stop_ends_training(seg_url):
    # Counted in batches, not seconds: no more than one batch may begin after Stop (the one
    # whose check had just passed), however busy the machine.
    from vision_core import fcn

    client = fresh(seg_url)
    with counting_steps(fcn._FCNEpochs, "train_batch", models.sessions.stops) as batches:
        job = client.submit(training.MAX_EPOCHS, 2, 0.001, 8, "sgd", "64x96", api_name="/fcn_train")
        assert batches.first_done.wait(HANG_GUARD), "training never started"
        assert client.predict(api_name="/fcn_stop") == "Stopping after the current batch…"
        status = job.result(timeout=HANG_GUARD)[2]
    assert status.startswith("**Stopped.**")
    assert batches.after_stop <= 1, f"{batches.after_stop} batches began after Stop"
    total = training.MAX_EPOCHS * 8 // 2
    ran = int(re.search(rf"step (\d+)/{total}", status).group(1))
    assert ran == batches.begun < total  # the status counts the batches that ran, every one of them


def test_train_bad_settings(seg):
    from gradio_client.exceptions import AppError

    # train_fcn's own check: the batch must fit in the training images (the page's slider cannot know)
    with pytest.raises(AppError, match=r"batch_size must be .*at most the 4 training items"):
        seg.predict(1, 8, 0.001, 4, "sgd", "64x96", api_name="/fcn_train")
    with pytest.raises(AppError, match=r"crop 160 × 224 is larger than the synthetic images \(128 × 192\)"):
        seg.predict(1, 4, 0.001, 8, "sgd", "160x224", api_name="/fcn_train")


def test_reference_note_and_sketch(monkeypatch):
    import gradio as gr

    monkeypatch.setattr(models, "reference_path", lambda: None)
    assert "needs a download" in models.reference_note() and "COCO_WITH_VOC_LABELS_V1" in models.reference_note()
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[10:20, 10:30] = (245, 211, 39, 255)
    rgb = segment.sketch_image({"background": None, "layers": [], "composite": rgba})
    assert rgb.shape == (40, 60, 3) and tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[15, 15]) == (245, 211, 39)
    canvas = segment.sketch_canvas()  # nothing drawn yet: the editor sends no composite, only its background
    assert np.array_equal(segment.sketch_image({"background": canvas, "layers": [], "composite": None}), canvas)
    with pytest.raises(gr.Error, match="the sketch is empty"):
        segment.sketch_image({"background": None, "layers": [], "composite": None})

