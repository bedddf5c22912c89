"""vision_core.device: the one place that picks the device and the autocast dtype."""

from __future__ import annotations

import pytest
import torch

from vision_core import device as dev


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.resolve_device("auto").type == "mps"
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    assert dev.resolve_device("auto") == torch.device("cpu")


def test_override_and_reset(monkeypatch):
    monkeypatch.setattr(dev, "_chosen", None)
    assert dev.set_device("cpu") == torch.device("cpu")
    assert dev.get_device() == torch.device("cpu")
    assert dev.describe_device().startswith("cpu (")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:1", ""])
def test_unknown_device_names_raise(bad):
    with pytest.raises(ValueError, match="device must be one of|only cuda takes an index"):
        dev.resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_gpu_says_so():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        dev.resolve_device("cuda")


def test_autocast_dtype(monkeypatch):
    assert dev.autocast_dtype(torch.device("cpu")) is None
    assert dev.autocast_dtype(torch.device("mps")) is None  # float32 there: no GradScaler to rely on
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert dev.autocast_dtype(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert dev.autocast_dtype(torch.device("cuda")) == torch.float16
    # Asked for: bfloat16 on the CPU; the other devices keep their choice.
    assert dev.autocast_dtype(torch.device("cpu"), cpu_bfloat16=True) == torch.bfloat16
    assert dev.autocast_dtype(torch.device("cuda"), cpu_bfloat16=True) == torch.float16
    assert dev.autocast_dtype(torch.device("mps"), cpu_bfloat16=True) is None
