"""Hostile input for every endpoint: each gets a clear message (checked by its text), and a good
request right after it succeeds (the server keeps serving)."""

import re

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

pytestmark = pytest.mark.app

BOXES = {"headers": ["label", "x1", "y1", "x2", "y2"], "data": [["a", 1, 2, 30, 40]]}
GT = {"headers": ["class", "x1", "y1", "x2", "y2"], "data": [["astronaut", 20, 14, 366, 512]]}
ANCHORS = {"headers": ["anchor", "x1", "y1", "x2", "y2"], "data": [["a0", 0, 51, 102, 154]]}
PREDS = {"headers": ["x1", "y1", "x2", "y2", "p(astronaut)", "p(shuttle)"], "data": [[20, 14, 366, 512, 0.9, 0.1]]}
X2 = {"headers": ["col 0", "col 1"], "data": [[0, 1], [2, 3]]}


def table(data, headers):
    return {"headers": headers, "data": data}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_files")
    paths = {}
    rng = np.random.default_rng(0)

    def save(name, image, **kwargs):
        image.save(d / name, **kwargs)
        paths[name] = str(d / name)

    save("good.png", Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)))
    save("gray.png", Image.new("L", (96, 64), 100))
    save("rgba.png", Image.new("RGBA", (96, 64), (1, 2, 3, 100)))
    save("16bit.png", Image.fromarray((rng.random((64, 96)) * 65535).astype(np.uint16)))
    save("cmyk.jpg", Image.new("CMYK", (96, 64), (10, 200, 30, 0)))
    frames = [Image.new("RGB", (96, 64), c) for c in ("red", "green")]
    save("anim.gif", frames[0], save_all=True, append_images=frames[1:], duration=100, loop=0)
    save("1x1.png", Image.new("RGB", (1, 1)))
    save("huge.png", Image.new("1", (20000, 20000), 0), optimize=True)  # 400 megapixels, 50 KB on disk
    save("bomb.png", Image.new("1", (40000, 40000), 0), optimize=True)  # a decompression bomb
    data = (d / "good.png").read_bytes()
    (d / "trunc.png").write_bytes(data[:len(data) // 2])
    paths["trunc.png"] = str(d / "trunc.png")
    (d / "text.png").write_bytes(b"this is not an image")
    paths["text.png"] = str(d / "text.png")
    return paths


def _defaults(client, name):
    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"][name]
    return [(p["parameter_name"], p.get("parameter_default")) for p in endpoint["parameters"]]


def _args(client, name, files, overrides):
    args = []
    for key, value in _defaults(client, name):
        value = overrides.get(key, value)
        if isinstance(value, str) and value in files:
            value = handle_file(files[value])
        elif isinstance(value, dict) and value.get("meta", {}).get("_type") == "gradio.FileData":
            value = handle_file(value["path"])  # the page's own example photo, on this machine
        args.append(value)
    return args


NOT_A_CHOICE = r"Value: '?{}'?( \(type: <class '\w+'>\))? is not in the list of choices"
PROBS = r"predictions row 1: two probabilities in \[0, 1\] summing to at most 1"
IMAGE_MESSAGES = {
    "text.png": r"could not be read as an image \(it may be truncated, or not an image\)",
    "trunc.png": r"could not be read as an image .*truncated",
    "huge.png": r"over the limit of 40 megapixels",
    "bomb.png": r"over the limit of 40 megapixels \(or a decompression bomb\)",
    "1x1.png": r"1 x 1 px is too small; each side must be at least 2 px",
}
IMAGE_ENDPOINTS = {"/boxes": "image", "/anchor_boxes": "image", "/regions": "image", "/ssd_detect": "image",
                   "/fcn_segment": "image", "/bilinear": "image", "/style_transfer": "content"}

CASES = [
    # (endpoint, overrides, message regex)
    *[(name, {param: bad}, message) for name, param in IMAGE_ENDPOINTS.items() for bad, message in IMAGE_MESSAGES.items()
      if not (bad == "1x1.png" and name in ("/boxes", "/fcn_segment", "/bilinear"))],
    ("/boxes_example", {"name": "nope"}, NOT_A_CHOICE.format("nope")),
    ("/boxes", {"fmt": "yxyx"}, NOT_A_CHOICE.format("yxyx")),
    ("/boxes", {"units": "inches"}, NOT_A_CHOICE.format("inches")),
    ("/boxes_convert", {"old_fmt": "abc"}, NOT_A_CHOICE.format("abc")),
    ("/anchor_boxes", {"sizes_text": "abc"}, r"'abc' is not a number"),
    ("/anchor_boxes", {"sizes_text": ""}, r"give at least one number"),
    ("/anchor_boxes", {"sizes_text": "2"}, r"each value must be in \(0, 1\], got 2"),
    ("/anchor_boxes", {"ratios_text": "-1"}, r"each value must be in"),
    ("/anchor_boxes", {"sizes_text": "nan"}, r"each value must be in"),
    ("/anchor_boxes", {"fmap_h": 0}, r"Value 0 is less than minimum value 1"),
    ("/anchor_boxes", {"fmap_w": 10**6}, r"Value 1000000 is greater than maximum value"),
    ("/anchor_labelling", {"gt_table": table([], ["class", "x1", "y1", "x2", "y2"])}, r"ground truth: give at least one box"),
    ("/anchor_labelling", {"gt_table": table([["a", 30, 40, 1, 2]], GT["headers"])}, r"x2 < x1: the box is inverted"),
    ("/anchor_labelling", {"gt_table": table([["a", 5, 5, 5, 5]], GT["headers"])}, r"zero width \(x2 = x1\); zero height"),
    ("/anchor_labelling", {"anchor_table": table([["a0", "x", 1, 2, 3]], ANCHORS["headers"])}, r"anchors row 1: x1 is not a number \('x'\)"),
    ("/anchor_labelling", {"threshold": 1.5}, r"Value 1.5 is greater than maximum value 1"),
    ("/anchor_labelling", {"step": -1}, r"Value -1 is less than minimum value 0"),
    ("/nms", {"pred_table": table([[20, 14, 366, 512, 1.5, 0.1]], PREDS["headers"])}, PROBS),
    ("/nms", {"pred_table": table([[20, 14, 366, 512, -0.5, 0.1]], PREDS["headers"])}, PROBS),
    ("/nms", {"pred_table": table([[20, 14, 366, 512, "nan", 0.1]], PREDS["headers"])}, PROBS),
    ("/nms", {"pred_table": table([], PREDS["headers"])}, r"predictions: give at least one box"),
    ("/nms", {"threshold": 2}, r"Value 2 is greater than maximum value 1"),
    ("/regions", {"top_k": 0}, r"Value 0 is less than minimum value"),
    ("/regions", {"mode": "slow"}, NOT_A_CHOICE.format("slow")),
    ("/regions", {"out_h": 0}, r"Value 0 is less than minimum value"),
    ("/regions", {"stride": 7}, NOT_A_CHOICE.format("7")),
    ("/ssd_detect", {"threshold": 1.5}, r"Value 1.5 is greater than maximum value 1"),
    ("/ssd_anchors", {"stage": 9}, r"Value 9 is greater than maximum value 5"),
    ("/ssd_train", {"epochs": 0}, r"Value 0 is less than minimum value 1"),
    ("/ssd_train", {"epochs": 10**6}, r"Value 1000000 is greater than maximum value 100"),
    ("/ssd_train", {"num_train": 5}, r"Value 5 is less than minimum value 10"),
    ("/ssd_train", {"optimizer": "rmsprop"}, NOT_A_CHOICE.format("rmsprop")),
    ("/ssd_train", {"batch_size": 0}, r"Value 0 is less than minimum value 1"),
    ("/fcn_segment", {"model": "unet"}, NOT_A_CHOICE.format("unet")),
    ("/fcn_train", {"epochs": 0}, r"Value 0 is less than minimum value 1"),
    ("/fcn_train", {"crop": "999x999"}, NOT_A_CHOICE.format("999x999")),
    ("/fcn_train", {"batch_size": 10**6}, r"Value 1000000 is greater than maximum value"),
    ("/trans_conv", {"X_cells": table([[0, "abc"], [2, 3]], X2["headers"])}, r"X row 1, column 2: 'abc' is not a number"),
    ("/trans_conv", {"K_cells": table([], [])}, r"K is empty: give at least one row and one column of numbers"),
    ("/trans_conv", {"stride": 0}, r"Value 0 is less than minimum value 1"),
    ("/trans_conv", {"padding": -1}, r"Value -1 is less than minimum value 0"),
    ("/trans_conv", {"X_cells": table([["1e400", 1], [2, 3]], X2["headers"])}, r"X row 1, column 1 is inf: give a finite number"),
    ("/trans_conv_step", {"step": 999}, r"Value 999 is greater than maximum value 4"),
    ("/bilinear", {"scale": 0}, r"Value 0 is less than minimum value 2"),
    ("/bilinear_kernel", {"kernel_size": 0}, r"Value 0 is less than minimum value"),
    ("/style_transfer", {"style": "text.png"}, IMAGE_MESSAGES["text.png"]),
    ("/style_transfer", {"steps": 0}, r"Value 0 is less than minimum value 1"),
    ("/style_transfer", {"steps": 10**9}, r"Value 1000000000 is greater than maximum value 2000"),
    ("/style_transfer", {"height": 5000}, r"Value 5000 is greater than maximum value 768"),
    ("/style_transfer", {"layer_1": 0, "layer_2": 0, "layer_3": 0, "layer_4": 0, "layer_5": 0},
     r"at least one style layer weight must be above 0"),
    ("/style_transfer", {"lr": 0}, r"Value 0 is less than minimum value 0.005"),
    ("/style_transfer", {"network_name": "resnet"}, NOT_A_CHOICE.format("resnet")),
    ("/style_preset", {"name": "resnet"}, NOT_A_CHOICE.format("resnet")),
    # Wrong types: each input names itself and what it expects.
    ("/style_transfer", {"steps": "many"}, r"Steps \(the book: 500\): expected a number, got 'many'"),
    ("/trans_conv", {"stride": "two"}, r"Stride s: expected a number, got 'two'"),
    ("/ssd_detect", {"threshold": None}, r"Score threshold \(the book: 0.9\): expected a number, got 'None'"),
    ("/boxes", {"table": "not a table"}, r"Boxes \(editable\): expected a table \(headers and rows of cells\)"),
    ("/nms", {"threshold": [1, 2]}, r"NMS IoU threshold \(the book: 0.5\): expected a number, got '\[1, 2\]'"),
]
GOOD = {  # a cheap good request per endpoint, run right after its bad one
    "/ssd_train": {"epochs": 1, "num_train": 10, "batch_size": 10, "optimizer": "adamw", "lr": 0.001},
    "/fcn_train": {"epochs": 1, "num_train": 8, "batch_size": 4, "crop": "64x96", "optimizer": "adamw"},
    "/style_transfer": {"steps": 2, "height": 32},
}
STREAMING = {"/ssd_train", "/fcn_train", "/style_transfer"}
# A training run takes seconds even when small (the epoch ends with a pass over the validation
# set), so each training endpoint trains once after its first bad input in this module; after the
# others, its session must still be idle (nothing left running) and the server answering.
TRAINING_STOP = {"/ssd_train": "/ssd_stop", "/fcn_train": "/fcn_stop"}
_trained_after_a_bad_input: set[str] = set()


@pytest.fixture(scope="module")
def session(app_url):
    return Client(app_url, verbose=False)  # a session of its own (its trained networks stay here)


def test_there_are_at_least_60_cases_over_every_input_endpoint():
    assert len(CASES) >= 60
    assert {c[0] for c in CASES} >= set(IMAGE_ENDPOINTS) | {"/nms", "/trans_conv", "/fcn_train", "/ssd_train"}


@pytest.mark.parametrize("name, overrides, message", CASES, ids=[f"{c[0]}-{'-'.join(map(str, c[1]))}" for c in CASES])
def test_bad_input_gets_a_clear_message_then_a_good_request_works(session, files, name, overrides, message):
    from gradio_client.exceptions import AppError

    with pytest.raises((AppError, ValueError)) as err:
        session.predict(*_args(session, name, files, overrides), api_name=name)
    assert re.search(message, str(err.value), re.S), str(err.value)[:400]
    assert "upstream Gradio app has raised an exception" not in str(err.value)
    good = _args(session, name, files, GOOD.get(name, {}))
    if name in TRAINING_STOP and name in _trained_after_a_bad_input:
        assert session.predict(api_name=TRAINING_STOP[name]) == "Nothing is training in this session."
    elif name in STREAMING:
        frames = list(session.submit(*good, api_name=name))
        assert frames and any("**Done.**" in str(output) for output in frames[-1]), frames[-1:]
        _trained_after_a_bad_input.add(name)
    else:
        assert session.predict(*good, api_name=name) is not None


@pytest.mark.parametrize("name, overrides", [("/anchor_labelling", {"threshold": 1.0}), ("/ssd_detect", {"threshold": 0.0}),
                                             ("/anchor_boxes", {"fmap_h": 1, "fmap_w": 1, "cell_row": 0, "cell_col": 0}),
                                             ("/trans_conv", {"stride": 3, "padding": 0})])
def test_sliders_at_their_ends_work(session, files, name, overrides):
    assert session.predict(*_args(session, name, files, overrides), api_name=name) is not None


@pytest.mark.parametrize("name", ["gray.png", "rgba.png", "16bit.png", "cmyk.jpg", "anim.gif"])
def test_unusual_but_valid_images_are_accepted(session, files, name):
    *_, summary = session.predict(*_args(session, "/boxes", files, {"image": name}), api_name="/boxes")
    assert "image 96 × 64 px" in summary
