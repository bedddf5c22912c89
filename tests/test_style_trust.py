"""The Style transfer panel's logic behind issue 17's fixes: plain-words download failures, a
learner's message for a missing VGG-19, the Stop button's states, the page's language for the
plot and the note, and the formula's numbers (the browser checks are tests/test_browser_style.py).

Nothing here touches the internet: a failed download goes to a closed port on this machine.
"""

from __future__ import annotations

import socket
import ssl
import threading
import urllib.error
from types import SimpleNamespace

import gradio as gr
import pytest
import torch

from panels import style as S
from panels.i18n import english
from tests.conftest import HANG_GUARD_S, free_port
from vision_core import weights as W
from vision_core._checks import ArgumentError
from vision_core.models.style_networks import (
    STYLE_NETWORKS,
    efficientnet_lite0_taps,
    vgg19_taps,
)

FOR_DEVELOPERS = ("$TORCH_HOME", "download_torchvision_checkpoint(", "<", ">", "输入有误", "Traceback")


def for_a_learner(message: str) -> bool:
    return not any(text in message for text in FOR_DEVELOPERS)


@pytest.fixture
def no_vgg19(monkeypatch, tmp_path):
    """An empty torch cache and torchvision's address at a closed port here (refused at once)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("VISION_LAB_OFFLINE", raising=False)
    monkeypatch.setattr(W, "TORCHVISION_URL", f"http://127.0.0.1:{free_port()}/")


@pytest.mark.parametrize("err, kind, words", [
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "refused",
     "the server refused the connection (Connection refused)"),
    (urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")), "offline",
     "could not look up the server's name, so it is probably offline"),
    (urllib.error.URLError(TimeoutError("timed out")), "timeout", "the server did not answer in time"),
    (urllib.error.HTTPError("http://x/", 404, "Not Found", {}, None), "http", "the server answered HTTP 404 Not Found"),
    (urllib.error.URLError(ssl.SSLError(1, "CERTIFICATE_VERIFY_FAILED")), "tls", "no secure connection"),
    (OSError(28, "No space left on device", "/cache/x.part"), "disk", "the file could not be written"),
    (urllib.error.URLError("<no route to host>"), "other", "no route to host"),
])
def test_a_failed_download_is_worded_plainly(err, kind, words):
    assert W.failure_kind(err) == kind
    reason = W.failure_reason(err)
    assert words in reason
    assert "<" not in reason and ">" not in reason and "urlopen error" not in reason  # a toast is HTML


def test_a_refused_download_says_so_and_leaves_no_file(no_vgg19, tmp_path):
    with pytest.raises(W.WeightsError) as caught:
        list(W.download_torchvision_checkpoint(S.VGG19_FILE))
    assert "failed: the server refused the connection" in str(caught.value) and "<" not in str(caught.value)
    assert W.failure_kind(caught.value.__cause__) == "refused"
    assert not any((tmp_path / "hub" / "checkpoints").iterdir())  # no partial file left behind


def test_the_download_button_comes_back_before_the_toast(no_vgg19):
    frames = []
    with pytest.raises(gr.Error) as caught:
        for frame in S.download_vgg19():  # the frames before the error are the point
            frames.append(frame)  # noqa: PERF402
    message = caught.value.message
    assert message.startswith("VGG-19 could not be downloaded: the server refused the connection")
    assert "VGG-19 下载失败：服务器拒绝了连接" in message and for_a_learner(message)
    assert frames[0].interactive is False  # "Connecting…" while it tries
    assert frames[-1].interactive is True and english(frames[-1].value) == S.DOWNLOAD_LABEL[0]


def test_an_offline_server_names_its_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("VISION_LAB_OFFLINE", "1")
    with pytest.raises(gr.Error, match="VISION_LAB_OFFLINE is set, so vgg19-dcbb9e9d.pth is not downloaded"):
        list(S.download_vgg19())


def test_start_with_vgg19_missing_is_refused_for_a_learner(no_vgg19):
    S.check_network("efficientnet_lite0")  # the offline network always passes
    with pytest.raises(gr.Error) as caught:
        S.check_network("vgg19")
    message = caught.value.message
    assert "VGG-19 (the book's network) is not on this machine" in message and "Choose EfficientNet-Lite0" in message
    assert "本机没有 VGG-19" in message and for_a_learner(message)


def test_a_broken_vgg19_file_is_worded_too(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / S.VGG19_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(gr.Error, match="VGG-19's weight file is broken") as caught:
        S.check_network("vgg19")
    assert "VGG-19 的权重文件已损坏" in caught.value.message
    assert "file is broken" in english(S.network_note("vgg19"))


def request_with(cookie: str | None, session: str = "s") -> SimpleNamespace:
    return SimpleNamespace(cookies={} if cookie is None else {S.LANGUAGE_COOKIE: cookie}, session_hash=session)


@pytest.mark.parametrize("cookie, language", [
    ("zh-CN", "zh"), ("zh-cn", "zh"), ("en", "en"), ("en-US", "en"), ("zh-TW", "en"), (None, "en"),
])
def test_the_page_language_comes_from_its_cookie(cookie, language):
    assert S.page_language(request_with(cookie)) == language
    assert S.page_language(None) == "en"  # an API call


def test_a_handlers_note_is_words_not_a_marker(no_vgg19):
    note_zh = S.choose_network("vgg19", request_with("zh-CN"))[0]
    note_en = S.choose_network("vgg19", request_with("en"))[0]
    assert "__i18n__" not in note_zh + note_en
    assert note_zh.startswith("**特征网络：VGG-19 —— 不可用**") and note_en.startswith("**Network: VGG-19 — not available.**")


def test_the_loss_plot_speaks_the_pages_language():
    series = {"content": [3.0, 2.0], "style": [5.0, 4.0], "tv": [1.0, 1.0]}
    zh, en, empty = S._curves(series, "zh"), S._curves(series, "en"), S._curves({}, None)
    assert zh.layout.xaxis.title.text == "步" and [t.name for t in zh.data] == ["内容", "风格", "全变分"]
    assert en.layout.xaxis.title.text == "step" and [t.name for t in en.data] == ["content", "style", "total variation"]
    assert not empty.data and not empty.layout.xaxis.title.text and not empty.layout.title.text  # no words yet


@pytest.mark.parametrize("height, width", [(48, 72), (33, 35), (65, 97), (300, 450)])
def test_the_formulas_feature_shapes_are_the_networks(height, width):
    for name, taps in (("vgg19", vgg19_taps()), ("efficientnet_lite0", efficientnet_lite0_taps())):
        with torch.no_grad():
            _, styles = taps(torch.zeros(1, 3, height, width))
        assert STYLE_NETWORKS[name].style_feature_shapes(height, width) == [tuple(Y.shape[1:]) for Y in styles]


def test_the_formula_fills_in_the_current_weights_and_sizes():
    book = S.formula_text("vgg19", 1.0, 4.0, 1.0, 300, False, [1.0] * 5, 450)
    assert r"\ell = 1\,\ell_{\text{content}} + 10^{4}\sum_{l=1}^{5}" in book and r"10^{1}\,\ell_{\text{TV}}" in book
    assert r"\mathbf{X}_{\text{conv1\_1}}\in\mathbb{R}^{64\times 300\cdot450}" in book  # 64 x hw, G is 64 x 64
    assert r"\mathbf{G}\in\mathbb{R}^{64\times64}" in book and r"\lambda = (1, 1, 1, 1, 1)" in book
    assert r"\leftarrow" not in book  # the book does not balance the layers
    mine = S.formula_text("efficientnet_lite0", 2.5, 2.25, -1.0, 64, True, [1, 0.5, 1, 1, 2], 96)
    assert r"\ell = 2.5\,\ell_{\text{content}} + 10^{2.25}" in mine and r"10^{-1}\,\ell_{\text{TV}}" in mine
    assert r"\mathbb{R}^{32\times 32\cdot48}" in mine and r"\lambda = (1, 0.5, 1, 1, 2)" in mine
    assert r"\lambda_l \leftarrow" in mine  # balanced
    assert mine.count("$$") == 2 * 9  # one display formula per line
    assert r"\operatorname{Adam}\big(\mathbf{B}^{2} * \nabla_{\mathbf{x}}\ell\big)" in mine  # the smoothed step
    assert r"\operatorname{Adam}" not in book  # the book's raw gradient


class _WatchedEnd(threading.Event):
    """A job's end that tells when somebody has begun to wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self.awaited = threading.Event()

    def wait(self, timeout=None):
        self.awaited.set()
        return super().wait(timeout)


def test_the_stop_button_is_active_only_while_the_session_runs_a_job(monkeypatch):
    me, other = request_with(None, "me"), request_with(None, "other")
    assert S.stop_disarmed(me).interactive is False
    ended = _WatchedEnd()
    monkeypatch.setitem(S._runs._ended, "me", ended)  # what _runs.begin(me) records, watched
    try:
        assert S.stop_disarmed(me).interactive is True and S.stop_disarmed(other).interactive is False
        answered = []
        settle = threading.Thread(target=lambda: answered.append(S.stop_settled(me)))
        settle.start()
        assert ended.awaited.wait(HANG_GUARD_S), "Stop's follow-up did not wait for the job's end"
        assert answered == []  # Stop's answer stays while the job's last step runs: the end is not set yet
    finally:
        S._runs.end(me, ended)
    settle.join(HANG_GUARD_S)
    (note, button), = answered
    assert note == "" and button.interactive is False  # cleared once the job has ended
    assert S.stop_settled(me)[1].interactive is False  # nothing runs: at once


# --- grain (issue 18, item 5) -----------------------------------------------------------------------

def test_high_frequency_energy_sees_pixel_noise_not_broad_shapes():
    from vision_core.style import high_frequency_energy

    flat = torch.full((3, 32, 48), 0.5)
    ramp = torch.linspace(0, 1, 48).expand(3, 32, 48)
    checker = ((torch.arange(32)[:, None] + torch.arange(48)[None]) % 2).float().expand(3, 32, 48)
    energy = high_frequency_energy(torch.stack([flat, ramp, checker]))
    assert energy.shape == (3,) and float(energy[0]) == 0.0
    assert float(energy[1]) < 1e-4 < 0.1 < float(energy[2])  # a smooth ramp vs one-pixel detail
    as_uint8 = (checker * 255).round().to(torch.uint8)
    assert torch.allclose(high_frequency_energy(as_uint8), energy[2:], rtol=1e-5)
    assert torch.allclose(high_frequency_energy(as_uint8.permute(1, 2, 0).numpy()), energy[2:], rtol=1e-5)


def test_grain_is_noise_beyond_what_the_sources_have():
    from vision_core.style import grain

    gen = torch.Generator().manual_seed(0)
    photo = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 66, 98, generator=gen), 3, stride=1)[0]  # [3, 64, 96]
    assert grain(photo, photo, photo) == pytest.approx(1.0, rel=1e-5)
    noisy = (photo + 0.1 * torch.randn(photo.shape, generator=gen)).clamp(0, 1)
    assert grain(noisy, photo, photo) > 3
    big_style = torch.nn.functional.interpolate(photo[None], size=(128, 192), mode="bilinear")[0]
    assert grain(photo, photo, big_style) <= 1.0 + 1e-5  # the style is resized to the result first
    with pytest.raises(ArgumentError, match="result"):
        grain(torch.zeros(2, 32, 32), photo, photo)


def test_the_offline_preset_keeps_the_grain_out_of_waves():
    """The shipped preset (TV 1e5, gradient smoothed twice) against the one it replaced (TV 10^4.5, raw
    gradient) on the grainiest offline style, at a small size: benchmarks.style_grain's comparison."""
    from vision_core.examples import load_content_photo, load_style_image
    from vision_core.models.style_networks import LITE0_WEIGHTS, STYLE_NETWORKS, efficientnet_lite0_taps
    from vision_core.style import grain, style_transfer

    preset = {k: v for k, v in STYLE_NETWORKS["efficientnet_lite0"].preset.items() if k not in ("steps", "image_shape")}
    assert preset["smooth_gradient"] == 2 and preset["tv_weight"] == 1e5
    earlier = dict(preset, tv_weight=10**4.5, smooth_gradient=0)
    taps = efficientnet_lite0_taps(W.load_state_dict(LITE0_WEIGHTS))
    content, style = load_content_photo("chelsea"), load_style_image("waves")
    results = {}
    for name, settings in (("shipped", preset), ("earlier", earlier)):
        for record in style_transfer(content, style, taps, steps=150, image_shape=(96, 144), device="cpu",
                                     frame_interval=3600, **settings):
            pass
        results[name] = (grain(record.preview, content, style), record.metrics["style"])
    assert results["shipped"][0] < 0.5 * results["earlier"][0], results
    assert results["shipped"][1] < 1.5 * results["earlier"][1], results  # the style stays
