"""The page as a whole in headless Chromium (issue 17): what the first load sends, a phone's view of
the tabs, tables and plots, the language switch, error toasts, contrast and idle Stop buttons.

Waits are Playwright's (expect, wait_for_function), never fixed sleeps; nothing is timed here
(``python -m benchmarks.first_load`` measures the seconds).
"""

import re

import pytest
from playwright.sync_api import Page, expect

from panels import PANELS
from tests.conftest import PHONE, assert_no_errors, shown_picture, toast_text

pytestmark = pytest.mark.browser

FIRST_LOAD_LIMIT = 250_000  # bytes of the page's first document as the browser receives it (issue 17, item 10)
ZH_TITLES = [panel.TITLE_ZH for panel in PANELS]
EN_TITLES = [panel.TITLE for panel in PANELS]


def tab_titles(page: Page) -> list[str]:
    return page.get_by_role("tab").evaluate_all("tabs => tabs.map(t => t.textContent.trim())")


def figure_traces(page: Page, elem_id: str) -> list[str]:
    """The trace types of a gr.Plot's plotly figure, once it has some."""
    return page.wait_for_function(
        f"""() => {{ const d = document.querySelector('#{elem_id} .js-plotly-plot')?.data;
                    return d && d.length ? Array.from(d).map(t => t.type) : null; }}""").json_value()


# --- Item 10: the first load -------------------------------------------------------------------------

def test_first_document_is_small(opened: Page):
    # The document holds the whole config (every component's initial value): the pictures of tabs
    # not yet opened made it 1.2 MB.
    sent = opened.evaluate("performance.getEntriesByType('navigation')[0].transferSize")
    assert 0 < sent < FIRST_LOAD_LIMIT, f"the page's document arrived as {sent} bytes"
    expect(opened.locator("#boxes-table")).to_contain_text("astronaut")
    shown_picture(opened, "boxes-figure")  # the tab the page opens on is drawn
    # ... without plotly: its 4.6 MB script took the browser 2 s to load and start before the Boxes
    # figure was drawn; it comes when a tab with a plot is first opened
    expect(opened.locator("#boxes-summary")).to_contain_text("2 boxes drawn")
    assert not [u for u in opened.requests if "Plotly" in u], "the first view loaded plotly"
    opened.get_by_role("tab", name="Anchors", exact=True).click()
    opened.get_by_role("tab", name="Labelling", exact=True).click()
    assert figure_traces(opened, "label-figure")[0] == "image"
    assert [u for u in opened.requests if "Plotly" in u]


def test_a_tab_s_pictures_arrive_when_it_is_opened(opened: Page):
    opened.get_by_role("tab", name="Anchors", exact=True).click()
    opened.get_by_role("tab", name="Labelling", exact=True).click()
    assert figure_traces(opened, "label-figure")[0] == "image"
    assert figure_traces(opened, "label-heatmap") == ["heatmap"]
    opened.get_by_role("tab", name="NMS", exact=True).click()
    assert figure_traces(opened, "nms-figure")[0] == "image"
    opened.get_by_role("tab", name="Segmentation", exact=True).click()
    # the section the tab opens on, and a section opened later
    assert "heatmap" in figure_traces(opened, "seg-trans-figure")
    opened.get_by_role("tab", name="Bilinear upsampling", exact=True).click()
    expect(opened.locator("#seg-bilinear-view img").first).to_be_visible()
    assert_no_errors(opened)


def test_reopening_a_tab_keeps_what_the_learner_did(opened: Page):
    first = shown_picture(opened, "boxes-figure").get_attribute("src")
    opened.locator("#boxes-figure").scroll_into_view_if_needed()
    opened.get_by_label("Example photo (offline)").click()
    opened.get_by_role("option", name="coffee").click()
    expect(opened.locator("#boxes-summary")).to_contain_text("3 boxes drawn")
    expect(opened.locator("#boxes-figure img")).not_to_have_attribute("src", first)
    coffee = shown_picture(opened, "boxes-figure").get_attribute("src")
    opened.get_by_role("tab", name="Anchors", exact=True).click()
    expect(opened.locator("#anchors-summary")).to_contain_text("Cell")
    opened.get_by_role("tab", name="Boxes", exact=True).click()
    # the pictures sent on the first opening are not sent again over the learner's own
    expect(opened.locator("#boxes-caption")).to_contain_text("espresso")
    expect(opened.locator("#boxes-figure img")).to_have_attribute("src", coffee)
    assert_no_errors(opened)


# --- Item 7: a phone ---------------------------------------------------------------------------------

def test_phone_every_tab_in_sight(open_page):
    page = open_page(viewport=PHONE)
    for title in EN_TITLES:
        tab = page.get_by_role("tab", name=title, exact=True)
        expect(tab).to_be_visible()
        box = tab.bounding_box()
        assert 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"], (title, box)
    expect(page.get_by_role("button", name="More tabs")).to_have_count(0)
    page.get_by_role("tab", name="Segmentation", exact=True).click()
    for section in ("Transposed convolution", "Bilinear upsampling", "FCN", "Train FCN"):
        expect(page.get_by_role("tab", name=section, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="More tabs")).to_have_count(0)


WIDE_TABLES = """() => Array.from(document.querySelectorAll('.virtual-table-viewport')).filter(v => v.offsetParent)
  .map(v => ({id: v.closest('[id]')?.id, hidden: v.scrollWidth - v.clientWidth - v.scrollLeft,
              hint: getComputedStyle(v.closest('.table-wrap'), '::after').width}))"""


def test_phone_a_table_wider_than_its_frame_says_so(open_page):
    page = open_page(viewport=PHONE)
    expect(page.locator("#boxes-xyxy")).to_contain_text("astronaut")
    page.wait_for_function("() => document.querySelectorAll('#boxes-xyxy .virtual-table-viewport').length")
    # Every table shows all its columns, or marks its right edge while columns are out of sight.
    page.wait_for_function(f"() => ({WIDE_TABLES})().every(t => t.hidden <= 1 || t.hint !== 'auto')")
    tables = page.evaluate(WIDE_TABLES)
    assert len(tables) >= 4, tables
    wide = [t for t in tables if t["hidden"] > 1]
    for table in wide:  # scrolled to its end, the mark goes
        page.locator(f"#{table['id']} .virtual-table-viewport").evaluate("v => v.scrollLeft = v.scrollWidth")
        page.wait_for_function(f"() => ({WIDE_TABLES})().find(t => t.id === '{table['id']}').hint === 'auto'")


def test_phone_plot_toolbar_stays_off_the_figure(open_page):
    page = open_page(viewport=PHONE)
    page.get_by_role("tab", name="Anchors", exact=True).click()
    page.get_by_role("tab", name="Labelling", exact=True).click()
    figure = page.locator("#label-figure .js-plotly-plot")
    expect(figure).to_be_visible()
    figure_traces(page, "label-figure")
    figure.scroll_into_view_if_needed()
    figure.hover()  # a tap is a hover: plotly shows its toolbar over the figure's top right
    expect(page.locator("#label-figure .modebar")).to_have_count(1)  # plotly made one
    shown = page.locator("#label-figure .modebar").evaluate(
        "m => { const r = m.getBoundingClientRect(); return r.width * r.height > 0 && getComputedStyle(m).opacity > 0; }")
    assert not shown, "plotly's toolbar is over the figure"


# --- Item 8: the language switch and the error toasts ----------------------------------------------

def switch_language(page: Page, settings: str, option: str):
    page.get_by_text(settings, exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").click()
    page.get_by_role("option", name=option).click()
    dialog.locator("button").first.click()  # the dialog's close button
    expect(dialog).to_have_count(0)


def test_tab_titles_follow_a_language_switch(open_page):
    page = open_page(locale="zh-CN")
    expect(page.get_by_role("tab", name="边界框", exact=True)).to_be_visible()
    page.get_by_role("tab", name="锚框", exact=True).click()
    expect(page.get_by_role("tab", name="生成锚框", exact=True)).to_be_visible()
    page.get_by_role("tab", name="边界框", exact=True).click()
    switch_language(page, "设置", "English")
    # the tabs never opened (Regions … Style transfer) and the sections of Anchors not opened
    expect(page.locator("#vl-header")).to_contain_text("Running on")
    page.wait_for_function("titles => titles.every(t => Array.from(document.querySelectorAll('[role=tab]'))"
                           ".some(b => b.textContent.trim() === t))", arg=[*EN_TITLES, "Labelling", "NMS"])
    assert not any(re.search(r"[\u4e00-\u9fff]", t) for t in tab_titles(page)), tab_titles(page)
    switch_language(page, "Settings", "简体中文")
    expect(page.locator("#vl-header")).to_contain_text("运行于")
    page.wait_for_function("titles => titles.every(t => Array.from(document.querySelectorAll('[role=tab]'))"
                           ".some(b => b.textContent.trim() === t))", arg=[*ZH_TITLES, "标注锚框", "非极大值抑制"])
    page.get_by_role("tab", name="语义分割", exact=True).click()
    expect(page.get_by_role("tab", name="双线性上采样", exact=True)).to_be_visible()


def test_a_failure_that_is_not_the_input_s_does_not_blame_it(open_page, monkeypatch):
    import panels.boxes
    from vision_core.weights import WeightsError

    def missing(*args, **kwargs):
        raise WeightsError("weights 'tiny_ssd_bananas' (tiny_ssd_bananas.safetensors) are not in pretrained/")

    page = open_page(locale="zh-CN")
    expect(page.locator("#boxes-xyxy")).to_contain_text("astronaut")
    monkeypatch.setattr(panels.boxes, "parse_box_table", missing)  # the table's edit meets a missing file
    page.get_by_role("radio", name="归一化").check()
    text = toast_text(page, "are not in pretrained/", "权重文件")
    assert "输入有误" not in text


# --- Item 6: contrast and idle Stop buttons ---------------------------------------------------------

CONTRAST = """sel => {
  const rgb = c => c.match(/[\\d.]+/g).map(Number);
  const lum = c => { const v = rgb(c).slice(0, 3).map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const el = document.querySelector(sel);
  let bg = el;
  while (bg && (getComputedStyle(bg).backgroundColor === 'rgba(0, 0, 0, 0)' || getComputedStyle(bg).backgroundColor === 'transparent')) bg = bg.parentElement;
  const back = bg ? getComputedStyle(bg).backgroundColor : 'rgb(255, 255, 255)';
  const [a, b] = [lum(getComputedStyle(el).color), lum(back)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_subtitle_is_readable(open_page, app_url, theme):
    page = open_page()
    page.goto(f"{app_url}?__theme={theme}")
    expect(page.locator("#vl-header p")).to_contain_text("Running on")
    assert page.evaluate("document.body.classList.contains('dark')") == (theme == "dark")
    ratio = page.evaluate(CONTRAST, "#vl-header p")
    assert ratio >= 4.5, f"subtitle contrast {ratio:.2f}:1 in the {theme} theme"


def test_an_idle_stop_button_looks_inactive(opened: Page):
    opened.get_by_role("tab", name="SSD", exact=True).click()
    opened.get_by_role("tab", name="Train", exact=True).click()
    stop, start = opened.locator("#ssd-stop-btn"), opened.locator("#ssd-train-btn")
    expect(stop).to_be_visible()
    expect(stop).to_be_disabled()
    look = "b => { const s = getComputedStyle(b); return [s.backgroundColor, s.opacity, s.cursor]; }"
    background, opacity, cursor = stop.evaluate(look)
    assert cursor == "not-allowed" and float(opacity) <= 0.7, (background, opacity, cursor)
    # not the red it has when it can be pressed (read with the button enabled for a moment)
    enabled = stop.evaluate("b => { b.style.transition = 'none'; b.disabled = false; "
                            "const c = getComputedStyle(b).backgroundColor; b.disabled = true; "
                            "b.style.transition = ''; return c; }")
    assert background != enabled, (background, enabled)
    expect(start).to_be_enabled()
