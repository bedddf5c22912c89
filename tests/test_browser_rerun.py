"""``rerun_on_picture_changes`` in Chromium: the page ends on the answer for the latest inputs.

Seen in a busy run of the SSD test: the run for a grey upload (at threshold 1) was still going when
the threshold moved to 0; the dashboard lets up to four runs of an event go side by side, so the
threshold's run answered first and the upload's older answer arrived last and stayed.
"""

from __future__ import annotations

import threading

import gradio as gr
import numpy as np
from PIL import Image
from playwright.sync_api import Page, expect

from tests.conftest import HANG_GUARD_S, assert_no_errors, serving

APP_CONCURRENCY = 4  # app.py's DEFAULT_CONCURRENCY: runs of one event may overlap
OVERTAKE_S = 5.0  # how long the upload's run holds on, giving an overlapping run time to finish first


def _wait_until(condition, seconds: float) -> bool:
    """Poll ``condition`` every 20 ms for up to ``seconds``; whether it came true."""
    pause = threading.Event()
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        pause.wait(0.02)
    return condition()


def test_a_slider_moved_during_an_upload_s_run_is_answered_last(page: Page, tmp_path):
    from panels.common import rerun_on_picture_changes

    upload_running, runs, lock = threading.Event(), [], threading.Lock()

    def render(image: np.ndarray, value: float) -> str:
        if image.mean() < 64 and value == 1:  # the dark upload's run, at the slider's old value
            upload_running.set()
            _wait_until(lambda: 0 in runs, OVERTAKE_S)  # ends early only if a run for 0 overtook it
        with lock:
            runs.append(value)
            return f"run {len(runs)}: value {value:g}, mean {image.mean():.0f}"

    def build() -> None:
        example = gr.Dropdown(["grey"], value="grey", label="Example")
        image = gr.Image(np.full((32, 48, 3), 128, np.uint8), type="numpy", sources=["upload"], elem_id="img")
        value = gr.Slider(0, 1, value=1, step=0.5, label="Value")
        answer = gr.Markdown(elem_id="answer")
        rerun_on_picture_changes(render, [image, value], answer, image, example,
                                 lambda name: np.full((32, 48, 3), 128, np.uint8), controls=[value])

    dark = tmp_path / "dark.png"
    Image.fromarray(np.full((32, 48, 3), 20, np.uint8)).save(dark)
    with serving(build, default_concurrency_limit=APP_CONCURRENCY) as url:
        page.goto(url)
        page.locator("#img input[type=file]").set_input_files(str(dark))
        upload_running.wait(HANG_GUARD_S)
        assert upload_running.is_set(), "the upload started no run"
        box = page.get_by_label("number input for Value", exact=True).first
        box.fill("0")
        box.press("Enter")
        _wait_until(lambda: len(runs) == 2, HANG_GUARD_S)
        assert runs == [1, 0], runs  # the slider's run waited for the upload's (overlapping, it finished first)
        expect(page.locator("#answer")).to_contain_text("run 2: ")  # the last answer has arrived
        assert page.locator("#answer").inner_text() == "run 2: value 0, mean 20"
        assert_no_errors(page)
