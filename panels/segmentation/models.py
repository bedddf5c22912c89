"""The FCNs the Segment section can use: the shipped checkpoint or the network this session trained
(its "shipped / mine" switch picks), and torchvision's FCN-ResNet-50 as a reference for real photos
when its file is here."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
from torch import nn

from vision_core import weights as vc_weights
from vision_core.checkpoints import FCN_WEIGHTS, load_fcn
from vision_core.models.fcn import FCN, FCN_RESNET50_SHA256_PREFIX, load_torchvision_fcn_resnet50
from vision_core.weights import WeightsError

from ..i18n import bilingual
from ..session_models import SessionModels
from ..zerogpu import inference_device

MAX_SESSION_NETS = 4  # an FCN is ~50 MiB: a visitor keeps its 4 most recently used sessions' networks
MAX_SESSION_BYTES = 512 * 2**20  # all visitors' FCNs together (about 10)

_lock = threading.Lock()
_reference: dict[str, nn.Module] = {}


def _load_shipped() -> tuple[FCN, str]:
    net, entry = load_fcn(FCN_WEIGHTS, device=inference_device())
    m, nan = entry.metrics, float("nan")
    return net, (f"shipped checkpoint `{entry.file}` (sha256 verified; validation pixel accuracy "
                 f"{m.get('test_acc', nan):.3f}, mean IoU {m.get('test_mean_iou', nan):.3f})")


def _unavailable(err: WeightsError) -> str:
    return f"the shipped checkpoint `{FCN_WEIGHTS}` is not available ({err})"


# Each session's FCN: the shipped checkpoint or the one it trained here, as its switch says; and its Stop flag.
sessions = SessionModels(_load_shipped, _unavailable, MAX_SESSION_NETS, MAX_SESSION_BYTES)


class SegmentView(NamedTuple):
    """What the Train FCN section updates in the Segment section after a run (``segment.build`` returns it)."""

    weights: gr.Radio  # the "shipped / mine" switch
    inputs: Sequence[Any]  # what refresh reads: the picture and the model radio
    outputs: Sequence[Any]  # what refresh redoes: overlay, legend, shares, summary
    refresh: Callable[..., tuple]  # (picture, model, request) -> outputs, or skips when there is nothing to redo


def no_model_message(reason: str) -> str:
    """Why Segment has no FCN (``reason``) and how to get one: the Train FCN section, or the command line."""
    return (f"No trained FCN yet: {reason}. Train one in the “Train FCN” section (Start training; on a CPU, "
            "128 × 192 crops and 100 images make a quick run); Segment then uses it in your session. Or, from a "
            "shell: `python -m vision_core train fcn --save fcn_resnet18_synthetic`.")


def no_model_message_zh(reason: str) -> str:
    """:func:`no_model_message` in Chinese (the error's second line; ``reason`` stays as written)."""
    return (f"还没有训练好的 FCN：{reason}。请在“Train FCN”（训练 FCN）部分训练一个（点击“开始训练”；在 CPU 上，"
            "用 128 × 192 的裁剪和 100 张图像可以快速跑一次）；之后“分割”会在你的会话中使用它。也可以在命令行运行："
            "`python -m vision_core train fcn --save fcn_resnet18_synthetic`。")


def reference_path() -> Path | None:
    """Where torchvision's FCN-ResNet-50 file is on this machine (registry folder or torch cache), or None."""
    name = f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth"
    for folder in (vc_weights.PRETRAINED_DIR, vc_weights.torch_cache_dir()):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def reference_texts() -> tuple[str, str]:
    """The reference model's note in English and in Chinese: where it is, or how to get it."""
    path = reference_path()
    name = f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth"
    if path is not None:
        return (f"**Reference model for real photos:** torchvision's FCN-ResNet-50 (COCO images, the 21 VOC "
                f"classes) found at `{path}`; choose it above.",
                f"**用于真实照片的参考模型**：torchvision 的 FCN-ResNet-50（COCO 图像，21 个 VOC 类别），"
                f"位于 `{path}`；可在上方选择它。")
    command, cache = "python -m vision_core weights fetch fcn_resnet50", vc_weights.torch_cache_dir()
    torchvision_call = "fcn_resnet50(weights='COCO_WITH_VOC_LABELS_V1')"
    return (f"**Reference model for real photos:** torchvision's FCN-ResNet-50 is not on this machine. It needs a "
            f"download (135 MB): on a machine with internet run `{command}` (the same file torchvision's "
            f"`{torchvision_call}` downloads), which saves `{name}` in `{cache}` (or copy the file into "
            "`pretrained/`), then reload this page.",
            f"**用于真实照片的参考模型**：本机上没有 torchvision 的 FCN-ResNet-50。它需要下载（135 MB）："
            f"在能上网的机器上运行 `{command}`（与 torchvision 的 `{torchvision_call}` 下载的是同一个文件），"
            f"它会把 `{name}` 保存到 `{cache}`（或者把该文件复制到 `pretrained/`），然后重新加载本页。")


def reference_note() -> str:
    """The reference model's note in English (what the API and tests read)."""
    return reference_texts()[0]


def reference_model() -> nn.Module:
    """torchvision's FCN-ResNet-50, loaded once (sha256 prefix checked by vision_core)."""
    with _lock:
        if "net" not in _reference:
            try:
                _reference["net"] = load_torchvision_fcn_resnet50(None, device=inference_device())
            except WeightsError as err:
                raise ValueError(bilingual(f"torchvision's FCN-ResNet-50 cannot be used: {err}",
                                           f"无法使用 torchvision 的 FCN-ResNet-50：{err}")) from None
        return _reference["net"]
