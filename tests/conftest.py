"""Shared fixtures: one in-process dashboard per test session, and Debian's Chromium for Playwright."""

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Gradio's file cache of this test session, apart from any other Gradio process on the machine
# (another suite, a running app): they would trim each other's files, examples included (the
# cache test saw one session delete the other's). Set before anything imports gradio.
_OWN_GRADIO_CACHE = None if "GRADIO_TEMP_DIR" in os.environ else tempfile.mkdtemp(prefix="vision-lab-tests-gradio-")
if _OWN_GRADIO_CACHE is not None:
    os.environ["GRADIO_TEMP_DIR"] = _OWN_GRADIO_CACHE


def pytest_unconfigure(config):
    if _OWN_GRADIO_CACHE is not None:
        shutil.rmtree(_OWN_GRADIO_CACHE, ignore_errors=True)


CHROMIUM = os.environ.get("VISION_LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Seconds a subprocess or a request may take before a test calls it hung. A limit, never a
# measurement: a busy or slow machine may take many times longer than an idle one, and how long
# things take belongs in benchmarks/.
HANG_GUARD_S = int(os.environ.get("VISION_LAB_HANG_GUARD_S", "900"))  # a shorter one shows where a hang is
# The same guard for the browser: how long expect(), a click or wait_for_function waits for the page.
WAIT_MS = HANG_GUARD_S * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StepCount:
    """What :func:`counting_steps` counts: steps begun, and how many had begun when Stop was set."""

    def __init__(self):
        self.lock = threading.Lock()
        self.begun = 0
        self.at_stop: int | None = None  # steps begun when Stop set the job's flag
        self.first_done = threading.Event()  # one step has run: the job is under way

    @property
    def after_stop(self) -> int:
        """Steps begun after Stop set the flag."""
        assert self.at_stop is not None, "Stop never reached a running job"
        return self.begun - self.at_stop


@contextlib.contextmanager
def counting_steps(owner, name: str, stops):
    """Count the calls of ``owner.name`` (a job's step: one optimisation step, one training batch)
    and, when ``stops`` (a panel's StopFlags) sets a flag, how many steps had begun.

    The Stop guarantee is counted in steps, not seconds (a busy machine makes any step slow):
    a job checks its flag before every step, so at most one step (one whose check just passed)
    begins after the flag is set: ``count.after_stop <= 1``. Setting the flag and reading the
    count happen under one lock that each step takes as it begins, so no step slips in between.
    """
    count = StepCount()
    step, stop = getattr(owner, name), stops.stop

    def counted_step(*args, **kwargs):
        with count.lock:
            count.begun += 1
        result = step(*args, **kwargs)
        count.first_done.set()
        return result

    def counted_stop(request=None):
        with count.lock:
            answered = stop(request)
            if answered and count.at_stop is None:
                count.at_stop = count.begun
        return answered

    setattr(owner, name, counted_step)
    stops.stop = counted_stop  # an instance attribute: the panel's own stop() looks it up per call
    try:
        yield count
    finally:
        setattr(owner, name, step)
        del stops.stop


@contextlib.contextmanager
def _patient_launch_check():
    """Let ``launch()``'s is-localhost-reachable check wait as long as the hang guard.

    Gradio gives the new server 3 s to answer a HEAD request and otherwise raises "When localhost
    is not accessible, a shareable link must be created"; on a machine whose cores are both busy
    the first answer can take longer, and the fixture then failed although the server was fine.
    """
    import httpx
    from gradio import networking

    own_check = networking.url_ok

    def url_ok(url: str) -> bool:
        try:
            return httpx.head(url, timeout=HANG_GUARD_S, verify=False).status_code < 400
        except httpx.HTTPError:
            return False

    networking.url_ok = url_ok
    try:
        yield
    finally:
        networking.url_ok = own_check


@contextlib.contextmanager
def serving(build, **queue_options):
    """A Blocks app holding what ``build()`` lays out (one panel), launched in this process with
    ``demo.queue(**queue_options)``; yields its URL."""
    import gradio as gr

    with gr.Blocks() as demo:
        build()
    with _patient_launch_check():
        demo.queue(**queue_options).launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture
def slow_clock(monkeypatch):
    """The clock of the training loop and of style transfer (``vision_core.train.loop``,
    ``vision_core.style``) reads one millisecond later each time: their throttled records and
    previews then depend on how many batches or steps ran, never on how fast this machine ran them."""
    import itertools
    from types import SimpleNamespace

    from vision_core import style
    from vision_core.train import loop

    ticks = itertools.count(0.0, 1e-3)
    clock = SimpleNamespace(perf_counter=lambda: next(ticks))
    monkeypatch.setattr(loop, "time", clock)
    monkeypatch.setattr(style, "time", clock)


@pytest.fixture(scope="session")
def app_url():
    """Launch the dashboard in this process (as Spaces would import it) and yield its URL."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import app

    with _patient_launch_check():
        app.demo.launch(
            server_name="127.0.0.1",
            server_port=free_port(),
            prevent_thread_lock=True,
            quiet=True,
            theme=app.THEME,
            css=app.CSS,
            i18n=app.I18N,
            max_file_size=app.MAX_UPLOAD_BYTES,
        )
    yield app.demo.local_url
    app.demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Point pytest-playwright at the system Chromium; a missing browser fails, never skips."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium) or set VISION_LAB_CHROMIUM. "
            "Never `playwright install`."
        )
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="session", autouse=True)
def _patient_expect():
    # CI shares two cores with the server and the browser, and other work may keep both busy: a slow
    # frame is not a failure. The wait only guards against a page that never shows the text.
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


# --- The page in a browser: shared by every browser test file -------------------------------------
DESKTOP = {"width": 1366, "height": 900}  # the viewports README's screenshots and the checks by eye use
PHONE = {"width": 390, "height": 844}


# Every toast the page shows, recorded as it appears and kept after it is gone: Gradio removes an
# error toast after 10 s, and on a busy machine a test may read it later than that.
TOAST_RECORDER = """
window.__toasts = [];
new MutationObserver(() => {
  for (const body of document.querySelectorAll('.toast-body')) {
    let seen = window.__toasts.find((t) => t.element === body);
    if (!seen) window.__toasts.push(seen = {element: body, text: ''});
    seen.text = body.innerText;
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


# Every text a watched element (watch_text) has shown, in order: a streamed step (Play) is shown for
# 0.6 s, and Playwright's expect() polls once a second after its first tries, so it can miss one.
TEXT_RECORDER = """
window.__watched = {};
new MutationObserver(() => {
  for (const [id, seen] of Object.entries(window.__watched)) {
    const text = document.getElementById(id)?.textContent;
    if (text != null && seen[seen.length - 1] !== text) seen.push(text);
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def watch_text(page, elem_id: str) -> None:
    """From now on, record every text the element ``#elem_id`` shows (read by :func:`shown_text`)."""
    page.evaluate("id => { window.__watched[id] = [document.getElementById(id)?.textContent ?? ''] }", elem_id)


def shown_text(page, elem_id: str, pattern: str) -> str:
    """A text that the watched element ``#elem_id`` has shown (still shown or since replaced) and that
    matches the JavaScript regex ``pattern``, waiting for it as long as the hang guard."""
    return page.wait_for_function(
        "([id, pattern]) => window.__watched[id].find((t) => new RegExp(pattern, 's').test(t)) || null",
        arg=[elem_id, pattern]).json_value()


def toast_text(page, *parts: str) -> str:
    """The text of a toast the page has shown (still shown or gone) that contains every one of
    ``parts``, waiting for it as long as the hang guard."""
    return page.wait_for_function(
        "parts => window.__toasts.map((t) => t.text).find((t) => parts.every((p) => t.includes(p))) || null",
        arg=list(parts)).json_value()


def close_toasts(page) -> None:
    """Close every toast shown now (one script: a toast may close itself between a listing and a click)."""
    from playwright.sync_api import expect

    page.evaluate("() => document.querySelectorAll('.toast-close').forEach((b) => b.click())")
    expect(page.locator(".toast-body")).to_have_count(0)


def assert_no_errors(page) -> None:
    """No red Error badge and no toast on ``page``."""
    from playwright.sync_api import expect

    expect(page.locator(".error")).to_have_count(0)
    expect(page.locator(".toast-body")).to_have_count(0)


def _open(page, url: str, header: str):
    import re

    from playwright.sync_api import expect

    page.set_default_timeout(WAIT_MS)  # clicks and wait_for_function too, not only expect()
    page.add_init_script(TOAST_RECORDER)
    page.add_init_script(TEXT_RECORDER)
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    expect(page.locator("#vl-header")).to_contain_text(re.compile(header))
    page.requests = requests
    return page


@pytest.fixture
def opened(page, app_url):
    """The page, opened in English, with every request it makes recorded (``page.requests``)."""
    return _open(page, app_url, r"Running on \*?\*?(cpu|cuda|mps)")


@pytest.fixture
def open_page(browser, app_url):
    """A factory: ``open_page(locale="zh-CN", viewport=PHONE)`` opens the dashboard in a fresh
    browser context with that language and size (closed after the test)."""
    contexts = []

    def opener(locale: str = "en-US", viewport: dict | None = None):
        context = browser.new_context(locale=locale, viewport=viewport or DESKTOP)
        contexts.append(context)
        header = r"运行于|Running on" if locale.startswith("zh") else r"Running on \*?\*?(cpu|cuda|mps)"
        return _open(context.new_page(), app_url, header)

    yield opener
    for context in contexts:
        context.close()


def shown_picture(page, elem_id: str):
    """The ``<img>`` of the gr.Image ``#elem_id``, once it has loaded (complete, with pixels)."""
    from playwright.sync_api import expect

    img = page.locator(f"#{elem_id} img").first
    expect(img).to_have_js_property("complete", True)
    expect(img).not_to_have_js_property("naturalWidth", 0)
    return img


def click_picture(page, elem_id: str, x: float, y: float) -> None:
    """Click the picture of the gr.Image ``#elem_id`` at its pixel ``(x, y)`` (the picture's own
    pixels, whatever size it is shown at; the picture is fitted into its frame, centred)."""
    img = shown_picture(page, elem_id)
    img.scroll_into_view_if_needed()
    width, height = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    frame = img.bounding_box()
    scale = min(frame["width"] / width, frame["height"] / height)
    img.click(position={"x": (frame["width"] - width * scale) / 2 + x * scale,
                        "y": (frame["height"] - height * scale) / 2 + y * scale})


def picture_rgb(page, elem_id: str, x: int, y: int) -> list[int]:
    """The ``[r, g, b]`` the browser decoded at pixel ``(x, y)`` of the gr.Image ``#elem_id``'s picture."""
    shown_picture(page, elem_id)
    return page.evaluate("""([id, x, y]) => { const img = document.querySelector('#' + id + ' img');
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        return Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3)); }""", [elem_id, x, y])


def assert_formulas_fit(page, selector: str, width: int = PHONE["width"]) -> None:
    """Every formula KaTeX typeset in ``selector`` fits its box and ends left of ``width`` px: none
    runs past the right edge of the page (scrollWidth counts what overflows, shown or clipped)."""
    from playwright.sync_api import expect

    expect(page.locator(f"{selector} .katex-display").first).to_be_visible()
    widths = page.evaluate("""sel => Array.from(document.querySelectorAll(sel + ' .katex-display')).map(d => ({
                                   content: d.scrollWidth, box: d.clientWidth,
                                   right: d.getBoundingClientRect().left + d.scrollWidth}))""", selector)
    for w in widths:
        assert w["content"] <= w["box"] + 1 and w["right"] <= width, f"a formula in {selector} overflows: {w}"
