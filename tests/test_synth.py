"""vision_core.data._synth: what both offline generators share; their output pinned to what the checkpoints saw."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL
import pytest
import skimage

import vision_core.data._synth as S
import vision_core.data.bananas as B
import vision_core.data.voc_synthetic as VS
from tests.conftest import HANG_GUARD_S

ROOT = Path(__file__).resolve().parents[1]
# The versions requirements.txt pins (Python >= 3.11): the images' bytes are only promised on them.
PINNED = {"numpy": "2.4.6", "pillow": "12.3.0", "scikit-image": "0.26.0"}
INSTALLED = {"numpy": np.__version__, "pillow": PIL.__version__, "scikit-image": skimage.__version__}


def digest(arrays) -> str:
    h = hashlib.sha256()
    for array in arrays:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def test_labels_are_the_ones_the_shipped_checkpoints_were_trained_on():
    # Boxes and label maps come from the objects' own random stream and numpy alone. The boxes'
    # digest is bananas v4's, which the shipped TinySSD's last 8 epochs were trained on; the label
    # maps' are voc_synthetic v2's (any colour, any texture: the shape names the class), which the
    # shipped FCN was trained on.
    boxes = [B._render_example(*S.image_rngs(0, "train", i))[2] for i in range(8)]
    labels = [VS._render_example(*S.image_rngs(0, "val", i), (), 64, 96)[1] for i in range(8)]
    assert digest([np.array(boxes, np.int64)]) == "d68e1024b356b2a4ab565fe8f73ea6ba04c19d126decf8bfdc3c039000359f99"
    assert digest(labels) == "5bdb9cdce15d883e6a617e9387ce91a6b437470d071fcb0ed80e85fe8bfdb7d7"


@pytest.mark.skipif(INSTALLED != PINNED, reason=f"image bytes are pinned for {PINNED}, installed {INSTALLED}")
def test_images_are_the_ones_the_shipped_checkpoints_were_trained_on():
    photos = S.bundled_photos()
    bananas = [B._render_example(*S.image_rngs(0, "train", i), photos)[0] for i in range(8)]
    voc = [VS._render_example(*S.image_rngs(0, "val", i), photos, 64, 96)[0] for i in range(8)]
    assert digest(bananas) == "dd76f082996bb1fbe5aea70d9e409c39aa9bfdca0bd028b307ffb1367b396442"
    assert digest(voc) == "be88a3b41c4eac564006cf9a37d2dd6cc8b44c5cdf7a274450a61c28011958bd"


def test_both_generators_import_and_run_without_scikit_image(tmp_path):
    code = (
        "import sys\n"
        "import vision_core.data._synth as S\n"
        "import vision_core.data.bananas as B\n"
        "import vision_core.data.voc as V\n"
        "import vision_core.data.voc_synthetic as VS\n"
        "assert 'skimage' not in sys.modules, 'imported eagerly'\n"
        "sys.modules['skimage'] = None\n"
        "assert S.bundled_photos() == ()\n"
        f"B.generate_bananas({str(tmp_path / 'b')!r}, num_train=2, num_val=1)\n"
        f"x, y = B.read_bananas({str(tmp_path / 'b')!r})\n"
        "assert x.shape == (2, 3, 256, 256)\n"
        f"VS.generate_voc_synthetic({str(tmp_path / 'v')!r}, num_train=2, num_val=1, height=40, width=48)\n"
        f"x, y = V.read_voc_images({str(tmp_path / 'v')!r})\n"
        "assert len(x) == 2 and x[0].shape == (3, 40, 48)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-2000:]


def test_value_noise_spans_zero_to_one_on_any_aspect():
    for height, width in ((32, 32), (20, 90), (90, 20)):
        noise = S.value_noise(np.random.default_rng(0), height, width)
        assert noise.shape == (height, width) and noise.dtype == np.float32
        assert noise.min() == 0 and abs(noise.max() - 1) < 1e-6


def test_generate_cached_leaves_no_temporary_folder_and_reports_an_incomplete_cache(tmp_path):
    def write(folder: Path) -> None:
        folder.mkdir()
        (folder / "done").write_text("yes")

    def complete(folder: Path) -> bool:
        return (folder / "done").is_file()

    cache = S.generate_cached(tmp_path / "set", write, complete, "done")
    assert complete(cache) and sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "other").write_text("")
    with pytest.raises(ValueError, match=r"cache folder .*broken exists but is incomplete \(no done\): delete it"):
        S.generate_cached(tmp_path / "broken", write, complete, "done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "set"]
