"""The dashboard in headless Chromium (Debian's, via Playwright): every tab, the Boxes panel by hand.

Screenshots land in docs/ for the README. Waits are on regexes, never on fixed sleeps alone.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from panels import PANELS
from panels.figures import color_for
from tests.conftest import ROOT, assert_no_errors, click_picture, picture_rgb, shown_picture, shown_text, watch_text
from vision_core.examples import EXAMPLES

pytestmark = pytest.mark.browser
DOCS = ROOT / "docs"


def near(rgb: list[int], color: str, tolerance: int = 60) -> bool:
    """``rgb`` as the browser decoded it is ``color``, give or take WebP's loss on a 3 px outline."""
    from PIL import ImageColor

    return all(abs(a - b) <= tolerance for a, b in zip(rgb, ImageColor.getrgb(color)))


def edit_cell(page: Page, table: str, row: int, col: int, text: str):
    cell = page.locator(table).get_by_test_id(f"cell-{row}-{col}")
    cell.dblclick()
    editor = cell.locator("input, textarea").first
    expect(editor).to_be_focused()
    editor.fill(text)  # replaces the cell's text, whatever the caret did
    editor.press("Enter")


def test_every_tab_opens_without_errors(opened: Page, app_url):
    for panel in PANELS:
        opened.get_by_role("tab", name=panel.TITLE).click()
        expect(opened.get_by_role("tab", name=panel.TITLE)).to_have_attribute("aria-selected", "true")
        # Nothing pending (a tab's pictures come when it opens). Not "networkidle": a page with a
        # gr.State keeps Gradio's heartbeat request open, so its network is never idle.
        expect(opened.locator("[data-testid=status-tracker]:not(.hide)")).to_have_count(0)
        assert_no_errors(opened)
        opened.screenshot(path=str(DOCS / f"{panel.TAB_ID}.png"), full_page=True)
    outside = [u for u in opened.requests if not (u.startswith(app_url) or u.startswith(("data:", "blob:")))]
    assert outside == [], f"the page reached outside the server: {outside[:5]}"


def test_boxes_edit_a_cell_and_the_figure_follows(opened: Page):
    # The astronaut photo is 512 x 512 and drawn as it is: the picture's pixels are the photo's.
    before = shown_picture(opened, "boxes-figure").get_attribute("src")
    assert near(picture_rgb(opened, "boxes-figure", 471, 150), color_for(1))  # the shuttle's right edge, x2 = 472
    click_picture(opened, "boxes-figure", 490, 150)
    expect(opened.locator("#boxes-point")).to_contain_text("inside no box drawn")

    edit_cell(opened, "#boxes-table", 1, 3, "500")  # shuttle's x2
    expect(opened.locator("#boxes-xyxy")).to_contain_text("500")
    expect(opened.locator("#boxes-figure img")).not_to_have_attribute("src", before)
    assert near(picture_rgb(opened, "boxes-figure", 499, 150), color_for(1))  # drawn at its new x2
    click_picture(opened, "boxes-figure", 490, 150)
    expect(opened.locator("#boxes-point")).to_contain_text(re.compile(r"normalised \(0\.95\d, 0\.29\d\) · inside row 2 \(shuttle\)"))
    assert_no_errors(opened)

    # A word in a number cell: that row is flagged with the reason, the other is still drawn.
    edit_cell(opened, "#boxes-table", 1, 1, "abc")
    expect(opened.locator("#boxes-problems")).to_contain_text(re.compile(r"x1 is not a number \('abc'\)"))
    expect(opened.locator("#boxes-summary")).to_contain_text(re.compile(r"1 box drawn.*1 row not drawn"))
    click_picture(opened, "boxes-figure", 360, 150)  # inside the astronaut's box and where the shuttle's was
    expect(opened.locator("#boxes-point")).to_contain_text(re.compile(r"· inside row 1 \(astronaut\)\s*$"))
    assert_no_errors(opened)
    opened.screenshot(path=str(DOCS / "boxes-flagged.png"), full_page=True)


def test_boxes_switching_format_rewrites_the_table(opened: Page):
    opened.get_by_role("radio", name="center (cx, cy, w, h)").check()
    expect(opened.locator("#boxes-table")).to_contain_text(re.compile(r"cx.*cy.*w.*h", re.S))
    expect(opened.locator("#boxes-table").get_by_test_id("cell-0-1")).to_have_text("193")  # (20 + 366) / 2
    opened.get_by_role("radio", name="normalised").check()
    expect(opened.locator("#boxes-table").get_by_test_id("cell-0-1")).to_have_text(re.compile(r"0\.37\d*"))
    # the boxes did not move: the corner table still holds the same box, in normalised units
    expect(opened.locator("#boxes-xyxy")).to_contain_text(re.compile(r"0\.039\d*"))  # 20 / 512
    assert_no_errors(opened)


def test_boxes_choose_another_example(opened: Page):
    opened.locator("#boxes-figure").scroll_into_view_if_needed()
    before = shown_picture(opened, "boxes-figure").get_attribute("src")
    dropdown = opened.get_by_label("Example photo (offline)")
    dropdown.click()
    opened.get_by_role("option", name="coffee").click()
    expect(opened.locator("#boxes-caption")).to_contain_text("espresso")
    expect(opened.locator("#boxes-summary")).to_contain_text("3 boxes drawn")
    expect(opened.locator("#boxes-figure img")).not_to_have_attribute("src", before)
    (_, x1, y1, x2, y2), *_ = EXAMPLES["coffee"].boxes
    click_picture(opened, "boxes-figure", (x1 + x2) / 2, (y1 + y2) / 2)
    expect(opened.locator("#boxes-point")).to_contain_text(re.compile(r"inside row 1 \(cup\)"))
    assert_no_errors(opened)


def test_boxes_upload_a_photo(opened: Page, tmp_path):
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.new("RGB", (640, 200), (30, 120, 200)).save(path)
    opened.locator("#boxes-photo input[type=file]").set_input_files(str(path))
    expect(opened.locator("#boxes-summary")).to_contain_text(re.compile(r"image 640 × 200 px"))
    # the astronaut box (y2 = 512) now crosses the short photo's lower edge: flagged, drawn clipped
    expect(opened.locator("#boxes-problems")).to_contain_text("extends outside the image (640 x 200 px): drawn clipped")
    # drawn twice as large (legible outlines and labels); a click still reads the photo's own pixels
    expect(opened.locator("#boxes-figure img")).to_have_js_property("naturalWidth", 1280)
    click_picture(opened, "boxes-figure", 2 * 100, 2 * 150)
    point = opened.locator("#boxes-point")
    expect(point).to_contain_text(re.compile(r"of 640 × 200 · normalised .* · inside row 1 \(astronaut\)"))
    x, y = map(int, re.search(r"Pixel \(x (\d+), y (\d+)\)", point.inner_text()).groups())
    assert abs(x - 100) <= 2 and abs(y - 150) <= 2, (x, y)  # a click lands within a screen pixel, 2 photo pixels here
    assert_no_errors(opened)


def test_anchors_sections_click_and_play(opened: Page):
    opened.get_by_role("tab", name="Anchors").click()
    expect(opened.locator("#anchors-summary")).to_contain_text("Cell (row 1, column 1) of a 4 × 4 feature map")
    # a click near the lower-right corner of the photo selects the lower-right cell; the picture
    # arrives after the summary (a second or more on a busy machine), and a person clicks what they see
    view = opened.locator("#anchors-view img")
    expect(view).to_have_js_property("complete", True)
    expect(view).not_to_have_js_property("naturalWidth", 0)
    box = view.bounding_box()
    view.click(position={"x": box["width"] * 0.95, "y": box["height"] * 0.95})
    expect(opened.locator("#anchors-summary")).to_contain_text("Cell (row 3, column 3)")
    expect(opened.locator("#anchors-table")).to_contain_text("s=0.75, r=2")
    assert_no_errors(opened)

    opened.get_by_role("tab", name="Labelling").click()
    expect(opened.locator("#label-summary")).to_contain_text("Step 0 of 3")
    watch_text(opened, "label-summary")
    opened.locator("#label-play").click()
    expect(opened.locator("#label-summary")).to_contain_text(re.compile(r"Step 3 of 3.*a4 → shuttle"))
    shown_text(opened, "label-summary", r"Greedy step 1: .*0\.88")  # on the way there
    expect(opened.locator("#label-offsets")).to_contain_text("background")
    assert_no_errors(opened)
    opened.screenshot(path=str(DOCS / "anchors-labelling.png"), full_page=True)

    opened.get_by_role("tab", name="NMS").click()
    expect(opened.locator("#nms-summary")).to_contain_text("Step 0 of 2")
    watch_text(opened, "nms-summary")
    opened.locator("#nms-play").click()
    expect(opened.locator("#nms-summary")).to_contain_text(re.compile(r"Step 2 of 2"))
    shown_text(opened, "nms-summary", r"Step 1: keep #0 .*suppresses #1")
    expect(opened.locator("#nms-detections")).to_contain_text("-1")
    assert_no_errors(opened)
    opened.screenshot(path=str(DOCS / "anchors-nms.png"), full_page=True)


def test_regions_pick_a_proposal(opened: Page):
    opened.get_by_role("tab", name="Regions").click()
    expect(opened.locator("#regions-summary")).to_contain_text(re.compile(r"proposed \*?\*?\d+ regions"))
    slider = opened.locator("#regions-index input[type=number]")
    slider.fill("5")
    slider.press("Enter")
    expect(opened.locator("#regions-summary")).to_contain_text("Proposal 5:")
    expect(opened.locator("#regions-table")).to_contain_text("col 1")
    assert_no_errors(opened)


def set_slider(page: Page, label: str, value):
    box = page.get_by_label(label, exact=True).first  # the slider's number box
    box.fill(str(value))
    box.press("Enter")


def test_ssd_detect_and_train(opened: Page):
    opened.get_by_role("tab", name="SSD").click()
    expect(opened.locator("#ssd-summary")).to_contain_text(re.compile(r"\d+ detections? with score ≥ 0\.9 · [\d.]+ ms"))
    expect(opened.locator("#ssd-summary")).to_contain_text("shipped checkpoint")
    opened.locator("#ssd-detect-btn").click()
    expect(opened.locator("#ssd-table")).to_contain_text("score")
    assert_no_errors(opened)

    opened.get_by_role("tab", name="Train").click()
    set_slider(opened, "number input for Epochs (the book: 20)", 2)
    set_slider(opened, "number input for Training images (of 1,000)", 20)
    set_slider(opened, "number input for Batch size (the book: 32)", 10)
    opened.locator("#ssd-train-btn").click()
    expect(opened.locator("#ssd-train-status")).to_contain_text(re.compile(r"Done\..*Epoch 2/2"))
    expect(opened.locator("#ssd-preview img")).to_be_visible()
    expect(opened.locator("#ssd-stop-btn")).to_be_disabled()  # the run is over: Start back, Stop idle
    expect(opened.locator("#ssd-train-btn")).to_be_enabled()
    assert_no_errors(opened)
    opened.screenshot(path=str(DOCS / "ssd-train.png"), full_page=True)


def test_segmentation_transposed_bilinear_and_fcn(opened: Page):
    opened.get_by_role("tab", name="Segmentation").click()
    expect(opened.locator("#seg-trans-formula")).to_contain_text("Y is 3 × 3")
    expect(opened.locator("#seg-trans-output")).to_contain_text("12")
    opened.locator("#seg-trans-play").click()
    expect(opened.locator("#seg-trans-step-summary")).to_contain_text(
        re.compile(r"Step 4 of 4\. Input cell X\[1, 1\] = 3"))
    expect(opened.locator("#seg-trans-running")).to_contain_text("12")
    expect(opened.locator("#seg-trans-conv-check")).to_contain_text("max |difference| = 0")
    assert_no_errors(opened)
    opened.screenshot(path=str(DOCS / "segmentation-transposed.png"), full_page=True)

    opened.get_by_role("tab", name="Bilinear upsampling").click()
    expect(opened.locator("#seg-bilinear-summary")).to_contain_text("input 451 × 300 px → output 902 × 600 px")
    set_slider(opened, "number input for Kernel size k (the book's 2× demo: 4)", 3)
    expect(opened.locator("#seg-bilinear-kernel-text")).to_contain_text("centre = 1 (on a cell)")
    opened.wait_for_function("() => document.querySelectorAll('#seg-bilinear-view img')[1]?.naturalWidth === 902")
    assert_no_errors(opened)
    opened.screenshot(path=str(DOCS / "segmentation-bilinear.png"), full_page=True)

    opened.get_by_role("tab", name="FCN", exact=True).click()  # segmented when the page was built
    expect(opened.locator("#seg-fcn-summary")).to_contain_text(re.compile(r"class(es)? found .*shipped checkpoint"))
    expect(opened.locator("#seg-fcn-summary")).to_contain_text(re.compile(r"mean IoU 0\.9\d"))
    expect(opened.locator("#seg-fcn-shares")).to_contain_text("share (%)")
    expect(opened.locator("#seg-fcn-reference")).to_contain_text("Reference model for real photos")
    assert_no_errors(opened)
    opened.screenshot(path=str(DOCS / "segmentation-fcn.png"), full_page=True)


def test_segmentation_train_then_segment(opened: Page):
    opened.get_by_role("tab", name="Segmentation").click()
    opened.get_by_role("tab", name="Train FCN").click()
    set_slider(opened, "number input for Epochs (the book: 5)", 1)
    set_slider(opened, "number input for Training images (synthetic set 600, VOC 2012 1,464)", 8)
    set_slider(opened, "number input for Batch size (the book: 32)", 4)
    opened.get_by_label("64 × 96 (a quick look)").check()
    opened.locator("#seg-fcn-train-btn").click()
    expect(opened.locator("#seg-fcn-train-status")).to_contain_text(re.compile(r"Done\..*Epoch 1/1"))
    expect(opened.locator("#seg-fcn-preview img")).to_be_visible()
    expect(opened.locator("#seg-fcn-stop-btn")).to_be_disabled()  # the run is over: Start back, Stop idle
    expect(opened.locator("#seg-fcn-train-btn")).to_be_enabled()
    assert_no_errors(opened)
    opened.screenshot(path=str(DOCS / "segmentation-train.png"), full_page=True)

    opened.get_by_role("tab", name="FCN", exact=True).click()
    opened.locator("#seg-fcn-btn").click()
    expect(opened.locator("#seg-fcn-summary")).to_contain_text(
        re.compile(r"class(es)? found .* your network, trained here"))
    expect(opened.locator("#seg-fcn-shares")).to_contain_text("share (%)")
    expect(opened.locator("#seg-fcn-overlay img")).to_be_visible()
    assert_no_errors(opened)


def test_style_transfer_runs_streams_and_keeps_the_result(opened: Page):
    opened.get_by_role("tab", name="Style transfer").click()
    expect(opened.locator("#style-network-note")).to_contain_text("Network: EfficientNet-Lite0 (ImageNet; offline)")
    expect(opened.locator("#style-network-note")).to_contain_text("vgg19-dcbb9e9d.pth")
    before = opened.locator("#style-style img").get_attribute("src")
    opened.get_by_label("Style image").click()
    opened.get_by_role("option", name="swirl").click()
    expect(opened.locator("#style-style img")).not_to_have_attribute("src", before)  # the swirl is in
    set_slider(opened, "number input for Steps (the book: 500)", 120)
    opened.locator("#style-start-btn").click()
    # A frame while it runs; loading the network first can outlast the default wait on a busy machine.
    expect(opened.locator("#style-status")).to_contain_text(re.compile(r"Step \d+/120"))
    expect(opened.locator("#style-status")).to_contain_text(re.compile(r"Done\. Step 120/120"))
    expect(opened.locator("#style-live img")).to_be_visible()
    expect(opened.locator("#style-result")).to_contain_text(".png")
    opened.wait_for_function("() => document.querySelector('#style-curves .js-plotly-plot')?.data?.length === 3")
    expect(opened.locator("#style-stop-btn")).to_be_disabled()  # the run is over: Stop idle
    assert_no_errors(opened)
    opened.screenshot(path=str(DOCS / "style-transfer.png"), full_page=True)
    # Moving a slider after a run changes the settings only: the result stays.
    set_slider(opened, "number input for Learning rate (the book: 0.3)", 0.3)
    opened.locator("#style-book-btn").click()
    expect(opened.get_by_label("number input for Learning rate (the book: 0.3)")).to_have_value("0.3")
    expect(opened.locator("#style-status")).to_contain_text("Done. Step 120/120")
    expect(opened.locator("#style-live img")).to_be_visible()
    expect(opened.locator("#style-result")).to_contain_text(".png")
    assert_no_errors(opened)


def test_switching_the_page_to_chinese(opened: Page):
    # Gradio's own i18n: the Settings panel's Language menu switches every translated text, and
    # the page's script (app.PAGE_JS) the titles of tabs not opened yet (issue 17, item 8).
    expect(opened.get_by_role("tab", name="Style transfer")).to_be_visible()
    opened.get_by_role("button", name="Settings").click()
    opened.get_by_role("combobox", name="Language").click()
    opened.get_by_role("option", name="简体中文").click()
    opened.locator("[role=dialog] button").first.click()  # close the Settings panel
    expect(opened.locator("#vl-header")).to_contain_text("运行于")
    expect(opened.get_by_role("tab", name="边界框")).to_be_visible()
    expect(opened.get_by_test_id("block-info").filter(has_text="输入格式")).to_be_visible()  # the Boxes radio's label
    opened.get_by_role("tab", name="风格迁移").click()  # titled in Chinese before it was ever opened
    expect(opened.locator("#style-start-btn")).to_have_text("开始")
    expect(opened.get_by_text("内容权重（书中：1）")).to_be_visible()
    expect(opened.get_by_text("Content weight (the book: 1)")).to_have_count(0)
    assert_no_errors(opened)
    opened.screenshot(path=str(DOCS / "style-zh.png"), full_page=True)
