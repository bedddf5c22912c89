"""vision_core.boxes: properties (hypothesis), parity with torchvision.ops and the book (d2l)."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.ops as tv
from hypothesis import given, settings
from hypothesis import strategies as st

import vision_core as vc
from vision_core._checks import ArgumentError
from vision_core.boxes import BOX_FORMATS

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SETTINGS = settings(max_examples=60, deadline=None)


def random_corner_boxes(n, *lead, scale=500.0, min_size=1.0, generator=None, dtype=torch.float32):
    g = generator or torch.Generator().manual_seed(n)
    xy = torch.rand(*lead, n, 2, generator=g, dtype=torch.float64) * scale
    wh = min_size + torch.rand(*lead, n, 2, generator=g, dtype=torch.float64) * scale / 2
    return torch.cat([xy, xy + wh], dim=-1).to(dtype)


coord = st.floats(min_value=-2000, max_value=2000, allow_nan=False, width=32)
size = st.floats(min_value=0.0625, max_value=2000, allow_nan=False, width=32)


@st.composite
def corner_boxes(draw, max_n=12):
    n = draw(st.integers(1, max_n))
    rows = [[draw(coord), draw(coord), draw(size), draw(size)] for _ in range(n)]
    xywh = torch.tensor(rows, dtype=torch.float64)
    return torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)


# --- the book's printed example -------------------------------------------------------------

def test_book_example_dog_cat():
    # d2l 14.3: the dog and cat boxes, and the round trip the book prints as all True.
    boxes = torch.tensor([[60.0, 45.0, 378.0, 516.0], [400.0, 112.0, 655.0, 493.0]])
    center = vc.box_corner_to_center(boxes)
    assert torch.equal(center, torch.tensor([[219.0, 280.5, 318.0, 471.0], [527.5, 302.5, 255.0, 381.0]]))
    assert torch.equal(vc.box_center_to_corner(center), boxes)


# --- round trips ----------------------------------------------------------------------------

@SETTINGS
@given(corner_boxes(), st.sampled_from([torch.float32, torch.float64]))
def test_round_trips_exact_to_1e_5_relative(boxes, dtype):
    boxes = boxes.to(dtype)
    scale = boxes.abs().max().clamp(min=1.0)
    for fmt in BOX_FORMATS:
        other = vc.box_convert(boxes, "xyxy", fmt)
        back = vc.box_convert(other, fmt, "xyxy")
        assert ((back - boxes).abs() <= 1e-5 * scale).all(), fmt
        # and the other way round, starting from the other format
        again = vc.box_convert(back, "xyxy", fmt)
        assert ((again - other).abs() <= 1e-5 * other.abs().max().clamp(min=1.0)).all(), fmt


def test_round_trip_float16_within_its_precision():
    boxes = random_corner_boxes(200, scale=1.0).half()
    back = vc.box_center_to_corner(vc.box_corner_to_center(boxes))
    assert back.dtype == torch.float16
    assert (back.float() - boxes.float()).abs().max() <= 4 * torch.finfo(torch.float16).eps


@pytest.mark.parametrize("lead", [(), (3,), (2, 5)])
def test_any_leading_shape(lead):
    boxes = random_corner_boxes(7, *lead)
    for fmt in BOX_FORMATS:
        out = vc.box_convert(boxes, "xyxy", fmt)
        assert out.shape == boxes.shape
        flat = tv.box_convert(boxes.reshape(-1, 4), "xyxy", fmt).reshape(boxes.shape)
        torch.testing.assert_close(out, flat)


# --- parity with torchvision ----------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_convert_matches_torchvision(device, dtype):
    boxes = random_corner_boxes(500, dtype=dtype).to(device)
    for fmt_in in BOX_FORMATS:
        src = tv.box_convert(boxes, "xyxy", fmt_in)
        for fmt_out in BOX_FORMATS:
            ours = vc.box_convert(src, fmt_in, fmt_out)
            assert ours.device == src.device and ours.dtype == dtype
            torch.testing.assert_close(ours, tv.box_convert(src, fmt_in, fmt_out))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_iou_and_area_match_torchvision(device, dtype):
    g = torch.Generator().manual_seed(1)
    a = random_corner_boxes(300, generator=g, dtype=dtype).to(device)
    b = random_corner_boxes(200, generator=g, dtype=dtype).to(device)
    iou = vc.box_iou(a, b)
    assert iou.shape == (300, 200) and iou.device == a.device and iou.dtype == dtype
    torch.testing.assert_close(iou, tv.box_iou(a, b))
    torch.testing.assert_close(vc.box_area(a), tv.box_area(a))
    assert (iou > 0).any() and (iou == 0).any()  # the random sets overlap partly


@SETTINGS
@given(corner_boxes(), corner_boxes())
def test_box_iou_matches_torchvision_hypothesis(a, b):
    torch.testing.assert_close(vc.box_iou(a, b), tv.box_iou(a, b))


@pytest.mark.parametrize("device", DEVICES)
def test_box_iou_batched(device):
    a = random_corner_boxes(9, 4).to(device)  # [4, 9, 4]
    b = random_corner_boxes(6, 4).to(device)  # [4, 6, 4]
    iou = vc.box_iou(a, b)
    assert iou.shape == (4, 9, 6)
    for i in range(4):
        torch.testing.assert_close(iou[i], tv.box_iou(a[i], b[i]))
    # leading dimensions broadcast: one set of anchors against a batch of ground truths
    torch.testing.assert_close(vc.box_iou(a[0], b), torch.stack([tv.box_iou(a[0], b[i]) for i in range(4)]))


def test_box_iou_float16_pixel_boxes_do_not_overflow():
    a = random_corner_boxes(50, scale=1500.0)
    iou16 = vc.box_iou(a.half(), a.half())
    assert iou16.dtype == torch.float16 and torch.isfinite(iou16).all()
    torch.testing.assert_close(iou16.float(), tv.box_iou(a.half().float(), a.half().float()), atol=2e-3, rtol=0)


# --- IoU properties -------------------------------------------------------------------------

@SETTINGS
@given(corner_boxes(), corner_boxes())
def test_iou_in_unit_interval_and_symmetric(a, b):
    iou = vc.box_iou(a, b)
    assert ((iou >= 0) & (iou <= 1)).all()
    torch.testing.assert_close(iou, vc.box_iou(b, a).T)


@SETTINGS
@given(corner_boxes())
def test_iou_with_itself_is_one(a):
    assert torch.equal(vc.box_iou(a, a).diagonal(), torch.ones(len(a), dtype=a.dtype))


def test_iou_degenerate_boxes_give_zero_not_nan():
    point = torch.tensor([[5.0, 5.0, 5.0, 5.0]])
    inverted = torch.tensor([[10.0, 10.0, 0.0, 0.0]])
    normal = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert vc.box_iou(point, point).item() == 0.0
    assert vc.box_iou(inverted, normal).item() == 0.0
    assert math.isnan(tv.box_iou(point, point).item())  # what torchvision gives instead


def test_iou_gradient_is_finite_for_degenerate_pairs():
    boxes = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]], requires_grad=True)
    vc.box_iou(boxes, boxes).sum().backward()
    assert torch.isfinite(boxes.grad).all()


# --- parity with the book's reference implementation ----------------------------------------

def test_matches_d2l_reference():
    d2l = pytest.importorskip("d2l.torch", reason="install the oracle: pip install --no-deps d2l==1.0.3")
    boxes = random_corner_boxes(400)
    torch.testing.assert_close(vc.box_corner_to_center(boxes), d2l.box_corner_to_center(boxes))
    center = vc.box_corner_to_center(boxes)
    torch.testing.assert_close(vc.box_center_to_corner(center), d2l.box_center_to_corner(center))
    other = random_corner_boxes(100, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(vc.box_iou(boxes, other), d2l.box_iou(boxes, other))


# --- clipping and normalisation -------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_clip_matches_torchvision(device):
    boxes = (random_corner_boxes(300, scale=900.0) - 200).to(device)
    ours = vc.clip_boxes_to_image(boxes, (300, 451))
    torch.testing.assert_close(ours, tv.clip_boxes_to_image(boxes, (300, 451)))
    assert ours[..., 0::2].max() <= 451 and ours[..., 1::2].max() <= 300 and ours.min() >= 0
    batched = vc.clip_boxes_to_image(boxes.reshape(3, 100, 4), (300, 451))
    torch.testing.assert_close(batched.reshape(-1, 4), ours)


@SETTINGS
@given(corner_boxes(), st.sampled_from(BOX_FORMATS))
def test_normalize_round_trip(boxes, fmt):
    boxes = vc.box_convert(boxes, "xyxy", fmt)
    size = (300, 451)
    norm = vc.normalize_boxes(boxes, size)
    torch.testing.assert_close(vc.denormalize_boxes(norm, size), boxes)
    # normalising commutes with format conversion: each format is (x, y, x, y)-like
    torch.testing.assert_close(
        vc.box_convert(norm, fmt, "xyxy"), vc.normalize_boxes(vc.box_convert(boxes, fmt, "xyxy"), size)
    )


# --- bad arguments --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: vc.box_corner_to_center(torch.zeros(3, 5)), r"shape \[\.\.\., 4\]"),
        (lambda: vc.box_corner_to_center([[1, 2, 3, 4]]), "torch.Tensor"),
        (lambda: vc.box_convert(torch.zeros(1, 4), "xyxy", "yolo"), "out_fmt must be one of"),
        (lambda: vc.box_iou(torch.zeros(4), torch.zeros(2, 4)), r"boxes1 and boxes2 must be Tensor\[\.\.\., N, 4\]"),
        (lambda: vc.clip_boxes_to_image(torch.zeros(1, 4), (0, 10)), "both > 0"),
        (lambda: vc.normalize_boxes(torch.zeros(1, 4), "big"), r"\(height, width\)"),
    ],
)
def test_bad_arguments_raise_argument_error(call, message):
    with pytest.raises(ArgumentError, match=message):
        call()
