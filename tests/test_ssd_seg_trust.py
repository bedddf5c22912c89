"""Issue 17, SSD and Segmentation, without a browser: readable labels, explained empty detections,
the FCN's mask views, and the formulas' numbers (each against what the code computes)."""

import math
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch

from panels import figures, ssd
from panels.segmentation import bilinear, segment, transposed
from vision_core.fcn import label2image, predict_fcn
from vision_core.ssd import predict
from vision_core.transposed import bilinear_kernel, trans_conv2d

RED = np.array([198, 40, 40])  # figures.color_for(2), SSD's boxes


def luminance(rgb) -> np.ndarray:
    c = np.asarray(rgb, float) / 255
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return c @ [0.2126, 0.7152, 0.0722]


def contrast(a, b) -> float:
    la, lb = luminance(a), luminance(b)
    return float((max(la, lb) + 0.05) / (min(la, lb) + 0.05))


# --- labels drawn on pictures -----------------------------------------------------------------

@pytest.mark.parametrize("color", [*figures.PALETTE, "white", "#f5d327"])
def test_label_text_is_the_colour_that_contrasts_more(color):
    from PIL import ImageColor

    rgb = ImageColor.getrgb(color)
    text = figures.text_color(color)
    other = "white" if text == "black" else "black"
    assert contrast(ImageColor.getrgb(text), rgb) >= max(contrast(ImageColor.getrgb(other), rgb), 4.5)


def test_a_label_sits_on_a_filled_tab_above_its_box_with_contrasting_text():
    purple = np.zeros((256, 256, 3), np.uint8) + np.array([110, 60, 140], np.uint8)
    drawn = figures.draw_boxes(purple, np.array([[40.0, 100.0, 120.0, 200.0]]), ["#c62828"], labels=["banana 0.99"],
                               min_side=512)  # enlarged 2x: the box's top edge at y = 200
    above = drawn[:200, 80:240]
    rows = above[(above == RED).all(axis=2).sum(axis=1) >= 25]  # rows of a filled tab, above the box
    assert len(rows) >= 12  # text 16 px high on a 512 px picture
    assert (rows == RED).all(axis=2).sum() > 600 and (rows == 255).all(axis=2).sum() > 50  # white text on red
    assert contrast([255, 255, 255], RED) >= 4.5  # the text on its tab (the photo's purple: only 1.2)
    assert not (drawn[205:260, 84:200] == RED).all(axis=2).any()  # nothing drawn over the object


def test_a_box_at_the_top_gets_its_label_inside_and_empty_labels_draw_nothing():
    grey = np.full((200, 300, 3), 128, np.uint8)
    drawn = figures.draw_boxes(grey, np.array([[10.0, 0.0, 200.0, 150.0], [50, 50, 60, 60]]), ["#1f5fbf", "white"],
                               labels=["cell", ""])
    inside = drawn[2:12, 12:30].reshape(-1, 3)
    assert ((inside == [31, 95, 191]).all(axis=1)).mean() > 0.3  # the tab, inside the box
    outside = drawn[52:58, 52:58]
    assert (outside == 128).all()  # the unlabelled box's inside is left as it was


def test_ssd_preview_scores_are_on_a_filled_tab():
    from vision_core.ssd import draw_detections

    image = torch.full((3, 64, 64), 200, dtype=torch.uint8)  # light: white text on it would vanish
    out = draw_detections(image, torch.tensor([[0.0, 0.95, 10, 12, 60, 60]]))
    label = out[16:26, 12:35].reshape(-1, 3)
    assert (label == 255).all(axis=1).mean() > 0.4 and (label < 60).all(axis=1).sum() >= 5  # black on a white tab


# --- SSD Detect: the summary explains itself ---------------------------------------------------------

@pytest.fixture(scope="module")
def net():
    shipped, _ = ssd.sessions.shipped()
    assert shipped is not None
    return shipped


@pytest.fixture(scope="module")
def bananas():
    return ssd._example_images()


def test_the_formula_is_the_first_detection(net, bananas):
    for rgb in bananas.values():
        rows = predict(net, torch.from_numpy(rgb).permute(2, 0, 1), 0.0)[0]  # the top row, whatever its score
        best = ssd.best_anchor(net, rgb)
        x, y, w, h = best["box"].tolist()
        torch.testing.assert_close(torch.tensor([x - w / 2, y - h / 2, x + w / 2, y + h / 2]), rows[0, 2:],
                                   rtol=0, atol=1e-3)
        assert best["prob"] == pytest.approx(float(rows[0, 1]), abs=1e-5)
        text = ssd.detection_formula(best, True)
        # each line's arithmetic, as printed, gives its printed result
        for a, o, wa, got in re.findall(r"= ([-\d.]+) \+ 0\.1 \\cdot \(([-\d.]+)\) \\cdot ([-\d.]+) = ([-\d.]+)", text):
            assert float(a) + 0.1 * float(o) * float(wa) == pytest.approx(float(got), abs=0.1)
        for wa, o, got in re.findall(r"= ([-\d.]+) \\cdot e\^\{0\.2 \\cdot \(([-\d.]+)\)\} = ([-\d.]+)", text):
            assert float(wa) * np.exp(0.2 * float(o)) == pytest.approx(float(got), abs=0.1)
        assert text.count("\\\\") == 7 and "the table's first row" in text  # 8 rows: a phone's width


def test_an_empty_list_says_why(net, bananas, monkeypatch):
    # The calls below have no session ("api"): a network an earlier test trained for it must not answer.
    monkeypatch.setattr(ssd.sessions, "_trained", OrderedDict())
    rgb = next(iter(bananas.values()))
    above = ssd.detect(rgb, 1.0)[2]
    best = ssd.best_anchor(net, rgb)["prob"]
    assert 0.5 < best < 1.0  # a banana the network finds, but not with certainty 1
    shown = re.search(r"the best score is (0\.\d\d+), below the threshold 1: lower the threshold to (0\.\d\d) or less",
                      above)
    assert shown, above
    assert float(shown[1]) < 1 and float(shown[1]) == pytest.approx(best, abs=0.5 * 10 ** -(len(shown[1]) - 2))
    assert float(shown[2]) == math.floor(best * 100) / 100 and "**0 detections** with score ≥ 1" in above
    grey = ssd.detect(np.full((256, 256, 3), 128, np.uint8), 0.0)[2]
    assert "with score ≥ 0 — no anchor reaches a banana probability of 0.01" in grey
    assert "the table's first row" not in grey
    assert "best score" not in ssd.detect(rgb, 0.9)[2]  # nothing to explain when there are detections


def test_a_score_just_under_the_threshold_never_reads_as_the_threshold():
    assert ssd._below(0.93, 1.0) == "0.93"
    assert ssd._below(0.996, 1.0) == "0.996"
    assert ssd._below(0.99996, 1.0) == "0.99996"
    assert ssd._below(0.8951, 0.9) == "0.895" and ssd._below(0.8949, 0.895) == "0.89"


def test_an_empty_list_shows_the_best_candidate_faded(net, bananas, monkeypatch):
    monkeypatch.setattr(ssd.sessions, "_trained", OrderedDict())
    rgb = next(iter(bananas.values()))
    picture, table, summary = ssd.detect(rgb, 1.0)
    assert len(table) == 0 and "The faded dashed box on the picture is that best candidate" in summary
    best = ssd.best_anchor(net, rgb)
    x, y, w, h = best["box"].tolist()
    expected = figures.draw_boxes(rgb, np.array([[x - w / 2, y - h / 2, x + w / 2, y + h / 2]]), [figures.color_for(2)],
                                  width=2, labels=[f"best {best['prob']:.2f} < 1"], min_side=512, dashed=[True],
                                  opacity=ssd.CANDIDATE_OPACITY)
    assert np.array_equal(picture, expected)
    photo = figures.draw_boxes(rgb, np.zeros((0, 4)), [], min_side=512)  # the same enlargement, nothing drawn
    drawn = (picture != photo).any(axis=2)
    rows, cols = np.nonzero(drawn)
    scale = picture.shape[1] / rgb.shape[1]
    assert cols.min() == pytest.approx((x - w / 2) * scale, abs=scale + 1)  # the box's left edge
    assert rows.max() == pytest.approx((y + h / 2) * scale, abs=scale + 1)  # its bottom edge
    # faded: no drawn pixel carries the box's colour at full strength
    red = np.array([198, 40, 40])
    assert (np.abs(picture[drawn].astype(int) - red).max(axis=1) <= 8).sum() < 0.02 * drawn.sum()
    # a picture without bananas still shows the best (background) anchor, with its tiny probability
    grey_picture, _, grey = ssd.detect(np.full((256, 256, 3), 128, np.uint8), 0.0)
    assert (grey_picture != 128).any() and "faded dashed box" in grey


def test_the_architecture_formula_counts_the_tables_anchors():
    table = ssd.architecture()
    total = int(table["anchors"].iloc[-1])
    for stage in range(1, 6):
        text = ssd.architecture_formula(table, stage)
        assert f"= {total}\\end{{aligned}}$$" in text
        assert f"= {int(table['anchors'].iloc[stage - 1])}$$" in text


# --- Segmentation ---------------------------------------------------------------------------------

def test_views_of_a_segmentation():
    x = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    pred = torch.zeros(64, 96, dtype=torch.long)
    pred[10:30, 20:50] = 5
    assert np.array_equal(segment.view_picture(x, pred, "mask"), label2image(pred).numpy())
    side = segment.view_picture(x, pred, "side")
    assert side.shape == (64, 96 * 2 + 4, 3)
    assert np.array_equal(side[:, :96], x.permute(1, 2, 0).numpy()) and (side[:, 96:100] == 255).all()
    overlay = segment.view_picture(x, pred, "overlay")
    assert np.array_equal(overlay[0, 0], x[:, 0, 0].numpy())  # background: the photo itself


@pytest.mark.parametrize("h, w", [(320, 480), (100, 70)])
def test_fcn_formula_sizes_are_the_networks(h, w):
    from vision_core.models.fcn import FCN

    net = FCN(21).eval()
    text = segment.fcn_formula(net, h, w)
    with torch.no_grad():
        trunk = net[:8](torch.zeros(1, 3, -(-h // 32) * 32, -(-w // 32) * 32))
        scores = net(torch.zeros(1, 3, -(-h // 32) * 32, -(-w // 32) * 32))
    n_h, n_w = trunk.shape[-2:]
    assert f"512 \\times {n_h} \\times {n_w}" in text and f"21 \\times {n_h} \\times {n_w}" in text
    assert f"21 \\times {scores.shape[-2]} \\times {scores.shape[-1]}" in text
    assert f"({n_h} - 1) \\cdot 32 - 2 \\cdot 16 + 64 = {scores.shape[-2]}" in text
    assert ("padded to" in text) == ((h, w) != (320, 480))
    assert predict_fcn(net, torch.zeros(3, h, w, dtype=torch.uint8)).shape == (h, w)


@pytest.mark.parametrize("s, p", [(1, 0), (2, 0), (2, 1), (3, 2)])
def test_transposed_formulas_give_the_output_size(s, p):
    X, K = torch.arange(6.0).reshape(2, 3), torch.ones(3, 2)
    Y = trans_conv2d(X[None, None], K[None, None], s, p)[0, 0]
    sizes = [int(v) for v in re.findall(r"\\mathbf\{(-?\d+)\}", transposed._formula(X, K, s, p))]
    assert sizes == list(Y.shape)
    assert [int(v) for v in re.findall(r"\\mathbf\{(-?\d+)\}", transposed._zero_insertion_formula(X, K, s, p))] == sizes


@pytest.mark.parametrize("k", [2, 3, 4, 7, 16])
def test_bilinear_formula_works_out_a_kernel_weight(k):
    text = bilinear.render_bilinear_kernel(k)[1]
    weight = float(re.search(r"W_\{0\d\} = .* = ([\d.e-]+)\$\$$", text).group(1))
    assert weight == pytest.approx(float(bilinear_kernel(1, 1, k, dtype=torch.float64)[0, 0, 0, min(1, k - 1)]),
                                   rel=1e-3)
    assert f"\\right\\rfloor = {(k + 1) // 2}$$" in text


def test_labels_of_boxes_sharing_a_corner_do_not_cover_each_other():
    # SSD's Architecture view: four anchors around one centre; each label must stay readable.
    grey = np.full((256, 256, 3), 128, np.uint8)
    boxes = np.array([[100.0, 100.0, 150.0, 150.0], [100.0, 100.0, 160.0, 140.0]])
    drawn = figures.draw_boxes(grey, boxes, ["#c62828", "#1f5fbf"], labels=["s=0.2, r=1", "s=0.2, r=2"])
    rows_of = {name: np.nonzero((drawn[:130, 100:130] == rgb).all(axis=2).sum(axis=1) >= 10)[0]  # tab rows
               for name, rgb in (("red", RED), ("blue", [31, 95, 191]))}
    assert len(rows_of["red"]) >= 8 and len(rows_of["blue"]) >= 8  # both tabs are there, whole
    assert rows_of["red"].max() < rows_of["blue"].min()  # the second below the first, not over it


# --- Segmentation: how sure the FCN is, and pictures outside what it learned (issue 18, item 3) ----

def test_confidence_is_the_softmax_probability_of_the_predicted_class():
    from vision_core.fcn import predict_fcn_confidence
    from vision_core.models.fcn import FCN

    torch.manual_seed(0)
    net = FCN(21).eval()
    x = torch.randint(0, 256, (2, 3, 64, 80), dtype=torch.uint8)
    classes, confidence = predict_fcn_confidence(net, x)
    assert torch.equal(classes, predict_fcn(net, x))
    assert confidence.shape == (2, 64, 80) and confidence.dtype == torch.float32
    # By hand: the scores of the picture padded to 64 x 96 (multiples of 32), cropped, softmaxed.
    from vision_core._runtime import imagenet_normalize

    with torch.no_grad():
        scores = net(torch.nn.functional.pad(imagenet_normalize(x.float()), (0, 16, 0, 0)))[..., :64, :80]
    expected = scores.softmax(dim=1).max(dim=1).values
    torch.testing.assert_close(confidence, expected, rtol=1e-5, atol=1e-6)  # float32
    assert float(confidence.min()) >= 1 / 21 - 1e-6 and float(confidence.max()) <= 1 + 1e-6
    single_classes, single = predict_fcn_confidence(net, x[0])
    assert torch.equal(single_classes, classes[0]) and torch.allclose(single, confidence[0])


def test_the_confidence_picture_runs_from_dark_unsure_to_bright_sure():
    confidence = torch.linspace(1 / 21, 1.0, 101)[None].repeat(4, 1)  # [4, 101]
    picture = segment.confidence_picture(confidence, 21)
    assert picture.shape == (4, 101, 3) and picture.dtype == np.uint8
    assert np.array_equal(picture[0, 0], segment.CONFIDENCE_STOPS[0]) and np.array_equal(picture[0, -1], segment.CONFIDENCE_STOPS[-1])
    luma = picture[0].astype(float) @ np.array([0.299, 0.587, 0.114])
    assert (np.diff(luma) >= -1e-9).all() and luma[-1] - luma[0] > 150  # brighter as it gets surer
    x = torch.zeros(3, 4, 101, dtype=torch.uint8)
    assert np.array_equal(segment.view_picture(x, torch.zeros(4, 101, dtype=torch.long), "confidence", confidence), picture)


def test_a_picture_outside_the_synthetic_set_gets_a_notice_and_the_way_to_the_reference():
    from skimage import data

    examples = segment.example_images(1)
    name = next(iter(examples))
    _, legend, _, inside = segment.segment(examples[name][0], "fcn", None, examples=examples, view="confidence")
    assert "Outside what this FCN learned" not in inside and "Far from what this FCN knows" not in inside
    assert re.search(r"Confidence \(softmax probability of each pixel's class\): mean \*\*(0\.9\d|1\.00)\*\*", inside)
    assert "seg-fcn-confidence-bar" in legend
    _, legend, _, photo = segment.segment(data.coffee(), "fcn", None, examples=examples)
    assert photo.startswith("> **Far from what this FCN knows.** It was trained only on the offline synthetic set")
    assert "FCN-ResNet-50" in photo and "seg-fcn-confidence-bar" not in legend
    unsure = float(re.search(r"\*\*(\d+) %\*\* of the pixels below 0.9", photo).group(1))
    assert unsure > 100 * segment.FAR_SHARE
    assert segment.outside_notice(0.05).startswith("> **Outside what this FCN learned.**")


def test_a_network_trained_on_voc_gets_no_synthetic_notice(monkeypatch):
    from skimage import data
    from vision_core.models.fcn import FCN

    net = FCN(21).eval()
    net.training_data = "voc2012"
    monkeypatch.setattr(segment.sessions, "active", lambda request: (net, "mine — trained here on VOC 2012"))
    _, _, _, summary = segment.segment(data.coffee(), "fcn", None, examples={})
    assert "this FCN" not in summary and "Confidence (softmax probability" in summary
