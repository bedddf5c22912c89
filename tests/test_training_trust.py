"""Issue 17, items 4-6: training in the SSD and Segmentation tabs keeps a learner's trust.

* The loop's first record comes after the first batch, not the first epoch, and the records'
  ``series["loss"]`` name every batch once, however throttled (a per-batch curve).
* ``panels.streaming.Stream`` places each batch's loss at its epoch with a fraction.
* The "shipped / mine" switch (``panels.session_models``): a training moves it to "mine",
  "shipped" is one click back, and "mine" cannot be picked without a network of one's own.
* One Stop rule for both panels: a run that trained a batch or more becomes "mine", stopped or
  not; a run stopped before its first batch changes nothing.
* Defaults that fit the device, and the book's recipe one click away with its cost as measured.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from types import SimpleNamespace

import pytest
import torch

from panels import ssd
from panels.segmentation import models, training
from panels.session_models import MINE, SHIPPED, SessionModels
from panels.streaming import Stream, current_epoch, epoch_axis, trained_amount
from vision_core.progress import Progress
from vision_core.train.loop import EpochSteps, stream_epochs


def session(name: str) -> SimpleNamespace:
    """A stand-in for the gr.Request of a browser session."""
    return SimpleNamespace(session_hash=name)


# --- the loop: the first point after one batch, every batch's loss --------------------------------

class _Counting(EpochSteps):
    """``batches`` batches per epoch whose loss is the batch's global index (1, 2, 3, ...)."""

    def __init__(self, batches: int, on_batch=None):
        self.batches, self.done, self.on_batch = batches, 0, on_batch

    def train_batch(self, b):
        self.done += 1
        if self.on_batch is not None:
            self.on_batch(self.done)
        return torch.tensor(2.0 * self.done, dtype=torch.float64), 2  # mean per example: self.done

    def end_epoch(self, epoch, train_seconds):
        return {"epoch": epoch + 1, "loss": 0.0}, None, "ok"


def test_the_first_record_comes_after_the_first_batch_and_every_batch_is_in_a_series(slow_clock):
    steps = _Counting(5)
    records = list(stream_epochs(torch.nn.Linear(1, 1), torch.device("cpu"), 2, lambda: steps, None,
                                 record_interval=3600))
    assert [r.step for r in records] == [1, 5, 10]  # after batch 1, then only the epoch records
    assert records[0].metrics["loss"] == 1.0 and "epoch" not in records[0].metrics
    losses = [v for r in records for v in r.series["loss"]]
    assert losses == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]  # each batch once, in order


def test_a_stopped_record_carries_the_batches_not_yet_reported(slow_clock):
    stop = threading.Event()
    steps = _Counting(10, on_batch=lambda done: stop.set() if done == 4 else None)
    records = list(stream_epochs(torch.nn.Linear(1, 1), torch.device("cpu"), 1, lambda: steps, stop,
                                 record_interval=3600))
    assert [r.step for r in records] == [1, 4] and records[-1].message == "stopped"
    assert [v for r in records for v in r.series["loss"]] == [1.0, 2.0, 3.0, 4.0]


# --- the per-batch curve ---------------------------------------------------------------------------

def test_stream_places_each_batch_at_its_epoch_with_a_fraction():
    stream = Stream("batch", epochs=2)  # 2 epochs of 4 batches
    stream.read(Progress(1, 8, {"loss": 3.0}, series={"loss": [3.0]}))
    assert stream.batch_curve() == ([0.25], [3.0]) and stream.epochs_trained() == 0.25
    stream.read(Progress(4, 8, {"epoch": 1, "loss": 2.5}, series={"loss": [2.9, 2.8, 2.7]}))
    xs, ys = stream.batch_curve()
    assert xs == [0.25, 0.5, 0.75, 1.0] and ys == [3.0, 2.9, 2.8, 2.7]
    assert len(stream.history) == 1 and stream.epochs_trained() == 1.0


def test_a_long_curve_is_drawn_as_means_of_neighbouring_batches():
    stream = Stream("batch", epochs=1)
    stream.read(Progress(10, 10, series={"loss": [float(i) for i in range(10)]}))
    xs, ys = stream.batch_curve(max_points=5)
    assert ys == [0.5, 2.5, 4.5, 6.5, 8.5] and xs == pytest.approx([0.15, 0.35, 0.55, 0.75, 0.95])


def test_epoch_axis_and_trained_amount():
    assert epoch_axis(0.1)["dtick"] == 0.25 and epoch_axis(0.1)["range"][1] == pytest.approx(1.02)
    assert epoch_axis(1.3)["dtick"] == 0.5 and epoch_axis(20)["dtick"] == 2
    assert trained_amount(26, 26, 2) == "2 epochs" and trained_amount(13, 26, 2) == "1 epoch"
    assert trained_amount(4, 26, 2) == "0.3 epochs (4 of 13 batches)"
    assert trained_amount(17, 26, 2) == "1.3 epochs (4 of 13 batches after 1 full epoch)"
    # The status's "Epoch e/E": the epoch with the last batch done, also on a stopped record.
    assert [current_epoch(Progress(step, 26), 2) for step in (0, 5, 13, 14, 26)] == [1, 1, 1, 2, 2]


@pytest.mark.parametrize("curves", [ssd._curves, training._curves], ids=["ssd", "fcn"])
def test_the_panels_draw_the_first_batch_before_any_epoch_ends(curves):
    stream = Stream("batch", epochs=3)
    stream.read(Progress(1, 30, {"loss": 0.7, "examples_per_s": 5.0}, series={"loss": [0.7]}))
    fig = curves(stream)
    assert list(fig.data[0].y) == [0.7] and list(fig.data[0].x) == [pytest.approx(0.1)]
    assert "markers" in fig.data[0].mode  # one point alone is drawn, not an invisible line


# --- the "shipped / mine" switch -------------------------------------------------------------------

def test_the_switch_moves_to_mine_after_training_and_shipped_is_one_click_back():
    slot = SessionModels(lambda: (torch.nn.Linear(1, 1), "the shipped one"), lambda err: str(err), capacity=2)
    a = session("a")
    assert slot.choice(a) == SHIPPED and not slot.has_mine(a)
    assert slot.choose(a, MINE) == SHIPPED  # nothing of its own yet: "mine" cannot be picked
    assert slot.switch(a) == {"value": SHIPPED, "interactive": False, "__type__": "update"}
    assert slot.active(a)[1] == "shipped — the shipped one"

    slot.remember(a, torch.nn.Linear(1, 1), "trained here: 1 epoch")
    assert slot.choice(a) == MINE and slot.active(a)[1] == "mine — trained here: 1 epoch"
    assert slot.switch(a) == {"value": MINE, "interactive": True, "__type__": "update"}
    assert slot.choose(a, SHIPPED) == SHIPPED and slot.active(a)[1] == "shipped — the shipped one"
    assert slot.has_mine(a) and slot.switch(a)["interactive"]  # "mine" is still one click away
    assert slot.choose(a, MINE) == MINE and slot.active(a)[1].startswith("mine")
    assert slot.choice(session("b")) == SHIPPED  # another session is untouched

    slot.choose(a, SHIPPED)
    slot.remember(a, torch.nn.Linear(1, 1), "trained here: 2 epochs")  # a new training switches to it
    assert slot.active(a)[1] == "mine — trained here: 2 epochs"


def test_an_evicted_network_leaves_the_switch_on_shipped():
    slot = SessionModels(lambda: (torch.nn.Linear(1, 1), "shipped"), lambda err: str(err), capacity=1)
    slot.remember(session("a"), torch.nn.Linear(1, 1), "a's")
    slot.choose(session("a"), SHIPPED)
    slot.remember(session("a2"), torch.nn.Linear(1, 1), "a2's")  # same visitor ("local"): a's goes
    assert slot.choice(session("a")) == SHIPPED and not slot.has_mine(session("a"))
    assert slot.switch(session("a"))["interactive"] is False and slot.dropped_note(session("a"))


# --- one Stop rule for both panels -----------------------------------------------------------------

def _fake_records(*, stop, epochs, **kwargs):
    """A training's records without the training: 2 batches per epoch, Stop checked before each."""
    total = 2 * epochs

    def records():
        for step in range(1, total + 1):
            if stop.is_set():
                yield Progress(step - 1, total, {}, message="stopped", done=True, series={"loss": []})
                return
            end = step % 2 == 0
            metrics = {"epoch": step // 2, "loss": 0.5} if end else {"loss": 0.5, "examples_per_s": 4.0}
            yield Progress(step, total, metrics, message="done: x" if step == total else "epoch",
                           done=step == total, series={"loss": [0.5]})
    return records()


class _FakeSet:
    """A VOCSegDataset stand-in: 8 items, no pictures."""

    def __init__(self, *args):
        self.features, self.labels = list(range(8)), list(range(8))

    def __len__(self):
        return len(self.features)


@pytest.fixture
def fake_training(monkeypatch):
    """Both panels' training with fake records and data; empty slots."""
    data = torch.zeros(10, 3, 256, 256, dtype=torch.uint8), torch.zeros(10, 1, 5)
    monkeypatch.setattr(ssd, "load_bananas", lambda root=None, split="train", limit=None: data)
    monkeypatch.setattr(ssd, "train_ssd", lambda train, val, **kwargs: _fake_records(**kwargs))
    monkeypatch.setattr(training, "voc_root", lambda progress=None: None)
    monkeypatch.setattr(training, "VOCSegDataset", _FakeSet)
    monkeypatch.setattr(training, "FCN", lambda n, pretrained_backbone=None: torch.nn.Linear(1, 1))
    monkeypatch.setattr(training, "train_fcn", lambda train, test, **kwargs: _fake_records(**kwargs))
    for slot in (ssd.sessions, models.sessions):
        monkeypatch.setattr(slot, "_trained", OrderedDict())
        monkeypatch.setattr(slot, "_use_shipped", set())
        monkeypatch.setattr(slot, "_shipped", (torch.nn.Linear(1, 1), "the shipped one"))


PANELS = {
    "ssd": (lambda req: ssd.train(3, 5, 0.2, 10, "sgd", progress=lambda *a, **k: None, request=req),
            ssd.sessions, ssd.stop_training, "Detect"),
    "fcn": (lambda req: training.train(3, 4, 0.001, 8, "sgd", "64x96", progress=lambda *a, **k: None, request=req),
            models.sessions, training.stop_training, "Segment"),
}


@pytest.mark.parametrize("name", PANELS)
def test_a_run_stopped_inside_its_first_epoch_becomes_mine_in_both_panels(fake_training, name):
    run, slot, stop, user = PANELS[name]
    a = session(f"{name}-a")
    job = run(a)
    for frame in job:
        if "step 1/6" in frame[2]:  # one batch of the first epoch has run
            break
    assert stop(a) == "Stopping after the current batch…"
    status = list(job)[-1][2]
    assert status.startswith("**Stopped.**") and f"{user} now uses this network (weights: “mine”)" in status
    assert slot.choice(a) == MINE and "0.5 epochs (1 of 2 batches)" in slot.active(a)[1]
    assert "(stopped early)" in slot.active(a)[1]


@pytest.mark.parametrize("name", PANELS)
def test_a_run_stopped_before_its_first_batch_changes_nothing_in_both_panels(fake_training, name):
    run, slot, stop, user = PANELS[name]
    a = session(f"{name}-b")
    job = run(a)
    next(job)  # the first frame: the session's flag exists, no batch has run
    assert stop(a) == "Stopping after the current batch…"
    status = list(job)[-1][2]
    assert status.startswith("**Stopped.**") and f"nothing was trained: {user} keeps its weights" in status
    assert not slot.has_mine(a) and slot.active(a)[1] == "shipped — the shipped one"


@pytest.mark.parametrize("name", PANELS)
def test_a_finished_run_becomes_mine_and_its_speed_prices_the_books_recipe(fake_training, name):
    run, slot, _, _ = PANELS[name]
    a = session(f"{name}-c")
    recipe = ssd.book_recipe if name == "ssd" else training.book_recipe
    assert "measured when it runs" in recipe(a)[-1] and " about " not in recipe(a)[-1]  # no time promised
    status = list(run(a))[-1][2]
    assert status.startswith("**Done.**") and slot.choice(a) == MINE
    assert slot.active(a)[1].endswith("3 epochs on " + ("10 images" if name == "ssd" else "8 images, crops 64 × 96"))
    cost = recipe(a)[-1]
    assert "Your last run here measured 4.0 images/s" in cost and (" about " in cost or " at least " in cost)


# --- defaults that fit the device, the book's recipe one click away --------------------------------

def test_defaults_fit_the_device_and_the_books_recipe_is_a_click_away():
    assert ssd.default_recipe("cuda") == ssd.BOOK_RECIPE == {"epochs": 20, "batch_size": 32, "lr": 0.2,
                                                             "num_train": 1000, "optimizer": "sgd"}
    quick = ssd.default_recipe("cpu")
    assert quick["batch_size"] < 32 and quick["epochs"] * quick["num_train"] <= 20_000 / 40
    assert ssd.book_recipe(None)[:5] == (20, 32, 0.2, 1000, "sgd") and ssd.quick_run()[:5] == tuple(quick.values())


def test_fcn_defaults_fit_the_device_and_the_synthetic_set(monkeypatch):
    assert training.default_recipe("cuda") == training.BOOK_RECIPE  # the full synthetic set: the book's recipe
    quick = training.default_recipe("cpu")
    assert quick["crop"] == "128x192" and quick["batch_size"] <= 8 and quick["num_train"] < 600
    for key, value in {"num_train": 8, "num_val": 4, "height": 128, "width": 192}.items():
        monkeypatch.setitem(training.SYNTHETIC, key, value)
    assert training.book_recipe(None)[:6] == (5, 8, 0.001, 8, "sgd", "128x192")  # within the tests' tiny set
    assert training.quick_run()[:6] == (2, 8, 0.001, 8, "sgd", "128x192")


def test_the_recipe_note_is_english_and_promises_no_time_before_a_run():
    note = ssd.book_recipe(session("never-trained"))[-1]
    assert "20 epochs × 1,000 images = 20,000 images" in note and not any(u in note for u in (" min", " s ", " h "))
