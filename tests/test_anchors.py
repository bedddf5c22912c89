"""vision_core.anchors: the book's printed examples, parity with d2l and torchvision, properties."""

from __future__ import annotations

import pytest
import torch
import torchvision.ops as tv
from hypothesis import given, settings
from hypothesis import strategies as st

from vision_core import anchors as va
from vision_core._checks import ArgumentError
from vision_core.boxes import box_iou

d2l = pytest.importorskip("d2l.torch", reason="install the oracle: pip install --no-deps d2l==1.0.3")

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SETTINGS = settings(max_examples=40, deadline=None)

# The book's examples (d2l 14.4.3 and 14.4.4).
BOOK_GT = torch.tensor([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]])
BOOK_ANCHORS = torch.tensor(
    [[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98], [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]]
)
BOOK_NMS_ANCHORS = torch.tensor(
    [[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95], [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]]
)
BOOK_CLS_PROBS = torch.tensor([[0.0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]])


def rand_boxes(n, g, grid=None, lo=0.05, span=0.5):
    """n normalised xyxy boxes; with `grid`, snapped to a 1/grid lattice so many IoUs tie."""
    xy = torch.rand(n, 2, generator=g) * 0.8
    wh = lo + torch.rand(n, 2, generator=g) * span
    boxes = torch.cat([xy, xy + wh], dim=1)
    if grid:
        boxes = (boxes * grid).floor() / grid
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1 / grid)  # no empty boxes: d2l gives NaN IoU
    return boxes


def d2l_labels(labels_i):
    """One image's labels without padding rows, as d2l needs them: [1, G', 5]."""
    return labels_i[labels_i[:, 0] >= 0][None]


# --- multibox_prior -------------------------------------------------------------------------

def test_multibox_prior_book_example():
    # d2l 14.4.1: 561 x 728 image, sizes [0.75, 0.5, 0.25], ratios [1, 2, 0.5].
    X = torch.rand(1, 3, 561, 728)
    Y = va.multibox_prior(X, sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])
    assert Y.shape == (1, 2042040, 4) and Y.dtype == torch.float32
    boxes = Y.reshape(561, 728, 5, 4)
    # the book prints tensor([0.06, 0.07, 0.63, 0.82]) for the first anchor at (250, 250)
    torch.testing.assert_close(boxes[250, 250, 0, :], torch.tensor([0.0551, 0.0715, 0.6331, 0.8215]), atol=1e-4, rtol=0)
    assert torch.equal(Y, d2l.multibox_prior(X, sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5]))


@pytest.mark.parametrize(
    "shape, sizes, ratios",
    [
        ((1, 3, 7, 5), [0.3, 0.1, 0.77], [1.3, 2, 0.5, 3]),
        ((2, 8, 4), [0.2], [1]),
        ((1, 1, 10, 10), [0.2, 0.272], [1, 2, 0.5]),
        ((3, 2), [1, 0.5], [0.25, 4]),
        ((1, 64, 1, 13), [0.9], [1, 2]),
    ],
)
def test_multibox_prior_matches_d2l_bitwise(shape, sizes, ratios):
    X = torch.zeros(shape)
    ours = va.multibox_prior(X, sizes, ratios)
    h, w = shape[-2:]
    assert ours.shape == (1, h * w * (len(sizes) + len(ratios) - 1), 4)
    assert torch.equal(ours, d2l.multibox_prior(X, sizes, ratios))


def test_multibox_prior_order_centres_and_shapes():
    h, w, sizes, ratios = 3, 4, [0.5, 0.25], [1.0, 4.0]
    Y = va.multibox_prior(torch.zeros(1, 1, h, w), sizes, ratios).reshape(h, w, 3, 4).double()
    centres = (Y[..., :2] + Y[..., 2:]) / 2
    torch.testing.assert_close(centres[2, 1, 0], torch.tensor([1.5 / w, 2.5 / h], dtype=torch.float64))
    wh = Y[..., 2:] - Y[..., :2]
    # (s0, r0), (s1, r0), (s0, r1): width s*sqrt(r)*h/w, height s/sqrt(r)
    expected = torch.tensor([[0.5 * h / w, 0.5], [0.25 * h / w, 0.25], [0.5 * 2 * h / w, 0.5 / 2]], dtype=torch.float64)
    torch.testing.assert_close(wh[1, 2], expected, atol=1e-6, rtol=0)


# --- assign_anchor_to_bbox ------------------------------------------------------------------

@pytest.mark.parametrize("grid", [None, 4, 8])
def test_assign_matches_d2l_random_with_ties(grid):
    # A lattice of coordinates makes many IoUs equal, which tests the book's tie order; A up
    # to 80 and G up to 9 cover both more boxes than anchors and the candidate-row reduction.
    tied = 0
    for seed in range(60):
        g = torch.Generator().manual_seed(1000 * (grid or 1) + seed)
        num_anchors, num_gt = int(torch.randint(1, 80, (1,), generator=g)), int(torch.randint(1, 10, (1,), generator=g))
        anchors, gt = rand_boxes(num_anchors, g, grid), rand_boxes(num_gt, g, grid)
        if seed % 4 == 0:
            anchors = torch.cat([anchors, anchors.flip(0)[: num_anchors // 2]])  # repeated anchors tie exactly
        jaccard = box_iou(anchors, gt)
        tied += jaccard.flatten().unique().numel() < jaccard.numel()
        expected = d2l.assign_anchor_to_bbox(gt, anchors.clone(), "cpu")
        ours = va.assign_anchor_to_bbox(gt, anchors, "cpu")
        assert ours.dtype == torch.long and torch.equal(ours, expected), seed
        final = va.assign_anchor_trace(gt, anchors)[-1].assignment
        assert list(final) == expected.tolist(), seed
    assert tied > 30


def test_assign_more_boxes_than_anchors_matches_d2l():
    g = torch.Generator().manual_seed(3)
    anchors, gt = rand_boxes(2, g), rand_boxes(5, g)
    expected = d2l.assign_anchor_to_bbox(gt, anchors.clone(), "cpu")
    assert expected[0] == 0  # the book's argmax over an all-discarded matrix
    assert torch.equal(va.assign_anchor_to_bbox(gt, anchors, None), expected)


def test_assign_many_anchors_matches_d2l():
    anchors = va.multibox_prior(torch.zeros(1, 1, 16, 16), [0.3, 0.15], [1, 2, 0.5])[0]  # 1024 anchors
    for seed in range(4):
        gt = rand_boxes(7, torch.Generator().manual_seed(seed), lo=0.02, span=0.3)
        for threshold in (0.3, 0.5):
            expected = d2l.assign_anchor_to_bbox(gt, anchors.clone(), "cpu", iou_threshold=threshold)
            assert torch.equal(va.assign_anchor_to_bbox(gt, anchors, None, threshold), expected)


def test_assign_batch_with_padding_matches_d2l_per_image():
    g = torch.Generator().manual_seed(11)
    anchors = rand_boxes(300, g, grid=16)
    batch, num_gt = 5, 6
    gt = torch.stack([rand_boxes(num_gt, g, grid=16) for _ in range(batch)])
    valid = torch.rand(batch, num_gt, generator=g) > 0.35
    valid[0] = True
    valid[1] = False  # no boxes at all
    valid[2, 1:] = False
    out = va.assign_anchor_to_bbox_batch(gt, anchors, 0.5, valid)
    assert out.shape == (batch, 300) and out.dtype == torch.long
    for b in range(batch):
        positions = valid[b].nonzero().flatten()
        if positions.numel() == 0:
            assert (out[b] == -1).all()
            continue
        compact = d2l.assign_anchor_to_bbox(gt[b, positions], anchors.clone(), "cpu")
        # d2l's indices count only the valid rows; ours point into the padded list
        expected = torch.where(compact >= 0, positions[compact.clamp(min=0)], -1)
        assert torch.equal(out[b], expected), b


def test_assign_trace_book_example():
    steps = va.assign_anchor_trace(BOOK_GT[:, 1:], BOOK_ANCHORS)
    greedy, last = steps[:-1], steps[-1]
    # anchor 4 overlaps the cat best (0.75); then the dog's best anchor left is 1 (0.14)
    assert [(s.anchor, s.gt) for s in greedy] == [(4, 1), (1, 0)]
    assert all(isinstance(s, va.GreedyStep) for s in greedy) and isinstance(last, va.ThresholdStep)
    jaccard = box_iou(BOOK_ANCHORS, BOOK_GT[:, 1:])
    # each greedy step takes the largest IoU left, in decreasing order
    assert greedy[0].iou == pytest.approx(jaccard.max().item())
    assert greedy[0].iou >= greedy[1].iou
    assert greedy[1].discarded_rows == (greedy[0].anchor, greedy[1].anchor)
    assert greedy[1].discarded_columns == (greedy[0].gt, greedy[1].gt)
    # class labels [0, 1, 2, 0, 2] in the book: anchors 1, 2, 4 get boxes 0, 1, 1
    assert last.assignment == (-1, 0, 1, -1, 1)
    assert {a for a, _, _ in last.assigned}.isdisjoint(s.anchor for s in greedy)
    assert all(iou >= 0.5 for _, _, iou in last.assigned)


# --- offsets --------------------------------------------------------------------------------

def test_offsets_match_d2l():
    g = torch.Generator().manual_seed(5)
    anchors, boxes = rand_boxes(200, g), rand_boxes(200, g)
    ours = va.offset_boxes(anchors, boxes)
    assert torch.equal(ours, d2l.offset_boxes(anchors, boxes))
    preds = torch.randn(200, 4, generator=g)
    assert torch.equal(va.offset_inverse(anchors, preds), d2l.offset_inverse(anchors, preds))
    # leading batch dimensions broadcast against one set of anchors
    batched = va.offset_inverse(anchors, preds.expand(3, 200, 4))
    assert batched.shape == (3, 200, 4) and torch.equal(batched[2], va.offset_inverse(anchors, preds))


box_coord = st.floats(0.0, 0.9, allow_nan=False)
box_size = st.floats(0.01, 1.0, allow_nan=False)


@SETTINGS
@given(st.lists(st.tuples(*[box_coord, box_coord, box_size, box_size] * 2), min_size=1, max_size=10))
def test_offset_inverse_undoes_offset_boxes(rows):
    t = torch.tensor(rows, dtype=torch.float64)
    anchors = torch.cat([t[:, 0:2], t[:, 0:2] + t[:, 2:4]], dim=1)
    boxes = torch.cat([t[:, 4:6], t[:, 4:6] + t[:, 6:8]], dim=1)
    back = va.offset_inverse(anchors, va.offset_boxes(anchors, boxes))
    # eps = 1e-6 in offset_boxes adds eps * anchor size to each width and height
    torch.testing.assert_close(back, boxes, atol=2e-6, rtol=1e-9)
    back_exact = va.offset_inverse(anchors, va.offset_boxes(anchors, boxes, eps=0.0))
    torch.testing.assert_close(back_exact, boxes, atol=1e-12, rtol=1e-12)


# --- multibox_target ------------------------------------------------------------------------

def test_multibox_target_book_example():
    bbox_offset, bbox_mask, class_labels = va.multibox_target(BOOK_ANCHORS[None], BOOK_GT[None])
    assert torch.equal(class_labels, torch.tensor([[0, 1, 2, 0, 2]]))
    assert torch.equal(bbox_mask, torch.tensor([[0.0] * 4 + [1.0] * 8 + [0.0] * 4 + [1.0] * 4]))
    printed = torch.tensor(
        [[0, 0, 0, 0, 1.40, 10.0, 2.59, 7.18, -1.20, 0.269, 1.68, -1.57, 0, 0, 0, 0, -0.571, -1.00, 4.17e-06, 0.626]]
    )
    torch.testing.assert_close(bbox_offset, printed, atol=5e-3, rtol=0)
    reference = d2l.multibox_target(BOOK_ANCHORS[None], BOOK_GT[None])
    for ours, expected in zip((bbox_offset, bbox_mask, class_labels), reference):
        assert ours.dtype == expected.dtype and torch.equal(ours, expected)


@pytest.mark.parametrize("seed", range(4))
def test_multibox_target_random_batch_with_padding_matches_d2l(seed):
    g = torch.Generator().manual_seed(seed)
    anchors = va.multibox_prior(torch.zeros(1, 1, 10, 10), [0.4, 0.2], [1, 2, 0.5])  # [1, 400, 4]
    batch, num_gt = 4, 5
    boxes = torch.stack([rand_boxes(num_gt, g, lo=0.05, span=0.4) for _ in range(batch)])
    classes = torch.randint(0, 3, (batch, num_gt, 1), generator=g).float()
    classes[torch.rand(batch, num_gt, generator=g) < 0.3] = -1  # padding, also between real rows
    classes[0, 0] = 1.0
    classes[1] = -1  # an image without objects
    labels = torch.cat([classes, boxes], dim=2)
    labels[classes[..., 0] < 0, 1:] = 0.0  # padding rows as the banana reader writes them: [-1, 0, 0, 0, 0]
    bbox_offset, bbox_mask, class_labels = va.multibox_target(anchors, labels)
    assert bbox_offset.shape == bbox_mask.shape == (batch, 1600) and class_labels.shape == (batch, 400)
    assert (class_labels[0] > 0).any() and (class_labels[1] == 0).all() and (bbox_offset[1] == 0).all()
    for b in range(batch):
        if (labels[b, :, 0] >= 0).any():
            expected = d2l.multibox_target(anchors, d2l_labels(labels[b]))
            for ours, ref in zip((bbox_offset, bbox_mask, class_labels), expected):
                assert torch.equal(ours[b : b + 1], ref), b
        # offsets vanish exactly where the mask does
        assert torch.equal(bbox_offset[b] != 0, (bbox_mask[b] != 0) & (bbox_offset[b] != 0))


def test_multibox_target_ignores_padding_that_d2l_would_use():
    labels = torch.cat([BOOK_GT, torch.tensor([[-1.0, 0, 0, 0, 0]] * 2)])[None]
    ours = va.multibox_target(BOOK_ANCHORS[None], labels)
    clean = va.multibox_target(BOOK_ANCHORS[None], BOOK_GT[None])
    for a, b in zip(ours, clean):
        assert torch.equal(a, b)
    # d2l labels an anchor with a padding row (class -1 + 1 = 0, but mask 1 and log(eps) offsets)
    assert not torch.equal(d2l.multibox_target(BOOK_ANCHORS[None], labels)[1], ours[1])


# --- nms ------------------------------------------------------------------------------------

@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_matches_torchvision_and_d2l(threshold):
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        boxes, scores = rand_boxes(300, g), torch.rand(300, generator=g)
        keep = va.nms(boxes, scores, threshold)
        assert keep.dtype == torch.int64 and torch.equal(keep, tv.nms(boxes, scores, threshold))
        assert torch.equal(keep, d2l.nms(boxes, scores, threshold))
        assert (scores[keep][1:] <= scores[keep][:-1]).all()
        assert [s.chosen for s in va.nms_trace(boxes, scores, threshold)] == keep.tolist()


nms_box = st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(0.5, 60), st.floats(0.5, 60), st.floats(0, 1))


@SETTINGS
@given(st.lists(nms_box, min_size=1, max_size=30), st.floats(0.05, 0.95))
def test_nms_kept_boxes_overlap_at_most_threshold(rows, threshold):
    t = torch.tensor(rows, dtype=torch.float32)
    boxes, scores = torch.cat([t[:, :2], t[:, :2] + t[:, 2:4]], dim=1), t[:, 4]
    keep = va.nms(boxes, scores, threshold)
    iou = box_iou(boxes[keep], boxes[keep]).fill_diagonal_(0)
    assert (iou <= threshold).all()
    # every dropped box overlaps a kept box with a higher or equal score by more than the threshold
    dropped = torch.ones(len(boxes), dtype=torch.bool)
    dropped[keep] = False
    for j in dropped.nonzero().flatten().tolist():
        assert ((box_iou(boxes[j][None], boxes[keep])[0] > threshold) & (scores[keep] >= scores[j])).any()
    steps = va.nms_trace(boxes, scores, threshold)
    assert [s.chosen for s in steps] == keep.tolist()


def test_nms_trace_steps_book_example():
    steps = va.nms_trace(BOOK_NMS_ANCHORS, BOOK_CLS_PROBS[1], 0.5)
    assert [s.chosen for s in steps] == [0, 3]
    first = steps[0]
    assert [j for j, _ in first.suppressed] == [1, 2] and all(iou > 0.5 for _, iou in first.suppressed)
    assert first.remaining == (3,) and steps[-1].remaining == () and first.score == pytest.approx(0.9)
    with pytest.raises(Exception):
        first.chosen = 2  # frozen


# --- multibox_detection ---------------------------------------------------------------------

def test_multibox_detection_book_example():
    offset_preds = torch.zeros(BOOK_NMS_ANCHORS.numel())
    out = va.multibox_detection(BOOK_CLS_PROBS[None], offset_preds[None], BOOK_NMS_ANCHORS[None], nms_threshold=0.5)
    printed = torch.tensor(
        [
            [0.00, 0.90, 0.10, 0.08, 0.52, 0.92],
            [1.00, 0.90, 0.55, 0.20, 0.90, 0.88],
            [-1.00, 0.80, 0.08, 0.20, 0.56, 0.95],
            [-1.00, 0.70, 0.15, 0.30, 0.62, 0.91],
        ]
    )
    assert out.shape == (1, 4, 6) and out.dtype == torch.float32
    torch.testing.assert_close(out[0], printed, atol=1e-6, rtol=0)
    assert torch.equal(out, d2l.multibox_detection(BOOK_CLS_PROBS[None], offset_preds[None], BOOK_NMS_ANCHORS[None]))


def random_detection_inputs(seed, batch=4, num_classes=3, num_anchors=None):
    g = torch.Generator().manual_seed(seed)
    anchors = va.multibox_prior(torch.zeros(1, 1, 6, 6), [0.5, 0.3], [1, 2, 0.5])  # [1, 144, 4]
    num_anchors = anchors.shape[1]
    logits = torch.randn(batch, num_classes + 1, num_anchors, generator=g) * 2
    logits[:, 0, : num_anchors // 4] += 8  # confident background: conf below pos_threshold
    cls_probs = torch.softmax(logits, dim=1)
    offset_preds = torch.randn(batch, num_anchors * 4, generator=g)
    offset_preds[0, :40] *= 8  # boxes well outside the image, negative coordinates included
    return cls_probs, offset_preds, anchors


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("nms_threshold", [0.3, 0.5])
def test_multibox_detection_random_batch_matches_d2l(seed, nms_threshold):
    cls_probs, offset_preds, anchors = random_detection_inputs(seed)
    out = va.multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=nms_threshold)
    expected = d2l.multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=nms_threshold)
    assert out.shape == expected.shape == (4, 144, 6)
    assert torch.equal(out, expected)
    # the 1 - conf convention: no row is left below pos_threshold, and some were flipped
    assert out[..., 1].min() >= 0.009999999
    assert ((out[..., 0] == -1) & (out[..., 1] > 0.99)).any()
    assert (out[..., 0] >= 0).sum() > 4 and (out[..., 0] == -1).sum() > 100
    assert out[..., 2:].min() < 0  # the negative-coordinate case was exercised


def test_multibox_detection_batch_equals_images_alone():
    cls_probs, offset_preds, anchors = random_detection_inputs(9, batch=5)
    out = va.multibox_detection(cls_probs, offset_preds, anchors)
    for b in range(5):
        assert torch.equal(out[b : b + 1], va.multibox_detection(cls_probs[b : b + 1], offset_preds[b : b + 1], anchors))


def test_multibox_detection_equal_scores_keep_anchor_order():
    # three far-apart anchors with equal scores: all kept, in anchor order; d2l's unstable
    # argsort gives no such promise, so this pins our own rule
    anchors = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.4, 0.4, 0.6, 0.6], [0.8, 0.8, 1.0, 1.0], [0.0, 0.0, 0.21, 0.2]])
    cls_probs = torch.tensor([[0.5, 0.5, 0.5, 0.6], [0.5, 0.5, 0.5, 0.4]])[None]
    out = va.multibox_detection(cls_probs, torch.zeros(1, 16), anchors)
    assert out[0, :, 0].tolist() == [0, 0, 0, -1]
    torch.testing.assert_close(out[0, :, 2:], anchors[[0, 1, 2, 3]])


# --- bad arguments --------------------------------------------------------------------------

BOXES = torch.tensor([[0.0, 0.0, 1.0, 1.0]])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: va.multibox_prior(torch.zeros(5), [0.5], [1]), r"data must be a tensor of shape \[\.\.\., H, W\]"),
        (lambda: va.multibox_prior(torch.zeros(1, 0, 4), [0.5], [1]), "H, W >= 1"),
        (lambda: va.multibox_prior(torch.zeros(4, 4), [], [1]), "sizes must be a non-empty list"),
        (lambda: va.multibox_prior(torch.zeros(4, 4), [0.5], [0]), r"ratios must be .* > 0"),
        (lambda: va.multibox_prior(torch.zeros(4, 4), ["big"], [1]), "sizes must be"),
        (lambda: va.assign_anchor_to_bbox(BOXES, BOXES, None, 1.5), r"iou_threshold must be a number in \[0, 1\], got 1.5"),
        (lambda: va.assign_anchor_to_bbox(BOXES[0], BOXES, None), r"ground_truth must be a torch.Tensor of shape \[N, 4\]"),
        (lambda: va.assign_anchor_to_bbox_batch(BOXES, BOXES), r"ground_truth must be a torch.Tensor of shape \[B, G, 4\]"),
        (lambda: va.assign_anchor_to_bbox_batch(BOXES[None], BOXES, 0.5, torch.ones(2, 1)), r"valid must be .* shape"),
        (lambda: va.multibox_target(torch.zeros(2, 5, 4), torch.zeros(1, 1, 5)), r"anchors must be .* shape \[1, A, 4\]"),
        (lambda: va.multibox_target(BOXES[None], torch.zeros(1, 1, 4)), r"labels must be .* shape \[B, G, 5\]"),
        (lambda: va.offset_boxes(torch.zeros(3, 5), BOXES), r"anchors must be a torch.Tensor of shape \[\.\.\., 4\]"),
        (lambda: va.nms(BOXES, torch.ones(2), 0.5), r"scores must be a torch.Tensor of shape \[N\]"),
        (lambda: va.nms(BOXES, torch.ones(1), -0.1), r"iou_threshold must be a number in \[0, 1\]"),
        (lambda: va.nms(BOXES, torch.ones(1), "half"), "iou_threshold must be a number"),
        (lambda: va.nms(BOXES, torch.ones(1), torch.ones(2)), "iou_threshold must be a number"),
        (lambda: va.nms_trace(BOXES, torch.ones(1), 2), r"iou_threshold must be a number in \[0, 1\]"),
        (lambda: va.multibox_detection(torch.ones(1, 1, 1), torch.zeros(1, 4), BOXES), r"cls_probs must be a torch.Tensor of shape \[B, C \+ 1, A\]"),
        (lambda: va.multibox_detection(torch.ones(1, 2, 2), torch.zeros(1, 8), BOXES), "A = 1, the number of anchors, got A = 2"),
        (lambda: va.multibox_detection(torch.ones(1, 2, 1), torch.zeros(1, 3), BOXES), "offset_preds must be .* shape"),
        (lambda: va.multibox_detection(torch.ones(1, 2, 1), torch.zeros(1, 4), BOXES, pos_threshold=3), "pos_threshold"),
    ],
)
def test_bad_arguments_raise_argument_error(call, message):
    with pytest.raises(ArgumentError, match=message):
        call()


def test_empty_inputs():
    assert torch.equal(va.assign_anchor_to_bbox(torch.zeros(0, 4), BOOK_ANCHORS, None), torch.full((5,), -1))
    assert va.nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0
    assert va.nms_trace(torch.zeros(0, 4), torch.zeros(0), 0.5) == []
    offsets, mask, classes = va.multibox_target(BOOK_ANCHORS[None], torch.zeros(2, 0, 5))
    assert offsets.shape == (2, 20) and not mask.any() and not classes.any()
    assert va.assign_anchor_trace(torch.zeros(0, 4), BOOK_ANCHORS)[-1].assignment == (-1,) * 5


# --- CUDA: results stay on the input's device and equal the CPU's ---------------------------

@CUDA
def test_cuda_prior_and_target_stay_on_device():
    X = torch.zeros(1, 3, 20, 30, device="cuda")
    anchors = va.multibox_prior(X, [0.4, 0.2], [1, 2, 0.5])
    assert anchors.device.type == "cuda"
    assert torch.equal(anchors.cpu(), va.multibox_prior(X.cpu(), [0.4, 0.2], [1, 2, 0.5]))
    g = torch.Generator().manual_seed(0)
    classes = torch.randint(0, 2, (3, 4, 1), generator=g).float()
    labels = torch.cat([classes, torch.stack([rand_boxes(4, g) for _ in range(3)])], dim=2)
    labels[1, 2:, 0] = -1
    ours = va.multibox_target(anchors, labels.cuda())
    for a, b in zip(ours, va.multibox_target(anchors.cpu(), labels)):
        assert a.device.type == "cuda"
        torch.testing.assert_close(a.cpu(), b, atol=1e-5, rtol=1e-5)
    gt = rand_boxes(6, g)
    on_gpu = va.assign_anchor_to_bbox(gt.cuda(), anchors[0], "cuda")
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), va.assign_anchor_to_bbox(gt, anchors[0].cpu(), None))


@CUDA
def test_cuda_nms_and_detection_stay_on_device():
    g = torch.Generator().manual_seed(1)
    boxes, scores = rand_boxes(500, g), torch.rand(500, generator=g)
    keep = va.nms(boxes.cuda(), scores.cuda(), 0.5)
    assert keep.device.type == "cuda" and torch.equal(keep.cpu(), va.nms(boxes, scores, 0.5))
    cls_probs, offset_preds, anchors = random_detection_inputs(2)
    out = va.multibox_detection(cls_probs.cuda(), offset_preds.cuda(), anchors.cuda())
    assert out.device.type == "cuda"
    cpu = va.multibox_detection(cls_probs, offset_preds, anchors)
    assert torch.equal(out[..., :1].cpu(), cpu[..., :1])
    torch.testing.assert_close(out.cpu(), cpu, atol=1e-5, rtol=1e-5)
