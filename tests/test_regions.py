"""vision_core.regions: parity with torchvision.ops, the book's printed example, selective search."""

from __future__ import annotations

import sys
import types
import zlib

import numpy as np
import pytest
import torch
import torchvision.ops as tv
from hypothesis import given, settings
from hypothesis import strategies as st

from vision_core._checks import ArgumentError
from vision_core.regions import (
    RoIPoolResult,
    roi_align,
    roi_pool_grid,
    selective_search,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def random_rois(k, n_images, height, width, scale, generator, dtype=torch.float32, halves=False):
    # Boxes in input pixels, reaching up to 30% past every edge of the feature map.
    extent = torch.tensor([width, height], dtype=torch.float64) / scale
    xy = (torch.rand(k, 2, generator=generator, dtype=torch.float64) * 1.6 - 0.3) * extent
    wh = torch.rand(k, 2, generator=generator, dtype=torch.float64) * extent
    if halves:
        # Corners on multiples of 0.5 / scale land exactly on .5 after scaling by `scale`.
        xy = (xy * scale * 2).round() / (2 * scale)
        wh = (wh * scale * 2).round() / (2 * scale)
    batch = torch.randint(0, n_images, (k, 1), generator=generator).double()
    return torch.cat([batch, xy, xy + wh], dim=1).to(dtype)


def gathered_at_argmax(features, result):
    # features[b, c, y, x] at each cell's argmax: [K, C, n, m]
    k, c, n, m, _ = result.argmax.shape
    y, x = result.argmax.clamp(min=0).unbind(-1)
    b = result.batch_index[:, None, None, None].expand(k, c, n, m)
    ch = torch.arange(c, device=features.device)[None, :, None, None].expand(k, c, n, m)
    return features[b, ch, y, x]


# --- the book's printed example (d2l 14.8.2) -------------------------------------------------

def test_book_example_2x2():
    X = torch.arange(16.0).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0, 0, 0, 20, 20], [0, 0, 10, 30, 30]], dtype=torch.float32)
    result = roi_pool_grid(X, rois, output_size=(2, 2), spatial_scale=0.1)
    # The book prints these values (torchvision.ops.roi_pool's output).
    book = torch.tensor([[[[5.0, 6.0], [9.0, 10.0]]], [[[9.0, 11.0], [13.0, 15.0]]]])
    assert torch.equal(result.pooled, book)
    assert torch.equal(tv.roi_pool(X, rois, output_size=(2, 2), spatial_scale=0.1), book)
    # "the two regions of interest are marked on X as X[:, :, 0:3, 0:3] and X[:, :, 1:4, 0:4]"
    assert result.roi_windows.tolist() == [[0, 3, 0, 3], [1, 4, 0, 4]]
    # Second RoI: 3 rows split as rows 1:3 and 2:4 (they share row 2), 4 columns as 0:2, 2:4.
    assert result.windows[1].tolist() == [[[1, 3, 0, 2], [1, 3, 2, 4]], [[2, 4, 0, 2], [2, 4, 2, 4]]]
    assert result.argmax[0, 0].tolist() == [[[1, 1], [1, 2]], [[2, 1], [2, 2]]]


# --- parity with torchvision.ops.roi_pool ----------------------------------------------------

@pytest.mark.parametrize("output_size", [(2, 2), 1, (7, 7), (3, 5), (6, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.25, 1 / 16, 0.3])
def test_equals_torchvision_roi_pool(output_size, dtype, spatial_scale):
    # str hashes change between runs; crc32 keeps every parametrisation's data fixed.
    g = torch.Generator().manual_seed(zlib.crc32(repr((output_size, dtype, spatial_scale)).encode()))
    features = torch.randn(3, 4, 9, 13, generator=g, dtype=dtype)
    rois = random_rois(40, 3, 9, 13, spatial_scale, g, dtype)
    result = roi_pool_grid(features, rois, output_size, spatial_scale)
    n, m = (output_size, output_size) if isinstance(output_size, int) else output_size
    assert result.pooled.shape == (40, 4, n, m)
    assert result.windows.shape == (40, n, m, 4)
    assert result.argmax.shape == (40, 4, n, m, 2)
    assert torch.equal(result.pooled, tv.roi_pool(features, rois, output_size, spatial_scale))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    size=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    hw=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    spatial_scale=st.sampled_from([1.0, 0.5, 0.1, 1 / 16, 0.7]),
    halves=st.booleans(),
)
def test_equals_torchvision_roi_pool_property(seed, size, hw, spatial_scale, halves):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 2, *hw, generator=g)
    rois = random_rois(12, 2, *hw, spatial_scale, g, halves=halves)
    assert torch.equal(roi_pool_grid(features, rois, size, spatial_scale).pooled, tv.roi_pool(features, rois, size, spatial_scale))


def test_half_coordinates_round_away_from_zero_like_torchvision():
    # Every corner from -2.5 to 6.5 in steps of 0.5: torch.round would send 0.5 -> 0,
    # 2.5 -> 2 and -0.5 -> -0; the C++ kernel rounds them to 1, 3 and -1.
    features = torch.randn(1, 2, 7, 7, generator=torch.Generator().manual_seed(0))
    starts = torch.arange(-2.5, 7.0, 0.5)
    x1, y1 = torch.meshgrid(starts, starts.flip(0), indexing="ij")
    x1, y1 = x1.flatten(), y1.flatten()
    rois = torch.stack([torch.zeros_like(x1), x1, y1, x1 + 2.5, y1 + 1.5], dim=1)
    result = roi_pool_grid(features, rois, (2, 3))
    assert torch.equal(result.pooled, tv.roi_pool(features, rois, (2, 3)))
    half = torch.tensor([[0.0, 0.5, 2.5, 2.5, 4.5], [0.0, -0.5, -0.5, 1.5, 0.5]])
    # Windows are (y_start, y_end, x_start, x_end): rows 3..5 -> 3:6, columns 1..3 -> 1:4.
    assert roi_pool_grid(features, half, 2).roi_windows.tolist() == [[3, 6, 1, 4], [-1, 2, -1, 3]]
    # The same corners after spatial_scale: 5 * 0.5 = 2.5 rounds to 3 as well.
    scaled = roi_pool_grid(features, half * torch.tensor([1.0, 2, 2, 2, 2]), 2, spatial_scale=0.5)
    assert scaled.roi_windows.tolist() == [[3, 6, 1, 4], [-1, 2, -1, 3]]
    assert torch.equal(scaled.pooled, tv.roi_pool(features, half * torch.tensor([1.0, 2, 2, 2, 2]), 2, 0.5))


def test_just_below_half_rounds_down():
    # floor(x + 0.5) would round float32 0.49999997 up to 1 (0.49999997 + 0.5 rounds to 1.0).
    features = torch.arange(36.0).reshape(1, 1, 6, 6)
    below = float(np.nextafter(np.float32(0.5), np.float32(0)))
    rois = torch.tensor([[0.0, below, below, 3.0, 3.0]])
    result = roi_pool_grid(features, rois, 1)
    assert result.roi_windows.tolist() == [[0, 4, 0, 4]]
    assert torch.equal(result.pooled, tv.roi_pool(features, rois, 1))


def test_rois_partly_and_fully_outside_the_map():
    features = torch.randn(1, 3, 5, 5, generator=torch.Generator().manual_seed(1)) - 10  # all < 0
    rois = torch.tensor(
        [
            [0.0, -6, -6, 2, 2],  # top-left cells fall outside
            [0.0, 3, 3, 12, 12],  # bottom-right cells fall outside
            [0.0, 20, 20, 30, 30],  # entirely outside: every cell empty
            [0.0, -4, 1, 9, 3],  # wider than the map on both sides
        ]
    )
    result = roi_pool_grid(features, rois, (3, 3))
    assert torch.equal(result.pooled, tv.roi_pool(features, rois, (3, 3)))
    y0, y1, x0, x1 = result.windows.unbind(-1)
    empty = (y1 <= y0) | (x1 <= x0)  # [K, 3, 3]
    assert empty[2].all() and empty[0, 0, 0] and empty[1, 2, 2] and not empty[3].all()
    assert ((0 <= result.windows) & (result.windows <= 5)).all()
    # Empty cells hold 0 (above every feature value here) and no argmax.
    assert (result.pooled.permute(0, 2, 3, 1)[empty] == 0).all()
    assert (result.argmax.permute(0, 2, 3, 1, 4)[empty] == -1).all()
    assert (result.pooled.permute(0, 2, 3, 1)[~empty] < 0).all()


def test_list_of_boxes_form():
    g = torch.Generator().manual_seed(2)
    features = torch.randn(3, 2, 8, 8, generator=g)
    boxes = [random_rois(k, 1, 8, 8, 0.5, g)[:, 1:] for k in (4, 0, 6)]
    listed = roi_pool_grid(features, boxes, (2, 3), 0.5)
    assert torch.equal(listed.pooled, tv.roi_pool(features, boxes, (2, 3), 0.5))
    assert listed.batch_index.tolist() == [0] * 4 + [2] * 6
    rows = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], dim=1) for i, b in enumerate(boxes)])
    assert torch.equal(listed.pooled, roi_pool_grid(features, rows, (2, 3), 0.5).pooled)


def test_no_rois_gives_empty_results():
    features = torch.randn(1, 3, 4, 4)
    result = roi_pool_grid(features, torch.zeros(0, 5), (2, 2))
    assert result.pooled.shape == (0, 3, 2, 2) and result.argmax.shape == (0, 3, 2, 2, 2)
    assert torch.equal(result.pooled, tv.roi_pool(features, torch.zeros(0, 5), (2, 2)))


# --- argmax and windows ----------------------------------------------------------------------

def test_argmax_holds_the_pooled_value_inside_its_window():
    g = torch.Generator().manual_seed(3)
    features = torch.randn(2, 5, 11, 9, generator=g)
    rois = random_rois(30, 2, 11, 9, 0.5, g)
    result = roi_pool_grid(features, rois, (3, 4), 0.5)
    assert isinstance(result, RoIPoolResult)
    found = (result.argmax >= 0).all(-1)  # [K, C, n, m]
    y0, y1, x0, x1 = result.windows[:, None].unbind(-1)  # [K, 1, n, m] each
    empty = ((y1 <= y0) | (x1 <= x0)).expand_as(found)
    assert torch.equal(found, ~empty)  # finite features: an argmax exactly where a cell is non-empty
    assert empty.any() and found.any()
    assert torch.equal(gathered_at_argmax(features, result)[found], result.pooled[found])
    y, x = result.argmax.unbind(-1)
    inside = (y0 <= y) & (y < y1) & (x0 <= x) & (x < x1)
    assert inside[found].all()
    # and each pooled value is the maximum over its window, recomputed naively for a few cells
    for k, c, i, j in [(0, 0, 0, 0), (5, 4, 2, 3), (17, 2, 1, 2)]:
        a, b, p, q = result.windows[k, i, j].tolist()
        if a < b and p < q:
            assert result.pooled[k, c, i, j] == features[result.batch_index[k], c, a:b, p:q].max()


def test_argmax_ties_go_to_the_first_cell_in_row_major_order():
    features = torch.ones(1, 1, 6, 6)
    result = roi_pool_grid(features, torch.tensor([[0.0, 1, 2, 4, 5]]), (2, 2))
    assert torch.equal(result.argmax[0, 0], result.windows[0][..., [0, 2]])  # (y_start, x_start)


def test_nan_and_minus_inf_follow_torchvision():
    # The kernel keeps a value only if it beats -FLT_MAX: NaN is skipped, a window of -inf
    # yields -FLT_MAX with no argmax.
    features = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(4))
    features[0, 0, :3, :3] = float("nan")
    features[0, 0, 0, 1] = 7.0
    features[0, 1, :3, :3] = float("-inf")
    rois = torch.tensor([[0.0, 0, 0, 5, 5], [0.0, 0, 0, 2, 2]])
    result = roi_pool_grid(features, rois, (2, 2))
    expected = tv.roi_pool(features, rois, (2, 2))
    assert not expected.isnan().any()
    assert torch.equal(result.pooled, expected)
    assert result.pooled[0, 0, 0, 0] == 7.0 and result.argmax[0, 0, 0, 0].tolist() == [0, 1]
    assert result.pooled[1, 1, 0, 0] == -torch.finfo(torch.float32).max
    assert result.argmax[1, 1, 0, 0].tolist() == [-1, -1]


# --- roi_align --------------------------------------------------------------------------------

@pytest.mark.parametrize("sampling_ratio,aligned", [(-1, False), (2, False), (0, True), (3, True)])
def test_roi_align_equals_torchvision(sampling_ratio, aligned):
    g = torch.Generator().manual_seed(5 + sampling_ratio)
    features = torch.randn(2, 3, 10, 12, generator=g)
    rois = random_rois(15, 2, 10, 12, 0.25, g)
    ours = roi_align(features, rois, (3, 4), 0.25, sampling_ratio, aligned)
    assert ours.shape == (15, 3, 3, 4)
    assert torch.equal(ours, tv.roi_align(features, rois, (3, 4), 0.25, sampling_ratio, aligned))
    boxes = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    by_list = roi_align(features, boxes, (3, 4), 0.25, sampling_ratio, aligned)
    assert torch.equal(by_list, tv.roi_align(features, boxes, (3, 4), 0.25, sampling_ratio, aligned))


# --- bad arguments ----------------------------------------------------------------------------

FEATURES = torch.zeros(2, 1, 4, 4)
ROIS = torch.tensor([[0.0, 0, 0, 2, 2]])


@pytest.mark.parametrize("fn", [roi_pool_grid, roi_align])
@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.zeros(1, 4, 4), ROIS, 2), r"features must be a floating-point Tensor\[N, C, H, W\]"),
        ((FEATURES.long(), ROIS, 2), r"features must be a floating-point"),
        ((FEATURES, ROIS, 0), r"output_size must be an integer >= 1"),
        ((FEATURES, ROIS, (2, 0)), r"output_size must be .* pair"),
        ((FEATURES, ROIS, (2, 2, 2)), r"output_size must be"),
        ((FEATURES, ROIS, 2.0), r"output_size must be"),
        ((FEATURES, ROIS, 2, 0.0), r"spatial_scale must be a finite number > 0"),
        ((FEATURES, ROIS, 2, float("nan")), r"spatial_scale must be a finite number > 0"),
        ((FEATURES, torch.zeros(3, 4), 2), r"rois must be a Tensor\[K, 5\] or a list of Tensor\[L, 4\]"),
        ((FEATURES, "boxes", 2), r"rois must be a Tensor\[K, 5\]"),
        ((FEATURES, [torch.zeros(1, 5)], 2), r"rois\[0\] must be a Tensor\[L, 4\]"),
        ((FEATURES, [torch.zeros(1, 4)] * 3, 2), r"rois must be boxes for at most 2 images .*, got boxes for 3 images"),
        ((FEATURES, torch.tensor([[2.0, 0, 0, 2, 2]]), 2), r"batch index\) must be whole numbers in \[0, 1\]"),
        ((FEATURES, torch.tensor([[0.5, 0, 0, 2, 2]]), 2), r"batch index\) must be whole numbers"),
        ((FEATURES, torch.tensor([[-1.0, 0, 0, 2, 2]]), 2), r"batch index\) must be whole numbers"),
        ((FEATURES, torch.tensor([[0.0, 0, float("nan"), 2, 2]]), 2), r"rois must be finite"),
    ],
)
def test_roi_bad_arguments(fn, args, match):
    with pytest.raises(ArgumentError, match=match):
        fn(*args)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sampling_ratio": 1.5}, r"sampling_ratio must be an integer \(<= 0 for adaptive\)"),
        ({"aligned": "yes"}, r"aligned must be True or False"),
    ],
)
def test_roi_align_bad_arguments(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        roi_align(FEATURES, ROIS, 2, **kwargs)


IMAGE = np.zeros((20, 30, 3), np.uint8)


@pytest.mark.parametrize(
    "image,kwargs,match",
    [
        (np.zeros((20, 30), np.uint8), {}, r"image must be a uint8 array \[H, W, 3\]"),
        (np.zeros((20, 30, 3), np.float32), {}, r"image must be a uint8 array \[H, W, 3\]"),
        (torch.zeros(20, 30, 3, dtype=torch.uint8), {}, r"image must be a uint8 Tensor\[3, H, W\]"),
        (torch.zeros(3, 20, 30), {}, r"image must be a uint8 Tensor\[3, H, W\]"),
        (np.zeros((0, 30, 3), np.uint8), {}, r"image must be at least 1 x 1 pixels"),
        (IMAGE, {"mode": "slow"}, r"mode must be one of fast, quality"),
        (IMAGE, {"max_proposals": 0}, r"max_proposals must be an integer >= 1 or None"),
        (IMAGE, {"max_proposals": 10.0}, r"max_proposals must be an integer >= 1 or None"),
        (IMAGE, {"min_size": -1}, r"min_size must be a finite number >= 0"),
        (IMAGE, {"min_size": float("inf")}, r"min_size must be a finite number >= 0"),
        (IMAGE, {"max_side": 8}, r"max_side must be an integer >= 16 or None"),
        (IMAGE, {"seed": -1}, r"seed must be an integer in \[0, 4294967295\] or None"),
    ],
)
def test_selective_search_bad_arguments(image, kwargs, match):
    # Checked before OpenCV is imported, so these run without it.
    with pytest.raises(ArgumentError, match=match):
        selective_search(image, **kwargs)


def test_selective_search_without_opencv(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    with pytest.raises(ImportError, match="pip install opencv-contrib-python-headless"):
        selective_search(IMAGE)


def test_selective_search_with_opencv_but_no_contrib(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", types.ModuleType("cv2"))  # like plain opencv-python
    with pytest.raises(ImportError, match="selective search needs OpenCV's contrib modules"):
        selective_search(IMAGE)


def fake_opencv(rects, calls):
    # A stand-in for cv2 whose selective search returns `rects` (x, y, w, h), recording calls.
    class Search:
        def setBaseImage(self, image):
            calls["base_image"] = image

        def switchToSelectiveSearchFast(self):
            calls["mode"] = "fast"

        def switchToSelectiveSearchQuality(self):
            calls["mode"] = "quality"

        def process(self):
            return np.array(rects, dtype=np.int32)

    cv2 = types.ModuleType("cv2")
    cv2.INTER_AREA, cv2.COLOR_RGB2BGR = 3, 4
    cv2.resize = lambda image, size, interpolation: np.zeros((size[1], size[0], 3), np.uint8)
    cv2.cvtColor = lambda image, code: image[:, :, ::-1]
    cv2.ximgproc = types.SimpleNamespace(
        segmentation=types.SimpleNamespace(createSelectiveSearchSegmentation=Search)
    )
    return cv2


def test_selective_search_post_processing(monkeypatch):
    # Duplicates dropped keeping the first, xywh -> corners, min_size and max_proposals applied
    # in OpenCV's order; no OpenCV needed.
    rects = [[5, 6, 10, 4], [0, 0, 30, 20], [5, 6, 10, 4], [1, 2, 3, 15], [2, 2, 8, 8]]
    calls = {}
    monkeypatch.setitem(sys.modules, "cv2", fake_opencv(rects, calls))
    image = np.zeros((20, 30, 3), np.uint8)
    image[0, 0] = (1, 2, 3)
    boxes = selective_search(image, mode="quality", max_proposals=None)
    assert calls["mode"] == "quality" and calls["base_image"][0, 0].tolist() == [3, 2, 1]  # BGR
    assert boxes.tolist() == [[5, 6, 15, 10], [0, 0, 30, 20], [1, 2, 4, 17], [2, 2, 10, 10]]
    assert selective_search(image, min_size=4, max_proposals=None).tolist() == [
        [5, 6, 15, 10], [0, 0, 30, 20], [2, 2, 10, 10]
    ]
    assert selective_search(image, min_size=4, max_proposals=2).tolist() == [[5, 6, 15, 10], [0, 0, 30, 20]]


def test_selective_search_scales_boxes_back_from_max_side(monkeypatch):
    calls = {}
    monkeypatch.setitem(sys.modules, "cv2", fake_opencv([[0, 0, 50, 25], [10, 5, 20, 10]], calls))
    image = np.zeros((100, 200, 3), np.uint8)
    boxes = selective_search(image, max_side=50)
    assert calls["base_image"].shape == (25, 50, 3)  # searched at 50 x 25, then x4
    assert boxes.tolist() == [[0, 0, 200, 100], [40, 20, 120, 60]]
    selective_search(image, max_side=None)
    assert calls["base_image"].shape == (100, 200, 3)


# --- selective search on a real photo -------------------------------------------------------

def _require_opencv_contrib():
    cv2 = pytest.importorskip("cv2", reason="selective search needs OpenCV (opencv-contrib-python-headless)")
    if not hasattr(getattr(cv2, "ximgproc", None), "segmentation"):
        pytest.skip("selective search needs OpenCV's contrib modules (cv2.ximgproc)")


@pytest.fixture(scope="module")
def chelsea():
    _require_opencv_contrib()
    skimage_data = pytest.importorskip("skimage.data")
    image = skimage_data.chelsea()  # uint8 [300, 451, 3]
    return image, selective_search(image, max_proposals=None)


def test_selective_search_chelsea_boxes_are_valid(chelsea):
    image, boxes = chelsea
    height, width = image.shape[:2]
    assert boxes.dtype == torch.float32 and boxes.dim() == 2 and boxes.shape[1] == 4
    assert boxes.shape[0] > 50
    x1, y1, x2, y2 = boxes.unbind(1)
    assert ((0 <= x1) & (x1 < x2) & (x2 <= width)).all()
    assert ((0 <= y1) & (y1 < y2) & (y2 <= height)).all()
    assert torch.unique(boxes, dim=0).shape[0] == boxes.shape[0]
    # the coarsest grouping covers the whole photo
    assert (boxes == torch.tensor([0.0, 0, width, height])).all(1).any()


def test_selective_search_is_deterministic_and_truncates_in_order(chelsea):
    image, boxes = chelsea
    assert torch.equal(selective_search(image, max_proposals=None), boxes)
    first = selective_search(image, max_proposals=50)
    assert torch.equal(first, boxes[:50])
    assert selective_search(image, max_proposals=10**6).shape == boxes.shape


def test_selective_search_min_size_and_tensor_input(chelsea):
    image, boxes = chelsea
    chw = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    big = selective_search(chw, max_proposals=None, min_size=40)
    keep = ((boxes[:, 2:] - boxes[:, :2]) >= 40).all(1)
    assert 0 < int(keep.sum()) < boxes.shape[0]
    assert torch.equal(big, boxes[keep])


def test_selective_search_downscales_and_maps_boxes_back(chelsea):
    image, boxes = chelsea
    small = selective_search(image, max_side=150, max_proposals=None)
    height, width = image.shape[:2]
    assert small.shape[0] > 0
    assert ((small >= 0) & (small <= torch.tensor([width, height] * 2))).all()
    assert small[:, 2].max() == width and small[:, 3].max() == height  # back to full size
    # boxes sit on the 150-pixel grid: 451 / 150 input pixels per search pixel
    grid = small[:, 0] / (width / 150)
    assert torch.allclose(grid, grid.round(), atol=1e-3)
    assert small.shape[0] < boxes.shape[0]


def test_selective_search_quality_mode(chelsea):
    image, _ = chelsea
    fast = selective_search(image, max_side=100, max_proposals=None)
    quality = selective_search(image, mode="quality", max_side=100, max_proposals=None)
    assert quality.shape[0] > fast.shape[0] > 0  # more strategies, more distinct boxes


# --- CUDA: results stay on the input's device ------------------------------------------------

@needs_cuda
def test_roi_pool_grid_cuda_matches_cpu_and_torchvision():
    g = torch.Generator().manual_seed(6)
    features = torch.randn(2, 8, 14, 10, generator=g)
    rois = random_rois(50, 2, 14, 10, 0.5, g, halves=True)
    cpu = roi_pool_grid(features, rois, (3, 3), 0.5)
    gpu = roi_pool_grid(features.cuda(), rois.cuda(), (3, 3), 0.5)
    for name in ("pooled", "windows", "argmax", "roi_windows", "batch_index"):
        assert getattr(gpu, name).device.type == "cuda", name
        assert torch.equal(getattr(gpu, name).cpu(), getattr(cpu, name)), name
    assert torch.equal(gpu.pooled, tv.roi_pool(features.cuda(), rois.cuda(), (3, 3), 0.5))


@needs_cuda
def test_roi_align_cuda_and_device_mismatch():
    features = torch.randn(1, 2, 6, 6, device="cuda")
    out = roi_align(features, ROIS.cuda(), 2)
    assert out.device.type == "cuda"
    assert torch.equal(out, tv.roi_align(features, ROIS.cuda(), 2))
    with pytest.raises(ValueError, match=r"rois must be on features' device \(cuda:0\), got cpu"):
        roi_align(features, ROIS, 2)


@needs_cuda
def test_selective_search_cuda_tensor_input():
    _require_opencv_contrib()
    image = torch.zeros(3, 40, 60, dtype=torch.uint8, device="cuda")
    image[:, 10:30, 20:40] = 200
    boxes = selective_search(image)
    assert boxes.device.type == "cuda" and boxes.shape[0] > 0
    assert torch.equal(boxes.cpu(), selective_search(image.cpu()))
