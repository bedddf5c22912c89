"""panels.session_models: one model slot per session for the SSD and the segmentation panels.

A session's trained network is kept for the most recent sessions only; the shipped network is
loaded once; a Stop flag belongs to a running job, so evicting a stored network never touches
it; and both panels answer "no network" the same way: ``(None, why)``, refused where the
network is needed.
"""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from panels import ssd
from panels.segmentation import models, segment
from panels.session_models import IDLE, STOPPING, SessionModels
from vision_core.progress import Progress
from vision_core.weights import WeightsError

def session(name: str) -> SimpleNamespace:
    """A stand-in for the gr.Request of a browser session."""
    return SimpleNamespace(session_hash=name)


@pytest.fixture
def empty_slots(monkeypatch):
    """Both panels' slots with nothing trained and nothing shipped."""
    for slot in (ssd.sessions, models.sessions):
        monkeypatch.setattr(slot, "_trained", OrderedDict())
        monkeypatch.setattr(slot, "_shipped", (None, "not here (test)"))


@pytest.mark.parametrize("slot, capacity", [(ssd.sessions, 8), (models.sessions, 4)])
def test_trained_nets_are_kept_for_recent_sessions_only(empty_slots, slot, capacity):
    assert slot.capacity == capacity  # an FCN is ~52 MB, a TinySSD ~3 MB
    for i in range(capacity + 2):
        slot.remember(session(f"s{i}"), torch.nn.Linear(1, 1), f"net {i}")
    assert slot.sessions() == [f"s{i}" for i in range(2, capacity + 2)]
    assert slot.active(session("s2"))[1] == "mine — net 2"
    assert slot.active(session("s0")) == (None, "not here (test)")  # evicted: back to the shipped one


def test_the_shipped_network_is_loaded_once_and_a_broken_file_says_why():
    calls = []

    def load():
        calls.append(True)
        return torch.nn.Linear(1, 1), "shipped"

    slot = SessionModels(load, lambda err: f"unusable ({err})", capacity=2)
    assert slot.active(session("a"))[1] == "shipped — shipped" and slot.shipped()[1] == "shipped" and len(calls) == 1

    def broken():
        raise WeightsError("the file is corrupt")

    slot = SessionModels(broken, lambda err: f"unusable ({err})", capacity=2)
    assert slot.shipped() == (None, "unusable (the file is corrupt)")


@pytest.mark.parametrize("slot", [ssd.sessions, models.sessions], ids=["ssd", "fcn"])
def test_evicting_a_stored_network_leaves_the_sessions_stop_flag_alone(empty_slots, slot):
    a = session("a")
    with slot.stops.running(a) as flag:  # a's second training runs...
        slot.remember(a, torch.nn.Linear(1, 1), "a's first network")
        for i in range(slot.capacity):  # ...while other sessions' networks push a's out
            slot.remember(session(f"other {i}"), torch.nn.Linear(1, 1), "theirs")
        assert "a" not in slot.sessions()
        assert slot.stops.press(a) == STOPPING and flag.is_set()
    assert slot.stops.press(a) == IDLE  # the job ended: its flag went with it


def _fake_train_ssd(train, val, *, net, epochs, stop, **kwargs):
    """train_ssd's records, without the training: two batches, checking Stop before each."""
    def records():
        for step in (1, 2):
            if stop.is_set():
                yield Progress(step - 1, 2, {}, message="stopped", done=True)
                return
            done = step == 2
            yield Progress(step, 2, {"epoch": 1, "loss": 0.5} if done else {"loss": 0.5},
                           message="done: test" if done else "epoch 1/1, batch 1/2", done=done)
    return records()


def test_the_ssd_panels_stop_reaches_a_running_job_after_its_stored_network_was_evicted(monkeypatch, empty_slots):
    # Drift fixed in issue 15: the SSD panel's eviction also dropped the session's Stop flag, so
    # Stop answered "Nothing is training in this session." while the job ran on.
    banana = torch.zeros(10, 3, 256, 256, dtype=torch.uint8), torch.zeros(10, 1, 5)
    monkeypatch.setattr(ssd, "load_bananas", lambda root=None, split="train", limit=None: banana)
    monkeypatch.setattr(ssd, "train_ssd", _fake_train_ssd)

    def train(name):
        return ssd.train(1, 10, 0.2, 10, "sgd", progress=lambda *a, **k: None, request=session(name))

    assert list(train("a"))[-1][2].startswith("**Done.**")  # a's first network is stored
    job = train("a")
    next(job)  # a's second training has started
    for i in range(ssd.MAX_SESSION_NETS):
        assert list(train(f"other {i}"))[-1][2].startswith("**Done.**")
    assert "a" not in ssd.sessions.sessions()  # a's stored network was evicted...
    assert ssd.stop_training(session("a")) == "Stopping after the current batch…"  # ...its job still stops
    assert list(job)[-1][2].startswith("**Stopped.**")
    assert ssd.stop_training(session("a")) == "Nothing is training in this session."


def test_with_no_network_both_panels_give_none_and_why_and_refuse_where_it_is_needed(empty_slots):
    # Drift fixed in issue 15: the segmentation panel's active_model raised where the SSD one
    # returned (None, why). Now both slots return (None, why), and Detect / Segment refuse.
    import gradio as gr

    a = session("a")
    assert ssd.sessions.active(a) == models.sessions.active(a) == (None, "not here (test)")
    picture = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(gr.Error) as detect:
        ssd.detect(picture, 0.9, a)
    with pytest.raises(gr.Error) as seg:
        segment.segment(picture, "fcn", a)
    english, chinese = detect.value.message.split("\n")
    assert english == "no detector yet: not here (test)" and chinese.startswith("还没有可用的检测器")
    english, chinese = seg.value.message.split("\n")
    assert english.startswith("No trained FCN yet: not here (test). Train one in the “Train FCN” section")
    assert chinese.startswith("还没有训练好的 FCN")
