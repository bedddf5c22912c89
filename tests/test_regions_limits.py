"""The Regions panel at its edges (issue 16, item 6): top K = 1, the slider's own minimum, and a photo in
which selective search finds one region answer with a locked "Proposal to pool" slider, not Gradio's
"Slider minimum must be less than maximum"."""

from __future__ import annotations

import numpy as np
import pytest

from panels import regions as R


def _render(image, top_k, index=0):
    # The panel function with Gradio's error handling, as the page and the API call it.
    return R.render_regions(image, "fast", top_k, index, 16, 2, 2)


def _check_index_update(update, shown):
    import gradio as gr

    # Gradio applies an update by building the component again: what raised before.
    gr.Slider(0, update["maximum"], value=update["value"], step=1)
    assert update["value"] == 0 and update["maximum"] >= 1
    assert update["interactive"] is (shown > 1)


def test_top_k_one_draws_one_proposal_and_locks_the_index():
    *_, summary, update = _render(None, 1)
    assert "the first 1 are drawn" in summary and "Proposal 0" in summary
    _check_index_update(update, 1)


def test_an_index_past_the_one_proposal_is_clamped():
    *_, summary, update = _render(None, 1, index=1)
    assert "Proposal 0" in summary
    _check_index_update(update, 1)


def test_a_photo_with_one_region():
    plain = np.full((64, 64, 3), 128, np.uint8)  # selective search finds the whole photo only
    boxes, _, _ = R.proposals_for(plain, "fast")
    assert len(boxes) == 1
    *_, summary, update = _render(plain, 30)
    _check_index_update(update, 1)
    assert "proposed **1 region** in" in summary and "the first 1 are drawn" in summary


def test_two_or_more_proposals_keep_a_free_slider():
    *_, update = _render(None, 5)
    assert update["maximum"] == 4 and update["interactive"] is True


@pytest.mark.app
def test_top_k_one_through_the_api(app_url):
    from gradio_client import Client

    # A session of its own: the slider's new range is kept per session and would bind the shared client's.
    client = Client(app_url, verbose=False)
    *_, summary, index = client.predict(None, "fast", 1, 0, 16, 2, 2, api_name="/regions")
    assert "the first 1 are drawn" in summary and index["maximum"] == 1 and index["interactive"] is False
    *_, summary, index = client.predict(None, "fast", 1, 1, 16, 2, 2, api_name="/regions")
    assert "Proposal 0" in summary  # the locked slider's other end picks the one proposal
