"""vision_core.data.bananas: the generator's determinism and boxes, the reader, the cache, the book's parity."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vision_core.data._synth as S
import vision_core.data.bananas as B
from vision_core._checks import ArgumentError
from vision_core.data.bananas import (
    BANANA_CLASSES,
    BANANA_SIZE,
    BananasDataset,
    generate_bananas,
    load_bananas,
    load_data_bananas,
    read_bananas,
)

HEADER = "img_name,label,xmin,ymin,xmax,ymax"
N_TRAIN, N_VAL = 6, 3


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One small generated copy (seed 0), shared by the read-only tests."""
    return generate_bananas(tmp_path_factory.mktemp("bananas") / "root", seed=0, num_train=N_TRAIN, num_val=N_VAL)


def csv_rows(folder):
    with open(folder / "label.csv", newline="") as f:
        return list(csv.reader(f))[1:]


def file_digests(root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def mask_box(mask):
    ys, xs = np.nonzero(mask)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def hull_area(points):
    # Andrew's monotone chain, then the shoelace formula.
    pts = sorted(set(map(tuple, points.tolist())))

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    h = np.array(lower[:-1] + upper[:-1], dtype=float)
    return 0.5 * abs(np.dot(h[:, 0], np.roll(h[:, 1], 1)) - np.dot(h[:, 1], np.roll(h[:, 0], 1)))


def write_png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)


def write_split(folder, rows, header=HEADER, images=None):
    """A hand-made split in the book's layout: `images` maps name -> uint8 array (None: no file)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name, array in (images or {}).items():
        write_png(folder / "images" / name, array)
    (folder / "label.csv").write_text("\n".join([header] + rows) + "\n")


def grey(value, size=BANANA_SIZE):
    return np.full((size, size, 3), value, np.uint8)


# --- constants and layout -------------------------------------------------------------------

def test_constants():
    assert BANANA_SIZE == 256
    assert BANANA_CLASSES == ("banana",)


def test_layout_and_csv_are_the_books(generated):
    assert isinstance(generated, Path)
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        folder = generated / f"bananas_{split}"
        text = (folder / "label.csv").read_text()
        assert text.startswith(HEADER + "\n") and "\r" not in text
        rows = csv_rows(folder)
        assert [r[0] for r in rows] == [f"{i}.png" for i in range(n)]
        assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(f"{i}.png" for i in range(n))
        for row in rows:
            assert row[1] == "0"
            assert all(cell.isdigit() for cell in row[2:])  # integer pixels, like the book's csv
        for i in range(n):
            with Image.open(folder / "images" / f"{i}.png") as im:
                assert (im.format, im.mode, im.size) == ("PNG", "RGB", (256, 256))


# --- determinism ----------------------------------------------------------------------------

def test_same_seed_gives_identical_bytes(generated, tmp_path):
    again = generate_bananas(tmp_path / "again", seed=0, num_train=N_TRAIN, num_val=N_VAL)
    assert file_digests(again) == file_digests(generated)
    assert len(file_digests(again)) == N_TRAIN + N_VAL + 2


def test_different_seed_differs_everywhere(generated, tmp_path):
    other = generate_bananas(tmp_path / "other", seed=1, num_train=N_TRAIN, num_val=N_VAL)
    a, b = file_digests(generated), file_digests(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)
    assert csv_rows(generated / "bananas_train") != csv_rows(other / "bananas_train")


def test_val_never_repeats_train_and_prefixes_are_stable(generated, tmp_path):
    digests = file_digests(generated)
    train = {v for k, v in digests.items() if k.startswith("bananas_train/images/")}
    val = {v for k, v in digests.items() if k.startswith("bananas_val/images/")}
    assert len(train) == N_TRAIN and len(val) == N_VAL and not train & val
    # Each image has its own seed: fewer images give the same first ones.
    small = generate_bananas(tmp_path / "small", seed=0, num_train=2, num_val=1)
    assert csv_rows(small / "bananas_train") == csv_rows(generated / "bananas_train")[:2]
    first_val = "bananas_val/images/0.png"
    assert (small / first_val).read_bytes() == (generated / first_val).read_bytes()


def test_progress_reports_every_image(tmp_path):
    calls = []
    generate_bananas(tmp_path, seed=2, num_train=3, num_val=2, progress=lambda *args: calls.append(args))
    assert calls == [(i, 5) for i in range(1, 6)]


# --- the boxes ------------------------------------------------------------------------------

def test_csv_boxes_are_the_drawn_masks(generated):
    photos = S.bundled_photos()
    for split in ("train", "val"):
        folder = generated / f"bananas_{split}"
        for i, row in enumerate(csv_rows(folder)):
            image, alpha, box = B._render_example(*S.image_rngs(0, split, i), photos)
            png = np.asarray(Image.open(folder / "images" / row[0]))
            assert np.array_equal(png, image)  # the file is exactly what was drawn
            assert tuple(int(c) for c in row[2:]) == box == mask_box(alpha > 0)
            assert box == B._render_banana(S.image_rngs(0, split, i)[1])[1]  # the whole banana, hidden parts too
            x1, y1, x2, y2 = box
            assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 256


def test_without_shadow_occluder_and_light_the_banana_is_composited_over_the_background(monkeypatch):
    monkeypatch.setattr(B, "_shadow", lambda rng, alpha: np.zeros_like(alpha))
    monkeypatch.setattr(B, "_occluder", lambda rng, alpha, box: None)
    monkeypatch.setattr(B, "_relight", lambda rng, image: image)
    photos = S.bundled_photos()
    for i in range(4):
        png, alpha, _ = B._render_example(*S.image_rngs(0, "train", i), photos)
        # Untouched outside, the banana's colour where opaque, in between on the antialiased rim.
        background_rng, banana_rng = S.image_rngs(0, "train", i)
        background = np.round(B._background(background_rng, photos, 256) * 255)
        layer, _ = B._render_banana(banana_rng)
        banana = np.round(layer[..., :3] * 255)
        assert np.array_equal(png[alpha == 0], background[alpha == 0])
        assert np.array_equal(png[alpha == 1], banana[alpha == 1])
        rim = (alpha > 0) & (alpha < 1)
        lo, hi = np.minimum(background, banana)[rim], np.maximum(background, banana)[rim]
        assert ((png[rim] >= lo - 1) & (png[rim] <= hi + 1)).all()


def test_an_occluder_hides_at_most_a_third_of_the_banana():
    hidden = []
    for i in range(30):
        layer, box = B._render_banana(np.random.default_rng(300 + i))
        cover = B._occluder(np.random.default_rng(i), layer[..., 3], box)
        if cover is not None:
            assert cover.shape == (256, 256) and cover.min() >= 0 and cover.max() <= 1
            hidden.append((cover * layer[..., 3]).sum() / layer[..., 3].sum())
    assert len(hidden) >= 20 and 0.05 <= min(hidden) and max(hidden) <= 0.3


def test_render_banana_box_is_tight_and_antialiased():
    for i in range(40):
        layer, box = B._render_banana(np.random.default_rng(i))
        assert layer.shape == (256, 256, 4) and layer.dtype == np.float32
        alpha = layer[..., 3]
        assert alpha.min() >= 0 and alpha.max() == 1
        assert box == mask_box(alpha > 0)
        assert ((alpha > 0) & (alpha < 1)).sum() > 10  # soft edges
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 256
        assert min(x2 - x1, y2 - y1) >= 3


def test_bananas_range_from_green_to_brown_with_dark_tips_and_outline():
    kinds, ring_ratios = [], []
    for i in range(60):
        layer, _ = B._render_banana(np.random.default_rng(100 + i))
        alpha = layer[..., 3]
        opaque = layer[alpha == 1][:, :3]
        r, g, b = opaque.mean(axis=0)
        assert r > b and g > b  # yellow, green or brown: never blue, purple or grey
        if g > r:
            kinds.append("green")
        elif r > 0.6 and g > 0.5 and b < 0.35:
            kinds.append("yellow")
        elif r > g and 0.299 * r + 0.587 * g + 0.114 * b < 0.5:
            kinds.append("brown")
        dark = opaque[opaque @ np.array([0.299, 0.587, 0.114]) < 0.4]
        if len(opaque) >= 500:  # a small one's outline is all antialiased rim
            assert len(dark) >= 0.01 * len(opaque)  # brown tips, stalk and outline
        # The outline: opaque pixels on the rim are darker than the ones inside.
        solid = alpha == 1
        interior = solid.copy()
        for shift in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            interior &= np.roll(solid, shift, (0, 1))
        if interior.sum() >= 60:  # a body a few pixels thick is outline through and through
            luma = layer[..., :3] @ np.array([0.299, 0.587, 0.114])
            ring_ratios.append(luma[solid & ~interior].mean() / luma[interior].mean())
    assert kinds.count("yellow") >= 30 and kinds.count("green") >= 2 and kinds.count("brown") >= 2, kinds
    assert len(ring_ratios) >= 30 and max(ring_ratios) < 0.95 and np.mean(ring_ratios) < 0.8


def test_shapes_range_from_straight_to_crescent():
    fill = []
    for i in range(60):
        alpha = B._render_banana(np.random.default_rng(400 + i))[0][..., 3]
        ys, xs = np.nonzero(alpha > 0.5)
        corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
        fill.append(len(xs) / hull_area(corners))  # 1 for a convex rod, low for a crescent
    fill = np.array(fill)
    assert (fill < 0.7).sum() >= 10 and (fill > 0.85).sum() >= 5, fill.round(2)


def test_ends_range_from_rounded_to_hair_thin_points():
    points = np.array([B._draw_look(np.random.default_rng(500 + i), 256).point for i in range(200)])
    assert 0.35 < (points == 0.5).mean() < 0.65 and points.max() > 1.6
    # One look, only its ends changed: the same box, less banana inside it (the tips thin out).
    look = dataclasses.replace(B._draw_look(np.random.default_rng(7), 256), extent=100.0, bend=0.6, thickness=0.2)
    rounded, pointed = (B._banana_patch(np.random.default_rng(1), dataclasses.replace(look, point=p), 0.3)[0][..., 3]
                        for p in (0.5, 1.8))
    assert abs(rounded.shape[0] - pointed.shape[0]) <= 2 and abs(rounded.shape[1] - pointed.shape[1]) <= 2
    assert pointed.sum() < 0.85 * rounded.sum()


def test_bunches_hold_two_to_four_bananas(monkeypatch):
    drawn = []
    real = B._banana_patch
    monkeypatch.setattr(B, "_banana_patch", lambda *a: drawn.append(1) or real(*a))
    counts = []
    for i in range(150):
        drawn.clear()
        B._bananas_patch(np.random.default_rng(600 + i), 256)
        counts.append(len(drawn))
    counts = np.array(counts)
    assert set(counts) == {1, 2, 3, 4}
    assert 0.15 < (counts > 1).mean() < 0.4


def test_box_sizes_and_positions_vary():
    boxes = np.array([B._render_banana(np.random.default_rng(200 + i))[1] for i in range(120)], float)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h) / 256
    # As small as the book's (10 % of the side, below TinySSD's smallest anchor, 0.2) and as
    # large as 45 %; bunches a little larger.
    assert side.min() >= 0.09 and side.max() <= 0.65
    assert side.min() < 0.12 and side.max() > 0.4
    assert 0.3 < (side < 0.2).mean() < 0.7
    assert w.std() > 8 and h.std() > 8
    assert ((boxes[:, 0] + boxes[:, 2]) / 2).std() > 35 and ((boxes[:, 1] + boxes[:, 3]) / 2).std() > 35
    assert (w > 1.3 * h).any() and (h > 1.3 * w).any()  # lying and standing


def test_backgrounds_vary(monkeypatch):
    photos = S.bundled_photos()
    used = []
    for kind in ("_photo_background", "_procedural_background"):
        real = getattr(B, kind)
        monkeypatch.setattr(B, kind, lambda *a, _real=real, _kind=kind: used.append(_kind) or _real(*a))
    assert len(photos) == 9  # scikit-image is a dev requirement: all bundled photos load
    bgs = np.stack([B._background(np.random.default_rng(300 + i), photos, 256) for i in range(24)])
    assert bgs.shape == (24, 256, 256, 3) and bgs.min() >= 0 and bgs.max() <= 1
    means = bgs.mean(axis=(1, 2))
    assert means.std(axis=0).min() > 0.05  # colours differ
    assert bgs.std(axis=(1, 2, 3)).std() > 0.02  # flat and busy ones
    diffs = np.abs(bgs[:, None] - bgs[None]).mean(axis=(2, 3, 4))
    assert diffs[~np.eye(24, dtype=bool)].min() > 0.02  # no two alike
    assert 6 <= used.count("_photo_background") <= 20 and len(used) == 24  # photos and textures both


def test_procedural_fallback_keeps_the_boxes(generated, tmp_path, monkeypatch):
    monkeypatch.setattr(S, "bundled_photos", lambda: ())
    plain = generate_bananas(tmp_path, seed=0, num_train=N_TRAIN, num_val=N_VAL)
    assert csv_rows(plain / "bananas_train") == csv_rows(generated / "bananas_train")
    assert csv_rows(plain / "bananas_val") == csv_rows(generated / "bananas_val")
    kinds = {B._background(np.random.default_rng(i), (), 256).std() > 0 for i in range(8)}
    assert kinds == {True}


# --- reading --------------------------------------------------------------------------------

def test_read_shapes_dtypes_and_normalisation(generated):
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        images, labels = read_bananas(generated, split)
        assert images.shape == (n, 3, 256, 256) and images.dtype == torch.uint8 and images.is_contiguous()
        assert labels.shape == (n, 1, 5) and labels.dtype == torch.float32
        rows = csv_rows(generated / f"bananas_{split}")
        pixels = torch.tensor([[float(c) for c in r[2:]] for r in rows])
        assert torch.equal(labels[:, 0, 1:] * 256, pixels)
        assert torch.equal(labels[:, 0, 0], torch.zeros(n))
        png = np.array(Image.open(generated / f"bananas_{split}" / "images" / "1.png"))
        assert torch.equal(images[1], torch.from_numpy(png).permute(2, 0, 1))


def test_read_matches_the_books_reader(generated, monkeypatch):
    d2l = pytest.importorskip("d2l.torch", reason="install the oracle: pip install --no-deps d2l==1.0.3")
    monkeypatch.setattr(d2l, "download_extract", lambda name, folder=None: str(generated))
    for is_train, split in ((True, "train"), (False, "val")):
        book_images, book_targets = d2l.read_data_bananas(is_train)
        images, labels = read_bananas(generated, split)
        assert torch.equal(torch.stack(book_images), images)
        assert torch.equal(book_targets.float(), labels)
    book_item = d2l.BananasDataset(is_train=True)[2]
    item = BananasDataset(*read_bananas(generated))[2]
    assert torch.equal(book_item[0], item[0]) and torch.equal(book_item[1].float(), item[1])


@pytest.mark.parametrize("nested", [False, True])
def test_read_hand_made_book_fixture(tmp_path, nested):
    # Three files as the book's archive has them, one grey and one RGBA: all read as RGB.
    top = tmp_path / "banana-detection" if nested else tmp_path
    colour = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    rgba = np.dstack([colour, np.full((256, 256), 7, np.uint8)])
    gray = np.random.default_rng(1).integers(0, 256, (256, 256), dtype=np.uint8)
    folder = top / "bananas_train"
    write_split(folder, ["0.png,0,104,20,143,58", "1.png,0,68,175,118,223", "2.png,0,163,173,218,239"])
    write_png(folder / "images" / "0.png", colour)
    write_png(folder / "images" / "1.png", gray)
    write_png(folder / "images" / "2.png", rgba)
    with Image.open(folder / "images" / "1.png") as a, Image.open(folder / "images" / "2.png") as b:
        assert (a.mode, b.mode) == ("L", "RGBA")
    write_split(top / "bananas_val", ["0.png,0,0,0,256,256"], images={"0.png": grey(9)})

    images, labels = read_bananas(tmp_path)
    assert images.shape == (3, 3, 256, 256) and images.dtype == torch.uint8
    assert torch.equal(images[0], torch.from_numpy(colour).permute(2, 0, 1))
    assert torch.equal(images[1], torch.from_numpy(gray)[None].expand(3, -1, -1))
    assert torch.equal(images[2], torch.from_numpy(colour).permute(2, 0, 1))
    expected = torch.tensor(
        [[0, 104, 20, 143, 58], [0, 68, 175, 118, 223], [0, 163, 173, 218, 239]], dtype=torch.float32
    )
    expected[:, 1:] /= 256
    assert torch.allclose(labels[:, 0], expected) and labels.shape == (3, 1, 5)
    val_images, val_labels = read_bananas(tmp_path, "val")
    assert val_images.shape == (1, 3, 256, 256) and int(val_images.max()) == 9
    assert torch.equal(val_labels, torch.tensor([[[0.0, 0.0, 0.0, 1.0, 1.0]]]))


def test_read_keeps_csv_order_and_any_file_names(tmp_path):
    write_split(
        tmp_path / "bananas_train",
        ["b.png,0,1,2,3,4", "a.png,0,5,6,7,8.5"],
        images={"a.png": grey(1), "b.png": grey(2)},
    )
    images, labels = read_bananas(tmp_path)
    assert images[:, 0, 0, 0].tolist() == [2, 1]
    assert (labels[:, 0, 1:] * 256).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8.5]]


@pytest.mark.parametrize(
    "rows, header, match",
    [
        (["0.png,0,1,2,3,4"], "name,label,xmin,ymin,xmax,ymax", r"header must be img_name,label,xmin,ymin,xmax,ymax,"),
        (["0.png,0,1,2,3,4"], "img_name,label,xmin,ymin,xmax", r"header must be"),
        ([], HEADER, r"lists no images"),
        (["0.png,0,1,2,3"], HEADER, r"line 2: expected 6 fields"),
        (["0.png,0,1,2,3,4", "0.png,0,one,2,3,4"], HEADER, r"line 3: label, xmin, ymin, xmax, ymax must be finite"),
        (["0.png,0,1,2,nan,4"], HEADER, r"must be finite numbers"),
        (["0.png,-1,1,2,3,4"], HEADER, r"label must be a class index >= 0"),
        (["0.png,0.5,1,2,3,4"], HEADER, r"label must be a class index >= 0"),
        (["0.png,0,-1,2,3,4"], HEADER, r"box \(xmin, ymin, xmax, ymax\) = \(-1, 2, 3, 4\) must satisfy 0 <= xmin"),
        (["0.png,0,10,2,300,4"], HEADER, r"= \(10, 2, 300, 4\) must satisfy"),
        (["0.png,0,10,20,30,257"], HEADER, r"0 <= ymin < ymax <= 256"),
        (["0.png,0,30,2,10,4"], HEADER, r"= \(30, 2, 10, 4\) must satisfy"),  # inverted
        (["0.png,0,1,9,3,9"], HEADER, r"= \(1, 9, 3, 9\) must satisfy"),  # empty
        (["0.png,0,1,2,3,4", "9.png,0,1,2,3,4"], HEADER, r"line 3: image '9.png' not found in .*images"),
        (["../0.png,0,1,2,3,4"], HEADER, r"img_name must be a file name inside images/"),
    ],
)
def test_read_rejects_bad_csv(tmp_path, rows, header, match):
    write_split(tmp_path / "bananas_train", rows, header=header, images={"0.png": grey(0)})
    with pytest.raises(ValueError, match=match):
        read_bananas(tmp_path)


def test_read_rejects_missing_folder_and_csv(tmp_path):
    with pytest.raises(ValueError, match=r"has no bananas_train/ folder: expected the book's banana-detection"):
        read_bananas(tmp_path)
    (tmp_path / "bananas_val" / "images").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"bananas_val.label\.csv not found"):
        read_bananas(tmp_path, "val")
    with pytest.raises(ArgumentError, match=r"split must be one of train, val, got 'test'"):
        read_bananas(tmp_path, "test")


def test_read_rejects_bad_images(tmp_path):
    folder = tmp_path / "bananas_train"
    write_split(folder, ["0.png,0,1,2,3,4"], images={"0.png": grey(0, size=128)})
    with pytest.raises(ValueError, match=r"0\.png: image is 128 x 128 pixels, expected 256 x 256"):
        read_bananas(tmp_path)
    write_png(folder / "images" / "0.png", np.zeros((256, 300, 3), np.uint8))
    with pytest.raises(ValueError, match=r"0\.png: image is 300 x 256 pixels"):
        read_bananas(tmp_path)
    (folder / "images" / "0.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"0\.png: not a readable image"):
        read_bananas(tmp_path)


# --- load_bananas and the cache -------------------------------------------------------------

def test_load_generates_once_into_vision_lab_data(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path))
    calls = []
    real = B.generate_bananas
    monkeypatch.setattr(B, "generate_bananas", lambda *a, **k: calls.append(k) or real(*a, **k))
    progress = []
    images, labels = load_bananas(seed=3, num_train=4, num_val=2, progress=lambda d, t: progress.append(d))
    cache = tmp_path / f"bananas-v{B.GENERATOR_VERSION}-seed3-n4-2"
    assert len(calls) == 1 and progress == [1, 2, 3, 4, 5, 6]
    assert images.shape == (4, 3, 256, 256) and labels.shape == (4, 1, 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache.name]  # no temporary folder left
    val_images, _ = load_bananas(split="val", seed=3, num_train=4, num_val=2)
    again, _ = load_bananas(seed=3, num_train=4, num_val=2)
    assert len(calls) == 1  # reused
    assert val_images.shape == (2, 3, 256, 256)
    assert torch.equal(again, images) and torch.equal(read_bananas(cache)[0], images)
    first, first_labels = load_bananas(seed=3, num_train=4, num_val=2, limit=3)  # a short run reads only its images
    assert torch.equal(first, images[:3]) and torch.equal(first_labels, labels[:3])
    assert torch.equal(read_bananas(cache, "train", limit=99)[0], images)  # a limit past the end reads them all
    with pytest.raises(ValueError, match="limit"):
        read_bananas(cache, "train", limit=0)
    direct = real(tmp_path / "direct", seed=3, num_train=4, num_val=2)
    assert file_digests(direct) == file_digests(cache)  # the cache is the plain generator's output


def test_cache_folder_names(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path / "data"))
    assert B._cache_dir(5, 1000, 100) == tmp_path / "data" / f"bananas-v{B.GENERATOR_VERSION}-seed5"
    assert B._cache_dir(5, 10, 2) == tmp_path / "data" / f"bananas-v{B.GENERATOR_VERSION}-seed5-n10-2"
    monkeypatch.delenv("VISION_LAB_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert B._cache_dir(0, 1000, 100) == tmp_path / ".cache" / "vision_lab" / f"bananas-v{B.GENERATOR_VERSION}-seed0"


def test_load_reads_a_given_root_and_never_generates_there(generated, tmp_path, monkeypatch):
    monkeypatch.setattr(B, "generate_bananas", lambda *a, **k: pytest.fail("generated"))
    images, labels = load_bananas(generated, "val")
    assert torch.equal(images, read_bananas(generated, "val")[0]) and labels.shape == (N_VAL, 1, 5)
    with pytest.raises(ValueError, match=r"has no bananas_train/ folder.*generate_bananas\(root\) writes one"):
        load_bananas(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_an_incomplete_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path))
    (tmp_path / f"bananas-v{B.GENERATOR_VERSION}-seed0-n2-1" / "bananas_train").mkdir(parents=True)
    with pytest.raises(ValueError, match=rf"bananas-v{B.GENERATOR_VERSION}-seed0-n2-1 exists but is incomplete"):
        load_bananas(num_train=2, num_val=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"bananas-v{B.GENERATOR_VERSION}-seed0-n2-1"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"seed": 1.5}, r"seed must be an integer >= 0"),
        ({"num_train": 0}, r"num_train must be an integer >= 1, got 0"),
        ({"num_val": True}, r"num_val must be an integer >= 1, got True"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        generate_bananas(tmp_path, **kwargs)
    with pytest.raises(ArgumentError, match=match):
        load_bananas(**kwargs)
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_bad_split(generated):
    with pytest.raises(ArgumentError, match=r"split must be one of train, val, got 'valid'"):
        load_bananas(generated, "valid")


# --- the Dataset ----------------------------------------------------------------------------

def test_dataset_matches_the_books_convention(generated):
    images, labels = read_bananas(generated)
    data = BananasDataset(images, labels)
    assert len(data) == N_TRAIN
    image, target = data[3]
    assert image.dtype == torch.float32 and image.shape == (3, 256, 256)
    assert torch.equal(image, images[3].float()) and image.max() > 1  # 0..255, like the book
    assert torch.equal(target, labels[3]) and target.shape == (1, 5)
    x, y = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    assert x.shape == (4, 3, 256, 256) and y.shape == (4, 1, 5)


def test_dataset_rejects_bad_tensors():
    images, labels = torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 1, 5)
    with pytest.raises(ArgumentError, match=r"images must be a Tensor\[N, 3, H, W\], got \(2, 8, 8\)"):
        BananasDataset(images[:, 0], labels)
    with pytest.raises(ArgumentError, match=r"labels must be a Tensor\[N, 1, 5\], got \(2, 5\)"):
        BananasDataset(images, labels[:, 0])
    with pytest.raises(ArgumentError, match=r"labels must be one per image \(2\), got 1"):
        BananasDataset(images, labels[:1])


def test_load_data_bananas(generated):
    train_iter, val_iter = load_data_bananas(4, root=generated)
    x, y = next(iter(train_iter))
    assert x.shape == (4, 3, 256, 256) and x.dtype == torch.float32 and y.shape == (4, 1, 5)
    assert sum(len(b[0]) for b in val_iter) == N_VAL
    with pytest.raises(ArgumentError, match=r"batch_size must be an integer >= 1, got 0"):
        load_data_bananas(0, root=generated)
