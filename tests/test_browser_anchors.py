"""The Anchors tab in Chromium (issue 17): what the learner sees at each step is what has been decided by
then, the anchors view shows the feature map's grid, the chosen cell's centre and labels that do not
overlap, each view teaches with a "Try this" line and a formula with its numbers, and the Chinese page
names the sub-tabs in Chinese."""

import io
import re
import threading

import numpy as np
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from tests.conftest import HANG_GUARD_S, PHONE, assert_formulas_fit, assert_no_errors

pytestmark = pytest.mark.browser


def table_rows(page: Page, elem_id: str) -> list[list[str]]:
    """The body rows of a Dataframe, as the browser shows them (one read, so no half-updated table)."""
    return page.locator(f"#{elem_id}").evaluate(
        "e => [...e.querySelectorAll('[role=row]')].filter(r => Number(r.getAttribute('aria-rowindex')) > 1)"
        ".map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()))")


def wait_for_rows(page: Page, elem_id: str, predicate, what: str) -> list[list[str]]:
    """Poll the table until ``predicate(rows)`` holds (the table arrives after the summary on a busy machine)."""
    for _ in range(HANG_GUARD_S * 10):  # a guard against a table that never arrives, not a time limit
        rows = table_rows(page, elem_id)
        if rows and predicate(rows):
            return rows
        page.wait_for_timeout(100)
    raise AssertionError(f"{elem_id}: {what}; the table shows {rows}")


def set_step(page: Page, prefix: str, value: int) -> None:
    box = page.locator(f"#{prefix}-step input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def shown_picture(page: Page, selector: str) -> np.ndarray:
    """The picture the browser shows in ``selector`` (an <img>), fetched from the page's own URL, as RGB."""
    src = page.locator(selector).get_attribute("src")
    body = page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(np.int16)


class TextsDrawn:
    """Every text Pillow draws while active, with its bounding box, grouped by the picture it is drawn on."""

    def __init__(self, monkeypatch):
        self.lock = threading.Lock()
        self.by_picture: dict[int, list[tuple[str, tuple[int, int, int, int]]]] = {}
        text = ImageDraw.ImageDraw.text

        def recording_text(draw, xy, text_, *args, **kwargs):
            font = kwargs.get("font") if "font" in kwargs else (args[2] if len(args) > 2 else None)
            anchor = kwargs.get("anchor") if "anchor" in kwargs else (args[3] if len(args) > 3 else None)
            box = draw.textbbox(xy, text_, font=font, anchor=anchor)
            with self.lock:
                self.by_picture.setdefault(id(draw), []).append((str(text_), box))
            return text(draw, xy, text_, *args, **kwargs)

        monkeypatch.setattr(ImageDraw.ImageDraw, "text", recording_text)

    def picture_with(self, pattern: str) -> list[tuple[str, tuple[int, int, int, int]]]:
        with self.lock:
            pictures = [texts for texts in self.by_picture.values() if any(re.search(pattern, t) for t, _ in texts)]
        assert pictures, f"no picture drew a text matching {pattern!r}"
        return pictures[-1]


def overlapping(texts):
    """Pairs of texts whose boxes share a pixel."""
    return [(a, b) for i, (a, ra) in enumerate(texts) for b, rb in texts[i + 1:]
            if ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]]


def test_anchors_view_draws_the_grid_a_marker_at_the_chosen_cell_and_labels_apart(opened: Page, monkeypatch):
    from vision_core.examples import load_example

    photo = load_example("astronaut").astype(np.int16)  # the view's photo: 512 x 512, a 4 x 4 map of 128 px cells
    drawn = TextsDrawn(monkeypatch)
    opened.get_by_role("tab", name="Anchors").click()
    expect(opened.locator("#anchors-summary")).to_contain_text("Cell (row 1, column 1) of a 4 × 4 feature map")
    view = opened.locator("#anchors-view img")
    expect(view).to_have_js_property("complete", True)
    expect(view).not_to_have_js_property("naturalWidth", 0)
    before = view.get_attribute("src")
    box = view.bounding_box()
    view.click(position={"x": box["width"] * 0.95, "y": box["height"] * 0.95})  # the lower-right cell, (3, 3)
    expect(opened.locator("#anchors-summary")).to_contain_text("Cell (row 3, column 3)")
    opened.wait_for_function("([sel, old]) => { const i = document.querySelector(sel); "
                             "return i && i.src !== old && i.complete && i.naturalWidth > 0; }",
                             arg=["#anchors-view img", before])
    assert_no_errors(opened)
    picture = shown_picture(opened, "#anchors-view img")
    assert picture.shape == photo.shape
    diff = np.abs(picture - photo).mean(axis=2)  # [512, 512]: how far the view is from the plain photo

    problems = []  # all three checked, so one run names every one that fails

    # The feature map's grid: faint lines on the cell borders (x, y = 128), the photo between them.
    on_line = max(np.median(diff[:, x]) for x in (127, 128, 129))
    on_row = max(np.median(diff[y, :]) for y in (127, 128, 129))
    between = np.median(diff[:, 100])
    if not (on_line > 15 and on_row > 15 and between < 6):
        problems.append(f"no faint grid on the cell borders: median change {on_line:.1f} (x = 128), {on_row:.1f} "
                        f"(y = 128), {between:.1f} between lines (x = 100)")

    # A marker at the chosen cell's centre (448, 448), where its anchors are centred; none left at the old one.
    at_centre, at_old = diff[444:453, 444:453].mean(), diff[188:197, 188:197].mean()
    if not (at_centre > 40 and at_old < 12):
        problems.append(f"no marker at the clicked cell's centre: change {at_centre:.1f} there, {at_old:.1f} at the "
                        "previous cell's")

    # Every label of the picture readable: no two texts share a pixel (the cell's label overprinted an anchor's).
    texts = drawn.picture_with(r"^cell")
    assert {t for t, _ in texts} >= {"s=0.75, r=1", "s=0.5, r=1", "s=0.25, r=1", "s=0.75, r=2", "s=0.75, r=0.5"}
    if overlapping(texts):
        problems.append(f"labels overprint each other: {overlapping(texts)}")
    width, height = picture.shape[1], picture.shape[0]
    if not all(0 <= b[0] and b[2] <= width and 0 <= b[1] and b[3] <= height for _, b in texts):
        problems.append(f"labels leave the picture: {texts}")
    assert not problems, problems


def test_labelling_table_shows_only_what_each_step_has_decided(opened: Page):
    opened.get_by_role("tab", name="Anchors").click()
    opened.get_by_role("tab", name="Labelling").click()
    expect(opened.locator("#label-summary")).to_contain_text("Step 0 of 3")
    # Step 0: nothing decided, so no anchor shows a class, a class label or offsets yet.
    rows = wait_for_rows(opened, "label-offsets", lambda r: len(r) == 5, "five anchors")
    assert [r[1] for r in rows] == ["pending"] * 5, rows
    assert all(cell == "" for r in rows for cell in r[2:]), rows
    expect(opened.locator("#label-figure")).to_contain_text("a0: pending")

    # Step 1: the greedy pick a2 → shuttle (IoU 0.88) is decided, nothing else.
    set_step(opened, "label", 1)
    expect(opened.locator("#label-summary")).to_contain_text("Step 1 of 3")
    rows = wait_for_rows(opened, "label-offsets", lambda r: r[2][1] == "shuttle", "a2 labelled at step 1")
    assert [r[1] for r in rows] == ["pending", "pending", "shuttle", "pending", "pending"], rows
    assert rows[2][2:] == ["2", "0.154", "-0.254", "-0.4", "-0.085"], rows[2]

    # The last step: the book's labels (background, dog, cat, background, cat), as multibox_target gives them.
    opened.locator("#label-play").click()
    expect(opened.locator("#label-summary")).to_contain_text(re.compile(r"Step 3 of 3.*a4 → shuttle"))
    rows = wait_for_rows(opened, "label-offsets", lambda r: "pending" not in [x[1] for x in r], "every anchor decided")
    assert [r[1] for r in rows] == ["background", "astronaut", "shuttle", "background", "shuttle"], rows
    assert [r[2] for r in rows] == ["0", "1", "2", "0", "2"], rows
    expect(opened.locator("#label-figure")).not_to_contain_text("pending")
    assert_no_errors(opened)


def figure_labels(page: Page, elem_id: str, done: str) -> list[str]:
    """The box labels of a plotly figure as the browser holds them, once ``done`` (a JS test on the list) holds."""
    read = (f"() => {{ const p = document.querySelector('#{elem_id} .js-plotly-plot'); "
            "return p && p.layout && p.layout.annotations ? p.layout.annotations.map(a => a.text) : null; }")
    page.wait_for_function(f"() => {{ const texts = ({read})(); return texts && ({done})(texts); }}")
    return page.evaluate(f"({read})()")


def test_nms_last_step_shows_every_box_kept_or_suppressed(opened: Page):
    opened.get_by_role("tab", name="Anchors").click()
    opened.get_by_role("tab", name="NMS").click()
    expect(opened.locator("#nms-summary")).to_contain_text("Step 0 of 2")
    opened.locator("#nms-play").click()
    expect(opened.locator("#nms-summary")).to_contain_text("Step 2 of 2")
    # The last frame drawn: #3, the shuttle, is no longer waiting.
    labels = figure_labels(opened, "nms-figure", "t => t.some(x => x.startsWith('#3') && !x.endsWith('(waiting)'))")
    assert labels == ["#0 astronaut 0.90 (kept)", "#1 astronaut 0.80 (suppressed)", "#2 astronaut 0.70 (suppressed)",
                      "#3 shuttle 0.90 (kept)"], labels
    rows = wait_for_rows(opened, "nms-detections", lambda r: "pending" not in [x[1] for x in r], "every box decided")
    assert [(r[0], r[1]) for r in rows] == [("#0", "0"), ("#3", "1"), ("#1", "-1"), ("#2", "-1")], rows

    # Back at step 0 nothing is decided: the table shows no class yet.
    set_step(opened, "nms", 0)
    expect(opened.locator("#nms-summary")).to_contain_text("Step 0 of 2")
    rows = wait_for_rows(opened, "nms-detections", lambda r: [x[1] for x in r] == ["pending"] * 4, "no box decided")
    assert_no_errors(opened)


def test_each_anchor_view_has_a_try_this_line_and_its_formula_with_numbers(opened: Page):
    opened.get_by_role("tab", name="Anchors").click()
    expect(opened.locator("#anchors-try")).to_contain_text("Try this:")
    formula = opened.locator("#anchors-formula")
    expect(formula.locator(".katex").first).to_be_visible()  # typeset, not raw LaTeX
    expect(formula).to_contain_text("543.1")  # w = 0.75·√2·(4/4)·512 px, the table's width of s=0.75, r=2
    expect(formula).to_contain_text("271.5")
    expect(opened.locator("#anchors-table")).to_contain_text("543.1")

    opened.get_by_role("tab", name="Labelling").click()
    expect(opened.locator("#label-try")).to_contain_text("raise the IoU threshold to 0.7")
    set_step(opened, "label", 1)
    formula = opened.locator("#label-formula")
    expect(formula).to_contain_text("0.878")  # J(a2, shuttle) = 34,200 / (38,350 + 34,800 − 34,200)
    expect(formula).to_contain_text("34,200")
    expect(formula).to_contain_text("0.154")  # a2's offset x, the table's
    expect(formula.locator(".katex").first).to_be_visible()

    opened.get_by_role("tab", name="NMS").click()
    expect(opened.locator("#nms-try")).to_contain_text("raise the NMS threshold to 0.7")
    set_step(opened, "nms", 1)
    formula = opened.locator("#nms-formula")
    expect(formula).to_contain_text("0.841")  # IoU(B0, B1) > 0.5: suppressed
    expect(formula).to_contain_text("suppressed")
    expect(formula.locator(".katex").first).to_be_visible()
    assert_no_errors(opened)


def test_chinese_page_names_the_anchor_sub_tabs_and_teaches_in_chinese(open_page):
    page = open_page(locale="zh-CN")
    page.get_by_role("tab", name="锚框", exact=True).click()
    # The sub-tabs not yet opened are named in Chinese too.
    expect(page.get_by_role("tab", name="标注锚框")).to_be_visible()
    expect(page.get_by_role("tab", name="非极大值抑制")).to_be_visible()
    expect(page.get_by_role("tab", name="Labelling")).to_have_count(0)
    expect(page.locator("#anchors-try")).to_contain_text("试一试")
    page.get_by_role("tab", name="标注锚框").click()
    expect(page.locator("#label-try")).to_contain_text("交并比阈值调到 0.7")
    assert_no_errors(page)


def test_anchor_formulas_fit_a_phone(open_page):
    """No formula of the three views runs past the right edge of a 390 px page, at the steps that show
    the longest ones (labelling's last step: the threshold rule, the IoU and four offsets)."""
    page = open_page(viewport=PHONE)
    page.get_by_role("tab", name="Anchors").click()
    assert_formulas_fit(page, "#anchors-formula")
    page.get_by_role("tab", name="Labelling").click()
    set_step(page, "label", 3)
    expect(page.locator("#label-formula")).to_contain_text("0.686")
    assert_formulas_fit(page, "#label-formula")
    page.get_by_role("tab", name="NMS").click()
    set_step(page, "nms", 1)
    expect(page.locator("#nms-formula")).to_contain_text("0.841")
    assert_formulas_fit(page, "#nms-formula")
    assert_no_errors(page)
