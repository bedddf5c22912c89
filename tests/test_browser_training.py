"""Issue 17, items 4-6 and 9 in the browser: training in the SSD and Segmentation tabs.

* A curve point appears after the first batch, while the first epoch still runs, with the pace
  and the time left; Stop ends the run within a batch.
* After a run, Detect / Segment answer with "mine" and say so; the "shipped / mine" switch beside
  them brings the shipped network back with one click (Detect's count and Segment's mean IoU
  follow the switch).
* Stop is inactive unless this session trains; the book's recipe is one click away.

Tiny settings only (batches of 2): each run is stopped a batch or two after its first point.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import assert_no_errors

pytestmark = pytest.mark.browser

# True when a point of the per-batch curve is drawn while the status still counts batches of the
# first epoch ("step k/N", k < N): the curve starts before the first epoch ends.
POINT_WITHIN_FIRST_EPOCH = """([plot, status]) => {
    const points = document.querySelectorAll(`${plot} .scatterlayer .point`).length;
    const text = document.querySelector(status)?.innerText || "";
    const step = text.match(/Epoch 1\\/\\d+ · step (\\d+)\\/(\\d+)/);
    return points > 0 && step !== null && Number(step[1]) < Number(step[2]);
}"""


def set_slider(page: Page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True).first  # the slider's number box
    box.fill(str(value))
    box.press("Enter")


def train_until_the_first_point(page: Page, tab: str, train_tab: str, prefix: str, settings: dict,
                                check: tuple[str, ...] = ()) -> None:
    """Open ``tab`` → ``train_tab``, set each slider of ``settings`` (label → value), check each
    choice labelled in ``check``, press Start and wait until the curve has a point while the first
    epoch still runs."""
    page.get_by_role("tab", name=tab).click()
    page.get_by_role("tab", name=train_tab).click()
    for label, value in settings.items():
        set_slider(page, f"number input for {label}", value)
    for label in check:
        page.get_by_label(label).check()
    page.locator(f"#{prefix}-train-btn").click()
    page.wait_for_function(POINT_WITHIN_FIRST_EPOCH, arg=[f"#{prefix}-curves", f"#{prefix}-train-status"])


def read_with_both_weights(page: Page, prefix: str, summary_id: str, mine_says: str, shipped_says: str,
                           read) -> tuple:
    """The view's number (``read(page)``) with "mine", where the training moved the switch, then
    with "shipped" one click away, then back on "mine": each time the summary names the weights."""
    switch = page.locator(f"#{prefix}-weights")
    expect(switch.get_by_label("mine (trained in this session)")).to_be_checked()
    summary = page.locator(f"#{summary_id}")
    expect(summary).to_contain_text(mine_says)
    mine = read(page)
    switch.get_by_label("shipped (the project's checkpoint)").check()
    expect(summary).to_contain_text(shipped_says)
    shipped = read(page)
    switch.get_by_label("mine (trained in this session)").check()
    expect(summary).to_contain_text(mine_says)
    return mine, shipped


def detections(page: Page) -> int:
    return int(re.search(r"(\d+) detections?", page.locator("#ssd-summary").inner_text()).group(1))


def mean_iou(page: Page) -> float:
    return float(re.search(r"mean IoU (\d\.\d+)", page.locator("#seg-fcn-summary").inner_text()).group(1))


def test_ssd_curve_starts_within_the_first_epoch_and_stop_leaves_a_switch(opened: Page):
    page = opened
    train_until_the_first_point(page, "SSD", "Train", "ssd", {  # 100 batches in the epoch
        "Epochs (the book: 20)": 1, "Training images (of 1,000)": 200, "Batch size (the book: 32)": 2})
    expect(page.locator("#ssd-train-status")).to_contain_text(re.compile(r"/batch · about .+ left"))
    expect(page.locator("#ssd-stop-btn")).to_be_enabled()
    page.locator("#ssd-stop-btn").click()
    status = page.locator("#ssd-train-status")
    expect(status).to_contain_text("Stopped.")
    expect(status).to_contain_text("Detect now uses this network (weights: “mine”)")
    ran = int(re.search(r"step (\d+)/100", status.inner_text()).group(1))
    assert 1 <= ran < 100
    expect(page.locator("#ssd-stop-btn")).to_be_disabled()
    expect(page.locator("#ssd-train-btn")).to_be_enabled()

    page.get_by_role("tab", name="Detect").click()
    mine, shipped = read_with_both_weights(page, "ssd", "ssd-summary", "weights: mine — trained here",
                                           "weights: shipped — shipped checkpoint", detections)
    assert mine == 0 and shipped >= 1  # a few batches find no banana at 0.9; the shipped network does
    assert_no_errors(page)


def test_fcn_curve_starts_within_the_first_epoch_and_stop_leaves_a_switch(opened: Page):
    page = opened
    # 50 epochs of 300 batches: the run cannot end before Stop, however fast the machine.
    train_until_the_first_point(page, "Segmentation", "Train FCN", "seg-fcn", {
        "Epochs (the book: 5)": 50, "Training images (synthetic set 600, VOC 2012 1,464)": 600, "Batch size (the book: 32)": 2},
        check=("64 × 96 (a quick look)",))
    page.locator("#seg-fcn-stop-btn").click()
    status = page.locator("#seg-fcn-train-status")
    expect(status).to_contain_text("Stopped.")
    expect(status).to_contain_text("Segment now uses this network (weights: “mine”)")
    expect(page.locator("#seg-fcn-stop-btn")).to_be_disabled()

    page.get_by_role("tab", name="FCN", exact=True).click()
    mine, shipped = read_with_both_weights(page, "seg-fcn", "seg-fcn-summary", "model: mine — your network, trained here",
                                           "model: shipped — shipped checkpoint", mean_iou)
    assert mine < 0.5 and shipped >= 0.9  # a few batches against the shipped network's 0.9
    assert_no_errors(page)


def test_stop_is_inactive_while_nothing_trains(opened: Page):
    page = opened
    page.get_by_role("tab", name="SSD").click()
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#ssd-train-btn")).to_be_enabled()
    expect(page.locator("#ssd-stop-btn")).to_be_disabled()
    page.get_by_role("tab", name="Segmentation").click()
    page.get_by_role("tab", name="Train FCN").click()
    expect(page.locator("#seg-fcn-train-btn")).to_be_enabled()
    expect(page.locator("#seg-fcn-stop-btn")).to_be_disabled()


def test_the_books_recipe_is_one_click_away_and_the_cpu_starts_small(opened: Page):
    page = opened
    page.get_by_role("tab", name="SSD").click()
    page.get_by_role("tab", name="Train").click()
    epochs = page.get_by_label("number input for Epochs (the book: 20)", exact=True)
    images = page.get_by_label("number input for Training images (of 1,000)", exact=True)
    batch = page.get_by_label("number input for Batch size (the book: 32)", exact=True)
    if "Running on cpu" in page.locator("#vl-header").inner_text().replace("*", ""):
        expect(epochs).to_have_value("2")  # a quick run fits a CPU; CUDA starts with the book's recipe
        expect(batch).to_have_value("16")
    expect(page.locator("#ssd-train-try")).to_contain_text("Try this:")
    page.locator("#ssd-book-recipe").click()
    expect(epochs).to_have_value("20")
    expect(images).to_have_value("1000")
    expect(batch).to_have_value("32")
    note = page.locator("#ssd-recipe-note")
    expect(note).to_contain_text("20 epochs × 1,000 images = 20,000 images")
    expect(note).to_contain_text("measured when it runs")  # this session has not trained: no time promised
    page.locator("#ssd-quick-run").click()
    expect(epochs).to_have_value("2")
    expect(note).to_contain_text("A quick run")

    page.get_by_role("tab", name="Segmentation").click()
    page.get_by_role("tab", name="Train FCN").click()
    expect(page.locator("#seg-fcn-train-try")).to_contain_text("Try this:")
    page.locator("#seg-fcn-book-recipe").click()
    expect(page.get_by_label("number input for Epochs (the book: 5)", exact=True)).to_have_value("5")
    expect(page.get_by_label("number input for Training images (synthetic set 600, VOC 2012 1,464)", exact=True)).to_have_value("600")
    expect(page.get_by_label("320 × 480 (the book)")).to_be_checked()
    expect(page.locator("#seg-fcn-recipe-note")).to_contain_text("5 epochs × 600 crops of 320 × 480")
    assert_no_errors(page)


def test_training_offers_the_books_data_when_it_is_here(opened: Page, tmp_path, monkeypatch):
    # Issue 18, item 4: the book's bananas fetched (a tiny copy in the book's layout stands in), the
    # SSD Train tab says so when opened, and the book's recipe picks them; FCN says how to fetch VOC.
    from vision_core.data.bananas import generate_bananas

    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path))  # where vision_core.fetch looks, read per call
    generate_bananas(tmp_path / "book" / "banana-detection", num_train=4, num_val=2)
    page = opened
    page.get_by_role("tab", name="SSD").click()
    page.get_by_role("tab", name="Train").click()
    data = page.locator("#ssd-data")
    expect(data).to_contain_text("The book's bananas are on this machine.")
    expect(data.get_by_label("Offline stand-in (generated)")).to_be_checked()
    page.locator("#ssd-book-recipe").click()
    expect(data.get_by_label("The book's bananas (fetched)")).to_be_checked()
    expect(page.locator("#ssd-recipe-note")).to_contain_text("It trains on the book's bananas, which are on this machine.")

    page.get_by_role("tab", name="Segmentation").click()
    page.get_by_role("tab", name="Train FCN").click()
    expect(page.locator("#seg-fcn-data")).to_contain_text("python -m vision_core fetch voc2012")
    page.locator("#seg-fcn-book-recipe").click()
    expect(page.locator("#seg-fcn-data").get_by_label("Offline synthetic set")).to_be_checked()
    expect(page.locator("#seg-fcn-recipe-note")).to_contain_text("so it trains on the offline synthetic set")
    assert_no_errors(page)
