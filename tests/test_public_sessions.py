"""A public server's visitors (issue 16, items 5 and 8).

Trained networks are kept per visitor (a client address), not per server: nine trainings by one
visitor never push out another visitor's network, a session whose network was dropped is told so
by Detect / Segment, and all visitors' networks together fit a byte budget. On a shared server a
visitor cannot make it download VGG-19 (548 MB): the endpoint refuses before any connection and
says how the operator fetches it.
"""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from panels import ssd, style
from panels.i18n import chinese, english
from panels.segmentation import models, segment
from panels.session_models import SessionModels
from vision_core.models.tiny_ssd import TinySSD
from vision_core.progress import Progress


def request(session: str, host: str, forwarded: str | None = None) -> SimpleNamespace:
    """A stand-in for gr.Request: a browser session, from a client address (through a proxy that
    wrote ``X-Forwarded-For`` when ``forwarded`` is given)."""
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    return SimpleNamespace(session_hash=session, request=SimpleNamespace(client=SimpleNamespace(host=host),
                                                                         headers=headers))


@pytest.fixture
def local(monkeypatch):
    """A local single user's server, whatever the machine running the tests says."""
    for name in ("VISION_LAB_SHARED", "VISION_LAB_ALLOW_DOWNLOADS", "SPACE_ID"):  # a --share link: app.main only
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def shared(local, monkeypatch):
    monkeypatch.setenv("VISION_LAB_SHARED", "1")


def _tiny() -> torch.nn.Module:
    return torch.nn.Linear(4, 4)  # 80 bytes of float32 parameters


def _empty(monkeypatch, slot: SessionModels, shipped: tuple) -> None:
    """``slot`` with nothing trained, nothing dropped, and ``shipped`` as its shipped network
    (``raising=False``: a slot from before issue 16 has no record of dropped networks)."""
    monkeypatch.setattr(slot, "_trained", OrderedDict())
    monkeypatch.setattr(slot, "_dropped", OrderedDict(), raising=False)
    monkeypatch.setattr(slot, "_shipped", shipped)


def test_a_visitor_is_its_client_address_and_on_a_space_the_first_forwarded_hop(local, monkeypatch):
    from panels.common import visitor_of

    assert visitor_of(request("s", "10.0.0.7")) == "10.0.0.7"
    assert visitor_of(None) == "local"
    assert visitor_of(SimpleNamespace(session_hash="s")) == "local"  # no client: one "local" visitor
    spoofed = request("s", "10.0.0.7", forwarded="203.0.113.9, 10.0.0.1")
    assert visitor_of(spoofed) == "10.0.0.7"  # not behind Hugging Face's proxy: the header is anyone's to write
    monkeypatch.setenv("SPACE_ID", "user/vision-lab")
    assert visitor_of(spoofed) == "203.0.113.9"
    assert visitor_of(request("s", "10.0.0.1")) == "10.0.0.1"  # no header: the address itself


@pytest.mark.parametrize("slot", [ssd.sessions, models.sessions], ids=["ssd", "fcn"])
def test_nine_sessions_of_one_visitor_never_evict_another_visitors_network(local, monkeypatch, slot):
    _empty(monkeypatch, slot, (None, "not here (test)"))
    victim = request("victim", "198.51.100.2")
    slot.remember(victim, _tiny(), "the victim's network")
    for i in range(9):
        slot.remember(request(f"x{i}", "198.51.100.1"), _tiny(), f"x's network {i}")
    assert slot.active(victim)[1] == "mine — the victim's network"
    assert slot.dropped_note(victim) == ""
    # x keeps its own most recent sessions' networks only: its first ones went, and x is told so
    kept = [s for s in slot.sessions() if s.startswith("x")]
    assert kept == [f"x{i}" for i in range(9 - slot.capacity, 9)]
    assert slot.active(request("x0", "198.51.100.1")) == (None, "not here (test)")
    assert "most recently used sessions" in slot.dropped_note(request("x0", "198.51.100.1"))


def test_over_the_byte_budget_the_visitor_holding_most_loses_its_least_recently_used():
    nbytes = sum(p.numel() * p.element_size() for p in _tiny().parameters())
    slot = SessionModels(lambda: (_tiny(), "shipped"), lambda err: "unusable", capacity=8, max_bytes=4 * nbytes)
    a, b = request("a", "192.0.2.1"), request("b", "192.0.2.2")
    slot.remember(a, _tiny(), "a")
    slot.remember(b, _tiny(), "b")
    slot.remember(request("x1", "192.0.2.9"), _tiny(), "x1")
    slot.remember(request("x2", "192.0.2.9"), _tiny(), "x2")
    slot.remember(request("x3", "192.0.2.9"), _tiny(), "x3")  # five networks, room for four: x has the most
    assert slot.sessions() == ["a", "b", "x2", "x3"]
    slot.active(a)  # a is used, so b is now the least recently used network
    slot.remember(request("c", "192.0.2.3"), _tiny(), "c")  # x holds 2: x2 goes, not a or b
    assert slot.sessions() == ["b", "x3", "a", "c"]
    slot.remember(request("d", "192.0.2.4"), _tiny(), "d")  # one each: the globally least recently used goes
    assert slot.sessions() == ["x3", "a", "c", "d"]
    assert "MiB of trained networks for all visitors together" in slot.dropped_note(b)
    assert "服务器只保留所有访客合计最多" in slot.dropped_note(b)
    slot.remember(b, _tiny(), "b again")  # trained again: nothing to report any more
    assert slot.dropped_note(b) == "" and slot.active(b)[1] == "mine — b again"


def test_a_stored_network_keeps_no_gradients():
    net = _tiny()
    net(torch.ones(1, 4)).sum().backward()
    slot = SessionModels(lambda: (_tiny(), "shipped"), lambda err: "unusable", capacity=1)
    slot.remember(request("a", "192.0.2.1"), net, "a")
    assert all(p.grad is None for p in slot.active(request("a", "192.0.2.1"))[0].parameters())


def test_detect_says_when_its_trained_network_was_dropped(local, monkeypatch):
    shipped = TinySSD(1).eval()
    _empty(monkeypatch, ssd.sessions, (shipped, "shipped checkpoint (test)"))
    y = request("y", "203.0.113.5")
    ssd.sessions.remember(y, TinySSD(1).eval(), "trained here (test)")
    picture = np.zeros((64, 64, 3), np.uint8)
    assert "weights: mine — trained here (test)" in ssd.detect(picture, 0.9, y)[2]
    for i in range(ssd.MAX_SESSION_NETS + 1):  # y trains in other tabs: its first network goes
        ssd.sessions.remember(request(f"y{i}", "203.0.113.5"), TinySSD(1).eval(), f"y's tab {i}")
    summary = ssd.detect(picture, 0.9, y)[2]
    assert "weights: shipped — shipped checkpoint (test)" in summary
    assert "**Your trained network was dropped to make room** (the server keeps the networks of each visitor's 8 " \
           "most recently used sessions); train again — using the shipped checkpoint." in summary
    assert "**你训练的网络已被移除以腾出空间**" in summary


def test_segment_says_when_its_trained_network_was_dropped(local, monkeypatch):
    from vision_core.models.fcn import FCN

    shipped = FCN(21).eval()
    _empty(monkeypatch, models.sessions, (shipped, "shipped checkpoint (test)"))
    y = request("y", "203.0.113.5")
    models.sessions.remember(y, shipped, "your network (test)")
    for i in range(models.MAX_SESSION_NETS):
        models.sessions.remember(request(f"y{i}", "203.0.113.5"), shipped, f"y's tab {i}")
    summary = segment.segment(np.zeros((32, 32, 3), np.uint8), "fcn", y)[3]
    assert "model: shipped — shipped checkpoint (test)" in summary and "Your trained network was dropped" in summary
    assert "请重新训练" in summary


def _no_network(*args, **kwargs):
    pytest.fail("a visitor made a shared server download")


def test_a_shared_server_refuses_a_visitors_download_before_any_connection(shared, monkeypatch):
    import gradio as gr

    monkeypatch.setattr(style, "download_torchvision_checkpoint", _no_network)
    monkeypatch.setattr("vision_core.weights.download_file", _no_network)
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    with pytest.raises(gr.Error) as refused:
        next(style.download_vgg19())  # refused before its first frame (a generator: the button shows progress)
    en, zh = refused.value.message.split("\n")
    assert en.startswith("VGG-19 is not downloaded here: this shared server downloads nothing a visitor asks for")
    assert "`python -m vision_core weights fetch vgg19`" in en and "VISION_LAB_ALLOW_DOWNLOADS=1" in en
    assert "python -m vision_core weights fetch vgg19" in zh and "共享服务器" in zh
    monkeypatch.setattr(style, "find_vgg19_imagenet", lambda: None)
    for name in ("efficientnet_lite0", "vgg19"):  # the note names the operator's command, not a button
        note = english(style.network_note(name))
        assert "python -m vision_core weights fetch vgg19" in note and "button below" not in note
        assert "weights fetch vgg19" in chinese(style.network_note(name))


def test_the_operator_may_allow_downloads_on_a_shared_server(shared, monkeypatch):
    from panels.deployment import visitor_downloads

    assert not visitor_downloads()
    monkeypatch.setenv("VISION_LAB_ALLOW_DOWNLOADS", "1")
    assert visitor_downloads()


def test_a_local_user_downloads_with_the_button(local, monkeypatch, tmp_path):
    asked = []

    def fake_download(file):
        asked.append(file)
        yield Progress(1, 2, message="downloading")
        yield Progress(2, 2, message="saved", done=True)

    monkeypatch.setattr(style, "download_torchvision_checkpoint", fake_download)
    monkeypatch.setattr(style, "find_vgg19_imagenet", lambda: None)
    assert "button below downloads" in english(style.network_note("efficientnet_lite0"))
    monkeypatch.setattr(style, "find_vgg19_imagenet", lambda: tmp_path / style.VGG19_FILE)
    frames = list(style.download_vgg19())
    assert asked == [style.VGG19_FILE]
    assert frames[-1].visible is False  # the download is done: its button goes
    note, choice, *_ = style.after_download()
    assert "as in the book" in english(note) and choice.value == "vgg19"
