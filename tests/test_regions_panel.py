"""The Regions panel through its API: proposals, RoI pooling equal to torchvision, RoIAlign beside it."""

import json

import numpy as np
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
    assert "the first 30 are drawn" in summary
    assert index["value"] == 2 and index["maximum"] == 29
    # the proposals picture (a gr.Image, so a click can pick one): the photo enlarged by a whole
    # factor, the chosen proposal outlined in orange (4 px) along its top edge
    from PIL import Image

    rgb = load_example("chelsea")
    boxes, _, _ = R.proposals_for(rgb, "fast")
    picture = np.asarray(Image.open(figure).convert("RGB")).astype(int)
    scale = R.picture_scale(rgb)
    assert scale == 2 and picture.shape == (300 * scale, 451 * scale, 3)
    x1, y1, x2, _ = (boxes[2] * scale).round().int().tolist()
    edge = picture[y1 + 1, x1 + 8:x2 - 8]  # [W', 3] along the top edge, inside the corners
    orange = np.abs(edge - np.array([0xEF, 0x6C, 0x00])).max(axis=1) < 70
    assert orange.mean() > 0.8
    # the table is torchvision's roi_pool of that proposal on the brightness map
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
