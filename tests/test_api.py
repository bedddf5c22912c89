"""Every API name of the dashboard, called through gradio_client (streaming ones with submit()),
listed in README; a light request answered while a heavy job runs; a full queue says so."""

import re
import threading
import time

import pytest
from gradio_client import Client, handle_file

from tests.conftest import HANG_GUARD_S, ROOT, free_port

pytestmark = pytest.mark.app
HANG_GUARD = HANG_GUARD_S  # the suite's one hang guard (tests/conftest.py): a limit for a hang, never a measurement

STREAMING = {"/anchor_labelling_play", "/nms_play", "/trans_conv_play", "/ssd_train", "/fcn_train",
             "/style_transfer"}
# Small settings for the heavy jobs; every other endpoint is called with the page's defaults.
OVERRIDES = {
    "/ssd_train": {"epochs": 1, "batch_size": 10, "lr": 0.001, "num_train": 10, "optimizer": "adamw"},
    "/fcn_train": {"epochs": 1, "batch_size": 4, "lr": 0.001, "num_train": 8, "optimizer": "adamw", "crop": "64x96"},
    "/style_transfer": {"steps": 3, "height": 32},
}


def _endpoints(client):
    return client.view_api(return_format="dict", print_info=False)["named_endpoints"]


def _args(name, endpoint):
    args = []
    for p in endpoint["parameters"]:
        value = OVERRIDES.get(name, {}).get(p["parameter_name"], p.get("parameter_default"))
        if isinstance(value, dict) and value.get("meta", {}).get("_type") == "gradio.FileData":
            value = handle_file(value["path"])  # the page's own example image, on this machine
        args.append(value)
    return args


def test_every_endpoint_answers(app_url, monkeypatch, tmp_path):
    from gradio_client.exceptions import AppError

    # A session of its own: the networks it trains become this session's, not other tests'.
    client = Client(app_url, verbose=False)

    monkeypatch.setenv("VISION_LAB_OFFLINE", "1")  # the one download endpoint must refuse, not fetch
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    endpoints = _endpoints(client)
    assert len(endpoints) >= 25
    answered = {}
    for name, endpoint in sorted(endpoints.items()):
        args = _args(name, endpoint)
        if name == "/style_download_vgg19":
            with pytest.raises(AppError, match="VISION_LAB_OFFLINE is set, so vgg19-dcbb9e9d.pth is not downloaded"):
                client.predict(*args, api_name=name)
            answered[name] = "refused offline"
        elif name in STREAMING:
            frames = list(client.submit(*args, api_name=name))
            assert frames, name
            answered[name] = frames[-1]
        else:
            answered[name] = client.predict(*args, api_name=name)
    assert set(answered) == set(endpoints)
    assert str(answered["/style_transfer"][2]).startswith("**Done.** Step 3/3")
    assert "Done." in str(answered["/ssd_train"][2]) and "Done." in str(answered["/fcn_train"][2])
    assert answered["/ssd_stop"] == "Nothing is training in this session."


def test_readme_lists_every_endpoint_with_an_example(client):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r'api_name="(/\w+)"', readme))
    assert set(_endpoints(client)) <= listed, sorted(set(_endpoints(client)) - listed)


def test_a_light_request_is_answered_while_a_heavy_job_runs(app_url, monkeypatch):
    # The heavy job is held inside its second step until the light answer is back, so "while it
    # runs" holds on any machine; had light requests queued behind heavy ones, the answer would
    # never come and the hang guard would end the test. The seconds it takes are printed, not
    # asserted (they are the machine's, see benchmarks.load).
    from vision_core import style as vstyle
    from vision_core.examples import EXAMPLES

    running, release = threading.Event(), threading.Event()
    step = vstyle._Run.step

    def held_step(self, k):
        if k == 2:
            running.set()
            release.wait(HANG_GUARD)
        return step(self, k)

    monkeypatch.setattr(vstyle._Run, "step", held_step)
    heavy = Client(app_url, verbose=False)
    endpoint = _endpoints(heavy)["/style_transfer"]
    args = _args("/style_transfer", endpoint)
    args[7], args[8] = 2000, 64  # steps, height: long enough to still run below
    job = heavy.submit(*args, api_name="/style_transfer")
    try:
        assert running.wait(HANG_GUARD), "the style transfer never started"
        light = Client(app_url, verbose=False)
        # Answered at all while the heavy job holds its step: how fast is benchmarks.load's to say.
        *_, summary = light.submit("astronaut", "xyxy", "pixels", api_name="/boxes_example").result(
            timeout=HANG_GUARD)
        assert not job.done() and summary == EXAMPLES["astronaut"].caption
    finally:
        release.set()
    assert heavy.predict(api_name="/style_stop") == "Stopping before the next step…"
    final = job.result(timeout=HANG_GUARD)
    assert str(final[2]).startswith("**Stopped.**")


def test_heavy_jobs_share_one_limited_group_and_the_queue_is_bounded():
    import app

    heavy = sorted(d.api_name for d in app.demo.fns.values() if d.concurrency_id == "heavy")
    assert heavy == ["fcn_train", "ssd_train", "style_transfer"]
    assert {d.concurrency_limit for d in app.demo.fns.values() if d.concurrency_id == "heavy"} == {1}
    assert app.demo._queue.max_size == app.QUEUE_MAX_SIZE == 64


def test_a_full_queue_says_busy_try_again():
    # Gradio's own answer when the queue (bounded as above) is full, shown here on a queue of one.
    import gradio as gr
    from gradio_client.utils import QueueError

    release, entered = threading.Event(), threading.Event()

    def slow(x):
        entered.set()
        release.wait(HANG_GUARD)
        return x

    with gr.Blocks() as demo:
        box = gr.Number()
        gr.Button().click(slow, box, box, api_name="slow", concurrency_limit=1)
    demo.queue(max_size=1).launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                  quiet=True)
    try:
        clients = [Client(demo.local_url, verbose=False) for _ in range(3)]
        # Each request is seen where it should be before the next is sent (no sleeps that a busy
        # machine could outrun): the first holds the one slot, the second waits in the queue.
        running = clients[0].submit(1, api_name="/slow")
        assert entered.wait(HANG_GUARD), "the first request never started"
        waiting = clients[1].submit(2, api_name="/slow")
        deadline = time.time() + HANG_GUARD
        while len(demo._queue) < 1 and time.time() < deadline:
            time.sleep(0.01)
        assert len(demo._queue) == 1, "the second request never reached the queue"
        with pytest.raises(QueueError, match=re.escape("Queue is full! Please try again.")):
            clients[2].predict(3, api_name="/slow")
        release.set()
        assert running.result(timeout=HANG_GUARD) == 1 and waiting.result(timeout=HANG_GUARD) == 2
    finally:
        release.set()
        demo.close()
