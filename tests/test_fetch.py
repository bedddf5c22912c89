"""Fetching the book's data and weights (issue 18, item 4), against a local fake server.

The server is real HTTP on 127.0.0.1 (http.server in a thread): it answers Range requests with
206, can ignore them, and can close the connection partway through a response, so resuming,
restarting, checksum failures and an unreachable host are exercised over a real socket.
"""

import hashlib
import io
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from vision_core import fetch as F
from vision_core import weights as W
from vision_core.data import downloads as D
from vision_core.data.bananas import read_bananas
from tests.conftest import HANG_GUARD_S

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        wanted = self.headers.get("Range")
        if wanted and not server.ignore_range:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        sent = body[start:]
        if server.cut_after is not None:  # the connection drops after this many bytes, once
            sent, server.cut_after = sent[:server.cut_after], None
        self.wfile.write(sent)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.ignore_range, httpd.cut_after = {}, [], False, None
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _online(monkeypatch, tmp_path):
    # The local server may answer slowly on a busy machine: only a hang may end a download here.
    monkeypatch.setattr(W, "NETWORK_TIMEOUT_S", HANG_GUARD_S)
    monkeypatch.delenv("VISION_LAB_OFFLINE", raising=False)
    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def _sha1_is(expected):
    def check(path):
        if hashlib.sha1(path.read_bytes()).hexdigest() != expected:
            raise W.WeightsError("wrong SHA-1")
    return check


def _download(server, target, check=None):
    return list(W.download_file(server.url + "/f.bin", target, label="f.bin", chunk_size=16_384,
                                check=check or _sha1_is(hashlib.sha1(PAYLOAD).hexdigest())))


def test_a_broken_download_resumes_where_it_stopped(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.cut_after = 100_000
    target = tmp_path / "dl" / "f.bin"
    with pytest.raises(W.WeightsError, match=r"stopped after 100,000 of 300,000 bytes \(the connection closed "
                                             r"early\): run it again to download the rest"):
        _download(server, target)
    part = tmp_path / "dl" / ".f.bin.part"
    assert part.stat().st_size == 100_000 and not target.exists()
    records = _download(server, target)
    assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=100000-")]  # only the rest was asked for
    assert "resuming at 0.1 MiB" in records[0].message and records[0].step == 100_000
    assert records[-1].step == records[-1].total == 300_000
    assert target.read_bytes() == PAYLOAD and not part.exists()


def test_a_server_that_ignores_the_range_is_read_from_the_start(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.cut_after, server.ignore_range = 123_456, True
    target = tmp_path / "f.bin"
    with pytest.raises(W.WeightsError, match="stopped after 123,456"):
        _download(server, target)
    records = _download(server, target)  # a 200 with the whole file: the kept part is dropped
    assert server.requests[-1] == ("/f.bin", "bytes=123456-") and records[0].step == 0
    assert target.read_bytes() == PAYLOAD


def test_a_wrong_checksum_deletes_the_file_and_says_so(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    with pytest.raises(W.WeightsError, match="wrong SHA-1"):
        _download(server, tmp_path / "f.bin", check=_sha1_is("0" * 40))
    assert list(tmp_path.iterdir()) == []  # neither the file nor a part to resume


def test_a_part_already_whole_is_checked_without_downloading_again(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / ".f.bin.part").write_bytes(PAYLOAD)  # e.g. the process ended between download and check
    _download(server, tmp_path / "f.bin")
    assert server.requests == [("/f.bin", "bytes=300000-")]  # 416: nothing after the end
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_an_unreachable_server_is_named_in_plain_words(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(W.WeightsError, match=r"downloading http://127\.0\.0\.1:\d+/f\.bin failed: the server "
                                             r"refused the connection") as err:
        list(W.download_file(f"http://127.0.0.1:{port}/f.bin", tmp_path / "f.bin", label="f.bin",
                             check=lambda p: None))
    assert "<" not in str(err.value) and "kept" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # nothing arrived: no empty part left to "resume"


def test_two_processes_never_append_to_one_download(server, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    server.files["/f.bin"] = PAYLOAD
    with open(tmp_path / ".f.bin.part", "ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(W.WeightsError, match="being downloaded by another process right now"):
            _download(server, tmp_path / "f.bin")
    assert server.requests == []


# --- the book's bananas ------------------------------------------------------------------------

def _bananas_zip(extra=()):
    """A small archive in the layout of d2l's banana-detection.zip: 2 train and 2 val photos."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for split in ("train", "val"):
            rows = ["img_name,label,xmin,ymin,xmax,ymax"]
            for k in range(2):
                png = io.BytesIO()
                Image.fromarray(np.full((256, 256, 3), 40 * k, np.uint8)).save(png, "PNG")
                z.writestr(f"banana-detection/bananas_{split}/images/{k}.png", png.getvalue())
                rows.append(f"{k}.png,0,{10 + k},20,{100 + k},120")
            z.writestr(f"banana-detection/bananas_{split}/label.csv", "\n".join(rows) + "\n")
        for name, data in extra:
            z.writestr(name, data)
    return buffer.getvalue()


def _serve_bananas(server, monkeypatch, archive):
    server.files["/banana-detection.zip"] = archive
    monkeypatch.setattr(D, "BANANAS_URL", server.url + "/banana-detection.zip")
    monkeypatch.setattr(D, "BANANAS_SHA1", hashlib.sha1(archive).hexdigest())


def test_the_books_bananas_are_fetched_checked_and_read_as_the_book_reads_them(server, monkeypatch):
    _serve_bananas(server, monkeypatch, _bananas_zip())
    assert F.fetched("bananas") is None
    seen = []
    folder = F.fetch("bananas", progress=lambda done, total: seen.append((done, total)))
    assert folder == F.book_dir() / "banana-detection" and F.fetched("bananas") == folder
    assert seen[-1] == (1, 1) and any(total > 1 for _, total in seen)
    images, targets = read_bananas(folder, "val")
    assert images.shape == (2, 3, 256, 256) and targets[1, 0].tolist() == [0, 11 / 256, 20 / 256, 101 / 256, 120 / 256]
    assert sorted(p.name for p in F.book_dir().iterdir()) == ["banana-detection"]  # the zip is gone
    again = list(F.fetch_records("bananas"))  # already here: no network
    assert len(again) == 1 and "already" in again[0].message and len(server.requests) == 1


def test_offline_nothing_is_fetched_and_the_stand_in_is_named(server, monkeypatch):
    _serve_bananas(server, monkeypatch, _bananas_zip())
    monkeypatch.setenv("VISION_LAB_OFFLINE", "1")
    with pytest.raises(D.BananasDownloadError, match=r"VISION_LAB_OFFLINE is set, so the book's banana archive "
                                                     r"is not downloaded.*generate_bananas\(\) is the offline"):
        list(F.fetch_records("bananas"))
    with pytest.raises(W.WeightsError, match="VISION_LAB_OFFLINE is set"):
        list(F.fetch_records("resnet18"))
    assert server.requests == [] and not F.book_dir().exists()


@pytest.mark.parametrize("member, match", [("../evil.txt", "climbs out"), ("/tmp/evil.txt", "absolute path")])
def test_an_unsafe_banana_archive_is_refused_before_anything_is_extracted(server, monkeypatch, tmp_path, member,
                                                                          match):
    _serve_bananas(server, monkeypatch, _bananas_zip(extra=[(member, b"evil")]))
    with pytest.raises(D.BananasDownloadError, match="unsafe archive: .*" + match):
        F.fetch("bananas")
    assert list(F.book_dir().iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_an_archive_without_the_books_folders_is_refused(server, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readme.txt", "hello")
    _serve_bananas(server, monkeypatch, buffer.getvalue())
    with pytest.raises(D.BananasDownloadError, match="has no banana-detection/bananas_train and bananas_val"):
        F.fetch("bananas")
    assert list(F.book_dir().iterdir()) == []


def test_torchvision_weights_come_through_the_same_resumable_download(server, monkeypatch):
    file = "fake-" + hashlib.sha256(PAYLOAD).hexdigest()[:8] + ".pth"
    server.files["/" + file] = PAYLOAD
    server.cut_after = 50_000
    monkeypatch.setattr(W, "TORCHVISION_URL", server.url + "/")
    with pytest.raises(W.WeightsError, match="run it again to download the rest"):
        list(W.download_torchvision_checkpoint(file))
    records = list(W.download_torchvision_checkpoint(file))
    assert server.requests[-1] == ("/" + file, "bytes=50000-") and records[-1].done
    assert (W.torch_cache_dir() / file).read_bytes() == PAYLOAD


# --- at a server's start-up --------------------------------------------------------------------

def test_a_space_can_fetch_at_start_up_in_the_background(server, monkeypatch):
    _serve_bananas(server, monkeypatch, _bananas_zip())
    said = []
    thread = F.fetch_at_startup("bananas", log=said.append)
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive() and F.startup_status()["bananas"] == "ready"
    assert said == [f"vision_core.fetch: bananas ready in {F.book_dir() / 'banana-detection'}"]


def test_a_failed_start_up_fetch_is_reported_and_the_server_goes_on(monkeypatch):
    monkeypatch.setenv("VISION_LAB_OFFLINE", "1")
    said = []
    thread = F.fetch_at_startup("resnet18", log=said.append)
    thread.join(HANG_GUARD_S)
    assert F.startup_status()["resnet18"].startswith("failed: VISION_LAB_OFFLINE is set")
    assert said and "resnet18 failed" in said[0]


@pytest.mark.parametrize("setting, names", [("", []), ("0", []), ("all", list(F.ASSETS)),
                                            ("vgg19, bananas", ["bananas", "vgg19"])])
def test_the_start_up_setting_names_what_to_fetch(setting, names):
    assert F._names(setting) == names


def test_an_unknown_start_up_name_is_refused_before_anything_starts():
    with pytest.raises(ValueError, match="VISION_LAB_FETCH"):
        F.fetch_at_startup("bananas,imagenet")
    assert F.fetch_at_startup("") is None


def test_the_app_starts_fetching_when_the_space_asks_and_survives_a_typo(server, monkeypatch, capsys):
    import app

    _serve_bananas(server, monkeypatch, _bananas_zip())
    monkeypatch.setenv("VISION_LAB_FETCH", "bananas,imagenet")
    app._start_fetching()  # refused as a whole, said on stderr; the page still starts
    assert "VISION_LAB_FETCH ignored" in capsys.readouterr().err and server.requests == []
    monkeypatch.setenv("VISION_LAB_FETCH", "bananas")
    app._start_fetching()
    for thread in [t for t in threading.enumerate() if t.name == "vision_core.fetch"]:  # may be done already
        thread.join(HANG_GUARD_S)
    assert F.startup_status()["bananas"] == "ready" and F.fetched("bananas") is not None
    assert server.requests == [("/banana-detection.zip", None)]


# --- the command line ----------------------------------------------------------------------------

def test_the_command_fetches_each_name_and_reports_each_failure(server, monkeypatch, capsys):
    from vision_core.cli import main

    _serve_bananas(server, monkeypatch, _bananas_zip())
    assert main(["fetch", "bananas"]) == 0
    assert f"bananas: {F.book_dir() / 'banana-detection'}" in capsys.readouterr().out
    monkeypatch.setenv("VISION_LAB_OFFLINE", "1")
    assert main(["fetch", "bananas", "resnet18"]) == 1  # the first is already here; the second is refused
    out = capsys.readouterr()
    assert "bananas: " in out.out and "fetch resnet18: VISION_LAB_OFFLINE is set" in out.err
