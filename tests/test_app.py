"""The dashboard launched in-process, driven through its API with gradio_client; and app.py's CLI."""

import os
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image, ImageColor

from panels.figures import color_for
from tests.conftest import HANG_GUARD_S, ROOT, free_port

pytestmark = pytest.mark.app

HEADERS = ["label", "x1", "y1", "x2", "y2"]


def table(rows, headers=HEADERS):
    return {"headers": headers, "data": rows}


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "photo.png"
    Image.fromarray(np.full((100, 200, 3), 90, np.uint8)).save(path)
    return handle_file(str(path))


def test_endpoints_are_listed(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/boxes", "/boxes_example", "/boxes_convert"} <= names


def test_boxes_converts_draws_and_flags(client, photo):
    picture, xyxy, cxcywh, xywh, problems, summary = client.predict(
        photo, table([["a", 10, 10, 50, 50], ["b", "x", 1, 2, 3], ["c", 150, 50, 260, 90]]), "xyxy", "pixels",
        api_name="/boxes",
    )
    assert xyxy["data"] == [[1, "a", 10, 10, 50, 50], [3, "c", 150, 50, 260, 90]]
    assert cxcywh["data"] == [[1, "a", 30, 30, 40, 40], [3, "c", 205, 70, 110, 40]]
    assert xywh["data"] == [[1, "a", 10, 10, 40, 40], [3, "c", 150, 50, 110, 40]]
    assert problems["data"] == [
        [2, "b", "x1 is not a number ('x')"],
        [3, "c", "extends outside the image (200 x 100 px): drawn clipped"],
    ]
    assert "**2 boxes drawn**" in summary and "1 row not drawn" in summary
    # The picture: the 200 x 100 grey photo drawn 5 times larger, each box outlined in its row's colour
    # (WebP: colours within a tolerance); c is drawn clipped to the photo, dashed.
    drawn = np.asarray(Image.open(picture).convert("RGB")).astype(int)
    assert drawn.shape == (500, 1000, 3)

    def near(pixels, color):  # [..., 3] -> [...]: within WebP's loss of the colour
        return (np.abs(pixels - ImageColor.getrgb(color)) <= 60).all(axis=-1)

    assert near(drawn[100:200, 51], color_for(0)).all()  # a's left edge, x1 = 10 (x 5)
    top_of_c = near(drawn[251, 760:990], color_for(2))  # c's top edge, y1 = 50, from x1 = 150 to the photo's edge
    assert 0.4 < top_of_c.mean() < 0.9  # dashes and gaps
    assert near(drawn[300:400, 998], color_for(2)).any()  # its right side is the photo's edge (clipped)


def test_boxes_in_center_format_and_normalised_units(client, photo):
    _, xyxy, *_ = client.predict(
        photo, table([["a", 0.5, 0.5, 0.2, 0.4]], ["label", "cx", "cy", "w", "h"]), "cxcywh", "normalised",
        api_name="/boxes",
    )
    assert xyxy["data"] == [[1, "a", 0.4, 0.3, 0.6, 0.7]]


def test_example_and_convert(client):
    image, boxes, caption = client.predict("astronaut", "xyxy", "pixels", api_name="/boxes_example")
    assert boxes["data"] == [["astronaut", 20, 14, 366, 512], ["shuttle", 352, 0, 472, 290]]
    assert "re-created" in caption and os.path.exists(image)
    converted, fmt, units = client.predict(
        boxes, handle_file(image), "xyxy", "cxcywh", "pixels", "normalised", api_name="/boxes_convert"
    )
    assert (fmt, units) == ("cxcywh", "normalised")
    assert converted["headers"] == ["label", "cx", "cy", "w", "h"]
    assert converted["data"][1] == ["shuttle", round(412 / 512, 4), round(145 / 512, 4), round(120 / 512, 4), round(290 / 512, 4)]


@pytest.mark.parametrize(
    "args, message",
    [
        ((None, table([["a", 1, 2, 3, 4]]), "yolo", "pixels"), "not in the list of choices"),
        ((None, table([["a", 1, 2, 3, 4]]), "xyxy", "inches"), "not in the list of choices"),
        (("tiny", table([["a", 1, 2, 3, 4]]), "xyxy", "pixels"), "too small"),
    ],
)
def test_bad_input_gives_a_message_and_the_server_keeps_serving(client, photo, tmp_path, args, message):
    from gradio_client.exceptions import AppError

    if args[0] == "tiny":
        path = tmp_path / "tiny.png"
        Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
        args = (handle_file(str(path)), *args[1:])
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/boxes")
    *_, summary = client.predict(photo, table([["a", 1, 2, 3, 4]]), "xyxy", "pixels", api_name="/boxes")
    assert "**1 box drawn**" in summary


def test_no_photo_draws_on_a_blank_canvas(client):
    *_, summary = client.predict(None, table([["a", 1, 2, 3, 4]]), "xyxy", "pixels", api_name="/boxes")
    assert "blank canvas" in summary


def test_page_loads_nothing_from_outside(app_url):
    html = urllib.request.urlopen(app_url).read().decode()
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
    assert external == []


# --- app.py's command line ------------------------------------------------------------------

def test_cli_defaults_and_environment(monkeypatch):
    import app

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    args = app.parse_args([])
    assert (args.host, args.port, args.share, args.device) == ("127.0.0.1", 7860, False, "auto")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9000")
    args = app.parse_args(["--device", "cpu"])
    assert (args.host, args.port, args.device) == ("0.0.0.0", 9000, "cpu")
    assert app.parse_args(["--port", "7000", "--host", "localhost"]).port == 7000


def test_cli_rejects_bad_values(capsys):
    import app

    with pytest.raises(SystemExit):
        app.parse_args(["--device", "tpu"])
    with pytest.raises(SystemExit):
        app.parse_args(["--port", "70000"])
    assert "--port must be between 1 and 65535" in capsys.readouterr().err


def test_analytics_off_unless_the_user_set_it():
    # What gradio sees when app.py imports it: the variable as it is at that import (gradio reads it
    # then). A gradio that cannot be imported stops app.py right there, so the interpreter does not
    # spend seconds building the demo to answer.
    code = ("import os, sys\nsys.modules['gradio'] = None\ntry:\n    import app\nexcept ImportError:\n    pass\n"
            "else:\n    raise SystemExit('app imported without gradio')\nprint(os.environ['GRADIO_ANALYTICS_ENABLED'])")
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_ANALYTICS_ENABLED"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert out.stdout.strip().splitlines()[-1] == "False"
    env["GRADIO_ANALYTICS_ENABLED"] = "True"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert out.stdout.strip().splitlines()[-1] == "True"


def test_share_without_internet_keeps_serving(tmp_path):
    """`python app.py --share` offline: Gradio's message, and the local server still answers.

    Outbound HTTP goes to a closed local proxy port, so the test sends nothing off this machine.
    """
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "ALL_PROXY": dead,
        "http_proxy": dead, "https_proxy": dead, "all_proxy": dead,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "HF_HOME": str(tmp_path / "hf"), "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--share", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines, deadline = [], time.time() + HANG_GUARD_S
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Could not create share link" in line:
                break
        output = "".join(lines)
        assert "Could not create share link" in output, output
        assert proc.poll() is None, output  # still running
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=HANG_GUARD_S).read().decode()
        assert "Vision Lab" in page
    finally:
        proc.terminate()
        proc.wait(timeout=HANG_GUARD_S)
