"""SSD's recipe beside the book's: augmentation of detection batches (vision_core.data.augment, --augment) and the hard-negative loss (--loss hard_negatives)."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from vision_core import ssd
from vision_core._checks import ArgumentError
from vision_core.cli import main
from vision_core.cli.ssd import _train_command
from vision_core.data.augment import ssd_augment

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
OFF = {"p_zoom_out": 0.0, "p_crop": 0.0, "p_flip": 0.0, "p_color": 0.0}
PIXEL_ATOL = 255 * 1e-5  # float32 rounding of resampled 0..255 values
PAD = [-1.0, 0.0, 0.0, 0.0, 0.0]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rectangles(height, width, boxes_px):
    """Black images with a white filled rectangle exactly at each box, and their labels.

    ``boxes_px``: per image ``(x1, y1, x2, y2)`` in whole pixels. Each image also gets a padding
    row, before its box on odd images, after it on even ones.
    """
    n = len(boxes_px)
    images = torch.zeros(n, 3, height, width)
    labels = torch.empty(n, 2, 5)
    for i, (x1, y1, x2, y2) in enumerate(boxes_px):
        images[i, :, y1:y2, x1:x2] = 255.0
        row = [0.0, x1 / width, y1 / height, x2 / width, y2 / height]
        labels[i] = torch.tensor([PAD, row] if i % 2 else [row, PAD])
    return images, labels


def bright_bounds(image):
    """``(x1, y1, x2, y2)`` in pixels of the pixels brighter than 127 in channel 0 (edges, not centres)."""
    mask = image[0] > 127
    cols, rows = mask.any(0).nonzero()[:, 0], mask.any(1).nonzero()[:, 0]
    return torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float32)


def real_rows(labels):
    return labels[..., 0] >= 0


def smallest_longer_side(labels):
    """``Tensor[B]``: the longer side of each sample's smallest real box (``inf`` without boxes)."""
    longer = (labels[..., 3:] - labels[..., 1:3]).amax(-1)
    return torch.where(real_rows(labels), longer, math.inf).amin(1)


def random_labels(n, g_count=4, seed=0):
    """``n`` samples of up to ``g_count`` boxes inside [0, 1] (some tiny), padding rows in between."""
    g = gen(seed)
    corners = torch.rand(n, g_count, 2, 2, generator=g).sort(dim=2).values  # [n, G, (lo, hi), (x, y)]
    boxes = torch.cat((corners[:, :, 0], corners[:, :, 1]), -1)  # [n, G, 4]
    tiny = torch.rand(n, g_count, generator=g) < 0.2
    boxes[..., 2:] = torch.where(tiny[..., None], boxes[..., :2] + 0.02, boxes[..., 2:]).clamp(max=1.0)
    cls = torch.randint(0, 3, (n, g_count), generator=g).float()
    cls[torch.rand(n, g_count, generator=g) < 0.3] = -1.0
    labels = torch.cat((cls[..., None], boxes), -1)
    labels[cls < 0] = torch.tensor([-1.0, 0.1, 0.2, 0.3, 0.4])  # padding rows with something to keep
    return labels


# --- geometry --------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(96, 96), (80, 120)])
@pytest.mark.parametrize("probability", [1.0, 0.5])
def test_boxes_follow_the_pixels(size, probability):
    height, width = size
    boxes = [(10, 12, 40, 50), (50, 30, 90, 70), (0, 0, 30, 28), (60, 40, width, height), (25, 20, 55, 60),
             (5, 50, 35, height - 4), (40, 5, 70, 30), (33, 33, 66, 66)]
    images, labels = rectangles(height, width, boxes)
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    moved = 0
    for seed in range(4):
        out, got = ssd_augment(images, labels, gen(seed), p_zoom_out=probability, p_crop=probability,
                               p_flip=probability, p_color=0.0, min_box_side=0.0)
        real = real_rows(got)
        assert torch.equal(got[~real], labels[~real])  # padding rows untouched
        for i in range(len(boxes)):
            expected = got[i][real[i]][0, 1:] * scale
            assert (bright_bounds(out[i]) - expected).abs().max() <= 1.5, (seed, i, bright_bounds(out[i]), expected)
        moved += int((got != labels).any(-1).any(-1).sum())
    assert moved >= (32 if probability == 1.0 else 12)  # the augmentation did run


def test_each_step_alone_moves_boxes_the_way_it_should():
    images, labels = rectangles(64, 64, [(8, 8, 40, 24), (20, 30, 50, 60)] * 4)
    real = real_rows(labels)
    before = labels[real][:, 1:]
    width, height = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]

    _, zoomed = ssd_augment(images, labels, gen(1), **{**OFF, "p_zoom_out": 1.0}, min_box_side=0.0)
    after = zoomed[real][:, 1:]
    ratio_w, ratio_h = (after[:, 2] - after[:, 0]) / width, (after[:, 3] - after[:, 1]) / height
    torch.testing.assert_close(ratio_w, ratio_h)  # zoom-out keeps the aspect ratio
    assert (ratio_w <= 1 + 1e-6).all() and (ratio_w >= 0.5 - 1e-6).all() and (ratio_w < 0.95).any()

    _, cropped = ssd_augment(images, labels, gen(2), **{**OFF, "p_crop": 1.0})
    after = cropped[real][:, 1:]
    ratio_w, ratio_h = (after[:, 2] - after[:, 0]) / width, (after[:, 3] - after[:, 1]) / height
    assert (ratio_w >= 1 - 1e-6).all() and (ratio_h >= 1 - 1e-6).all() and (ratio_w > 1.05).any()
    assert (ratio_w <= 1 / 0.6 + 1e-5).all() and (ratio_h <= 1 / 0.6 + 1e-5).all()


def test_flip_mirrors_pixels_and_boxes_exactly():
    images = torch.rand(3, 3, 40, 56, generator=gen(5)) * 255
    labels = torch.tensor([[[0, 0.1, 0.2, 0.5, 0.6], PAD], [PAD, [1, 0.0, 0.0, 1.0, 1.0]],
                           [[0, 0.25, 0.5, 0.375, 0.75], [2, 0.6, 0.1, 0.9, 0.3]]])
    out, got = ssd_augment(images, labels, gen(0), **{**OFF, "p_flip": 1.0})
    torch.testing.assert_close(out, images.flip(-1), atol=PIXEL_ATOL, rtol=0)
    real = real_rows(labels)
    mirrored = labels.clone()
    mirrored[..., 1], mirrored[..., 3] = 1 - labels[..., 3], 1 - labels[..., 1]
    assert torch.equal(got[real], mirrored[real])
    assert torch.equal(got[~real], labels[~real])


def test_nothing_happens_when_every_probability_is_zero():
    images = torch.rand(4, 3, 32, 48, generator=gen(1)) * 255
    labels = random_labels(4)
    out, got = ssd_augment(images, labels, gen(0), **OFF)
    assert torch.equal(out, images) and torch.equal(got, labels)
    assert out is not images and got is not labels


def test_boxes_stay_whole_inside_the_image_and_keep_the_min_side():
    labels = random_labels(512, seed=3)
    images = torch.rand(512, 3, 16, 24, generator=gen(2)) * 255
    for p_zoom_out in (1.0, 0.3):
        out, got = ssd_augment(images, labels, gen(7), zoom_out=(1.0, 4.0), crop=(0.3, 1.0), p_zoom_out=p_zoom_out,
                               p_crop=0.5, min_box_side=0.08)
        real = real_rows(labels)
        assert torch.equal(real_rows(got), real)
        assert torch.equal(got[~real], labels[~real])  # padding rows as they were
        boxes = got[..., 1:][real]
        assert ((boxes >= 0) & (boxes <= 1)).all()
        assert (boxes[:, :2] <= boxes[:, 2:]).all()
        # Every box of a sample scales by the same factors (its widest box's): the crop cut none off.
        for axis in (1, 2):
            side, new_side = labels[..., axis + 2] - labels[..., axis], got[..., axis + 2] - got[..., axis]  # [B, G]
            widest = torch.where(real, side, -1.0).argmax(1, keepdim=True)  # [B, 1]
            factor = new_side.gather(1, widest) / side.gather(1, widest)
            assert ((new_side - factor * side).abs()[real] < 1e-5).all()
        # The smallest box's longer side stays >= min_box_side, or >= its old one where that was smaller.
        old, new = smallest_longer_side(labels), smallest_longer_side(got)
        has = real.any(1)
        assert (new[has] >= torch.minimum(old[has], torch.tensor(0.08)) - 1e-6).all()
        assert (new[has] < old[has] - 1e-3).any()  # zoom-out did shrink some
        assert out.shape == images.shape


def test_zoom_out_is_capped_by_the_smallest_box():
    images, labels = rectangles(100, 100, [(10, 10, 30, 20)] * 16)  # longer side 0.2
    _, got = ssd_augment(images, labels, gen(0), **{**OFF, "p_zoom_out": 1.0}, zoom_out=(3.0, 4.0),
                         min_box_side=0.1)
    sides = (got[..., 3] - got[..., 1])[real_rows(got)]
    torch.testing.assert_close(sides, torch.full_like(sides, 0.1))  # z capped at 2, below the range's 3
    _, got = ssd_augment(images, labels, gen(0), **{**OFF, "p_zoom_out": 1.0}, min_box_side=0.5)
    torch.testing.assert_close(got, labels)  # already smaller than the rule: no zoom-out at all


def test_samples_without_boxes_and_empty_label_tensors():
    images = torch.rand(6, 3, 24, 24, generator=gen(0)) * 255
    labels = torch.tensor([PAD, PAD]).expand(6, 2, 5).clone()
    out, got = ssd_augment(images, labels, gen(0), p_zoom_out=1.0, p_crop=1.0)
    assert torch.equal(got, labels) and out.shape == images.shape and torch.isfinite(out).all()
    out, got = ssd_augment(images, labels[:, :0], gen(0), p_zoom_out=1.0, p_crop=1.0)
    assert got.shape == (6, 0, 5) and torch.isfinite(out).all()


def test_zoom_out_fills_the_canvas_with_the_image_mean():
    images = torch.zeros(2, 3, 32, 32)
    images[:, 0], images[:, 1], images[:, 2] = 200.0, 100.0, 50.0  # one colour: the mean everywhere
    labels = torch.tensor([[[0, 0.25, 0.25, 0.75, 0.75]], [[0, 0.25, 0.25, 0.75, 0.75]]])
    out, _ = ssd_augment(images, labels, gen(0), **{**OFF, "p_zoom_out": 1.0}, zoom_out=(2.0, 2.0))
    torch.testing.assert_close(out, images, atol=1e-3, rtol=0)


# --- randomness --------------------------------------------------------------------------------

def test_a_seed_reproduces_and_another_differs():
    images = torch.rand(8, 3, 32, 32, generator=gen(0)) * 255
    labels = random_labels(8)
    first, again, other = (ssd_augment(images, labels, gen(s)) for s in (11, 11, 12))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])
    g = gen(11)
    ssd_augment(images, labels, g)
    assert not torch.equal(ssd_augment(images, labels, g)[0], first[0])  # the generator advances


def test_draws_do_not_depend_on_the_probabilities():
    # Turning colours off leaves the geometry of the same seed as it was.
    images = torch.rand(8, 3, 32, 32, generator=gen(0)) * 255
    labels = random_labels(8)
    assert torch.equal(ssd_augment(images, labels, gen(3))[1], ssd_augment(images, labels, gen(3), p_color=0.0)[1])


# --- colours -----------------------------------------------------------------------------------

def test_colors_stay_in_range_and_keep_shape_dtype_device():
    images = torch.rand(16, 3, 20, 28, generator=gen(0)) * 255
    images[:4] = 255.0  # saturated and black images are where clamping matters
    images[4:8] = 0.0
    labels = random_labels(16)
    out, got = ssd_augment(images, labels, gen(1), **{**OFF, "p_color": 1.0}, brightness=64.0)
    assert out.shape == images.shape and out.dtype == images.dtype and out.device == images.device
    assert out.min() >= 0 and out.max() <= 255
    assert not torch.allclose(out[8:], images[8:]) and torch.equal(got, labels)
    out64, _ = ssd_augment(images.double(), labels.double(), gen(1), **{**OFF, "p_color": 1.0})
    assert out64.dtype == torch.float64 and out64.min() >= 0 and out64.max() <= 255


def test_brightness_alone_adds_one_offset_per_image():
    images = 64 + torch.rand(8, 3, 16, 16, generator=gen(0)) * 128  # nowhere near clamping
    out, _ = ssd_augment(images, random_labels(8), gen(2), **{**OFF, "p_color": 1.0}, contrast=(1.0, 1.0),
                         saturation=(1.0, 1.0), hue=0.0, brightness=32.0)
    shift = out - images
    torch.testing.assert_close(shift, shift[:, :1, :1, :1].expand_as(shift), atol=1e-4, rtol=0)
    assert (shift.abs() <= 32 + 1e-4).all() and shift[:, 0, 0, 0].abs().max() > 1


def test_contrast_alone_scales_about_the_mean_grey():
    images = 96 + torch.rand(8, 3, 16, 16, generator=gen(0)) * 64  # scaled by 0.5..1.5: no clamping
    out, _ = ssd_augment(images, random_labels(8), gen(3), **{**OFF, "p_color": 1.0}, brightness=0.0,
                         saturation=(1.0, 1.0), hue=0.0)
    gray = torch.tensor([0.299, 0.587, 0.114])
    mean_in, mean_out = (torch.einsum("c,bc->b", gray, t.mean((2, 3))) for t in (images, out))
    torch.testing.assert_close(mean_out, mean_in, atol=1e-3, rtol=0)  # the mean grey is the fixed point
    factor = (out - mean_out[:, None, None, None]) / (images - mean_in[:, None, None, None])
    centre = factor.flatten(1).median(1).values
    assert ((centre >= 0.5 - 1e-4) & (centre <= 1.5 + 1e-4)).all() and (centre - 1).abs().max() > 0.05
    torch.testing.assert_close(out - mean_out[:, None, None, None],
                               centre[:, None, None, None] * (images - mean_in[:, None, None, None]),
                               atol=1e-3, rtol=0)


def test_hue_keeps_luma_and_chroma_strength_and_greys():
    images = 64 + torch.rand(8, 3, 16, 16, generator=gen(0)) * 128
    images[0] = 100.0  # a grey image stays grey
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])
    out, _ = ssd_augment(images, random_labels(8), gen(4), **{**OFF, "p_color": 1.0}, brightness=0.0,
                         contrast=(1.0, 1.0), saturation=(1.0, 1.0), hue=30.0)
    before, after = torch.einsum("ij,bjhw->bihw", yiq, images), torch.einsum("ij,bjhw->bihw", yiq, out)
    torch.testing.assert_close(after[:, 0], before[:, 0], atol=1e-3, rtol=0)
    torch.testing.assert_close(after[:, 1:].norm(dim=1), before[:, 1:].norm(dim=1), atol=1e-3, rtol=0)
    torch.testing.assert_close(out[0], images[0], atol=1e-3, rtol=0)
    assert not torch.allclose(out[1:], images[1:], atol=1.0)


def test_zero_saturation_gives_grey_with_the_same_luma():
    images = 64 + torch.rand(4, 3, 8, 8, generator=gen(0)) * 128
    out, _ = ssd_augment(images, random_labels(4), gen(0), **{**OFF, "p_color": 1.0}, brightness=0.0,
                         contrast=(1.0, 1.0), saturation=(0.0, 0.0), hue=0.0)
    luma = torch.einsum("c,bchw->bhw", torch.tensor([0.299, 0.587, 0.114]), images)
    torch.testing.assert_close(out, luma[:, None].expand_as(out), atol=1e-3, rtol=0)


@CUDA
def test_cuda_matches_cpu():
    images = torch.rand(8, 3, 48, 64, generator=gen(0)) * 255
    labels = random_labels(8)
    cpu = ssd_augment(images, labels, gen(5), p_zoom_out=0.5, p_crop=0.5)
    gpu = ssd_augment(images.cuda(), labels.cuda(), gen(5), p_zoom_out=0.5, p_crop=0.5)
    assert gpu[0].device.type == "cuda" and gpu[1].device.type == "cuda"
    torch.testing.assert_close(gpu[1].cpu(), cpu[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], atol=0.5, rtol=0)  # TF32 / other bilinear rounding


# --- arguments -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"images": torch.zeros(2, 3, 8, 8, dtype=torch.uint8)}, "images must be floating point"),
    ({"images": torch.zeros(2, 1, 8, 8)}, r"images must be a tensor of shape \[B, 3, H, W\]"),
    ({"labels": torch.zeros(3, 1, 5)}, "labels must be 2 rows, one per image, got 3 rows"),
    ({"labels": torch.zeros(2, 1, 4)}, r"labels must be of shape \[B, G, 5\]"),
    ({"generator": None}, "generator must be a torch.Generator on the CPU"),
    ({"zoom_out": (0.5, 2.0)}, "zoom_out must be a pair"),
    ({"crop": (0.8, 0.6)}, "crop must be a pair"),
    ({"crop": (0.0, 1.0)}, "crop must be a pair"),
    ({"p_flip": 1.5}, "p_flip must be a number in"),
    ({"hue": 200.0}, "hue must be a number in"),
    ({"min_box_side": -0.1}, "min_box_side"),
    ({"p_background": 1.5}, "p_background must be a number in"),
    ({"min_background_side": 0.0}, "min_background_side must be a number in"),
])
def test_bad_arguments_are_argument_errors(kwargs, message):
    args = {"images": torch.zeros(2, 3, 8, 8), "labels": torch.zeros(2, 1, 5), "generator": gen(0)}
    args.update(kwargs)
    with pytest.raises(ArgumentError, match=message):
        ssd_augment(args.pop("images"), args.pop("labels"), args.pop("generator"), **args)


def test_background_windows_hold_no_box_and_no_banana_pixel():
    # Boxes on whole pixels, with room beside them: left (x 0..24 of 64), below, above, right.
    images, labels = rectangles(64, 64, [(24, 8, 56, 40), (8, 0, 40, 24), (10, 40, 50, 64), (0, 20, 30, 50)])
    out, out_labels = ssd_augment(images, labels, gen(0), p_background=1.0, **OFF)
    assert torch.equal(out_labels, torch.full_like(labels, -1.0))  # every row is padding now
    # Bilinear sampling reads half an output pixel past the window's edge, so the rim may blend
    # in the box's first row or column; inside it, no banana pixel remains.
    assert out[:, :, 1:-1, 1:-1].amax() <= PIXEL_ATOL
    assert out.shape == images.shape


def test_background_window_is_the_largest_square_beside_the_boxes():
    from vision_core.data.augment import _background_window

    low, high = torch.tensor([[0.6, 0.2], [0.1, 0.1], [float("inf")] * 2]), torch.tensor([[0.9, 0.5], [0.3, 0.4], [-float("inf")] * 2])
    scale, shift, side = _background_window(low, high, torch.tensor([1.0, 0.0, 0.5]))
    # Left of the first union is 0.6 wide (above 0.2, right 0.1, below 0.5): x from 0, y at the far end.
    # Right of the second is 0.7 wide: x from 0.3. No box: the whole image.
    assert torch.allclose(side, torch.tensor([0.6, 0.7, 1.0]))
    start = -shift / scale  # [B, 2]
    assert torch.allclose(start, torch.tensor([[0.0, 0.4], [0.3, 0.0], [0.0, 0.0]]), atol=1e-6)


def test_background_windows_keep_the_other_draws_and_skip_tight_pictures():
    images, labels = rectangles(64, 64, [(24, 8, 56, 40), (4, 4, 60, 60), (8, 0, 40, 24)])
    plain = ssd_augment(images, labels, gen(3))
    mixed = ssd_augment(images, labels, gen(3), p_background=1.0)
    # The middle picture has no square of 0.3 beside its box: it gets steps 1-4 as without step 5.
    assert torch.equal(mixed[0][1], plain[0][1]) and torch.equal(mixed[1][1], plain[1][1])
    assert (mixed[1][[0, 2], :, 0] == -1).all() and (mixed[1][1, :, 0] >= -1).all()
    half = ssd_augment(images.repeat(20, 1, 1, 1), labels.repeat(20, 1, 1), gen(4), p_background=0.5)[1]
    emptied = (half[:, :, 0] < 0).all(1)
    assert 0.2 < emptied[0::3].float().mean() < 0.8 and not emptied[1::3].any()


# --- training ----------------------------------------------------------------------------------

def square_bananas(n, size=64, seed=0):
    """``n`` bright squares on a dark ground in read_bananas's format: uint8 [n, 3, s, s], [n, 1, 5]."""
    g = gen(seed)
    images = torch.full((n, 3, size, size), 20, dtype=torch.uint8)
    labels = torch.zeros(n, 1, 5)
    side = size // 3
    for i in range(n):
        x, y = torch.randint(0, size - side, (2,), generator=g).tolist()
        images[i, :, y:y + side, x:x + side] = 230
        labels[i, 0] = torch.tensor([0, x / size, y / size, (x + side) / size, (y + side) / size])
    return images, labels


def fresh_net():
    torch.manual_seed(0)
    return ssd.TinySSD(1)


@pytest.fixture
def spy(monkeypatch):
    """Records each batch ssd_augment sees in training: (labels in, labels out)."""
    calls = []

    def recording(images, labels, generator, **kwargs):
        out = ssd_augment(images, labels, generator, **kwargs)
        calls.append((labels.clone(), out[1].clone()))
        return out

    monkeypatch.setattr(ssd, "ssd_augment", recording)
    return calls


def test_train_ssd_augments_every_training_batch_deterministically(spy):
    train, val = square_bananas(8), square_bananas(2, seed=1)

    def run(augment, seed=0):
        net = fresh_net()
        records = list(ssd.train_ssd(train, val, net=net, epochs=1, batch_size=4, device="cpu", seed=seed,
                                     augment=augment))
        return net.state_dict(), records[-1].metrics

    a, metrics = run(True)
    assert len(spy) == 2  # two batches, validation not augmented
    assert any(not torch.equal(before, after) for before, after in spy)
    assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["val_class_err"])
    b, _ = run(True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain, _ = run(False)
    assert len(spy) == 4  # augment=False never calls it
    assert not all(torch.equal(a[k], plain[k]) for k in a)
    other, _ = run(True, seed=1)
    assert not all(torch.equal(a[k], other[k]) for k in a)


def test_train_ssd_without_augment_is_the_default_run():
    data = square_bananas(8)

    def run(**kwargs):
        net = fresh_net()
        list(ssd.train_ssd(data, net=net, epochs=1, batch_size=4, device="cpu", **kwargs))
        return net.state_dict()

    a, b = run(), run(augment=False)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_ssd_background_crops_empty_some_training_pictures(spy):
    train = square_bananas(8)
    records = list(ssd.train_ssd(train, net=fresh_net(), epochs=1, batch_size=8, device="cpu", augment=True,
                                 background_crops=1.0, loss="hard_negatives_ignore", optimizer="adamw", lr=1e-3))
    assert records[-1].done and math.isfinite(records[-1].metrics["loss"])
    emptied = (spy[0][1][:, :, 0] < 0).all(1)
    assert emptied.any()  # a square of a third of the side leaves room on some side
    with pytest.raises(ArgumentError, match="background_crops must be 0 unless augment is True"):
        ssd.train_ssd(train, net=fresh_net(), background_crops=0.1)
    with pytest.raises(ArgumentError, match="background_crops must be a number in"):
        ssd.train_ssd(train, net=fresh_net(), augment=True, background_crops=2.0)


def test_cli_background_crops_need_augment_and_are_recorded(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "ssd", "--background-crops", "0.1", "--epochs", "1", "--no-save"])
    assert exit_.value.code == 2 and "--background-crops needs --augment" in capsys.readouterr().err
    args = argparse.Namespace(epochs=1, batch_size=32, lr=0.001, seed=0, data_seed=0, device="cpu",
                              optimizer="adamw", augment=True, loss="hard_negatives_ignore", data=None, init=None,
                              synthetic_train=6000, cpu_bfloat16=False, background_crops=0.1)
    assert _train_command(args).endswith("--augment --background-crops 0.1 --loss hard_negatives_ignore "
                                         "--synthetic-train 6000")


@pytest.mark.parametrize("value", [1, "yes", None])
def test_train_ssd_checks_augment(value):
    with pytest.raises(ArgumentError, match="augment must be True or False"):
        ssd.train_ssd(square_bananas(2), net=fresh_net(), augment=value)  # checked eagerly


# --- command line --------------------------------------------------------------------------------

def test_cli_help_lists_augment(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "ssd", "--help"])
    assert exit_.value.code == 0 and "--augment" in capsys.readouterr().out


def test_train_command_records_augment():
    args = argparse.Namespace(epochs=2, batch_size=4, lr=0.2, seed=1, data_seed=0, device="cpu", optimizer="sgd",
                              data=None, init=None, augment=True, loss="book", synthetic_train=1000,
                              cpu_bfloat16=False, background_crops=0.0)
    assert _train_command(args) == ("python -m vision_core train ssd --epochs 2 --batch-size 4 --lr 0.2 --seed 1 "
                                    "--data-seed 0 --device cpu --augment")
    assert "--augment" not in _train_command(argparse.Namespace(**{**vars(args), "augment": False}))


def test_cli_train_with_augment_passes_it_and_records_it(tmp_path, monkeypatch, spy):
    from vision_core.data import bananas

    def fake_load(root=None, split="train", seed=0, **kwargs):
        return square_bananas(4 if split == "train" else 2, seed=seed + (split == "val"))

    monkeypatch.setattr(bananas, "load_bananas", fake_load)
    assert main(["train", "ssd", "--epochs", "1", "--batch-size", "2", "--seed", "3", "--device", "cpu", "--augment",
                 "--weights-dir", str(tmp_path)]) == 0
    assert len(spy) == 2
    row = json.loads((tmp_path / "manifest.json").read_text())["weights"][0]
    assert row["source"]["command"].endswith(" --device cpu --augment")
    assert "augmentation" in row["description"]


# --- SSD's hard-negative loss -----------------------------------------------------------------------

def _hard_negative_loss_by_hand(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks, neg_ratio=3.0,
                                ignore=None, min_negatives=1):
    # One image at a time, the paper's recipe spelled out: the reference the vectorised loss must equal.
    out = []
    for b in range(cls_preds.shape[0]):
        ce = torch.nn.functional.cross_entropy(cls_preds[b], cls_labels[b], reduction="none")
        positive = cls_labels[b] > 0
        n = int(positive.sum())
        k = max(min_negatives, int(neg_ratio * n))
        background = sorted(((float(ce[a]), a) for a in range(len(ce))
                             if not positive[a] and (ignore is None or not ignore[b, a])), reverse=True)[:k]
        cls = float(ce[positive].sum()) + sum(v for v, _ in background)
        l1 = float(((bbox_preds[b] - bbox_labels[b]).abs() * bbox_masks[b]).sum())
        out.append((cls + l1) / max(n, 1))
    return torch.tensor(out)


def test_hard_negative_loss_counts_positives_and_three_times_as_many_hardest_negatives():
    from vision_core.models.tiny_ssd import calc_loss, hard_negative_loss

    gen = torch.Generator().manual_seed(0)
    B, A = 3, 40
    cls_preds = torch.randn(B, A, 2, generator=gen)
    cls_labels = torch.zeros(B, A, dtype=torch.long)
    cls_labels[0, [3, 7]] = 1  # 2 positives: 6 hard negatives
    cls_labels[1, 10:25] = 1  # 15 positives: all 25 negatives
    masks = cls_labels.repeat_interleave(4, dim=1).float()  # image 2: no positive at all
    bbox_preds, bbox_labels = torch.randn(B, A * 4, generator=gen), torch.randn(B, A * 4, generator=gen)
    loss = hard_negative_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, masks)
    assert loss.shape == (B,)
    torch.testing.assert_close(loss, _hard_negative_loss_by_hand(cls_preds, cls_labels, bbox_preds, bbox_labels, masks))
    # Far above the book's, which averages the same errors over every anchor.
    assert (loss > calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, masks)).all()


def test_hard_negative_loss_never_mines_ignored_anchors():
    from vision_core.models.tiny_ssd import hard_negative_loss

    gen = torch.Generator().manual_seed(1)
    B, A = 2, 30
    cls_preds = torch.randn(B, A, 2, generator=gen)
    cls_labels = torch.zeros(B, A, dtype=torch.long)
    cls_labels[:, 4] = 1  # one positive each: 3 hard negatives
    masks = cls_labels.repeat_interleave(4, dim=1).float()
    bbox_preds, bbox_labels = torch.randn(B, A * 4, generator=gen), torch.randn(B, A * 4, generator=gen)
    ce = torch.nn.functional.cross_entropy(cls_preds.reshape(-1, 2), cls_labels.reshape(-1), reduction="none")
    hardest = ce.reshape(B, A).masked_fill(cls_labels > 0, -1).argsort(dim=1, descending=True)[:, :2]  # [B, 2]
    ignore = torch.zeros(B, A, dtype=torch.bool).scatter(1, hardest, True)
    loss = hard_negative_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, masks, ignore=ignore)
    torch.testing.assert_close(loss, _hard_negative_loss_by_hand(cls_preds, cls_labels, bbox_preds, bbox_labels, masks,
                                                                 ignore=ignore))
    assert (loss < hard_negative_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, masks)).all()
    # At least 10 negatives per image, though each has one positive.
    floor = hard_negative_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, masks, ignore=ignore, min_negatives=10)
    torch.testing.assert_close(floor, _hard_negative_loss_by_hand(cls_preds, cls_labels, bbox_preds, bbox_labels, masks,
                                                                  ignore=ignore, min_negatives=10))
    assert (floor > loss).all()


def test_overlapping_negatives_are_background_anchors_whose_predicted_box_hits_a_banana():
    from vision_core.anchors import offset_boxes
    from vision_core.models.tiny_ssd import overlapping_negatives

    anchors = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.9, 0.9], [0.5, 0.5, 0.7, 0.7]])
    labels = torch.tensor([[[0, 0.1, 0.1, 0.3, 0.3], [-1, 0.5, 0.5, 0.7, 0.7]]])  # the second row pads
    cls_labels = torch.tensor([[1, 0, 0, 0]])
    offsets = torch.zeros(1, 4, 4)  # each anchor predicts itself ...
    offsets[0, 2] = offset_boxes(anchors[2:3], labels[0, :1, 1:])[0]  # ... but the far anchor predicts the banana
    ignored = overlapping_negatives(anchors[None], offsets.reshape(1, -1), labels, cls_labels)
    # 0: positive, never ignored; 1: IoU 0.82 with the banana; 2: its prediction lands on the banana;
    # 3: lies on the padding row only.
    assert ignored.tolist() == [[False, True, True, False]]
    assert not overlapping_negatives(anchors, offsets.reshape(1, -1), labels, cls_labels, iou_threshold=0.99)[0, 1]


def test_promote_well_boxed_relabels_background_anchors_whose_predicted_box_fits_a_banana():
    from vision_core.anchors import offset_boxes
    from vision_core.models.tiny_ssd import promote_well_boxed

    anchors = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9], [0.6, 0.6, 0.9, 0.9],
                            [0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.7, 0.7]])
    labels = torch.tensor([[[2, 0.1, 0.1, 0.3, 0.3], [-1, 0.5, 0.5, 0.7, 0.7]]])  # class 2; the second row pads
    cls_labels = torch.tensor([[3, 0, 0, 0, 0]])
    offsets = torch.zeros(1, 5, 4)  # each anchor predicts itself, but:
    offsets[0, 1] = offset_boxes(anchors[1:2], torch.tensor([[0.11, 0.1, 0.31, 0.3]]))[0]  # IoU 0.90 with the truth
    offsets[0, 2] = offset_boxes(anchors[2:3], torch.tensor([[0.14, 0.1, 0.34, 0.3]]))[0]  # IoU 0.67
    taught = promote_well_boxed(anchors[None], offsets.reshape(1, -1), labels, cls_labels)
    # 0: already positive; 1: promoted to the truth's class + 1; 2: under 0.75; 3: its own box, IoU 0.14;
    # 4: lies on the padding row only.
    assert taught.tolist() == [[3, 3, 0, 0, 0]] and taught.dtype == torch.long
    assert promote_well_boxed(anchors, offsets.reshape(1, -1), labels, cls_labels, iou_threshold=0.6).tolist() == \
        [[3, 3, 3, 0, 0]]
    assert cls_labels.tolist() == [[3, 0, 0, 0, 0]]  # not changed in place


def test_promote_loss_trains_on_promoted_labels_and_keeps_the_books_metrics(monkeypatch):
    calls = []

    def spy(anchors, bbox_preds, labels, cls_labels, iou_threshold=0.75):
        calls.append(cls_labels.clone())
        return torch.where(cls_labels == 0, torch.ones_like(cls_labels), cls_labels)  # every anchor a banana

    monkeypatch.setattr(ssd, "promote_well_boxed", spy)
    records = list(ssd.train_ssd(square_bananas(8), net=fresh_net(), epochs=1, batch_size=4, device="cpu",
                                 loss="hard_negatives_ignore", optimizer="adamw", lr=1e-3))
    assert not calls and records[-1].done
    ignoring = records[-1].metrics
    records = list(ssd.train_ssd(square_bananas(8), net=fresh_net(), epochs=1, batch_size=4, device="cpu",
                                 loss="hard_negatives_promote", optimizer="adamw", lr=1e-3))
    assert len(calls) == 2 and records[-1].done and math.isfinite(records[-1].metrics["loss"])
    # The book's class error still counts against multibox_target's labels, mostly background, so
    # a network taught "banana everywhere" scores worse on it, not better.
    assert records[-1].metrics["class_err"] > ignoring["class_err"]
    args = argparse.Namespace(epochs=1, batch_size=32, lr=0.001, seed=0, data_seed=0, device="cpu",
                              optimizer="adamw", augment=True, loss="hard_negatives_promote", data=None, init=None,
                              synthetic_train=6000, cpu_bfloat16=True, background_crops=0.0)
    assert _train_command(args).endswith(
        "--augment --loss hard_negatives_promote --synthetic-train 6000 --cpu-bfloat16")


def test_train_ssd_with_ignoring_hard_negatives_runs_and_the_cli_offers_it():
    records = list(ssd.train_ssd(square_bananas(8), net=fresh_net(), epochs=1, batch_size=4, device="cpu",
                                 loss="hard_negatives_ignore", optimizer="adamw", lr=1e-3))
    assert records[-1].done and math.isfinite(records[-1].metrics["loss"])
    args = argparse.Namespace(epochs=1, batch_size=32, lr=0.001, seed=0, data_seed=0, device="cpu",
                              optimizer="adamw", augment=True, loss="hard_negatives_ignore", data=None, init=None,
                              synthetic_train=6000, cpu_bfloat16=True, background_crops=0.0)
    assert _train_command(args).endswith("--augment --loss hard_negatives_ignore --synthetic-train 6000 --cpu-bfloat16")


def test_train_ssd_with_hard_negatives_runs_and_the_cli_records_it():
    data = square_bananas(8)
    torch.manual_seed(0)
    records = list(ssd.train_ssd(data, net=fresh_net(), epochs=1, batch_size=4, device="cpu", loss="hard_negatives",
                                 record_interval=0))
    assert records[-1].done and math.isfinite(records[-1].metrics["loss"])
    with pytest.raises(ArgumentError, match="loss"):
        ssd.train_ssd(data, net=fresh_net(), loss="focal")
    args = argparse.Namespace(epochs=1, batch_size=4, lr=0.001, seed=0, data_seed=0, device="cpu", optimizer="adamw",
                              augment=True, loss="hard_negatives", data=None, init=None, synthetic_train=1000,
                              cpu_bfloat16=False, background_crops=0.0)
    assert _train_command(args).endswith("--optimizer adamw --augment --loss hard_negatives")
