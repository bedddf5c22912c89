"""What the page sends when it is first opened (issue 17, item 10): bytes, never seconds
(``python -m benchmarks.first_load`` drives Chromium and measures the time)."""

import copy
import gzip
import json
import urllib.request

import gradio as gr
import pytest

from tests.conftest import HANG_GUARD_S

CONFIG_LIMIT = 250_000  # bytes of /config as a browser receives it (the target)
PICTURE_BYTES = 16_000  # a component value this large in the config is a picture sent too early


def fetch(url: str, compressed: bool = True) -> tuple[bytes, bytes, str | None]:
    """(bytes as sent, bytes decoded, Content-Encoding) of a GET, as a browser asks for it."""
    headers = {"Accept-Encoding": "gzip, deflate, br"} if compressed else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=HANG_GUARD_S) as response:
        sent, encoding = response.read(), response.headers.get("Content-Encoding")
    return sent, gzip.decompress(sent) if encoding == "gzip" else sent, encoding


@pytest.fixture(scope="module")
def config(app_url):
    return fetch(app_url + "config")


def test_config_is_under_the_limit_as_sent(config):
    sent, body, encoding = config
    assert len(sent) < CONFIG_LIMIT, f"/config arrives as {len(sent)} bytes ({len(body)} decoded)"
    assert encoding == "gzip"


def _opening_ids(config: dict) -> set[int]:
    """Ids of the components shown when the page opens: outside every tab, or in the first tab of
    each Tabs on the way (the tab the page opens on and its first sections)."""
    types = {c["id"]: c["type"] for c in config["components"]}
    shown: set[int] = set()

    def walk(node: dict) -> None:
        shown.add(node["id"])
        children = node.get("children", [])
        if types.get(node["id"]) == "tabs":
            children = [c for c in children if types.get(c["id"]) == "tabitem"][:1]
        for child in children:
            walk(child)

    walk(config["layout"])
    return shown


def test_no_picture_waits_in_the_config(config):
    parsed = json.loads(config[1])
    opening = _opening_ids(parsed)
    early = sorted(((len(json.dumps(c["props"].get("value"))), c["type"], str(c["props"].get("elem_id")))
                    for c in parsed["components"] if c["id"] not in opening), reverse=True)[:5]
    assert early[0][0] < PICTURE_BYTES, f"pictures of tabs not opened yet are in the config: {early}"
    ids = {c["props"].get("elem_id"): c for c in parsed["components"]}
    # the Boxes tab is seen at once: its picture comes with the page, as a file the browser fetches
    # (and caches); the other tabs' pictures are empty until opened
    assert ids["boxes-figure"]["props"]["value"]["url"].startswith(("http", "/"))
    for elem_id in ("label-figure", "nms-figure", "seg-bilinear-view"):
        assert ids[elem_id]["props"].get("value") is None, elem_id


def test_the_opening_view_needs_no_plotly(config):
    # Loading and starting plotly.js (3.5 MB) took the browser 2 s before the Boxes tab was usable; a
    # plot in the view the page opens on would bring it back into the first load.
    parsed = json.loads(config[1])
    opening = _opening_ids(parsed)
    plots = [c["props"].get("elem_id") for c in parsed["components"] if c["id"] in opening and c["type"] == "plot"]
    assert plots == []


def test_the_page_is_compressed_and_the_rest_untouched(app_url):
    sent, body, encoding = fetch(app_url)
    assert encoding == "gzip" and b"gradio_config" in body and len(sent) < len(body) / 4
    # the API's description, asked for without compression, comes as it is
    _, info, encoding = fetch(app_url + "gradio_api/info", compressed=False)
    assert encoding is None and "/boxes" in json.loads(info)["named_endpoints"]


def test_light_config_keeps_what_the_server_and_the_client_read():
    import app
    from panels.lazy import lighten_config

    full = gr.Blocks.get_config_file(app.demo)  # the class's method: the config as Gradio makes it
    light = lighten_config(copy.deepcopy(full))
    saved = len(json.dumps(full, default=str)) - len(json.dumps(light, default=str))
    assert saved > 50_000, f"only {saved} bytes lighter"  # two repeated schemas per component
    for before, after in zip(full["components"], light["components"]):
        assert after.get("api_info") == before.get("api_info")  # gradio_client reads this
        assert after.get("skip_api") == before.get("skip_api")
        if "api_info" in before:  # the server's own reading (Blocks.get_api_info), with its fallbacks
            assert after.get("api_info_as_input", after.get("api_info")) == before["api_info_as_input"]
            assert after.get("api_info_as_output", after["api_info"]) == before["api_info_as_output"]
        assert {k: v for k, v in after.items() if k != "props"}.keys() <= before.keys()
        assert after["props"] == before["props"]


def test_deferred_pictures_are_the_ones_the_panels_drew():
    from panels import lazy

    with gr.Blocks() as demo:
        with gr.Tabs():
            with gr.Tab("first"):  # the page opens on it: its pictures stay in the page
                small = gr.HTML("<p>small</p>")
                first = gr.HTML("x" * 5000)
            with gr.Tab("second") as second, gr.Tabs():
                with gr.Tab("inner"):  # opens with "second"
                    inner = gr.HTML("y" * 5000)
                with gr.Tab("later") as later_tab:
                    later = gr.HTML("z" * 5000)
                    read = gr.HTML("w" * 5000)
                    read.change(lambda v: v, read, later)  # an event's input keeps its value (the API's default)
        assert lazy.defer_pictures(demo) == 2
    assert small.value == "<p>small</p>" and first.value == "x" * 5000 and read.value == "w" * 5000
    assert inner.value is None and later.value is None

    def filler(tab):
        [fn] = [fn for fn in demo.fns.values() if fn.targets == [(tab._id, "select")]]
        return fn

    opening_second, opening_later = filler(second), filler(later_tab)
    assert [o for o in opening_second.outputs if isinstance(o, gr.HTML)] == [inner]
    assert opening_second.fn(False) == (True, True, "y" * 5000)  # both flags: "second" and its first section
    assert [o for o in opening_later.outputs if isinstance(o, gr.HTML)] == [later]
    assert opening_later.fn(False)[-1] == "z" * 5000  # the first opening sends the picture
    assert all(v == gr.skip() for v in opening_later.fn(True))  # later openings leave the learner's own
    assert isinstance(opening_later.inputs[0], gr.State)
