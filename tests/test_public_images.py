"""A public server's image paths stay bounded (issue 16): extreme aspect ratios and long sides are
refused with the limit named, drawn pictures never grow past a pixel budget or WebP's side limit,
an unreadable file reads the same whether it exists or not, and a finished heavy job gives its
memory back. Bytes and shapes are asserted, never times."""

import json
import os
import re
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from panels import common, figures
from tests.conftest import HANG_GUARD_S

WEBP_MAX_SIDE = 16383  # the WebP format's limit; Gradio sends pictures to the page as WebP
# (height, width) strips a few hundred bytes long as PNGs that used to be enlarged by GBs.
STRIPS = [(8, 20000), (2, 2000), (8, 5000), (20000, 8)]


@pytest.mark.parametrize("shape", STRIPS + [(2, 40), (3, 60)])
def test_draw_boxes_keeps_any_picture_within_webp_and_the_pixel_budget(shape):
    image = np.zeros((*shape, 3), np.uint8)
    drawn = figures.draw_boxes(image, np.array([[0.0, 0.0, 1.0, 1.0]]), ["red"], labels=["banana 0.95"], min_side=512)
    assert max(drawn.shape[:2]) <= WEBP_MAX_SIDE, drawn.shape
    assert drawn.shape[0] * drawn.shape[1] <= figures.MAX_ENLARGED_PIXELS, drawn.shape
    assert drawn.shape[2] == 3 and drawn.dtype == np.uint8


def test_draw_boxes_still_enlarges_small_pictures_and_their_boxes():
    image = np.zeros((256, 256, 3), np.uint8)
    drawn = figures.draw_boxes(image, np.array([[10.0, 20.0, 100.0, 200.0]]), ["#ff0000"], width=1, min_side=512)
    assert drawn.shape == (512, 512, 3)  # a whole factor of 2, as before
    red = np.argwhere((drawn == [255, 0, 0]).all(axis=2))
    assert red[:, 1].min() == 20 and red[:, 1].max() == 200  # x1, x2 doubled
    assert red[:, 0].min() == 40 and red[:, 0].max() == 400  # y1, y2 doubled


def test_draw_boxes_with_no_boxes_and_no_enlargement_returns_the_picture():
    image = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    assert np.array_equal(figures.draw_boxes(image, np.zeros((0, 4)), []), image)


@pytest.mark.parametrize("shape", [(2, 2000), (2000, 2), (50, 1001)])
def test_as_rgb_image_refuses_elongated_pictures_naming_the_limit(shape):
    with pytest.raises(ValueError) as err:
        common.as_rgb_image(np.zeros((*shape, 3), np.uint8))
    limit = common.MAX_ASPECT_RATIO
    assert f"at most {limit} times the shorter (1:{limit})" in str(err.value)
    assert f"{shape[1]} x {shape[0]} px is too elongated" in str(err.value)
    assert "过于狭长" in str(err.value)  # and in Chinese


def test_as_rgb_image_refuses_a_side_longer_than_webp_allows():
    assert common.MAX_IMAGE_SIDE <= WEBP_MAX_SIDE
    with pytest.raises(ValueError, match=f"(?s)over the limit of {common.MAX_IMAGE_SIDE} px a side.*每边"):
        common.as_rgb_image(np.zeros((1000, common.MAX_IMAGE_SIDE + 1, 3), np.uint8))


@pytest.mark.parametrize("shape", [(1000, 8000), (50, 1000), (8, 160), (3000, 12000)])
def test_real_panoramas_still_pass(shape):
    assert common.as_rgb_image(np.zeros((*shape, 3), np.uint8)).shape == (*shape, 3)


def _rss_bytes() -> int:
    """This process's resident memory now (not its peak)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc (Linux)")
def test_release_memory_gives_a_finished_jobs_heap_back():
    """500 MB of small tensors (a job's activations), a small survivor after every 16 (so glibc
    cannot simply shrink the top of its heap): freeing them keeps the pages until release."""
    common.release_memory()  # what earlier tests freed must not be reused here and hide the growth
    base = _rss_bytes()
    junk, survivors = [], []
    for i in range(16_000):  # 16,000 x 32 KiB = 500 MiB
        junk.append(torch.ones(8192))
        if i % 16 == 0:
            survivors.append(torch.ones(16))
    grown = _rss_bytes() - base
    assert grown > 400 * 2**20, grown  # the allocation really happened
    del junk
    kept = _rss_bytes() - base
    common.release_memory()
    released = kept - (_rss_bytes() - base)
    print(f"grown {grown / 2**20:.0f} MiB, kept after free {kept / 2**20:.0f} MiB, released {released / 2**20:.0f} MiB")
    assert released >= grown // 2, (grown, kept, released)
    assert len(survivors) == 1000


def test_a_streamed_heavy_job_releases_memory_however_it_ends(monkeypatch):
    released = []
    monkeypatch.setattr(common, "release_memory", lambda: released.append(True))

    @common.handles_out_of_memory
    def job(n):
        yield from range(n)

    assert list(job(3)) == [0, 1, 2] and released == [True]  # finished
    stream = job(5)
    next(stream)
    stream.close()  # the page went away
    assert released == [True, True]


# --- through the running app -----------------------------------------------------------------

def _png(path: Path, height: int, width: int) -> str:
    Image.new("RGB", (width, height), (200, 180, 40)).save(path, optimize=True)
    return str(path)


@pytest.fixture(scope="module")
def session(app_url):
    return Client(app_url, verbose=False)


@pytest.mark.app
@pytest.mark.parametrize("api_name, shape, extra", [("/ssd_detect", (8, 20000), 0.5), ("/ssd_anchors", (2, 2000), 1),
                                                    ("/ssd_detect", (20000, 8), 0.5)])
def test_extreme_strips_are_refused_clearly_and_the_server_keeps_serving(session, tmp_path, api_name, shape, extra):
    from gradio_client.exceptions import AppError

    strip = _png(tmp_path / "strip.png", *shape)
    assert Path(strip).stat().st_size < 2000  # a few hundred bytes
    with pytest.raises((AppError, ValueError)) as err:
        session.predict(handle_file(strip), extra, api_name=api_name)
    message = str(err.value)
    assert re.search(r"too elongated; the longer side may be at most 20 times the shorter", message), message[:400]
    assert "upstream Gradio app has raised an exception" not in message
    good = _png(tmp_path / "good.png", 64, 96)
    assert session.predict(handle_file(good), extra, api_name=api_name) is not None


def _raw_call(app_url: str, api: str, data: list) -> str:
    """POST an API call as a REST client would, and return its event stream's text."""
    request = urllib.request.Request(f"{app_url.rstrip('/')}/gradio_api/call/{api}", data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"})
    event_id = json.load(urllib.request.urlopen(request, timeout=HANG_GUARD_S))["event_id"]
    url = f"{app_url.rstrip('/')}/gradio_api/call/{api}/{event_id}"
    return urllib.request.urlopen(url, timeout=HANG_GUARD_S).read().decode()


@pytest.mark.app
def test_a_missing_server_path_reads_like_an_unreadable_file(app_url):
    """No existence oracle: a path that does not exist and a file that is not an image get the same
    answer, with no path, errno or exception name in it."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / f"issue16-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    (folder / "notes.png").write_bytes(b"this is not an image")
    answers = {}
    for name in ("notes.png", "missing.png"):
        payload = {"path": str(folder / name), "meta": {"_type": "gradio.FileData"}}
        answers[name] = _raw_call(app_url, "ssd_detect", [payload, 0.5])
    for answer in answers.values():
        assert "event: error" in answer and "could not be read as an image" in answer, answer[:400]
        for leak in ("Errno", "FileNotFound", "UnidentifiedImage", "No such file", str(folder), "issue16-"):
            assert leak not in answer, answer[:400]
    assert answers["notes.png"] == answers["missing.png"]
