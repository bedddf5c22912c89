"""Issue 17 in the browser, SSD and Segmentation: what a learner sees must explain itself.

SSD Detect says why a detection list is empty, draws its labels readably, forgets the example's
name once a picture is uploaded; SSD Architecture shows its picture when opened; the FCN offers a
mask-only view; every view of these two tabs has a "Try this" line and its formula typeset with
the current numbers (KaTeX keeps each formula's TeX source in an <annotation>, read here).
"""

import io
import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.conftest import PHONE, assert_formulas_fit, assert_no_errors

pytestmark = pytest.mark.browser
BOX_RED = (198, 40, 40)  # panels.figures.color_for(2), SSD's box colour: #c62828


def set_slider(page: Page, label: str, value: float) -> None:
    box = page.get_by_label(f"number input for {label}", exact=True).first  # the slider's number box
    box.fill(str(value))
    box.press("Enter")


def tex(page: Page, selector: str) -> str:
    """The TeX source of every formula KaTeX typeset in ``selector``, joined (empty when none is)."""
    return " ".join(page.locator(f"{selector} annotation").all_text_contents())


def expect_tex(page: Page, selector: str, pattern: str) -> None:
    """Wait until a formula typeset in ``selector`` matches ``pattern`` (a regex on its TeX)."""
    page.wait_for_function(
        """([sel, pat]) => Array.from(document.querySelectorAll(sel + ' annotation'))
                               .some(a => new RegExp(pat).test(a.textContent))""",
        arg=[selector, pattern])


def shown_picture(page: Page, selector: str) -> np.ndarray:
    """The picture the page shows in ``selector``'s <img>, fetched as the browser got it, ``uint8 [H, W, 3]``."""
    src = page.locator(f"{selector} img").first.get_attribute("src")
    url = page.evaluate("s => new URL(s, location.href).href", src)
    return np.asarray(Image.open(io.BytesIO(page.request.get(url).body())).convert("RGB"))


def luminance(rgb: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb, float) / 255
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return c @ [0.2126, 0.7152, 0.0722]


def contrast(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """WCAG 2 contrast ratio of colours ``a`` and ``b`` (broadcast, ``[..., 3]``)."""
    la, lb = luminance(a), luminance(b)
    return (np.maximum(la, lb) + 0.05) / (np.minimum(la, lb) + 0.05)


def cell(page: Page, table: str, row: int, col: int):
    return page.locator(table).get_by_test_id(f"cell-{row}-{col}")


def first_row(page: Page) -> list[float]:
    """The first detection of the SSD table: class, score, x1, y1, x2, y2."""
    return [float(cell(page, "#ssd-table", 0, j).inner_text()) for j in range(6)]


def open_ssd(page: Page) -> None:
    page.get_by_role("tab", name="SSD").click()
    expect(page.locator("#ssd-summary")).to_contain_text(re.compile(r"\d+ detections? with score ≥ 0\.9"))


# --- SSD Detect ------------------------------------------------------------------------------------------

def red_pixels(picture: np.ndarray) -> tuple[int, int]:
    """Pixels of the SSD box colour at full strength, and reddish ones (that colour blended into a photo)."""
    full = int((np.linalg.norm(picture.astype(float) - BOX_RED, axis=2) < 40).sum())
    reddish = picture[..., 0].astype(int) - np.maximum(picture[..., 1], picture[..., 2]) > 50
    return full, int(reddish.sum()) - full


def test_ssd_explains_an_empty_detection_list(opened: Page, tmp_path):
    open_ssd(opened)
    solid_full, solid_blend = red_pixels(shown_picture(opened, "#ssd-view"))  # the detection, drawn solid
    set_slider(opened, "Score threshold (the book: 0.9)", 1)  # above every score
    expect(opened.locator("#ssd-summary")).to_contain_text(
        re.compile(r"0 detections with score ≥ 1 — the best score is 0\.\d\d+, below the threshold 1: lower the "
                   r"threshold to 0\.\d\d or less to see that box\. The faded dashed box on the picture is that "
                   r"best candidate: it is not a detection"))
    # The picture is not left bare: the best candidate is drawn, faded (blended, not full strength).
    faded_full, faded_blend = red_pixels(shown_picture(opened, "#ssd-view"))
    assert solid_full > 300 and faded_full < 0.05 * solid_full and faded_blend > 0.5 * solid_full, (
        solid_full, solid_blend, faded_full, faded_blend)

    # A picture without bananas: nothing at all, even at threshold 0, and the page says why.
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((256, 320, 3), 128, np.uint8)).save(path)
    opened.locator("#ssd-image input[type=file]").set_input_files(str(path))
    # The upload's own detection, still at threshold 1 (test_browser_rerun checks that a threshold
    # moved while it runs is answered after it).
    expect(opened.locator("#ssd-summary")).to_contain_text("0 detections with score ≥ 1 — no anchor reaches")
    set_slider(opened, "Score threshold (the book: 0.9)", 0)
    expect(opened.locator("#ssd-summary")).to_contain_text(
        re.compile(r"0 detections with score ≥ 0 — no anchor reaches a banana probability of 0\.01 \(the best: "
                   r"[\d.e-]+\), so multibox_detection labels every anchor background"))
    assert_no_errors(opened)


def test_ssd_labels_are_readable_on_the_photo(opened: Page):
    open_ssd(opened)
    expect(cell(opened, "#ssd-table", 0, 1)).to_have_count(1)
    expect(cell(opened, "#ssd-table", 1, 1)).to_have_count(0)  # one banana, one detection
    _, score, x1, y1, x2, _ = first_row(opened)
    picture = shown_picture(opened, "#ssd-view")
    scale = picture.shape[1] / 256  # the 256 px banana is drawn enlarged
    left, top, right = round(x1 * scale), round(y1 * scale), round(x2 * scale)
    # Around the box's upper-left corner, where a label goes: rows in which the box's colour runs at
    # least 40 px wide are a filled label tab (or the box's 2 px top edge), not text on the photo.
    window = picture[max(top - 40, 0):top + 40, max(left - 4, 0):min(left + 70, right + 30)].astype(float)
    red = np.linalg.norm(window - BOX_RED, axis=2) < 60  # webp blurs colours a little
    tab_rows = window[red.sum(axis=1) >= 40]
    assert len(tab_rows) >= 10, (f"the label 'banana {score:.2f}' has no filled background: only {len(tab_rows)} "
                                 "rows of its box's colour at its corner (its text is drawn straight on the photo)")
    # Inside the tab, the text's pixels stand out from the box colour at least 3:1 (AA for 16 px text
    # is 4.5:1 for the colours drawn; webp's blur softens the thin strokes it measures here).
    text = tab_rows.reshape(-1, 3)[np.linalg.norm(tab_rows.reshape(-1, 3) - BOX_RED, axis=1) > 60]
    assert len(text) > 30, "no text in the label's tab"
    assert np.percentile(contrast(text, np.array(BOX_RED)), 90) >= 3


def test_uploading_a_picture_clears_the_example_name(opened: Page, tmp_path):
    open_ssd(opened)
    dropdown = opened.get_by_label("Example (offline validation image)")
    expect(dropdown).to_have_value("banana (validation #2)")
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(path)
    opened.locator("#ssd-image input[type=file]").set_input_files(str(path))
    expect(opened.locator("#ssd-summary")).to_contain_text("0 detections with score ≥ 0.9")
    expect(dropdown).to_have_value("")  # no banana named while the upload is shown
    expect(opened.locator("#ssd-summary")).to_contain_text("0 detections")  # and the example was not loaded again
    # Choosing an example still loads it.
    dropdown.click()
    opened.get_by_role("option", name="banana (validation #4)").click()
    expect(dropdown).to_have_value("banana (validation #4)")
    expect(opened.locator("#ssd-summary")).to_contain_text(re.compile(r"\b1 detection with score ≥ 0\.9"))
    assert_no_errors(opened)


# --- SSD Architecture -----------------------------------------------------------------------------------

def test_ssd_architecture_shows_its_picture_when_opened(opened: Page):
    open_ssd(opened)
    opened.get_by_role("tab", name="Architecture").click()
    # No button pressed: the anchors of stage 1 are drawn as the section opens.
    opened.wait_for_function("() => document.querySelector('#ssd-anchor-view img')?.naturalWidth === 512")
    expect_tex(opened, "#ssd-arch-formula", r"= 1361 \\cdot 4 = 5444")
    expect_tex(opened, "#ssd-arch-formula", r"h_1 w_1.* = 32 \\cdot 32 \\cdot 4 = 4096")
    expect(opened.locator("#ssd-arch-try")).to_contain_text("Try this:")
    set_slider(opened, "Show the anchors of stage", 5)
    expect_tex(opened, "#ssd-arch-formula", r"h_5 w_5.* = 1 \\cdot 1 \\cdot 4 = 4")
    assert_no_errors(opened)


def test_ssd_detect_works_out_the_best_box_from_its_anchor(opened: Page):
    open_ssd(opened)
    expect(opened.locator("#ssd-detect-try")).to_contain_text("Try this:")
    expect_tex(opened, "#ssd-summary", r"x &= x_a \+ 0\.1\\,o_x\\,w_a \\\\ &= [-\d.]+ \+ 0\.1 \\cdot")
    _, _, x1, y1, x2, y2 = first_row(opened)
    corners = re.search(r"Corners \(x1, y1, x2, y2\) = \(([-\d.]+), ([-\d.]+), ([-\d.]+), ([-\d.]+)\): the table's "
                        "first row", opened.locator("#ssd-summary").inner_text())
    assert corners, opened.locator("#ssd-summary").inner_text()
    assert np.allclose([float(v) for v in corners.groups()], [x1, y1, x2, y2], atol=0.06)


# --- Segmentation ---------------------------------------------------------------------------------------

def test_transposed_and_bilinear_formulas_follow_the_controls(opened: Page):
    opened.get_by_role("tab", name="Segmentation").click()
    expect_tex(opened, "#seg-trans-formula", r"n_h' &= \(n_h - 1\)\\,s_h - 2p_h \+ k_h")
    expect_tex(opened, "#seg-trans-formula", r"\(2 - 1\) \\cdot 1 - 2 \\cdot 0 \+ 2 = \\mathbf\{3\}")
    expect(opened.locator("#seg-trans-try")).to_contain_text("Try this:")
    set_slider(opened, "Stride s", 2)
    expect_tex(opened, "#seg-trans-formula", r"\(2 - 1\) \\cdot 2 - 2 \\cdot 0 \+ 2 = \\mathbf\{4\}")
    expect_tex(opened, "#seg-trans-conv-check", r"= \(2 - 1\) \\cdot 2 \+ 1 \+ 2 \\cdot \(2 - 1 - 0\) = 5")
    expect(cell(opened, "#seg-trans-output", 3, 3)).to_have_count(1)  # Y is 4 x 4

    opened.get_by_role("tab", name="Bilinear upsampling").click()
    expect(opened.locator("#seg-bilinear-try")).to_contain_text("Try this:")
    expect_tex(opened, "#seg-bilinear-kernel-text", r"\\frac\{5\}\{2\} \\right\\rfloor = 2")
    set_slider(opened, "Kernel size k (the book's 2× demo: 4)", 3)
    expect_tex(opened, "#seg-bilinear-kernel-text", r"\\frac\{4\}\{2\} \\right\\rfloor = 2$")
    expect_tex(opened, "#seg-bilinear-kernel-text", r"^c = 2 - 1 = 1$")  # on a cell
    expect_tex(opened, "#seg-bilinear-kernel-text", r"W_\{01\} = .* = 0\.5$")
    assert_no_errors(opened)


def test_fcn_offers_a_mask_only_view(opened: Page):
    opened.get_by_role("tab", name="Segmentation").click()
    opened.get_by_role("tab", name="FCN", exact=True).click()
    expect(opened.locator("#seg-fcn-summary")).to_contain_text(re.compile(r"class(es)? found in 480 × 320 px"))
    expect(cell(opened, "#seg-fcn-shares", 0, 2)).to_have_count(1)
    shares = opened.locator("#seg-fcn-shares").get_by_test_id(re.compile(r"^cell-\d+-2$"))
    colours = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in shares.all_inner_texts()]
    assert colours, "no classes in the shares table"

    def mask_share(picture: np.ndarray) -> float:
        """The share of pixels that are one of the classes' colours (webp blurs the edges a little)."""
        distance = np.linalg.norm(picture[:, :, None, :].astype(float) - np.array(colours, float), axis=3)
        return float((distance.min(axis=2) < 25).mean())

    overlay, shown = shown_picture(opened, "#seg-fcn-overlay"), opened.locator("#seg-fcn-overlay img").get_attribute("src")
    assert mask_share(overlay) < 0.9  # the photo shows through
    opened.locator("#seg-fcn-view").get_by_label("Mask only").check()
    opened.wait_for_function("s => document.querySelector('#seg-fcn-overlay img')?.getAttribute('src') !== s",
                             arg=shown)
    mask = shown_picture(opened, "#seg-fcn-overlay")
    assert mask.shape == overlay.shape and mask_share(mask) > 0.97  # the class colours alone
    expect(opened.locator("#seg-fcn-legend")).to_contain_text("background")
    opened.locator("#seg-fcn-view").get_by_label("Side by side").check()
    opened.wait_for_function("() => document.querySelector('#seg-fcn-overlay img')?.naturalWidth > 960")
    # What the network did to the 320 x 480 picture's sizes, typeset (item 9).
    expect_tex(opened, "#seg-fcn-summary", r"3 \\times 320 \\times 480 .*512 \\times 10 \\times 15")
    expect_tex(opened, "#seg-fcn-summary", r"n_h' &= .*\(10 - 1\) \\cdot 32 - 2 \\cdot 16 \+ 64 = 320")
    expect(opened.locator("#seg-fcn-try")).to_contain_text("Try this:")
    assert_no_errors(opened)


def test_try_this_lines_and_formulas_in_chinese(open_page):
    page = open_page(locale="zh-CN")
    page.get_by_role("tab", name="语义分割").click()
    expect(page.locator("#seg-trans-try")).to_contain_text("试一试：")
    expect_tex(page, "#seg-trans-formula", r"\\mathbf\{3\}")
    page.get_by_role("tab", name="SSD").click()
    expect(page.locator("#ssd-detect-try")).to_contain_text("试一试：")
    assert_no_errors(page)


def test_formulas_fit_a_phone(open_page):
    """No typeset formula of these views runs past the right edge of a 390 px page."""
    page = open_page(viewport=PHONE)
    page.get_by_role("tab", name="SSD").click()
    assert_formulas_fit(page, "#ssd-summary")
    page.get_by_role("tab", name="Architecture").click()
    assert_formulas_fit(page, "#ssd-arch-formula")
    page.get_by_role("tab", name="Segmentation").click()
    assert_formulas_fit(page, "#seg-trans-formula")
    assert_formulas_fit(page, "#seg-trans-conv-check")
    page.get_by_role("tab", name="Bilinear upsampling").click()
    assert_formulas_fit(page, "#seg-bilinear-kernel-text")
    page.get_by_role("tab", name="FCN", exact=True).click()
    assert_formulas_fit(page, "#seg-fcn-summary")
    assert_no_errors(page)


def test_fcn_shows_its_confidence_and_says_when_a_photo_is_outside_what_it_learned(opened: Page, tmp_path):
    # Issue 18, item 3: a per-pixel confidence view, and a notice beside a photo unlike the training set.
    opened.get_by_role("tab", name="Segmentation").click()
    opened.get_by_role("tab", name="FCN", exact=True).click()
    summary = opened.locator("#seg-fcn-summary")
    expect(summary).to_contain_text(re.compile(r"Confidence \(softmax probability of each pixel's class\): mean (0\.9\d|1\.00)"))
    expect(summary).not_to_contain_text("Outside what this FCN learned")
    shown = opened.locator("#seg-fcn-overlay img").get_attribute("src")
    opened.locator("#seg-fcn-view").get_by_label("Confidence").check()
    opened.wait_for_function("s => document.querySelector('#seg-fcn-overlay img')?.getAttribute('src') !== s", arg=shown)
    expect(opened.locator("#seg-fcn-confidence-bar")).to_be_visible()
    picture = shown_picture(opened, "#seg-fcn-overlay").astype(float)
    yellow = np.linalg.norm(picture - np.array([253, 231, 37], float), axis=2) < 40
    assert yellow.mean() > 0.7  # a synthetic validation image: sure almost everywhere

    from skimage import data

    path = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(path)
    opened.locator("#seg-fcn-image input[type=file]").set_input_files(str(path))
    expect(summary).to_contain_text("Far from what this FCN knows. It was trained only on the offline synthetic set")
    expect(summary).to_contain_text("FCN-ResNet-50")
    picture = shown_picture(opened, "#seg-fcn-overlay").astype(float)
    unsure = np.linalg.norm(picture - np.array([253, 231, 37], float), axis=2) > 60
    assert unsure.mean() > 0.1, unsure.mean()  # many pixels the network is not sure of
    assert_no_errors(opened)
