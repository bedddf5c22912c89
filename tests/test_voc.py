"""vision_core.data: the book's VOC readers (parity with d2l), voc_synthetic, downloads and voc_metrics."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vision_core.data._synth as S
import vision_core.data.downloads as D
import vision_core.data.voc as V
import vision_core.data.voc_synthetic as VS
from vision_core._checks import ArgumentError
from vision_core.data.downloads import VOCDownloadError, download_voc, download_voc_records
from vision_core.data.voc import (
    VOC_CLASSES,
    VOC_COLORMAP,
    VOID_COLOR,
    VOCSegDataset,
    load_data_voc,
    load_voc,
    read_voc_images,
    voc_colormap2label,
    voc_label_indices,
    voc_rand_crop,
)
from vision_core.data.voc_metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy
from vision_core.data.voc_synthetic import SYNTH_CLASSES, generate_voc_synthetic, synthetic_voc_dir
from vision_core.progress import Progress

H, W = 64, 96  # generated test images: small, so the whole file stays fast
N_TRAIN, N_VAL = 5, 2
SYNTH_INDICES = [index for index, _, _ in SYNTH_CLASSES]


def d2l_torch():
    return pytest.importorskip("d2l.torch", reason="install the oracle: pip install --no-deps d2l==1.0.3")


def palette_bytes():
    return V._voc_palette().tobytes()


def write_label(path, indices, mode="P"):
    """Class indices -> a label PNG: palette (as VOC's files) or RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.astype(np.uint8).tobytes())
    image.putpalette(palette_bytes())
    (image if mode == "P" else image.convert("RGB")).save(path)


def make_voc(voc_dir, sizes_train=((40, 56), (30, 44), (48, 50)), sizes_val=((36, 60), (44, 44)), seed=0):
    """A hand-made VOC2012 folder: random JPEG photos, palette and RGB label PNGs with void borders."""
    rng = np.random.default_rng(seed)
    (voc_dir / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for split, sizes in (("train", sizes_train), ("val", sizes_val)):
        names = []
        for k, (h, w) in enumerate(sizes):
            name = f"2007_{split}{k:03d}"
            (voc_dir / "JPEGImages").mkdir(parents=True, exist_ok=True)
            photo = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(photo).save(voc_dir / "JPEGImages" / f"{name}.jpg", quality=90)
            label = rng.integers(0, 21, (h, w)).astype(np.uint8)
            label[:, :2] = 255  # void, as VOC's object borders
            write_label(voc_dir / "SegmentationClass" / f"{name}.png", label, mode="P" if k % 2 == 0 else "RGB")
            names.append(name)
        (voc_dir / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return voc_dir


@pytest.fixture(scope="module")
def fixture_voc(tmp_path_factory):
    return make_voc(tmp_path_factory.mktemp("voc") / "VOCdevkit" / "VOC2012")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "root"
    return generate_voc_synthetic(root, seed=0, num_train=N_TRAIN, num_val=N_VAL, height=H, width=W)


def file_digests(root):
    files = sorted(p for p in Path(root).rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def colormap_of(indices):
    """Tensor[H, W] class indices -> Tensor[3, H, W] uint8 RGB with VOC's colours."""
    return torch.tensor(VOC_COLORMAP, dtype=torch.uint8)[indices.long()].permute(2, 0, 1)


# --- the book's constants and colour mapping ------------------------------------------------

def test_constants_match_the_book():
    d2l = d2l_torch()
    assert list(VOC_CLASSES) == d2l.VOC_CLASSES and len(VOC_CLASSES) == 21
    assert [list(c) for c in VOC_COLORMAP] == d2l.VOC_COLORMAP
    assert VOID_COLOR == (224, 224, 192) and V.VOID_INDEX == 255
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[-1] == "tv/monitor"


def test_colormap2label_matches_the_book_and_keeps_void_on_request():
    d2l = d2l_torch()
    table = voc_colormap2label()
    assert table.shape == (256**3,) and table.dtype == torch.long
    assert torch.equal(table, d2l.voc_colormap2label())
    void_code = (224 * 256 + 224) * 256 + 192
    assert table[void_code] == 0  # the book: void is background
    kept = voc_colormap2label(void_index=255)
    assert kept[void_code] == 255
    kept[void_code] = 0
    assert torch.equal(kept, table)


def test_label_indices_round_trip_and_parity():
    d2l = d2l_torch()
    indices = torch.randint(0, 21, (17, 23), generator=torch.Generator().manual_seed(0))
    colormap = colormap_of(indices)
    table = voc_colormap2label()
    got = voc_label_indices(colormap, table)
    assert got.dtype == torch.long and torch.equal(got, indices)
    assert torch.equal(got, d2l.voc_label_indices(colormap, table))
    # Unknown colours and void become 0 (the book); with void_index, void is kept.
    colormap[:, 0, 0] = torch.tensor([1, 2, 3])
    colormap[:, 0, 1] = torch.tensor(VOID_COLOR)
    expected = indices.clone()
    expected[0, :2] = 0
    assert torch.equal(voc_label_indices(colormap, table), expected)
    assert torch.equal(V._label_indices(colormap).long(), expected)  # the table-free path agrees
    expected[0, 1] = 255
    assert torch.equal(voc_label_indices(colormap, voc_colormap2label(255)), expected)
    assert torch.equal(V._label_indices(colormap, 255).long(), expected)


def test_fast_label_lookup_agrees_with_the_table_on_tricky_colours():
    values = torch.tensor([0, 1, 63, 64, 65, 127, 128, 129, 191, 192, 193, 223, 224, 225, 255], dtype=torch.uint8)
    grid = torch.stack(torch.meshgrid(values, values, values, indexing="ij")).reshape(3, -1, 1)
    for void_index in (None, 0, 21, 255):
        fast = V._label_indices(grid, void_index)
        assert fast.dtype == torch.uint8
        assert torch.equal(fast.long(), voc_label_indices(grid, voc_colormap2label(void_index)))


def test_label_indices_rejects_bad_input():
    table = voc_colormap2label()
    with pytest.raises(ArgumentError, match=r"colormap must be a Tensor\[3, H, W\] of RGB values, got \(4, 5\)"):
        voc_label_indices(torch.zeros(4, 5, dtype=torch.uint8), table)
    with pytest.raises(ArgumentError, match=r"colormap2label must be a Tensor\[16777216\]"):
        voc_label_indices(torch.zeros(3, 4, 5, dtype=torch.uint8), table[:10])
    with pytest.raises(ArgumentError, match=r"void_index must be None or 0 .* or an integer in \[21, 255\], got 7"):
        voc_colormap2label(7)


# --- random crops ---------------------------------------------------------------------------

def test_rand_crop_keeps_image_and_label_aligned():
    g = torch.Generator().manual_seed(1)
    feature = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8, generator=g)
    label = colormap_of(feature[0] % 21)  # the label is a function of the pixel under it
    offsets = set()
    for _ in range(20):
        f, lab = voc_rand_crop(feature, label, 20, 30, generator=g)
        assert f.shape == (3, 20, 30) and lab.shape == (3, 20, 30)
        assert torch.equal(lab, colormap_of(f[0] % 21))
        match = (feature.unfold(1, 20, 1).unfold(2, 30, 1) == f[:, None, None]).flatten(3).all(-1).all(0)
        offsets.add(tuple(match.nonzero()[0].tolist()))
    assert len(offsets) > 10  # the crops move around
    whole = voc_rand_crop(feature, feature[0], 50, 70, generator=g)  # index labels [H, W] work too
    assert torch.equal(whole[0], feature) and torch.equal(whole[1], feature[0])


def test_rand_crop_matches_the_book_and_the_generator_replays_its_draws():
    d2l = d2l_torch()
    feature = torch.rand(3, 41, 57)
    label = torch.randint(0, 256, (3, 41, 57), dtype=torch.uint8)
    for seed in range(5):
        torch.manual_seed(seed)
        book = d2l.voc_rand_crop(feature, label, 30, 40)
        torch.manual_seed(seed)
        ours = voc_rand_crop(feature, label, 30, 40)
        replay = voc_rand_crop(feature, label, 30, 40, generator=torch.Generator().manual_seed(seed))
        for a, b, c in zip(book, ours, replay, strict=True):
            assert torch.equal(a, b) and torch.equal(a, c)


def test_rand_crop_rejects_bad_sizes():
    feature, label = torch.zeros(3, 10, 12), torch.zeros(3, 10, 12)
    with pytest.raises(ArgumentError, match=r"height must be an integer in \[1, 10\], got 11"):
        voc_rand_crop(feature, label, 11, 5)
    with pytest.raises(ArgumentError, match=r"width must be an integer in \[1, 12\], got 0"):
        voc_rand_crop(feature, label, 5, 0)
    with pytest.raises(ArgumentError, match=r"label must be a Tensor\[..., H, W\] with feature's H, W = \(10, 12\)"):
        voc_rand_crop(feature, label[:, :9], 5, 5)


# --- reading the VOC layout (a hand-made fixture) --------------------------------------------

def test_read_matches_the_books_reader(fixture_voc):
    d2l = d2l_torch()
    for is_train, n in ((True, 3), (False, 2)):
        features, labels = read_voc_images(fixture_voc, is_train)
        book_features, book_labels = d2l.read_voc_images(str(fixture_voc), is_train)
        assert len(features) == len(labels) == n
        for a, b in zip(features + labels, book_features + book_labels, strict=True):
            assert a.dtype == torch.uint8 and a.shape[0] == 3 and torch.equal(a, b)


def test_read_palette_and_rgb_labels_give_the_same_colours(fixture_voc):
    _, labels = read_voc_images(fixture_voc)
    for k, label in enumerate(labels):
        name = f"2007_train{k:03d}"
        with Image.open(fixture_voc / "SegmentationClass" / f"{name}.png") as png:
            assert png.mode == ("P" if k % 2 == 0 else "RGB")
            rgb = np.asarray(png.convert("RGB"))
        assert torch.equal(label, torch.from_numpy(rgb.copy()).permute(2, 0, 1))
        assert (label[:, :, 0] == torch.tensor(VOID_COLOR)[:, None]).all()


def test_read_accepts_the_archive_folders(fixture_voc):
    features, _ = read_voc_images(fixture_voc)
    for root in (fixture_voc.parent, fixture_voc.parent.parent):  # VOCdevkit/, and the folder above it
        again, _ = read_voc_images(root)
        assert all(torch.equal(a, b) for a, b in zip(again, features, strict=True))


def test_read_rejects_broken_layouts(tmp_path):
    voc = make_voc(tmp_path / "VOC2012", sizes_train=((8, 8), (8, 8)), sizes_val=((8, 8),))
    with pytest.raises(ValueError, match=r"has no ImageSets/Segmentation/ folder .*generate_voc_synthetic"):
        read_voc_images(tmp_path / "nowhere")
    (voc / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(ValueError, match=r"val\.txt not found"):
        read_voc_images(voc, is_train=False)
    (voc / "JPEGImages" / "2007_train001.jpg").unlink()
    with pytest.raises(ValueError, match=r"lists '2007_train001' but .*2007_train001\.jpg is missing"):
        read_voc_images(voc)
    (voc / "JPEGImages" / "2007_train001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"2007_train001\.jpg: not a readable image"):
        read_voc_images(voc)
    Image.new("RGB", (9, 8)).save(voc / "JPEGImages" / "2007_train001.jpg")
    with pytest.raises(ValueError, match=r"2007_train001: label is 8 x 8 pixels but the photo is 9 x 8"):
        read_voc_images(voc)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("../secret\n")
    with pytest.raises(ValueError, match=r"image names must be file names without extension, got '../secret'"):
        read_voc_images(voc)


# --- the Dataset ----------------------------------------------------------------------------

def test_dataset_matches_the_book_item_for_item(fixture_voc, capsys):
    d2l = d2l_torch()
    for is_train in (True, False):
        book = d2l.VOCSegDataset(is_train, (30, 40), str(fixture_voc))
        ours = VOCSegDataset(is_train, (30, 40), fixture_voc)
        assert len(ours) == len(book)
        for i in range(len(ours)):
            for seed in range(3):
                torch.manual_seed(seed)
                f_book, l_book = book[i]
                torch.manual_seed(seed)
                f, lab = ours[i]
                assert f.dtype == torch.float32 and f.shape == (3, 30, 40) and torch.equal(f, f_book)
                assert lab.dtype == torch.long and lab.shape == (30, 40) and torch.equal(lab, l_book)
    assert "read 2 examples" in capsys.readouterr().out  # the book's print; ours keeps quiet


def test_dataset_drops_small_images_and_counts_them(fixture_voc):
    train = VOCSegDataset(True, (40, 50), fixture_voc)  # train sizes 40x56, 30x44, 48x50
    assert len(train) == 2 and train.num_dropped == 1
    assert [tuple(f.shape[1:]) for f in train.features] == [(40, 56), (48, 50)]
    none = VOCSegDataset(False, (100, 100), fixture_voc)
    assert len(none) == 0 and none.num_dropped == 2
    with pytest.raises(ArgumentError, match=r"crop_size\[0\] \(height\) must be an integer >= 1, got 0"):
        VOCSegDataset(True, (0, 5), fixture_voc)
    with pytest.raises(ArgumentError, match=r"crop_size must be a pair \(height, width\) of integers >= 1, got 32"):
        VOCSegDataset(True, 32, fixture_voc)


def test_dataset_void_index_keeps_void_pixels(fixture_voc):
    data = VOCSegDataset(True, (30, 44), fixture_voc, void_index=255)
    _, label = data[1]  # 30 x 44: the crop is the whole image, void in the first two columns
    assert (label[:, :2] == 255).all() and (label[:, 2:] < 21).all()
    _, book_label = VOCSegDataset(True, (30, 44), fixture_voc)[1]
    assert (book_label[:, :2] == 0).all()
    image = data.normalize_image(data.features[1])
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    assert torch.allclose(image, (data.features[1].float() / 255 - mean) / std)


# --- the synthetic set ----------------------------------------------------------------------

def test_generated_layout_and_file_modes(generated):
    assert isinstance(generated, Path)
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        names = (generated / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
        assert names == [f"{split}_{i:06d}" for i in range(n)]
        for name in names:
            with Image.open(generated / "JPEGImages" / f"{name}.jpg") as jpg:
                assert (jpg.format, jpg.mode, jpg.size) == ("JPEG", "RGB", (W, H))
            with Image.open(generated / "SegmentationClass" / f"{name}.png") as png:
                assert (png.format, png.mode, png.size) == ("PNG", "P", (W, H))
                assert png.getpalette()[: 3 * 256] == list(palette_bytes())


def test_generated_files_are_what_was_drawn(generated):
    photos = S.bundled_photos()
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        for i in range(n):
            image, label = VS._render_example(*S.image_rngs(0, split, i), photos, H, W)
            name = f"{split}_{i:06d}"
            png = np.asarray(Image.open(generated / "SegmentationClass" / f"{name}.png"))
            assert np.array_equal(png, label)
            jpg = np.asarray(Image.open(generated / "JPEGImages" / f"{name}.jpg")).astype(int)
            # Quality 95, no chroma subsampling: small errors (the grain is the hardest part), no colour shift.
            assert np.abs(jpg - image).mean() < 4 and np.abs((jpg - image).mean(axis=(0, 1))).max() < 1


def test_same_seed_gives_identical_bytes_and_order_does_not_matter(generated, tmp_path):
    again = generate_voc_synthetic(tmp_path / "again", seed=0, num_train=N_TRAIN, num_val=N_VAL, height=H, width=W)
    assert file_digests(again) == file_digests(generated)
    assert len(file_digests(again)) == 2 * (N_TRAIN + N_VAL) + 2
    # Each image has its own seed: fewer images give the same first ones, val included.
    small = file_digests(generate_voc_synthetic(tmp_path / "small", seed=0, num_train=2, num_val=1, height=H, width=W))
    full = file_digests(generated)
    for name in ("train_000000", "train_000001", "val_000000"):
        for sub, ext in (("JPEGImages", "jpg"), ("SegmentationClass", "png")):
            key = f"{sub}/{name}.{ext}"
            assert small[key] == full[key]


def test_different_seed_differs_and_val_never_repeats_train(generated, tmp_path):
    other = file_digests(generate_voc_synthetic(tmp_path, seed=1, num_train=N_TRAIN, num_val=N_VAL, height=H, width=W))
    mine = file_digests(generated)
    images = [k for k in mine if not k.endswith(".txt")]
    assert all(mine[k] != other[k] for k in images)
    train = {v for k, v in mine.items() if "/train_" in k}
    val = {v for k, v in mine.items() if "/val_" in k}
    assert len(train) == 2 * N_TRAIN and len(val) == 2 * N_VAL and not train & val


def test_progress_reports_every_image(tmp_path):
    calls = []
    generate_voc_synthetic(tmp_path, seed=2, num_train=3, num_val=2, height=32, width=40,
                           progress=lambda *args: calls.append(args))
    assert calls == [(i, 5) for i in range(1, 6)]


def test_classes_shapes_and_pixel_shares():
    photos = S.bundled_photos()
    counts = np.zeros(256, np.int64)
    per_image = []
    for i in range(40):
        _, label = VS._render_example(*S.image_rngs(7, "train", i), photos, 96, 144)
        counts += np.bincount(label.ravel(), minlength=256)
        per_image.append(len(set(np.unique(label).tolist()) - {0}))
    assert set(np.flatnonzero(counts).tolist()) == set(SYNTH_INDICES)
    share = counts / counts.sum()
    assert 0.65 < share[0] < 0.9  # mostly background, as VOC
    assert all(0.02 < share[k] < 0.09 for k in SYNTH_INDICES[1:]), share[SYNTH_INDICES]
    assert 1 <= min(per_image) and max(per_image) <= 4 and np.mean(per_image) > 1.5


def test_no_class_owns_a_colour():
    # Issue 18, item 3: generator v1 gave each class one hue band, and the FCN learned colours.
    # Now each class's objects spread around the hue circle: at least 4 of its 6 sixty-degree
    # sectors hold the median hue of one of its objects, so only the shape can name the class.
    sectors = {k: set() for k in SYNTH_INDICES[1:]}
    for i in range(30):
        image, label = VS._render_example(*S.image_rngs(3, "val", i), (), 96, 144)
        hsv = np.asarray(Image.fromarray(image).convert("HSV")).astype(float)
        for k in sectors:
            inside = label == k
            core = inside.copy()  # away from the antialiased edge
            for shift, axis in ((2, 0), (-2, 0), (2, 1), (-2, 1)):
                core &= np.roll(inside, shift, axis)
            bright = core & (hsv[..., 2] > 90) & (hsv[..., 1] > 60)  # dark frames and stripes have weak hues
            if bright.sum() > 20:
                sectors[k].add(int(np.median(hsv[..., 0][bright]) * 360 / 256 // 60))
    assert all(len(found) >= 4 for found in sectors.values()), sectors


def test_labels_do_not_depend_on_scikit_image(generated, tmp_path, monkeypatch):
    monkeypatch.setattr(S, "bundled_photos", lambda: ())
    plain = file_digests(generate_voc_synthetic(tmp_path, seed=0, num_train=N_TRAIN, num_val=N_VAL, height=H, width=W))
    full = file_digests(generated)
    assert all(plain[k] == full[k] for k in full if not k.startswith("JPEGImages/"))  # labels, lists
    assert any(plain[k] != full[k] for k in full if k.startswith("JPEGImages/"))  # procedural backgrounds


def test_generated_set_reads_with_ours_and_the_books_reader(generated):
    d2l = d2l_torch()
    features, labels = read_voc_images(generated)
    book_features, book_labels = d2l.read_voc_images(str(generated), True)
    assert len(features) == N_TRAIN
    assert all(torch.equal(a, b) for a, b in zip(features + labels, book_features + book_labels, strict=True))
    indices = voc_label_indices(labels[0], voc_colormap2label())
    png = np.asarray(Image.open(generated / "SegmentationClass" / "train_000000.png"))
    assert torch.equal(indices, torch.from_numpy(png.astype(np.int64)))
    data = VOCSegDataset(False, (H // 2, W // 2), generated)
    x, y = data[0]
    assert x.shape == (3, H // 2, W // 2) and y.shape == (H // 2, W // 2) and len(data) == N_VAL


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"num_train": 0}, r"num_train must be an integer >= 1, got 0"),
        ({"num_val": True}, r"num_val must be an integer >= 1, got True"),
        ({"height": 16}, r"height must be an integer in \[32, 4096\], got 16"),
        ({"width": 100.0}, r"width must be an integer in \[32, 4096\], got 100\.0"),
    ],
)
def test_generator_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        generate_voc_synthetic(tmp_path, **kwargs)
    with pytest.raises(ArgumentError, match=match):
        synthetic_voc_dir(**kwargs)
    assert list(tmp_path.iterdir()) == []


# --- the cache and the loaders --------------------------------------------------------------

def test_cache_generates_once_into_vision_lab_data(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path))
    calls, progress = [], []
    real = VS.generate_voc_synthetic
    monkeypatch.setattr(VS, "generate_voc_synthetic", lambda *a, **k: calls.append(k) or real(*a, **k))
    folder = synthetic_voc_dir(3, num_train=3, num_val=2, height=40, width=48, progress=lambda d, t: progress.append(d))
    assert folder == tmp_path / "voc-synthetic-v2-seed3-n3-2-40x48"
    assert len(calls) == 1 and progress == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no temporary folder left
    features, _ = load_voc(None, False, 3, num_train=3, num_val=2, height=40, width=48)
    assert len(calls) == 1 and len(features) == 2  # reused
    direct = real(tmp_path / "direct", seed=3, num_train=3, num_val=2, height=40, width=48)
    assert file_digests(direct) == file_digests(folder)


def test_cache_folder_names(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path / "data"))
    assert VS._cache_dir(5, 600, 100, 320, 480) == tmp_path / "data" / "voc-synthetic-v2-seed5"
    assert VS._cache_dir(5, 10, 2, 320, 480) == tmp_path / "data" / "voc-synthetic-v2-seed5-n10-2"
    assert VS._cache_dir(0, 600, 100, 160, 240) == tmp_path / "data" / "voc-synthetic-v2-seed0-160x240"
    monkeypatch.delenv("VISION_LAB_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert VS._cache_dir(0, 600, 100, 320, 480) == tmp_path / ".cache" / "vision_lab" / "voc-synthetic-v2-seed0"


def test_cache_refuses_an_incomplete_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path))
    (tmp_path / "voc-synthetic-v2-seed0-n2-1-32x32" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"voc-synthetic-v2-seed0-n2-1-32x32 exists but is incomplete"):
        synthetic_voc_dir(num_train=2, num_val=1, height=32, width=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voc-synthetic-v2-seed0-n2-1-32x32"]


def test_load_data_voc(generated, fixture_voc, tmp_path, monkeypatch):
    train_iter, test_iter = load_data_voc(2, (32, 48), root=generated)
    x, y = next(iter(train_iter))
    assert x.shape == (2, 3, 32, 48) and x.dtype == torch.float32
    assert y.shape == (2, 32, 48) and y.dtype == torch.long and set(y.unique().tolist()) <= set(SYNTH_INDICES)
    assert len(train_iter) == N_TRAIN // 2 and len(test_iter) == 1  # the book drops the last partial batch
    with pytest.raises(ArgumentError, match=r"batch_size must be at most 2, the number of train images at least "
                                            r"crop_size \(40, 50\) \(1 smaller dropped\).*, got 3"):
        load_data_voc(3, (40, 50), root=fixture_voc)
    with pytest.raises(ArgumentError, match=r"batch_size must be an integer >= 1, got 0"):
        load_data_voc(0, (32, 48), root=generated)
    with pytest.raises(ArgumentError, match=r"num_workers must be an integer >= 0, got -1"):
        load_data_voc(2, (32, 48), root=generated, num_workers=-1)
    # Without a root: the synthetic cache, generated on first use, never the network.
    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    train_iter, _ = load_data_voc(2, (32, 32), seed=1, num_train=2, num_val=2, height=32, width=40)
    assert next(iter(train_iter))[0].shape == (2, 3, 32, 32)
    assert (tmp_path / "voc-synthetic-v2-seed1-n2-2-32x40" / "ImageSets").is_dir()


# --- download -------------------------------------------------------------------------------

def voc_tar(tmp_path, extra=()):
    """The fixture's VOCdevkit/VOC2012 as tar bytes, plus `extra` (TarInfo, bytes or None) members."""
    voc = make_voc(tmp_path / "src" / "VOCdevkit" / "VOC2012", sizes_train=((8, 10),), sizes_val=((8, 10),))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(voc.parent, arcname="VOCdevkit")
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def serve(monkeypatch, payload, sha1=None):
    """Patch urllib to serve `payload`; expect its SHA-1 (or `sha1`). Returns the list of URLs asked for."""
    asked = []

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    def urlopen(url, timeout=None):
        asked.append(url)
        return Response(payload)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(D, "VOC_SHA1", sha1 or hashlib.sha1(payload).hexdigest())
    monkeypatch.delenv("VISION_LAB_OFFLINE", raising=False)
    return asked


def test_download_streams_verifies_and_extracts(tmp_path, monkeypatch):
    payload = voc_tar(tmp_path)
    asked = serve(monkeypatch, payload)
    root = tmp_path / "data"
    records = list(download_voc_records(root, chunk_size=4096))
    assert asked == [D.VOC_URL]
    assert all(isinstance(r, Progress) for r in records) and records[-1].done
    assert sum(r.done for r in records) == 1 and "VOC2012" in records[-1].message
    fetched = [r for r in records if r.message.startswith("downloading")]
    assert [r.step for r in fetched] == list(range(0, len(payload), 4096)) + [len(payload)]
    assert all(r.total == len(payload) for r in fetched)
    features, _ = read_voc_images(root / "VOCdevkit" / "VOC2012")
    assert len(features) == 1 and features[0].shape == (3, 8, 10)
    assert sorted(p.name for p in root.iterdir()) == ["VOCdevkit"]  # no archive or temporary left
    # Already there: no network at all.
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    assert download_voc(root) == root / "VOCdevkit" / "VOC2012"


def test_download_keeps_the_archive_and_reuses_it_offline(tmp_path, monkeypatch):
    payload = voc_tar(tmp_path)
    serve(monkeypatch, payload)
    calls = []
    root = tmp_path / "a"
    voc = download_voc(root, progress=lambda d, t: calls.append((d, t)), keep_archive=True)
    assert voc == root / "VOCdevkit" / "VOC2012"
    assert calls[-1] == (1, 1) and (root / D.VOC_ARCHIVE).read_bytes() == payload
    # An archive copied in by hand is verified and extracted without the network, even offline.
    other = tmp_path / "b"
    other.mkdir()
    (other / D.VOC_ARCHIVE).write_bytes(payload)
    monkeypatch.setenv("VISION_LAB_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    assert len(read_voc_images(download_voc(other), is_train=False)[0]) == 1


def test_download_rejects_a_bad_checksum(tmp_path, monkeypatch):
    payload = voc_tar(tmp_path)
    serve(monkeypatch, payload, sha1="0" * 40)
    root = tmp_path / "data"
    with pytest.raises(VOCDownloadError, match=r"has SHA-1 [0-9a-f]{40}, expected 0{40}: the download is corrupt"):
        download_voc(root)
    assert list(root.iterdir()) == []  # the partial file is gone, nothing extracted
    (root / D.VOC_ARCHIVE).write_bytes(payload)
    with pytest.raises(VOCDownloadError, match=r"does not match the expected SHA-1 0{40}: delete it"):
        download_voc(root)


def link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def regular(name, data=b"evil"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.mark.parametrize(
    "member, match",
    [
        (regular("../evil.txt"), r"member '../evil.txt' is an absolute path or climbs out"),
        (regular("VOCdevkit/../../evil.txt"), r"climbs out with '..'"),
        (regular("/tmp/evil.txt"), r"member '/tmp/evil.txt' is an absolute path"),
        (link("VOCdevkit/VOC2012/up", "../../../evil.txt"),
         r"link 'VOCdevkit/VOC2012/up' -> '../../../evil.txt' points outside"),
        (link("VOCdevkit/abs", "/etc/passwd"), r"link 'VOCdevkit/abs' -> '/etc/passwd' points outside"),
        (link("VOCdevkit/hard", "../evil.txt", tarfile.LNKTYPE), r"points outside"),
        (link("VOCdevkit/fifo", "", tarfile.FIFOTYPE), r"'VOCdevkit/fifo' is a device, FIFO or other special file"),
    ],
)
def test_download_refuses_unsafe_archives(tmp_path, monkeypatch, member, match):
    serve(monkeypatch, voc_tar(tmp_path, extra=[member]))
    root = tmp_path / "data"
    with pytest.raises(VOCDownloadError, match="unsafe archive: .*" + match):
        download_voc(root)
    assert list(root.iterdir()) == []  # refused before anything was extracted
    assert not (tmp_path / "evil.txt").exists() and not (root.parent / "evil.txt").exists()


def test_download_accepts_links_that_stay_inside(tmp_path, monkeypatch):
    serve(monkeypatch, voc_tar(tmp_path, extra=[link("VOCdevkit/VOC2012/alias", "JPEGImages")]))
    voc = download_voc(tmp_path / "data")
    assert (voc / "alias").is_symlink() and len(read_voc_images(voc)[0]) == 1


def test_download_needs_the_voc_folders(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info, data = regular("readme.txt", b"hello")
        tar.addfile(info, io.BytesIO(data))
    serve(monkeypatch, buffer.getvalue())
    with pytest.raises(VOCDownloadError, match=r"has no VOCdevkit/VOC2012/ImageSets/Segmentation folder"):
        download_voc(tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_download_refuses_when_offline_before_any_network(tmp_path, monkeypatch, value):
    monkeypatch.setenv("VISION_LAB_OFFLINE", value)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    with pytest.raises(VOCDownloadError, match=r"VISION_LAB_OFFLINE is set, so VOC 2012 is not downloaded.*"
                                               r"generate_voc_synthetic\(\) is the offline alternative"):
        download_voc(tmp_path / "data")
    assert not (tmp_path / "data").exists()
    assert isinstance(VOCDownloadError("x"), ValueError)  # panels show ValueErrors as messages


def test_download_reports_network_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("VISION_LAB_OFFLINE", raising=False)

    def urlopen(url, timeout=None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(VOCDownloadError, match=r"downloading http://.*VOCtrainval_11-May-2012\.tar failed: .*no route"):
        download_voc(tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- metrics --------------------------------------------------------------------------------

def random_segmentation(seed, num_classes=6, shape=(3, 20, 24), void=0.1):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, num_classes, shape, generator=g)
    # Predictions right about 70 % of the time, so IoUs are neither 0 nor 1.
    pred = torch.where(torch.rand(shape, generator=g) < 0.7, label, torch.randint(0, num_classes, shape, generator=g))
    label[torch.rand(shape, generator=g) < void] = 255
    return pred, label


@pytest.mark.parametrize("seed", range(4))
def test_metrics_match_torchmetrics(seed):
    from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassJaccardIndex

    pred, label = random_segmentation(seed)
    confmat = confusion_matrix(pred, label, 6)
    assert confmat.dtype == torch.long and confmat.shape == (6, 6)
    assert torch.equal(confmat, MulticlassConfusionMatrix(6, ignore_index=255)(pred, label).long())
    assert confmat.sum() == (label != 255).sum()
    miou = MulticlassJaccardIndex(6, ignore_index=255)(pred, label)
    assert torch.allclose(mean_iou(confmat), miou)
    per_class = MulticlassJaccardIndex(6, average="none", ignore_index=255)(pred, label)
    assert torch.allclose(iou_per_class(confmat), per_class)
    acc = MulticlassAccuracy(6, average="micro", ignore_index=255)(pred, label)
    assert torch.allclose(pixel_accuracy(pred, label), acc)
    # Scores (N, C, H, W) are argmaxed.
    scores = torch.nn.functional.one_hot(pred, 6).permute(0, 3, 1, 2).float()
    assert torch.equal(confusion_matrix(scores, label, 6), confmat)
    assert torch.equal(pixel_accuracy(scores, label), pixel_accuracy(pred, label))


def test_mean_iou_skips_absent_classes_like_torchmetrics():
    from torchmetrics.classification import MulticlassJaccardIndex

    pred, label = random_segmentation(9, num_classes=4, void=0.0)  # classes 4..20 never occur
    confmat = confusion_matrix(pred, label, 21)
    ious = iou_per_class(confmat)
    assert ious[4:].isnan().all() and not ious[:4].isnan().any()
    assert torch.allclose(mean_iou(confmat), MulticlassJaccardIndex(21)(pred, label))
    assert mean_iou(torch.zeros(3, 3, dtype=torch.long)).isnan()
    perfect = confusion_matrix(label, label, 4)
    assert mean_iou(perfect) == 1 and pixel_accuracy(label, label) == 1


def test_metrics_without_ignore_index_count_every_pixel():
    pred, label = random_segmentation(2, void=0.0)
    label[0, 0, 0] = 5
    assert confusion_matrix(pred, label, 6, ignore_index=None).sum() == label.numel()
    assert pixel_accuracy(pred, label, ignore_index=None) == (pred == label).float().mean()


def test_metrics_reject_bad_input():
    pred, label = random_segmentation(0)
    with pytest.raises(ArgumentError, match=r"class indices in \[0, 4\] \(label may also be ignore_index=255\)"):
        confusion_matrix(pred, label, 5)
    with pytest.raises(ArgumentError, match=r"num_classes must be an integer >= 1, got 0"):
        confusion_matrix(pred, label, 0)
    with pytest.raises(ArgumentError, match=r"pred must be of label's shape \(3, 20, 24\).*got \(3, 20\)"):
        pixel_accuracy(pred[:, :, 0], label)
    with pytest.raises(ArgumentError, match=r"confmat must be a square Tensor\[C, C\].*got \(2, 3\)"):
        mean_iou(torch.zeros(2, 3))
