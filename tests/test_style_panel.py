"""The Style transfer panel through its API (gradio_client), on a small app holding only this panel.

Runs use tiny sizes (48 px high, a few dozen steps) with the real offline network.
"""

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from panels import style as S
from tests.conftest import HANG_GUARD_S, counting_steps, serving

pytestmark = pytest.mark.app
HANG_GUARD = HANG_GUARD_S  # the suite's one hang guard (tests/conftest.py): a limit for a hang, never a measurement

LAYERS = [1.0] * 5


@pytest.fixture(scope="module")
def style_url(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))  # no VGG-19 here, whatever the machine has
    with serving(S.build) as url:
        yield url
    mp.undo()


def client(url):
    """A fresh browser session: its own Stop flag."""
    from gradio_client import Client

    return Client(url, verbose=False)


@pytest.fixture(scope="module")
def app(style_url):
    return client(style_url)


def image_file(tmp_path, array, name="img.png"):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    return handle_file(str(path))


def photo(h=60, w=90, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=-1) * 200
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def args(tmp_path, content=None, style=None, network="efficientnet_lite0", content_w=1.0, style_log=4.0,
         tv_log=1.0, lr=0.1, steps=12, height=48, balance=True, layers=LAYERS):
    content = photo() if content is None else content
    style = photo(seed=1)[:, ::-1].copy() if style is None else style
    return (image_file(tmp_path, content, "content.png"), image_file(tmp_path, style, "style.png"), network,
            content_w, style_log, tv_log, lr, steps, height, balance, *layers)


def test_preset_gives_the_networks_settings(app):
    values = app.predict("efficientnet_lite0", api_name="/style_preset")
    assert list(values[:7]) == [1.0, 4.0, 5.0, 0.1, 300, 192, True]  # TV 1e5: benchmarks/style_grain.py
    assert [v["value"] for v in values[7:]] == LAYERS  # slider updates: value and the layer's name
    assert [v["label"] for v in values[7:]] == [S._layer_label(n) for n in ("stem", "block 0", "block 2", "block 4",
                                                                             "block 10")]  # translated in the page


def test_run_streams_frames_curves_and_a_png(app, tmp_path, monkeypatch, slow_clock):
    import functools
    import itertools

    from panels import streaming

    # No clock of this machine is read: slow_clock makes the run's frames those of steps 1 and 20,
    # and the pace's clock advances 1.9 s each time a frame's status reads it, so the 19 steps
    # timed took 1.9 s whatever this machine's speed.
    ticks = itertools.count(0.0, 1.9)
    monkeypatch.setattr(streaming, "Pace", functools.partial(streaming.Pace, clock=lambda: next(ticks)))
    frames = list(app.submit(*args(tmp_path, steps=20), api_name="/style_transfer"))
    image, curves, status, result = frames[-1]
    assert status.startswith("**Done.** Step 20/20") and "48 × 72" in status
    assert Image.open(image).size == (72, 48)  # width follows the photo's 3:2
    png = Image.open(result)
    assert png.format == "PNG" and png.size == (72, 48) and png.mode == "RGB"
    assert '"style"' in curves["plot"] and '"log"' in curves["plot"]
    assert any("Starting: 20 steps at 48 × 72" in f[2] for f in frames)
    # The pace measured in this run (no time is promised ahead of it); at the end, no time left.
    assert status.endswith(" · 100 ms/step."), status


def test_grayscale_and_rgba_uploads_work(app, tmp_path):
    gray = photo()[..., 0]
    rgba = np.dstack([photo(seed=2), np.full((60, 90), 128, np.uint8)])
    frames = list(app.submit(*args(tmp_path, content=gray, style=rgba, steps=3), api_name="/style_transfer"))
    assert frames[-1][2].startswith("**Done.**")


@pytest.mark.parametrize("change, message", [
    # Sliders out of range: Gradio's own check names the bound.
    (dict(content_w=0), r"Value 0 is less than minimum value 0\.1"),
    (dict(style_log=12), r"Value 12 is greater than maximum value 8"),
    (dict(lr=0), r"Value 0 is less than minimum value 0\.005"),
    (dict(steps=0), r"Value 0 is less than minimum value 1"),
    (dict(steps=10**9), r"Value 1000000000 is greater than maximum value 2000"),
    (dict(height=5000), r"Value 5000 is greater than maximum value 768"),
    (dict(layers=[1.0, -1.0, 1.0, 1.0, 1.0]), r"Value -1\.0 is less than minimum value 0"),
    # The panel's own checks.
    (dict(layers=[0.0] * 5), "at least one style layer weight must be above 0"),
    (dict(network="resnet"), "resnet"),
    (dict(network="vgg19"), (r"VGG-19 \(the book's network\) is not on this machine: its weights, torchvision's "
                             r"vgg19-dcbb9e9d\.pth \(548 MB\), have not been downloaded\. Choose EfficientNet-Lite0")),
    (dict(content=np.zeros((1, 1, 3), np.uint8)), r"content image: 1 x 1 px is too small"),
])
def test_bad_settings_get_a_message_and_the_next_run_works(app, tmp_path, change, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        app.predict(*args(tmp_path, **change), api_name="/style_transfer")
    assert app.predict(*args(tmp_path, steps=2), api_name="/style_transfer")[2].startswith("**Done.**")


@pytest.mark.parametrize("position, value, message", [
    (3, float("nan"), r"content_weight must be .*, got nan"),
    (4, float("inf"), r"style_weight must be .*, got inf"),  # 10 ** style_log10
    (5, float("-inf"), r"tv_weight must be .*, got 0\.0"),  # 10 ** tv_log10
    (6, "fast", r"lr must be .*, got 'fast'"),
    (7, 0, r"steps must be an integer in \[1, 10000\], got 0"),
    (8, 10**6, r"image_shape\[0\] \(height\) must be an integer in .*, got 1000000"),
    (10, -1.0, r"style_layer_weights\[0\] must be .*, got -1\.0"),
    (2, "resnet", r"network must be one of .*vgg19.*efficientnet_lite0.*, got 'resnet'"),
    (9, "yes", r"balance_style_layers must be True or False, got 'yes'"),
])
def test_non_finite_and_wrong_types_get_a_message(position, value, message):
    # JSON cannot carry NaN or inf, so these are called directly, as Gradio would call them; the
    # page's sliders bind every one, so the message is style_transfer's own check, in both languages.
    import gradio as gr

    values = [photo(), photo(seed=1), "efficientnet_lite0", 1.0, 4.0, 1.0, 0.1, 3, 48, True, *LAYERS]
    values[position] = value
    with pytest.raises(gr.Error, match=message) as err:
        next(S.run(*values))
    assert "\n输入有误" in err.value.message  # the Chinese page's line


def test_stop_ends_the_run_and_keeps_the_image(style_url, tmp_path):
    from vision_core import style as vstyle

    me = client(style_url)
    assert me.predict(api_name="/style_stop") == "Nothing is running in this session."
    with counting_steps(vstyle._Run, "step", S._stops) as steps:
        job = me.submit(*args(tmp_path, steps=2000), api_name="/style_transfer")
        assert steps.first_done.wait(HANG_GUARD), "the style transfer never started"
        assert me.predict(api_name="/style_stop") == "Stopping before the next step…"
        image, _, status, result = job.result(timeout=HANG_GUARD)
    assert status.startswith("**Stopped.**") and "Stopped after" in status
    assert steps.after_stop <= 1  # counted, not timed: at most the step whose check had just passed
    assert Image.open(image).size == (72, 48) and Image.open(result).format == "PNG"


def _english(text):
    """The page's English for a string holding a translation marker."""
    import json as _json

    from panels.i18n import pairs

    start = text.index("__i18n__")
    end = text.index("}", start) + 1
    key = _json.loads(text[start + len("__i18n__"):end])["key"]
    return text[:start] + pairs()[key][0] + text[end:]


def test_network_note_says_which_network_and_how_to_get_vgg19(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    note = _english(S.network_note("efficientnet_lite0"))
    assert "**Network: EfficientNet-Lite0 (ImageNet; offline)**" in note and "Runs on cpu" in note
    assert "vgg19-dcbb9e9d.pth" in note and "548 MB" in note
    assert "not available" in _english(S.network_note("vgg19"))
    monkeypatch.setattr(S, "find_vgg19_imagenet", lambda: tmp_path / "vgg19-dcbb9e9d.pth")
    assert "VGG-19's ImageNet weights are here too" in _english(S.network_note("efficientnet_lite0"))
    assert "as in the book" in _english(S.network_note("vgg19"))


def test_results_on_disk_are_bounded(monkeypatch, tmp_path):
    monkeypatch.setattr(S.tempfile, "gettempdir", lambda: str(tmp_path))
    paths = [S._save_result(photo()) for _ in range(S.KEPT_RESULTS + 5)]
    left = sorted((tmp_path / "vision_lab_style").glob("*.png"))
    assert len(left) == S.KEPT_RESULTS and str(left[0]) in paths


def test_a_loss_that_turns_nan_stops_with_a_message_and_the_last_good_image(monkeypatch):
    import torch
    from torch import nn

    from vision_core.models.style_networks import FeatureTaps, STYLE_NETWORKS

    from tests.test_style import _NaNAfter

    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1), _NaNAfter(2 + 4), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)]
    taps = FeatureTaps(nn.Sequential(*layers, *[nn.Identity()] * 8), content_layers=[3],
                       style_layers=[0, 2, 3, 4, 5])
    monkeypatch.setattr(S, "network", lambda name: (taps, STYLE_NETWORKS["efficientnet_lite0"]))
    outputs = list(S.run(photo(), photo(seed=1), "efficientnet_lite0", 1.0, 4.0, 1.0, 0.1, 50, 48, True, *LAYERS))
    image, _, status, result = outputs[-1]
    assert status.startswith("**Stopped.** Step 4/50")
    assert "the loss became NaN or infinite after step 4" in status and "lower lr" in status
    assert image.shape == (48, 72, 3) and Image.open(result).size == (72, 48)
