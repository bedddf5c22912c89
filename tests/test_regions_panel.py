"""The Regions panel through its API: proposals, RoI pooling equal to torchvision, RoIAlign beside it."""

import json

import pytest
import torch
import torchvision.ops as tv

from panels import regions as R
from vision_core.examples import load_example

pytestmark = pytest.mark.app


def test_regions_pools_the_chosen_proposal(client):
    figure, grid, pooled, aligned, table, summary, index = client.predict(
        None, "fast", 30, 2, 16, 2, 2, api_name="/regions"
    )
    assert "Selective search (fast) proposed" in summary and "2 × 2 cells" in summary
    assert index["value"] == 2 and index["maximum"] == 29
    traces = json.loads(figure["plot"])["data"]
    assert sum(t["type"] == "scatter" for t in traces) == 30  # top K proposals drawn
    # the table is torchvision's roi_pool of that proposal on the brightness map
    rgb = load_example("chelsea")
    boxes, _, _ = R.proposals_for(rgb, "fast")
    fmap = R.feature_map(rgb, 16)
    rois = torch.cat([torch.zeros(1, 1), boxes[2][None]], dim=1)
    expected = tv.roi_pool(fmap, rois, (2, 2), spatial_scale=1 / 16)[0, 0]
    got = torch.tensor([row[1:] for row in table["data"]], dtype=torch.float64)
    torch.testing.assert_close(got, expected.double().round(decimals=4), atol=1e-4, rtol=0)
    # each cell's maximum is marked on the feature map
    stars = [t for t in json.loads(grid["plot"])["data"] if t.get("name") == "cell maximum"]
    assert len(stars[0]["x"]) == 4


def test_regions_bad_arguments(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(None, "fast", 30, 0, 12, 2, 2, api_name="/regions")
    with pytest.raises(AppError, match="greater than maximum value"):
        client.predict(None, "fast", 30, 500, 16, 2, 2, api_name="/regions")
    *_, summary, _ = client.predict(None, "fast", 5, 9, 8, 3, 1, api_name="/regions")
    assert "Proposal 4" in summary  # an index past the drawn proposals picks the last one


def test_proposals_are_cached_per_photo_and_mode():
    rgb = load_example("coffee")
    first = R.proposals_for(rgb, "fast")
    second = R.proposals_for(rgb, "fast")
    assert first[2] is False and second[2] is True and torch.equal(first[0], second[0])
