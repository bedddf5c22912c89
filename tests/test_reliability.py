"""Out-of-memory, Stop and closed tabs, bounded disk: the server keeps serving and cleans up."""

import os
import threading
import time

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from panels import common
from panels import ssd as SSD
from panels import style as S
from tests.conftest import HANG_GUARD_S, counting_steps
from vision_core import style as vstyle

pytestmark = pytest.mark.app
HANG_GUARD = HANG_GUARD_S  # the suite's one hang guard (tests/conftest.py): a limit for a hang, never a measurement

LAYERS = [1.0] * 5


def photo(seed=0, h=48, w=72):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def style_args(steps=3):
    return [photo(), photo(1), "efficientnet_lite0", 1.0, 4.0, 1.0, 0.1, steps, 32, True, *LAYERS]


def simulated_oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")


def test_out_of_memory_in_style_transfer_gives_a_message_and_the_next_run_works(monkeypatch):
    import gradio as gr

    released = []
    monkeypatch.setattr(common, "_release_memory", lambda: released.append(True))
    monkeypatch.setattr(vstyle._Run, "_body", simulated_oom)
    with pytest.raises(gr.Error, match="the GPU ran out of memory: try a smaller image"):
        list(S.run(*style_args()))
    assert released == [True]
    monkeypatch.undo()
    assert list(S.run(*style_args()))[-1][2].startswith("**Done.**")


def test_out_of_memory_in_training_and_detection(monkeypatch):
    import gradio as gr

    def oom_records(*args, **kwargs):
        yield from ()
        simulated_oom()

    monkeypatch.setattr(SSD, "train_ssd", oom_records)
    with pytest.raises(gr.Error, match="GPU 显存不足"):
        list(SSD.train(1, 10, 0.001, 10, "adamw"))
    monkeypatch.setattr(SSD, "predict", simulated_oom)
    with pytest.raises(gr.Error, match="the memory of this job was released"):
        SSD.detect(photo(h=256, w=256), 0.9)
    monkeypatch.undo()
    assert "detection" in SSD.detect(photo(h=256, w=256), 0.9)[2]


def test_out_of_memory_through_the_api_then_the_server_keeps_serving(app_url, monkeypatch, tmp_path):
    from gradio_client.exceptions import AppError

    path = tmp_path / "p.png"
    Image.fromarray(photo()).save(path)
    client = Client(app_url, verbose=False)
    args = [handle_file(str(path)), handle_file(str(path)), "efficientnet_lite0", 1.0, 4.0, 1.0, 0.1, 3, 32, True,
            *LAYERS]
    monkeypatch.setattr(vstyle._Run, "_body", simulated_oom)
    with pytest.raises(AppError, match="the GPU ran out of memory"):
        client.predict(*args, api_name="/style_transfer")
    monkeypatch.undo()
    assert client.predict(*args, api_name="/style_transfer")[2].startswith("**Done.**")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_real_cuda_out_of_memory_releases_the_memory():
    import gradio as gr

    before = torch.cuda.memory_allocated()
    original = vstyle._Run._body

    def greedy(self):
        self.hog = torch.empty(1 << 40, dtype=torch.uint8, device="cuda")  # 1 TiB: more than any GPU
        return original(self)

    vstyle._Run._body = greedy
    try:
        args = style_args()
        with pytest.raises(gr.Error, match="ran out of memory"):
            list(S.run(*args))
    finally:
        vstyle._Run._body = original
    assert torch.cuda.memory_allocated() <= before + (1 << 20)
    assert list(S.run(*style_args()))[-1][2].startswith("**Done.**")


def test_stop_ends_a_style_transfer_before_its_next_step(app_url):
    # Counted in steps, not seconds: a busy machine makes any step slow, but no more than one
    # step may begin after Stop (the one whose check had just passed). The seconds Stop takes
    # are measured by benchmarks.stop.
    import re

    with counting_steps(vstyle._Run, "step", S._stops) as steps:
        client = Client(app_url, verbose=False)
        job = client.submit(*_api_style_args(2000), api_name="/style_transfer")
        assert steps.first_done.wait(HANG_GUARD), "the style transfer never started"
        assert client.predict(api_name="/style_stop") == "Stopping before the next step…"
        final = job.result(timeout=HANG_GUARD)
    assert str(final[2]).startswith("**Stopped.**")
    assert steps.after_stop <= 1, f"{steps.after_stop} steps began after Stop"
    ran = int(re.search(r"Stopped after (\d+) of 2000 steps", str(final[2])).group(1))
    assert ran == steps.begun < 2000  # the status counts the steps that ran, every one of them


_FILES = {}


def _api_style_args(steps):
    import tempfile

    if "p" not in _FILES:
        path = tempfile.NamedTemporaryFile(suffix=".png", delete=False).name
        Image.fromarray(photo()).save(path)
        _FILES["p"] = path
    return [handle_file(_FILES["p"]), handle_file(_FILES["p"]), "efficientnet_lite0", 1.0, 4.0, 1.0, 0.1, steps, 32,
            True, *LAYERS]


def test_a_job_whose_page_went_away_stops(app_url):
    # The run must end because its client left, not by finishing its 2000 steps: counted, so a
    # slow machine cannot pass it by running out the steps nor fail it by being slow to notice.
    closed = threading.Event()
    seen = []  # the records the panel took from the run
    original = S.style_transfer

    def watched(*args, **kwargs):
        records = original(*args, **kwargs)
        try:
            for record in records:
                seen.append(record)
                yield record
        finally:
            records.close()  # as `yield from` would: the loop and its memory go with it
            closed.set()  # the panel closed the run

    S.style_transfer = watched
    try:
        client = Client(app_url, verbose=False)
        job = client.submit(*_api_style_args(2000), api_name="/style_transfer")
        deadline = time.time() + HANG_GUARD
        while time.time() < deadline and not any(str(o[2]).startswith("Step") for o in job.outputs()):
            time.sleep(0.02)
        assert seen, "the style transfer never started"
        job.cancel()  # what closing the tab does: the client goes away mid-stream
        assert closed.wait(HANG_GUARD), "the run kept going after its client left"
        assert not seen[-1].done and seen[-1].step < 2000, "the run finished instead of stopping"
    finally:
        S.style_transfer = original


def test_the_file_cache_stays_bounded_and_memory_does_not_keep_growing(app_url, tmp_path):
    import resource

    from panels import cache

    import app

    assert app.demo is not None and cache._started.is_set() and cache._protected  # the examples are kept
    client = Client(app_url, verbose=False)
    table = {"headers": ["label", "x1", "y1", "x2", "y2"], "data": [["a", 1, 2, 30, 40]]}
    rss = []
    bound = 2 * 1024 * 1024
    # Each request leaves its upload and its drawn picture in the cache (about 37 kB together), so
    # 120 requests leave twice the 2 MiB bound: the later trims have to delete.
    for i in range(120):
        path = tmp_path / f"p{i % 3}.png"
        Image.fromarray(photo(i, 64, 96)).save(path)  # a new picture every time: new cache entries
        client.predict(handle_file(str(path)), table, "xyxy", "pixels", api_name="/boxes")
        if i % 30 == 29:
            cache.trim_cache(bound)  # what the trimming thread does every 30 s
            rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    size = cache.cache_size(keep=cache._protected)
    print(f"cache after 120 requests and trimming: {size / 1024:.0f} KiB besides the examples; peak RSS every 30 "
          "requests (MiB): "
          f"{[round(r) for r in rss]}")
    assert size <= bound
    assert all(path.exists() for path in cache._protected if "gradio" in str(path))  # examples untouched
    assert rss[-1] - rss[0] < 200  # no steady growth: at most 200 MiB over the last 90 requests


def test_trim_cache_deletes_the_oldest_first(tmp_path):
    from panels import cache

    for i in range(5):
        sub = tmp_path / f"h{i}"
        sub.mkdir()
        (sub / "f.bin").write_bytes(b"x" * 1000)
        import os

        os.utime(sub / "f.bin", (1000 + i, 1000 + i))
    deleted, left = cache.trim_cache(2500, tmp_path, keep=[tmp_path / "h0" / "f.bin"], max_age=None)
    assert deleted == 2 and left == 2000  # the kept file is not counted
    assert sorted(p.parent.name for p in tmp_path.rglob("f.bin")) == ["h0", "h3", "h4"]
    assert not (tmp_path / "h1").exists()
    deleted, left = cache.trim_cache(10**9, tmp_path, keep=[], max_age=3600)  # all of 1970: too old
    assert deleted == 3 and left == 0


def test_cached_pictures_are_written_once_and_whole(tmp_path):
    import os

    from gradio import processing_utils

    from panels import cache

    cache.make_image_writes_atomic()
    image = Image.fromarray(photo(3))
    first = processing_utils.save_pil_to_cache(image, str(tmp_path))
    os.utime(first, (1000, 1000))
    second = processing_utils.save_img_array_to_cache(np.asarray(image), str(tmp_path))
    assert first == second and os.path.getmtime(first) == 1000  # same bytes, same file, not rewritten
    assert Image.open(first).size == (72, 48)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["image.webp"]  # no leftovers


def test_uploads_over_the_size_limit_are_refused_with_the_limit(client, tmp_path):
    import app

    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(app.MAX_UPLOAD_BYTES + 1))
    table = {"headers": ["label", "x1", "y1", "x2", "y2"], "data": [["a", 1, 2, 30, 40]]}
    with pytest.raises(Exception, match=f"exceeds the maximum file size of {app.MAX_UPLOAD_BYTES} bytes"):
        client.predict(handle_file(str(big)), table, "xyxy", "pixels", api_name="/boxes")


def test_corrupt_or_truncated_weights_give_a_message_and_the_documented_fallback(monkeypatch, tmp_path):
    import shutil

    from panels.segmentation import models as SEG
    from vision_core import weights

    copy = tmp_path / "pretrained"
    shutil.copytree(weights.PRETRAINED_DIR, copy)
    ssd_file = copy / "tiny_ssd_bananas.safetensors"
    ssd_file.write_bytes(ssd_file.read_bytes()[:-100])  # truncated
    fcn_file = copy / "fcn_resnet18_synthetic.safetensors"
    data = bytearray(fcn_file.read_bytes())
    data[5000] ^= 0xFF  # one flipped byte
    fcn_file.write_bytes(bytes(data))
    monkeypatch.setattr(weights, "PRETRAINED_DIR", copy)
    monkeypatch.setattr(weights, "torch_cache_dir", lambda: tmp_path / "no-cache")
    monkeypatch.setattr(SSD.sessions, "_shipped", None)
    monkeypatch.setattr(SEG.sessions, "_shipped", None)
    from collections import OrderedDict

    monkeypatch.setattr(SSD.sessions, "_trained", OrderedDict())  # no network trained by an earlier test
    net, text = SSD.sessions.shipped()
    assert net is None and "truncated" in text and "train one below" in text  # the SSD tab's Train is the fallback
    net, text = SEG.sessions.shipped()
    assert net is None and "the file is corrupt" in text
    import gradio as gr

    with pytest.raises(gr.Error, match="no detector yet: no usable checkpoint"):
        SSD.detect(photo(h=256, w=256), 0.9)


def test_a_zero_by_zero_image_is_refused_with_a_message():
    # A 0 x 0 picture cannot be written as a file, so it is checked where arrays enter.
    with pytest.raises(ValueError, match=r"0 x 0 px is too small; each side must be at least 2 px"):
        common.as_rgb_image(np.zeros((0, 0, 3), np.uint8), "image")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stop_releases_the_gpu_memory():
    S._networks.clear()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    stop_after = 20
    outputs = S.run(*style_args(steps=2000))
    for k, _ in enumerate(outputs):
        if k == stop_after:
            assert S.stop_run() == "Stopping before the next step…"  # the "api" session's flag
    torch.cuda.synchronize()
    # What stays: the frozen network, parked on the GPU for the next run (its weights only).
    taps, _ = S.network("efficientnet_lite0")
    weights = sum(p.numel() * p.element_size() for p in taps.parameters()) + \
        sum(b.numel() * b.element_size() for b in taps.buffers())
    assert torch.cuda.memory_allocated() <= before + weights + (1 << 20)
