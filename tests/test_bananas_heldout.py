"""vision_core.data.bananas_heldout and benchmarks.ssd_heldout: a held-out banana set drawn another way.

Determinism, tight boxes, the size spread, banana-free negatives, the fallback without
scikit-image, the reader and cache, and the benchmark's ``measure``.
"""

from __future__ import annotations

import csv
import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import vision_core.data._synth as S
import vision_core.data.bananas_heldout as H
from tests.conftest import HANG_GUARD_S, ROOT
from vision_core.data.bananas_heldout import (
    generate_heldout_bananas,
    load_heldout_bananas,
    read_heldout_bananas,
    read_negatives,
)

N_IMAGES, N_NEGATIVES = 6, 3


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One small generated copy (seed 0), shared by the read-only tests."""
    return generate_heldout_bananas(tmp_path_factory.mktemp("heldout") / "root", seed=0, num_images=N_IMAGES,
                                    num_negatives=N_NEGATIVES)


def file_digests(root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def csv_rows(root):
    with open(root / "bananas_heldout" / "label.csv", newline="") as f:
        return list(csv.reader(f))


def mask_box(mask):
    ys, xs = np.nonzero(mask)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


# --- the generator ----------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_files(generated, tmp_path):
    again = generate_heldout_bananas(tmp_path / "again", seed=0, num_images=N_IMAGES, num_negatives=N_NEGATIVES)
    digests = file_digests(generated)
    assert digests == file_digests(again)
    assert len(digests) == 1 + N_IMAGES + N_NEGATIVES  # label.csv and the PNGs, nothing else


def test_the_layout_is_the_books(generated):
    rows = csv_rows(generated)
    assert rows[0] == ["img_name", "label", "xmin", "ymin", "xmax", "ymax"]
    assert [r[0] for r in rows[1:]] == [f"{i}.png" for i in range(N_IMAGES)]
    assert all(r[1] == "0" for r in rows[1:])
    for i in range(N_IMAGES):
        assert (generated / "bananas_heldout" / "images" / f"{i}.png").is_file()
    assert sorted(p.name for p in (generated / "negatives" / "images").iterdir()) == [
        f"{i}.png" for i in range(N_NEGATIVES)]


def test_the_written_boxes_are_the_tight_boxes_of_a_redraw(generated):
    pools = H._pools()
    images, _ = read_heldout_bananas(generated)
    for i, row in enumerate(csv_rows(generated)[1:]):
        picture, alpha, box, _ = H._render_example(*H._image_rngs(0, "heldout", i), pools)
        assert tuple(int(v) for v in row[2:]) == box == mask_box(alpha > 0)
        assert torch.equal(images[i], torch.from_numpy(picture).permute(2, 0, 1))


def test_boxes_are_tight_inside_the_image_and_occlusion_stays_under_30_percent():
    pools = H._pools()
    hidden = []
    for i in range(40):
        _, alpha, box, share = H._render_example(*H._image_rngs(3, "heldout", i), pools)
        assert box == mask_box(alpha > 0)
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 256
        hidden.append(share)
    assert max(hidden) <= 0.3
    assert sum(h > 0 for h in hidden) >= 4  # some bananas are partly hidden (30 % of them on average)


def test_sizes_spread_over_10_to_45_percent_with_many_small_ones():
    sides = []
    for i in range(40):
        patch = H._banana_patch(H._image_rngs(1, "heldout", i)[1])
        sides.append(max(patch.shape[:2]) / 256)
    sides = np.array(sides)
    assert sides.min() >= 0.095 and sides.max() <= 0.46
    assert (sides < 0.2).sum() >= 8  # log-uniform: about 45 % of them
    assert (sides > 0.3).sum() >= 4


def test_shapes_vary_straight_curved_thin_fat_bunches():
    # The outline alone: how filled the box is tells straight-thin (low), bunch or fat (high) apart.
    fill, counts = [], []
    for i in range(40):
        rng = np.random.default_rng(i)
        outlines = H._bunch_outlines(rng)
        counts.append(len(outlines))
        patch = H._banana_patch(H._image_rngs(2, "heldout", i)[1])
        fill.append(patch[..., 3].mean())
    assert max(counts) >= 2 and min(counts) == 1
    assert min(fill) < 0.3 and max(fill) > 0.4


def test_negatives_draw_no_banana(tmp_path, monkeypatch):
    calls = []
    real = H._banana_patch
    monkeypatch.setattr(H, "_banana_patch", lambda rng, size=256: calls.append(1) or real(rng, size))
    root = generate_heldout_bananas(tmp_path, seed=0, num_images=2, num_negatives=4)
    assert len(calls) == 2  # one per held-out image, none for the negatives
    assert not (root / "negatives" / "label.csv").exists()
    negatives = read_negatives(root)
    assert negatives.shape == (4, 3, 256, 256) and negatives.dtype == torch.uint8
    pools = H._pools()
    for i in range(4):  # each is the background alone, re-drawn from its own seed
        alone = H._render_negative(H._image_rngs(0, "negatives", i)[0], pools)
        assert torch.equal(negatives[i], torch.from_numpy(alone).permute(2, 0, 1))


def test_different_seeds_differ(generated, tmp_path):
    other = generate_heldout_bananas(tmp_path, seed=1, num_images=N_IMAGES, num_negatives=N_NEGATIVES)
    assert csv_rows(other)[1:] != csv_rows(generated)[1:]
    a, b = read_heldout_bananas(generated)[0], read_heldout_bananas(other)[0]
    assert all(not torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(read_negatives(generated), read_negatives(other))


def test_no_image_shares_a_seed_with_the_training_generator():
    ours = np.random.SeedSequence(0, spawn_key=(H._SALT, 0, 0)).generate_state(4)
    for split in S.SPLITS:
        theirs = np.random.SeedSequence(0, spawn_key=(S.SPLITS.index(split), 0)).generate_state(4)
        assert not np.array_equal(ours, theirs)


def test_heldout_photos_are_not_the_training_photos():
    names = {name.rsplit(".", 1)[0] for name in H.HELDOUT_PHOTOS}
    assert not names & set(S._PHOTOS)
    pytest.importorskip("skimage")
    assert len(H._heldout_photos()) >= 5  # bundled with scikit-image, nothing downloaded


def test_runs_without_scikit_image_with_the_same_boxes(tmp_path):
    pools = H._pools()
    boxes = [H._render_example(*H._image_rngs(0, "heldout", i), pools)[2] for i in range(3)]
    code = (
        "import sys\n"
        "sys.modules['skimage'] = None\n"
        "import vision_core.data.bananas_heldout as H\n"
        "assert H._heldout_photos() == () and H._pools() == ((), ())\n"
        f"H.generate_heldout_bananas({str(tmp_path)!r}, num_images=3, num_negatives=2)\n"
        f"x, y = H.read_heldout_bananas({str(tmp_path)!r})\n"
        "assert x.shape == (3, 3, 256, 256)\n"
        f"assert H.read_negatives({str(tmp_path)!r}).shape == (2, 3, 256, 256)\n"
        "print((y[:, 0, 1:] * 256).round().int().tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_GUARD_S, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    # The banana has its own random stream: the backgrounds change, the boxes do not.
    assert eval(done.stdout.strip()) == [list(b) for b in boxes]


def test_arguments_are_checked(tmp_path):
    from vision_core._checks import ArgumentError

    for kwargs in ({"seed": -1}, {"num_images": 0}, {"num_negatives": -1}):
        with pytest.raises(ArgumentError):
            generate_heldout_bananas(tmp_path, **kwargs)


# --- reading and the cache --------------------------------------------------------------------

def test_read_heldout_bananas_matches_the_csv(generated):
    images, labels = read_heldout_bananas(generated)
    assert images.shape == (N_IMAGES, 3, 256, 256) and images.dtype == torch.uint8
    assert labels.shape == (N_IMAGES, 1, 5) and labels.dtype == torch.float32
    boxes = torch.tensor([[float(v) for v in r[2:]] for r in csv_rows(generated)[1:]])
    torch.testing.assert_close(labels[:, 0, 1:] * 256, boxes)
    assert (labels[:, 0, 0] == 0).all()


def test_readers_reject_a_missing_or_broken_folder(tmp_path, generated):
    with pytest.raises(ValueError, match="label.csv"):
        read_heldout_bananas(tmp_path)
    with pytest.raises(ValueError, match="negatives"):
        read_negatives(tmp_path)
    broken = tmp_path / "broken"
    (broken / "bananas_heldout" / "images").mkdir(parents=True)
    (broken / "bananas_heldout" / "label.csv").write_text("name,label\n0.png,0\n")
    with pytest.raises(ValueError, match="header"):
        read_heldout_bananas(broken)
    (broken / "negatives" / "images").mkdir(parents=True)
    (broken / "negatives" / "images" / "0.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="readable"):
        read_negatives(broken)


def test_load_generates_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path))
    images, labels, negatives = load_heldout_bananas(seed=0, num_images=3, num_negatives=2)
    assert (tmp_path / f"bananas-heldout-v{H.HELDOUT_VERSION}-seed0-n3-2" / "bananas_heldout" / "label.csv").is_file()
    assert images.shape == (3, 3, 256, 256) and labels.shape == (3, 1, 5) and negatives.shape == (2, 3, 256, 256)
    monkeypatch.setattr(H, "generate_heldout_bananas", lambda *a, **k: pytest.fail("generated twice"))
    again = load_heldout_bananas(seed=0, num_images=3, num_negatives=2)
    assert torch.equal(again[0], images) and torch.equal(again[2], negatives)


# --- the benchmark's measure ------------------------------------------------------------------

def test_pairwise_iou():
    from benchmarks.ssd_heldout import _pairwise_iou

    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0]])
    b = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    torch.testing.assert_close(_pairwise_iou(a, b), torch.tensor([1.0, 1 / 3, 0.0, 0.0]))


def test_measure_gives_numbers_in_range_with_the_documented_keys(generated):
    from benchmarks.ssd_heldout import measure
    from vision_core.checkpoints import load_tiny_ssd

    net, _ = load_tiny_ssd()
    images, labels = read_heldout_bananas(generated)
    metrics = measure(net, images, labels, read_negatives(generated), device="cpu")
    assert set(metrics) == {"images", "map", "map_50", "correct_at_0.9", "top_iou_0.5", "median_top_score",
                            "no_rows", "negatives", "false_box_images"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert metrics["images"] == N_IMAGES and metrics["negatives"] == N_NEGATIVES
    for key in ("map", "map_50", "correct_at_0.9", "top_iou_0.5", "median_top_score"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["correct_at_0.9"] <= metrics["top_iou_0.5"]
    assert metrics["map"] <= metrics["map_50"]
    assert 0 <= metrics["no_rows"] <= N_IMAGES and 0 <= metrics["false_box_images"] <= N_NEGATIVES
    assert "negatives" not in measure(net, images[:2], labels[:2], device="cpu")


def test_measure_counts_a_perfect_top_box_as_correct(generated):
    # Labels made from the net's own top boxes: every top box is a hit at any score.
    from benchmarks.ssd_heldout import _pairwise_iou, _top_rows, measure
    from vision_core.checkpoints import load_tiny_ssd

    net, _ = load_tiny_ssd()
    images, _ = read_heldout_bananas(generated)
    top = _top_rows(net, images, 8)
    clipped = top[:, 2:].clamp(0, 256)  # a label lies inside the image; keep boxes that mostly do
    keep = (top[:, 0] >= 0) & (_pairwise_iou(clipped, top[:, 2:]) > 0.8)
    assert keep.any()
    images, top, boxes = images[keep], top[keep], clipped[keep] / 256
    labels = torch.cat([torch.zeros(len(top), 1), boxes], dim=1)[:, None]
    metrics = measure(net, images, labels, device="cpu")
    assert metrics["top_iou_0.5"] == 1.0
    assert metrics["correct_at_0.9"] == pytest.approx(float((top[:, 1] >= 0.9).float().mean()))


def test_by_size_splits_every_image_into_one_size_row(generated):
    from benchmarks.ssd_heldout import by_size
    from vision_core.checkpoints import load_tiny_ssd

    net, _ = load_tiny_ssd()
    images, labels = read_heldout_bananas(generated)
    rows = by_size(net, images, labels, batch_size=8)
    assert sum(int(r[1]) for r in rows) == N_IMAGES
    assert all(r[0].endswith("%") and 0 <= float(r[3]) <= 1 for r in rows)
