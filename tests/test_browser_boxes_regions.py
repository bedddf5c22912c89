"""Issue 17 in headless Chromium, Boxes and Regions: what broke a learner's trust, done by hand.

Item 3: switching format and units never changes the boxes. Item 6: the box table has a working
"Add row" and no "Delete column". Item 7: the box table fits a phone. Item 2: the "Proposal to pool"
slider keeps where it is dragged to, and a click on the picture picks a proposal. Item 9: each view
has one "Try this" line and its formula typeset with the current numbers.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PHONE, assert_no_errors, click_picture

pytestmark = pytest.mark.browser


def cell(page: Page, row: int, col: int):
    return page.locator("#boxes-table").get_by_test_id(f"cell-{row}-{col}")


def exactly(text: str) -> re.Pattern:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def edit_cell(page: Page, row: int, col: int, text: str):
    target = cell(page, row, col)
    target.dblclick()
    editor = target.locator("input, textarea").first
    expect(editor).to_be_focused()
    editor.fill(text)
    editor.press("Enter")
    # The server rewrites the table after each edit: the next edit waits for that (on a busy machine
    # a double click on a table that was being replaced lost its editor, and the test hung).
    expect(target).to_contain_text(text)
    expect(page.locator("[data-testid=status-tracker]:not(.hide)")).to_have_count(0)


# --- Boxes ---------------------------------------------------------------------------------------

def test_boxes_center_normalised_pixels_corner_gives_512_back_and_flags_nothing(opened: Page):
    # The sequence: it turned the astronaut's 512 into 512.02 and flagged the box as outside.
    expect(cell(opened, 0, 4)).to_have_text(exactly("512"))
    opened.get_by_role("radio", name="center (cx, cy, w, h)").check()
    expect(cell(opened, 0, 1)).to_have_text(exactly("193"))
    opened.get_by_role("radio", name="normalised").check()
    expect(cell(opened, 0, 1)).to_have_text(exactly("0.377"))
    opened.get_by_role("radio", name="pixels").check()
    expect(cell(opened, 0, 1)).to_have_text(exactly("193"))  # not 193.02
    expect(cell(opened, 0, 4)).to_have_text(exactly("498"))  # h, not 498.02
    opened.get_by_role("radio", name="corner (x1, y1, x2, y2)").check()
    expect(opened.locator("#boxes-table").get_by_test_id("header-4")).to_have_text(exactly("y2"))
    for col, value in enumerate(["20", "14", "366", "512"], start=1):
        expect(cell(opened, 0, col)).to_have_text(exactly(value))
    # The drawing after the last switch: nothing flagged, and the round trip line says what happened.
    summary = opened.locator("#boxes-summary")
    expect(summary).to_contain_text("table in corner, pixels")
    expect(summary).to_contain_text("max |Δ| = 0 px")
    expect(summary).not_to_contain_text("flagged")
    expect(opened.locator("#boxes-problems")).not_to_contain_text("outside")
    assert_no_errors(opened)


def test_boxes_add_row_adds_a_row_that_is_drawn(opened: Page):
    intro = opened.get_by_text(re.compile(r"Bounding boxes.*d2l 14\.3"))
    expect(intro).to_contain_text("Add row")
    expect(intro).not_to_contain_text("+ button")  # there is none
    expect(cell(opened, 2, 0)).to_have_count(0)
    opened.get_by_role("button", name="Add row").click()
    expect(cell(opened, 2, 0)).to_be_visible()
    for col, value in enumerate(["moon", "400", "20", "480", "90"]):
        edit_cell(opened, 2, col, value)
    expect(opened.locator("#boxes-summary")).to_contain_text("3 boxes drawn")
    click_picture(opened, "boxes-figure", 440, 55)  # inside the shuttle's box and the moon's
    expect(opened.locator("#boxes-point")).to_contain_text("inside row 2 (shuttle), row 3 (moon)")
    assert_no_errors(opened)


def test_boxes_menus_offer_no_delete_column(opened: Page):
    table = opened.locator("#boxes-table")
    target = cell(opened, 0, 2)
    target.click()
    target.get_by_role("button", name="Open cell menu").click()
    menu = opened.locator(".cell-menu")
    expect(menu).to_contain_text("Add row below")
    expect(menu).not_to_contain_text("Delete column")
    expect(menu).not_to_contain_text("Add column")
    opened.keyboard.press("Escape")
    header = table.get_by_test_id("header-2")
    header.click()
    expect(header.get_by_role("button", name="Open cell menu")).to_have_count(0)
    expect(table.get_by_test_id("header-4")).to_have_text(exactly("y2"))  # still five columns
    assert_no_errors(opened)


def test_boxes_table_fits_a_phone(open_page):
    page = open_page(viewport=PHONE)
    page.get_by_role("radio", name="normalised").check()  # the widest numbers: 0.0391
    expect(cell(page, 0, 1)).to_have_text(exactly("0.0391"))
    fit = page.evaluate("""() => {
        const view = document.querySelector('#boxes-table .virtual-table-viewport');
        const cut = Array.from(document.querySelectorAll('#boxes-table [data-testid^="cell-"] span'))
            .filter(s => s.scrollWidth > s.clientWidth + 1).map(s => s.textContent.trim());
        return {wider: view.scrollWidth - view.clientWidth, page: document.documentElement.scrollWidth, cut};
    }""")
    assert fit == {"wider": 0, "page": PHONE["width"], "cut": []}, fit


def test_boxes_try_this_and_formula_with_the_first_box(opened: Page):
    expect(opened.locator("#boxes-try")).to_contain_text("Try this:")
    tex = opened.locator("#boxes-formula annotation")  # KaTeX keeps the typeset TeX here
    expect(opened.locator("#boxes-formula .katex-display")).to_be_visible()
    expect(tex).to_contain_text(r"\frac{20 + 366}{2}")
    expect(tex).to_contain_text(r"(193,\ 263)")
    edit_cell(opened, 0, 1, "40")  # the astronaut's x1
    expect(tex).to_contain_text(r"\frac{40 + 366}{2}")
    expect(tex).to_contain_text(r"(203,\ 263)")
    assert_no_errors(opened)


# --- Regions -------------------------------------------------------------------------------------

def open_regions(page: Page):
    page.get_by_role("tab", name="Regions").click()
    expect(page.locator("#regions-summary")).to_contain_text(re.compile(r"proposed \*?\*?\d+ regions"))
    return page.locator("#regions-index input[type=range]")


def test_regions_dragging_the_proposal_slider_is_never_written_back(opened: Page):
    slider = open_regions(opened)
    # Every value the slider takes, as the page shows it, from now on.
    opened.evaluate("""() => { const r = document.querySelector('#regions-index input[type=range]');
        window.vlSeen = [r.value]; window.vlDragging = true;
        const poll = () => { if (window.vlSeen.at(-1) !== r.value) window.vlSeen.push(r.value);
                             if (window.vlDragging) requestAnimationFrame(poll); };
        poll(); }""")
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2

    def x_of(value):  # the thumb's centre for ``value`` on the 0..29 track
        return box["x"] + 8 + (box["width"] - 16) * value / 29

    summary = opened.locator("#regions-summary")
    opened.mouse.move(x_of(0), y)
    opened.mouse.down()
    opened.mouse.move(x_of(5), y, steps=3)
    first = slider.input_value()
    expect(summary).to_contain_text(f"Proposal {first}:")  # the server answered while the mouse is down
    for value in (10, 15, 20):  # moves faster than the server answers: old answers arrive mid-drag
        opened.mouse.move(x_of(value), y, steps=2)
    middle = slider.input_value()
    expect(summary).to_contain_text(f"Proposal {middle}:")
    opened.mouse.move(x_of(25), y, steps=3)
    released = slider.input_value()
    opened.mouse.up()
    expect(summary).to_contain_text(f"Proposal {released}:")
    expect(opened.locator("#regions-table")).to_contain_text("col 1")
    seen = [int(v) for v in opened.evaluate("() => { window.vlDragging = false; return window.vlSeen; }")]
    assert int(released) >= 20 and seen[-1] == int(released), seen
    assert seen == sorted(seen), f"the slider jumped back while dragged: {seen}"
    expect(slider).to_have_value(released)
    assert_no_errors(opened)


def test_regions_click_on_the_picture_picks_a_proposal(opened: Page):
    import torch

    from panels import regions as R
    from vision_core.examples import load_example

    slider = open_regions(opened)
    # The smallest of the 30 drawn proposals; a click at its centre must pick it.
    shown = R.proposals_for(load_example("chelsea"), "fast")[0][:30]
    k = int(torch.argmin((shown[:, 2] - shown[:, 0]) * (shown[:, 3] - shown[:, 1])))
    cx, cy = ((shown[k, 0] + shown[k, 2]) / 2).item(), ((shown[k, 1] + shown[k, 3]) / 2).item()
    picture = opened.locator("#regions-figure img")
    expect(picture).to_have_js_property("complete", True)
    expect(picture).not_to_have_js_property("naturalWidth", 0)
    # Where that photo pixel is on the screen: the picture is the photo, maybe enlarged, fitted into
    # its frame (object-fit: contain, or scale-down, which never enlarges) and centred.
    at = picture.evaluate("""(img, [x, y, photoWidth]) => {
        const r = img.getBoundingClientRect(), k = img.naturalWidth / photoWidth;
        let s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
        if (getComputedStyle(img).objectFit === "scale-down") s = Math.min(s, 1);
        return {x: (r.width - img.naturalWidth * s) / 2 + x * k * s, y: (r.height - img.naturalHeight * s) / 2 + y * k * s};
    }""", [cx, cy, load_example("chelsea").shape[1]])
    picture.click(position=at)
    expect(opened.locator("#regions-summary")).to_contain_text(f"Proposal {k}:")
    expect(slider).to_have_value(str(k))
    assert_no_errors(opened)


def test_regions_try_this_and_formula_with_the_current_sizes(opened: Page):
    open_regions(opened)
    expect(opened.locator("#regions-try")).to_contain_text("Try this:")
    expect(opened.locator("#regions-formula .katex-display")).to_be_visible()
    tex = opened.locator("#regions-formula annotation")
    expect(tex).to_contain_text(r"\frac{h}{h_2}")
    expect(tex).to_contain_text(re.compile(r"\\frac\{\d+\}\{2\} \\times \\frac\{\d+\}\{2\}"))
    rows = opened.locator('input[aria-label="number input for Grid rows n (the book: 2)"]')
    rows.fill("3")
    rows.press("Enter")
    expect(opened.locator("#regions-summary")).to_contain_text("3 × 2 cells")
    expect(tex).to_contain_text(re.compile(r"\\frac\{\d+\}\{3\} \\times \\frac\{\d+\}\{2\}"))
    assert_no_errors(opened)
