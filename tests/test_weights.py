"""vision_core.weights and vision_core.progress: the registry checks every file before loading it."""

import io
import json

import pytest
import torch

from vision_core import weights as W
from vision_core.progress import Progress, run_with_bar


def save(tmp_path, name="toy"):
    state = {"layer.weight": torch.arange(6.0).reshape(2, 3), "layer.bias": torch.zeros(2)}
    entry = W.save_weights(name, state, license="MIT", source={"command": "python -m x", "data_seed": 0},
                           metrics={"acc": 1.0}, directory=tmp_path)
    return state, entry


def test_save_list_and_load_round_trip(tmp_path):
    state, entry = save(tmp_path)
    assert entry.file == "toy.safetensors" and entry.bytes == (tmp_path / "toy.safetensors").stat().st_size
    assert [e.name for e in W.list_weights(tmp_path)] == ["toy"]
    loaded = W.load_state_dict("toy", tmp_path)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["weights"][0]["source"] == {"command": "python -m x", "data_seed": 0}


def test_unknown_missing_truncated_and_corrupt_files(tmp_path):
    with pytest.raises(W.WeightsError, match="unknown weights 'nope'; the manifest lists: none"):
        W.get_entry("nope", tmp_path)
    save(tmp_path)
    path = tmp_path / "toy.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(W.WeightsError, match="truncated"):
        W.load_state_dict("toy", tmp_path)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(W.WeightsError, match="corrupt"):
        W.load_state_dict("toy", tmp_path)
    path.unlink()
    with pytest.raises(W.WeightsError, match="are not in"):
        W.load_state_dict("toy", tmp_path)


def test_found_in_the_torch_cache(tmp_path, monkeypatch):
    save(tmp_path / "pretrained")
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (tmp_path / "pretrained" / "toy.safetensors").rename(cache / "toy.safetensors")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert W.find_weights("toy", tmp_path / "pretrained") == cache / "toy.safetensors"
    assert W.load_state_dict("toy", tmp_path / "pretrained")["layer.bias"].shape == (2,)


def test_bad_manifest_is_reported(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(W.WeightsError, match="not a valid weights manifest"):
        W.list_weights(tmp_path)


def test_shipped_manifest_files_verify():
    for entry in W.list_weights():
        assert W.verify_weights(entry.name).name == entry.file


def test_progress_records_and_bar():
    records = [Progress(step=i, total=4, metrics={"loss": 1.0 / (i + 1)}, message="m", done=i == 4) for i in range(5)]
    assert records[2].fraction == 0.5 and records[0].fraction == 0.0
    with pytest.raises(TypeError):
        records[0].metrics["loss"] = 3.0  # read-only
    out = io.StringIO()
    last = run_with_bar(iter(records), file=out, min_interval=0)
    assert last is records[-1]
    assert "[" + "#" * 30 + "] 4/4" in out.getvalue() and "loss 0.2" in out.getvalue()


# --- torchvision checkpoints: found by name, downloaded only on request ---------------------------

import hashlib  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

PAYLOAD = b"pretend checkpoint bytes " * 1000
PREFIX = hashlib.sha256(PAYLOAD).hexdigest()[:8]
FAKE = f"fake-{PREFIX}.pth"


class _Response(io.BytesIO):
    headers = {"Content-Length": str(len(PAYLOAD))}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_find_torchvision_checkpoint_checks_the_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert W.find_torchvision_checkpoint(FAKE, tmp_path / "pretrained") is None
    folder = W.torch_cache_dir()
    folder.mkdir(parents=True)
    (folder / FAKE).write_bytes(PAYLOAD)
    assert W.find_torchvision_checkpoint(FAKE, tmp_path / "pretrained") == folder / FAKE
    (folder / FAKE).write_bytes(PAYLOAD[:-1])
    with pytest.raises(W.WeightsError, match=f"does not match the sha256 prefix {PREFIX}"):
        W.find_torchvision_checkpoint(FAKE, tmp_path / "pretrained")
    with pytest.raises(W.WeightsError, match="not a torchvision checkpoint name"):
        W.find_torchvision_checkpoint("vgg19.pth")


def test_download_streams_checks_and_moves_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("VISION_LAB_OFFLINE", raising=False)
    asked = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: asked.append(url) or _Response(PAYLOAD))
    records = list(W.download_torchvision_checkpoint(FAKE, chunk_size=4096))
    assert asked == [W.TORCHVISION_URL + FAKE]
    assert records[-1].done and "saved" in records[-1].message
    assert records[-2].step == len(PAYLOAD) and records[-2].total == len(PAYLOAD)
    assert (W.torch_cache_dir() / FAKE).read_bytes() == PAYLOAD
    assert [p.name for p in W.torch_cache_dir().iterdir()] == [FAKE]  # no .part left
    again = list(W.download_torchvision_checkpoint(FAKE))  # already there: no network
    assert len(again) == 1 and "already" in again[0].message and len(asked) == 1


def test_download_refuses_offline_and_corrupt_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("VISION_LAB_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    with pytest.raises(W.WeightsError, match="VISION_LAB_OFFLINE is set"):
        list(W.download_torchvision_checkpoint(FAKE))
    monkeypatch.setenv("VISION_LAB_OFFLINE", "0")
    corrupt = PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1])  # whole, but one bit off
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _Response(corrupt))
    with pytest.raises(W.WeightsError, match="download is corrupt"):
        list(W.download_torchvision_checkpoint(FAKE))
    assert list(W.torch_cache_dir().iterdir()) == []

    def fail(url, timeout):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    with pytest.raises(W.WeightsError, match="no route to host"):
        list(W.download_torchvision_checkpoint(FAKE))
