"""`python -m vision_core` given bad arguments (issue 16, item 9): one line on stderr, no traceback,
exit status 2 for bad arguments (nothing ran) and 1 for work that failed.

Every case runs in a process of its own (see _FORKING_RUNNER: `python -m vision_core` forked from
one interpreter that imported torch once; a few run in a fresh interpreter too). Each is cheap:
training cases fail before a step of training, images are tiny or only declare a size in their
header, and the style transfer is asked for one step at 16 px with the offline network, so even a
check that is missing costs little.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import HANG_GUARD_S, ROOT

HEADER = "img_name,label,xmin,ymin,xmax,ymax\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares ``width x height`` RGB pixels, with a tiny (truncated) IDAT: a few
    hundred bytes that would decode to ``3 * width * height`` bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def _banana_split(root: Path, split: str, csv_text: str | bytes) -> None:
    folder = root / f"bananas_{split}"
    (folder / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((256, 256, 3), np.uint8)).save(folder / "images" / "0.png")
    data = csv_text.encode() if isinstance(csv_text, str) else csv_text
    (folder / "label.csv").write_bytes(data)


def _banana_root(root: Path, csv_text: str | bytes) -> str:
    for split in ("train", "val"):
        _banana_split(root, split, csv_text)
    return str(root)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The inputs every case names, made once: ``{key: path}``."""
    tmp = tmp_path_factory.mktemp("cli_inputs")
    f = {"tmp": tmp}
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp / "ok.png")
    f["ok"] = tmp / "ok.png"
    Image.fromarray(np.zeros((20000, 2, 3), np.uint8)).save(tmp / "tall.png")  # 2 x 20000: 600 bytes
    f["tall"] = tmp / "tall.png"
    Image.fromarray(np.zeros((10, 400, 3), np.uint8)).save(tmp / "wide.png")  # 40:1, under every side limit
    f["wide"] = tmp / "wide.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp / "tiny.png")  # under TinySSD's 8 px
    f["tiny"] = tmp / "tiny.png"
    _bomb_png(tmp / "bomb.png", 100_000, 100_000)
    f["bomb"] = tmp / "bomb.png"
    _bomb_png(tmp / "bomb_small.png", 64, 64)  # a plausible header, then the data stops
    f["truncated"] = tmp / "bomb_small.png"
    (tmp / "notes.png").write_text("not an image\n")
    f["text"] = tmp / "notes.png"
    (tmp / "folder.png").mkdir()
    f["folder"] = tmp / "folder.png"
    f["missing"] = tmp / "missing.png"
    f["no_parent"] = tmp / "no" / "such" / "out.png"
    # 600 frames of 32 x 32, the file cut short in the last one: reading the first frame works,
    # decoding them all cannot (and would cost 600 times the memory and time).
    frames = [Image.fromarray(np.full((32, 32, 3), (k * 37) % 256, np.uint8)) for k in range(600)]
    frames[0].save(tmp / "long.gif", save_all=True, append_images=frames[1:], duration=10)
    data = (tmp / "long.gif").read_bytes()
    (tmp / "long.gif").write_bytes(data[:-40])
    f["gif"] = tmp / "long.gif"
    f["empty_dir"] = tmp / "empty"
    f["empty_dir"].mkdir()
    f["garbage"] = _banana_root(tmp / "garbage", b"\x00\xff\xfe garbage \x00\n\x89PNG")
    f["columns"] = _banana_root(tmp / "columns", "name,cls,x,y\n0.png,0,1,2\n")
    f["not_numbers"] = _banana_root(tmp / "not_numbers", HEADER + "0.png,0,a,b,c,d\n")
    f["outside"] = _banana_root(tmp / "outside", HEADER + "0.png,0,10,10,300,40\n")
    f["unlisted"] = _banana_root(tmp / "unlisted", HEADER + "9.png,0,10,10,30,40\n")
    f["a_file"] = tmp / "a_file.txt"
    f["a_file"].write_text("x")
    return f


# (case id, argv with {key} placeholders for files, exit status, words the one stderr line holds)
CASES = [
    # train ssd --data: fails before training (the data is read first)
    ("data missing", ["train", "ssd", "--data", "{missing}"], 2, ["--data", "bananas_train"]),
    ("data empty", ["train", "ssd", "--data", "{empty_dir}"], 2, ["--data", "bananas_train"]),
    ("data a file", ["train", "ssd", "--data", "{a_file}"], 2, ["--data"]),
    ("data garbage csv", ["train", "ssd", "--data", "{garbage}"], 2, ["--data", "label.csv", "UTF-8"]),
    ("data wrong columns", ["train", "ssd", "--data", "{columns}"], 2, ["label.csv", "header"]),
    ("data not numbers", ["train", "ssd", "--data", "{not_numbers}"], 2, ["label.csv", "finite numbers"]),
    ("data box outside", ["train", "ssd", "--data", "{outside}"], 2, ["label.csv", "box"]),
    ("data image missing", ["train", "ssd", "--data", "{unlisted}"], 2, ["9.png", "not found"]),
    # train ssd --save / --init / --weights-dir: refused before the data is read or a step is taken
    ("save shipped name", ["train", "ssd", "--save", "tiny_ssd_bananas", "--data", "{missing}"], 2,
     ["--save", "pretrained"]),
    ("save path name", ["train", "ssd", "--save", "../escape", "--data", "{missing}"], 2, ["--save"]),
    ("weights-dir a file", ["train", "ssd", "--weights-dir", "{a_file}", "--data", "{missing}"], 2,
     ["--weights-dir", "not a folder"]),
    ("init unknown", ["train", "ssd", "--init", "no_such_weights", "--no-save", "--data", "{missing}"], 2,
     ["--init", "no_such_weights"]),
    # detect: images checked on their header, before decoding
    ("detect 2 x 20000", ["detect", "{tall}"], 2, ["IMAGE", "16383"]),
    ("detect 40:1", ["detect", "{wide}"], 2, ["IMAGE", "20:1"]),
    ("detect 100000^2 header", ["detect", "{bomb}"], 2, ["IMAGE", "megapixels"]),
    ("detect 4 x 4", ["detect", "{tiny}"], 2, ["8 x 8"]),
    ("detect truncated", ["detect", "{truncated}"], 2, ["IMAGE", "could not be read as an image"]),
    ("detect text file", ["detect", "{text}"], 2, ["IMAGE", "could not be read as an image"]),
    ("detect a folder", ["detect", "{folder}"], 2, ["IMAGE", "folder"]),
    ("detect missing", ["detect", "{missing}"], 2, ["IMAGE", "does not exist"]),
    ("detect unknown weights", ["detect", "{ok}", "--weights", "no_such_weights"], 1, ["no_such_weights"]),
    ("detect bad threshold", ["detect", "{ok}", "--threshold", "2"], 2, ["threshold", "[0, 1]"]),
    # segment / stylize --out: checked before any work
    ("segment out no folder", ["segment", "{ok}", "--out", "{no_parent}"], 2, ["--out", "does not exist"]),
    ("segment out a folder", ["segment", "{ok}", "--out", "{folder}"], 2, ["--out", "folder"]),
    ("segment out /proc", ["segment", "{ok}", "--out", "/proc/vision_lab_out.png"], 2, ["--out", "cannot be written"]),
    ("segment image a folder", ["segment", "{folder}"], 2, ["IMAGE", "folder"]),
    ("segment bomb", ["segment", "{bomb}"], 2, ["IMAGE", "megapixels"]),
    ("stylize out no folder", ["stylize", "chelsea", "swirl", "--out", "{no_parent}"], 2, ["--out", "does not exist"]),
    ("stylize out a folder", ["stylize", "chelsea", "swirl", "--out", "{folder}"], 2, ["--out", "folder"]),
    ("stylize out /proc", ["stylize", "chelsea", "swirl", "--out", "/proc/vision_lab_out.png"], 2,
     ["--out", "cannot be written"]),
    ("stylize content a folder", ["stylize", "{folder}", "swirl", "--out", "{tmp}/s.png"], 2, ["CONTENT", "folder"]),
    ("stylize content bomb", ["stylize", "{bomb}", "swirl", "--out", "{tmp}/s.png"], 2, ["CONTENT", "megapixels"]),
    ("stylize style 40:1", ["stylize", "chelsea", "{wide}", "--out", "{tmp}/s.png"], 2, ["STYLE", "20:1"]),
    ("stylize unknown name", ["stylize", "nobody", "swirl", "--out", "{tmp}/s.png"], 2, ["CONTENT", "chelsea"]),
    ("stylize smooth 17", ["stylize", "chelsea", "swirl", "--out", "{tmp}/s.png", "--smooth-gradient", "17"], 2,
     ["smooth gradient"]),
    # data --out
    ("bananas out /proc", ["data", "bananas", "--out", "/proc/vision_lab_bananas"], 2, ["--out", "cannot be written"]),
    ("bananas out a file", ["data", "bananas", "--out", "{a_file}"], 2, ["--out", "not a folder"]),
    ("voc out /proc", ["data", "voc", "--out", "/proc/vision_lab_voc"], 2, ["--out", "cannot be written"]),
    # argparse's own errors are one line too
    ("unknown command", ["frobnicate"], 2, ["invalid choice"]),
    ("missing IMAGE", ["detect"], 2, ["IMAGE"]),
]
# Good commands beside them, run the same way: (id, argv).
GOOD = [("many-frame gif", ["detect", "{gif}", "--threshold", "0"]),
        ("good detect", ["detect", "{ok}", "--threshold", "0"])]
# Cheap settings for the cases that would run a job if a check were missing.
_CHEAP = {"stylize": ["--steps", "1", "--height", "16", "--network", "efficientnet_lite0", "--device", "cpu"],
          "train": ["--epochs", "1", "--batch-size", "1", "--device", "cpu"],
          "segment": ["--device", "cpu"], "detect": ["--device", "cpu"]}


def _env(tmp: Path) -> dict[str, str]:
    # Offline, and the data cache in a temporary folder: nothing here reaches the network or ~/.cache.
    env = {**os.environ, "VISION_LAB_OFFLINE": "1", "VISION_LAB_DATA": str(tmp / "cache")}
    env.pop("VISION_LAB_TRACEBACK", None)
    return env


def run_cli(argv: list[str], tmp: Path) -> subprocess.CompletedProcess:
    """``python -m vision_core *argv`` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "vision_core", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_GUARD_S, env=_env(tmp))


# One interpreter imports torch and vision_core once, then forks a child per command line that runs
# `python -m vision_core` exactly as the interpreter's -m does (runpy, the real vision_core.__main__),
# with its own stdout, stderr and exit status; an exception that escapes prints its traceback, as
# Python's would. A fresh interpreter per case spends seconds importing torch: 40 of them took 10
# minutes of a busy 2-core machine. test_fresh_interpreters_agree checks both ways give the same.
_FORKING_RUNNER = """
import json, os, runpy, sys, traceback
import vision_core.cli
cases, out = json.load(open(sys.argv[1])), sys.argv[2]
codes = []
for k, argv in enumerate(cases):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(os.open(f"{out}/{k}.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
            os.dup2(os.open(f"{out}/{k}.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            sys.argv = ["vision_core", *argv]
            runpy.run_module("vision_core", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (done.code is not None)
            if isinstance(done.code, str):
                print(done.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
json.dump(codes, open(f"{out}/codes.json", "w"))
"""


def run_many(argvs: list[list[str]], tmp: Path) -> list[subprocess.CompletedProcess]:
    """Each command line's ``CompletedProcess`` (args, exit status, stdout, stderr), through the forking runner."""
    out = tmp / "runs"
    out.mkdir(exist_ok=True)
    (out / "cases.json").write_text(json.dumps(argvs))
    done = subprocess.run([sys.executable, "-c", _FORKING_RUNNER, str(out / "cases.json"), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=HANG_GUARD_S, env=_env(tmp))
    assert done.returncode == 0, done.stderr[-3000:]
    codes = json.loads((out / "codes.json").read_text())
    return [subprocess.CompletedProcess(argv, code, (out / f"{k}.out").read_text(), (out / f"{k}.err").read_text())
            for k, (argv, code) in enumerate(zip(argvs, codes))]


def _argv(case, files) -> list[str]:
    argv = [a.format(**files) for a in case[1]]
    return argv + _CHEAP.get(argv[0], [])


@pytest.fixture(scope="module")
def answers(files):
    """Every case's CompletedProcess, by case id."""
    runs = CASES + GOOD
    return dict(zip([c[0] for c in runs], run_many([_argv(c, files) for c in runs], files["tmp"])))


def test_fresh_interpreters_agree(files, answers):
    # The forking runner and `python -m vision_core` in a new interpreter: the same status, stdout, stderr.
    for case in [c for c in CASES + GOOD if c[0] in ("data box outside", "detect unknown weights", "good detect")]:
        fresh = run_cli(_argv(case, files), files["tmp"])
        forked = answers[case[0]]
        assert (fresh.returncode, fresh.stdout, fresh.stderr) == (forked.returncode, forked.stdout, forked.stderr)


@pytest.mark.parametrize("case, status, words", [(c[0], c[2], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_is_one_line_and_a_status(answers, case, status, words):
    out = answers[case]
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert len(lines) == 1, out.stderr[-2000:]
    assert out.returncode == status, (out.returncode, out.stderr)
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_unreadable_image_is_one_line(files):
    path = files["tmp"] / "locked.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path)
    path.chmod(0)
    out = run_cli(["detect", str(path), "--device", "cpu"], files["tmp"])
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "permission" in out.stderr


def test_detect_reads_only_the_first_frame_of_a_many_frame_gif(answers):
    # The file ends in the middle of its last frames: decoding every frame fails, the first one is whole.
    out = answers["many-frame gif"]
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(32 x 32)" in out.stdout and "class score x1 y1 x2 y2" in out.stdout


def test_a_good_detect_still_answers(answers):
    out = answers["good detect"]
    assert out.returncode == 0 and out.stderr == "", out.stderr[-2000:]
    assert "(64 x 64)" in out.stdout and len(out.stdout.splitlines()) > 2


def test_train_ssd_never_saves_over_the_shipped_checkpoint():
    from vision_core.checkpoints import SSD_WEIGHTS
    from vision_core.cli import build_parser
    from vision_core.weights import list_weights

    args = build_parser().parse_args(["train", "ssd"])
    shipped = {e.name for e in list_weights()} | {Path(e.file).stem for e in list_weights()}
    assert args.save != SSD_WEIGHTS and args.save not in shipped
    assert build_parser().parse_args(["train", "ssd", "--no-save"]).save is None
    assert build_parser().parse_args(["train", "ssd", "--save", "mine"]).save == "mine"


def test_image_limits_are_checked_on_the_header(files):
    from vision_core._checks import ArgumentError
    from vision_core._images import (MAX_ASPECT_RATIO, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, ImageFileError,
                                     check_image_size, read_image_file)

    check_image_size(MAX_IMAGE_SIDE, MAX_IMAGE_SIDE // MAX_ASPECT_RATIO + 1)  # the longest side allowed
    check_image_size(MAX_ASPECT_RATIO * 100, 100)
    for width, height in [(MAX_IMAGE_SIDE + 1, 1000), (MAX_ASPECT_RATIO * 100 + 1, 100), (1, 100),
                          (MAX_IMAGE_PIXELS // 5000 + 1, 5000)]:
        with pytest.raises(ArgumentError):
            check_image_size(width, height)
    with pytest.raises(ImageFileError, match="megapixels"):
        read_image_file(files["bomb"])
    first = read_image_file(files["gif"])
    assert first.shape == (32, 32, 3) and first.dtype == np.uint8 and int(first[0, 0, 0]) == 0
