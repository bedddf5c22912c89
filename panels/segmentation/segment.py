"""The Segment section of the Segmentation tab (d2l 14.11): the FCN labels every pixel of an example,
an upload or a sketch; the session's trained network, else the shipped checkpoint, else a note
on how to train one; torchvision's FCN-ResNet-50 as a reference when its file is here.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import torch

from vision_core.data.voc import VOC_CLASSES, VOC_COLORMAP, VOCSegDataset
from vision_core.data.voc_metrics import confusion_matrix, mean_iou, pixel_accuracy
from vision_core.data.voc_synthetic import generate_voc_synthetic
from vision_core.fcn import label2image, overlay_mask, predict_fcn_confidence
from vision_core.models.fcn import FCN, STRIDE

from ..common import (
    LATEX_DELIMITERS, Dataframe, Dropdown, Radio, SafeImage, as_rgb_image, downscale, handles_out_of_memory,
    rerun_on_picture_changes, shows_errors, try_this,
)
from ..i18n import bilingual, tr
from ..session_models import weights_switch
from .models import (
    SegmentView, no_model_message, no_model_message_zh, reference_model, reference_path, reference_texts, sessions,
)
from .training import DATA_SEED, SYNTHETIC

MAX_SEGMENT_SIDE = 1024  # larger uploads are downscaled before segmenting (CPU time, memory)
NUM_EXAMPLES = 4  # validation images offered in the section's dropdown
REFERENCE = "torchvision's FCN-ResNet-50 (COCO images with VOC labels; reference for real photos)"
# The sketch's brush colours: any will do, since the synthetic set draws every class in every
# colour and only the shape names the class (see vision_core.data.voc_synthetic.SYNTH_CLASSES).
SKETCH_COLORS = ("#f5d327", "#e5501c", "#1fb3a6", "#4f9a3a", "#2f5fe0")
SKETCH_SHAPES = ("crescent → bird", "triangle → boat", "capsule → bottle", "disc → potted plant",
                 "rectangle → tv/monitor")
SKETCH_SHAPES_ZH = ("月牙 → 鸟", "三角形 → 船", "胶囊形 → 瓶子", "圆盘 → 盆栽植物", "矩形 → 电视/显示器")
SKETCH_SIZE = (320, 480)  # (height, width) of the sketch canvas: the synthetic images' size
SHARES_COLUMNS = ["class", "index", "colour", "pixels", "share (%)"]

Examples = dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (photo uint8 [H, W, 3], labels int [H, W])
SegmentResult = tuple[np.ndarray | None, str, pd.DataFrame, str]  # overlay, legend, shares, summary


def example_images(count: int = NUM_EXAMPLES) -> Examples:
    """The first validation images of the synthetic set and their labels, made in a few ms each.

    The generator seeds every image on its own, so these equal the cached set's first ones
    without generating the whole set at start-up.
    """
    h, w = SYNTHETIC["height"], SYNTHETIC["width"]
    with tempfile.TemporaryDirectory() as tmp:
        generate_voc_synthetic(tmp, seed=DATA_SEED, num_train=1, num_val=count, height=h, width=w)
        data = VOCSegDataset(False, (h, w), tmp)
        return {f"synthetic validation #{i}": (data.features[i].permute(1, 2, 0).numpy().copy(),
                                               data.labels[i].numpy().copy())
                for i in range(len(data))}


def _legend(present: list[int]) -> str:
    chips = []
    for c in present:
        r, g, b = VOC_COLORMAP[c]
        chips.append(f'<span style="display:inline-flex;align-items:center;margin:2px 12px 2px 0">'
                     f'<span style="width:16px;height:16px;border:1px solid #888;margin-right:5px;'
                     f'background:rgb({r},{g},{b})"></span>{VOC_CLASSES[c]}</span>')
    return '<div id="seg-fcn-legend-chips" style="display:flex;flex-wrap:wrap">' + "".join(chips) + "</div>"


def _hex(c: int) -> str:
    r, g, b = VOC_COLORMAP[c]
    return f"#{r:02x}{g:02x}{b:02x}"


# The picture: classes over the photo, the mask alone, both side by side, or how sure the network is.
VIEWS = ("overlay", "mask", "side", "confidence")
# Confidence colours, unsure to sure: five stops of a perceptually even dark-purple-to-yellow ramp
# (the shape of matplotlib's viridis), so brightness alone reads as sureness, in grey print too.
CONFIDENCE_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float32)
UNSURE = 0.9  # a pixel below this probability counts as unsure in the summary
# Share of unsure pixels above which a picture is called far from what the network learned. With
# the shipped FCN (generator v2): the synthetic validation images 0.5-14 % (mean 4 %), scikit-image's
# coffee 18 %, astronaut 14 %, chelsea 5 % (python -m benchmarks.fcn_recolour prints them).
FAR_SHARE = 0.15


def confidence_picture(confidence: torch.Tensor, num_classes: int) -> np.ndarray:
    """``float [H, W]`` probabilities of the chosen class as colours: ``1 / num_classes`` (a guess
    among the classes) darkest, 1 brightest. Returns ``uint8 [H, W, 3]``."""
    low = 1.0 / num_classes
    t = ((confidence.float().numpy() - low) / (1.0 - low)).clip(0.0, 1.0) * (len(CONFIDENCE_STOPS) - 1)
    index = np.minimum(t.astype(np.int64), len(CONFIDENCE_STOPS) - 2)  # [H, W]
    frac = (t - index)[..., None]  # [H, W, 1]
    colour = CONFIDENCE_STOPS[index] * (1.0 - frac) + CONFIDENCE_STOPS[index + 1] * frac  # [H, W, 3]
    return colour.round().astype(np.uint8)


def _confidence_legend(num_classes: int) -> str:
    stops = ", ".join(f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in CONFIDENCE_STOPS)
    # A fixed-width bar and the caption on a line of its own: a phone's width keeps the bar visible.
    return ('<div id="seg-fcn-confidence-bar" style="display:flex;flex-wrap:wrap;align-items:center;gap:4px 8px;'
            f'margin:4px 0"><span>1/{num_classes}</span><span style="width:min(320px,55vw);height:14px;'
            f'border:1px solid #888;background:linear-gradient(to right,{stops})"></span><span>1</span>'
            '<span style="flex-basis:100%">confidence: the softmax probability of the chosen class</span></div>')


def view_picture(x: torch.Tensor, pred: torch.Tensor, view: str = "overlay",
                 confidence: torch.Tensor | None = None, num_classes: int = len(VOC_CLASSES)) -> np.ndarray:
    """The segmentation as a picture: ``overlay`` tints the objects in their VOC colours over the photo
    (which hides a colour close to an object's own), ``mask`` shows the colours alone (the book's
    ``label2image``), ``side`` the photo and the mask side by side with a white gap, ``confidence``
    how sure the network is of each pixel (:func:`confidence_picture`; needs ``confidence``).

    Args:
        x: ``uint8 [3, H, W]`` photo.
        pred: ``int64 [H, W]`` class indices.
        confidence: ``float [H, W]`` probability of each pixel's class.

    Returns:
        ``uint8 [H, W', 3]`` (``W' = 2W + gap`` side by side).
    """
    if view == "overlay":
        return overlay_mask(x, pred)
    if view == "confidence":
        return confidence_picture(confidence, num_classes)
    mask = label2image(pred).numpy()  # [H, W, 3]
    if view == "mask":
        return mask
    h, w = mask.shape[:2]
    gap = np.full((h, max(4, w // 60), 3), 255, np.uint8)
    return np.concatenate([x.permute(1, 2, 0).numpy(), gap, mask], axis=1)


def fcn_formula(net: torch.nn.Module, h: int, w: int) -> str:
    """What the book's FCN does to an ``h x w`` picture, sizes typeset (d2l 14.11): the ResNet-18 trunk
    divides each side by 32 (after padding it to a multiple of 32), the 1 × 1 convolution turns 512
    channels into one per class, and the transposed convolution (k = 64, s = 32, p = 16) gives back
    (n − 1)·s − 2p + k = 32 n pixels a side. The reference FCN-ResNet-50 has no such layer."""
    if not isinstance(net, FCN):
        return ("The reference FCN-ResNet-50 computes 8× smaller maps (dilated convolutions) and enlarges its "
                "scores by bilinear interpolation, not by a transposed convolution.")
    c, (H, W) = net.num_classes, (-(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE)  # padded to multiples of 32
    n_h, n_w = H // STRIDE, W // STRIDE
    conv = net.transpose_conv
    (k, _), (s, _), (p, _) = conv.kernel_size, conv.stride, conv.padding
    padded = "" if (H, W) == (h, w) else f"The picture is padded to {W} × {H} px first (the scores are cropped back).\n\n"
    return (padded + "$$\\begin{aligned}"  # one step a row, all left-aligned: a phone's width holds them
            f"&3 \\times {H} \\times {W} \\\\"
            f"&\\xrightarrow{{\\text{{ResNet-18}}}} 512 \\times {n_h} \\times {n_w} \\\\"
            f"&\\xrightarrow{{1 \\times 1\\ \\text{{conv}}}} {c} \\times {n_h} \\times {n_w} \\\\"
            f"&\\xrightarrow{{k = {k},\\ s = {s},\\ p = {p}}} {c} \\times {H} \\times {W}"
            "\\end{aligned}$$\n\n$$\\begin{aligned}"
            f"n_h' &= (n_h - 1)\\,s - 2p + k \\\\ &= ({n_h} - 1) \\cdot {s} - 2 \\cdot {p} + {k} = {(n_h - 1) * s - 2 * p + k} \\\\"
            f"n_w' &= (n_w - 1)\\,s - 2p + k \\\\ &= ({n_w} - 1) \\cdot {s} - 2 \\cdot {p} + {k} = {(n_w - 1) * s - 2 * p + k}"
            "\\end{aligned}$$")


@handles_out_of_memory
@shows_errors
def segment(image: np.ndarray | None, model: str = "fcn", request: gr.Request | None = None,
            examples: Examples | None = None, view: str = "overlay") -> SegmentResult:
    """Segment the image: the picture (``view``: see :func:`view_picture`), a legend of the classes
    found, their pixel shares, a summary with the FCN's sizes (:func:`fcn_formula`).

    ``model`` is ``"fcn"`` (the network the session's "shipped / mine" switch picks) or ``"resnet50"``
    (the reference); an image equal to one of ``examples`` is scored against its true labels.
    """
    rgb, note = downscale(as_rgb_image(image, "image"), MAX_SEGMENT_SIDE)
    if model == "resnet50":
        net, which = reference_model(), REFERENCE
    else:
        net, which = sessions.active(request)
        if net is None:
            raise ValueError(bilingual(no_model_message(which), no_model_message_zh(which)))
    x = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    start = time.perf_counter()
    pred, confidence = predict_fcn_confidence(net, x)
    ms = (time.perf_counter() - start) * 1e3
    overlay = view_picture(x, pred, view, confidence)
    counts = torch.bincount(pred.flatten(), minlength=len(VOC_CLASSES)).tolist()
    present = sorted((c for c, n in enumerate(counts) if n), key=lambda c: -counts[c])
    total = pred.numel()
    table = pd.DataFrame(
        [[VOC_CLASSES[c], c, _hex(c), counts[c], round(100 * counts[c] / total, 2)] for c in present],
        columns=SHARES_COLUMNS)
    h, w = rgb.shape[:2]
    device = next(net.parameters()).device
    summary = (f"**{len(present)} class{'es' if len(present) != 1 else ''} found** in {w} × {h} px{note} · "
               f"{ms:.0f} ms on {device} · model: {which}")
    if model != "resnet50":
        summary += sessions.dropped_note(request)
    unsure = float((confidence < UNSURE).float().mean())
    summary += (f"  \nConfidence (softmax probability of each pixel's class): mean **{float(confidence.mean()):.2f}**, "
                f"**{100 * unsure:.0f} %** of the pixels below {UNSURE}.")
    example = None
    for name, (photo, label) in (examples or {}).items():
        if photo.shape == rgb.shape and np.array_equal(photo, rgb):
            example = name
            truth = torch.from_numpy(label).long()
            acc = float(pixel_accuracy(pred, truth))
            miou = float(mean_iou(confusion_matrix(pred, truth, len(VOC_CLASSES))))
            summary += f"  \nAgainst the ground truth of {name}: pixel accuracy **{acc:.3f}**, mean IoU **{miou:.3f}**."
            break
    if model != "resnet50" and example is None and getattr(net, "training_data", "synthetic") == "synthetic":
        summary = outside_notice(unsure) + "\n\n" + summary
    summary += "\n\n" + fcn_formula(net, h, w)
    legend = _legend(present) + (_confidence_legend(len(VOC_CLASSES)) if view == "confidence" else "")
    return overlay, legend, table, summary


def outside_notice(unsure: float) -> str:
    """What the summary says first when an FCN trained on the synthetic set segments another picture:
    it knows five drawn shapes, so on a photo it finds those shapes in any bright patch, however sure it looks;
    ``unsure`` (the share of pixels below :data:`UNSURE`) above :data:`FAR_SHARE` makes it stronger."""
    head = ("**Far from what this FCN knows.**" if unsure > FAR_SHARE else
            "**Outside what this FCN learned.**")
    where = ("choose torchvision's FCN-ResNet-50 above" if reference_path() is not None else
             "fetch torchvision's FCN-ResNet-50 with `python -m vision_core fetch fcn_resnet50` (135 MB)")
    return (f"> {head} It was trained only on the offline synthetic set: five classes, each a drawn shape (in any "
            f"colour) on a muted background. On other pictures, photos above all, it looks for those shapes in any "
            f"bright patch, and can be "
            f"sure and wrong at once ({100 * unsure:.0f} % of the pixels here are below {UNSURE} confidence; the "
            f"synthetic validation images have about 4 %). For real photos, {where}: it learned all 20 VOC "
            f"classes from real photos.")


@shows_errors
def sketch_image(value: dict[str, Any] | np.ndarray | None) -> np.ndarray:
    """The sketch editor's flattened picture, on white where it is transparent."""
    if isinstance(value, dict):  # the editor's {"background", "layers", "composite"}
        value = value.get("composite") if value.get("composite") is not None else value.get("background")
    if value is None:
        raise ValueError(bilingual("the sketch is empty: draw some shapes first (or upload a picture into the editor)",
                                   "草图为空：请先画一些形状（或者把一张图片上传到编辑器中）"))
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[2] == 4:
        alpha = array[..., 3:4].astype(np.float32) / 255.0
        array = (array[..., :3].astype(np.float32) * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    return as_rgb_image(array, "sketch")


def sketch_canvas() -> np.ndarray:
    """A plain canvas with the synthetic background's muted look (a soft grey gradient)."""
    h, w = SKETCH_SIZE
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    base = np.array([196, 192, 184], np.float32) * (1 - ramp) + np.array([168, 172, 176], np.float32) * ramp
    return np.broadcast_to(base, (h, w, 3)).round().astype(np.uint8).copy()


def build(examples: Examples) -> SegmentView:
    """Lay out the Segment section (examples, uploads, sketches) and wire its events; returns what
    the Train FCN section updates after a run (the "shipped / mine" switch and the view)."""
    first_name = next(iter(examples))
    has_reference = reference_path() is not None
    choices = [(tr("FCN (ResNet-18), with the weights chosen below", "FCN（ResNet-18），使用下面选择的权重"), "fcn")]
    if has_reference:
        choices.append((tr("torchvision FCN-ResNet-50: reference model for real photos",
                           "torchvision FCN-ResNet-50：用于真实照片的参考模型"), "resnet50"))

    def run(image: np.ndarray | None, model: str, view: str = "overlay",
            request: gr.Request | None = None) -> SegmentResult:
        return segment(image, model, request, examples=examples, view=view)

    def show_example(name: str) -> np.ndarray:
        return examples[name][0]

    def refresh(picture: np.ndarray | None, model_value: str, view_value: str,
                request: gr.Request | None = None) -> SegmentResult | tuple:
        # The view redone with the FCN the switch now picks; left as it is without a picture or on
        # the reference model (the switch does not pick that one), or when the picture is refused.
        if picture is None or model_value != "fcn":
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            return run(picture, model_value, view_value, request)
        except gr.Error:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()

    def choose(which: str, picture: np.ndarray | None, model_value: str, view_value: str,
               request: gr.Request | None = None) -> tuple:
        # The "shipped / mine" switch: Segment uses ``which`` in this session from now on, and says
        # so by segmenting again (an unusable network's message shows as Segment's would).
        sessions.choose(request, which)
        shown = (run(picture, model_value, view_value, request) if picture is not None and model_value == "fcn"
                 else (gr.skip(),) * 4)
        return (sessions.switch(request), *shown)

    net, which = sessions.shipped()
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            example = Dropdown(list(examples), value=first_name, label=tr("Example (offline synthetic validation image)", "示例（离线合成验证集图像）"))
            image = SafeImage(examples[first_name][0], type="numpy", image_mode="RGB", format="png",
                             sources=["upload", "clipboard"], label=tr("Image (upload your own)", "图像（可上传你自己的）"), height=240,
                             elem_id="seg-fcn-image")
            model = Radio(choices, value="fcn", label=tr("Model", "模型"), elem_id="seg-fcn-model")
            weights = weights_switch("seg-fcn-weights", "FCN", "FCN ")
            view = Radio([(tr("Overlay", "叠加"), "overlay"), (tr("Mask only", "仅掩码"), "mask"),
                          (tr("Side by side", "并排"), "side"), (tr("Confidence", "置信度"), "confidence")],
                         value="overlay", label=tr("Show", "显示方式"), elem_id="seg-fcn-view",
                         info=tr("Mask only: the class colours alone, where the overlay would hide them in the "
                                 "objects' own colours. Confidence: how sure the network is of each pixel, dark "
                                 "unsure, yellow sure",
                                 "仅掩码：只显示类别颜色，叠加时它们会混进物体本身的颜色里。置信度：网络对每个像素"
                                 "有多确定，深色为不确定，黄色为确定"))
            segment_btn = gr.Button(tr("Segment", "分割"), variant="primary", elem_id="seg-fcn-btn")
            try_this("Switch to mask only, then draw a filled crescent in the sketch below and segment it; draw it "
                     "again in another colour. Predict first: does the class change with the colour, and do the "
                     "edges come out sharp or blocky (the network decides at 1/32 of the size)?",
                     "切换到“仅掩码”，在下面的草图里画一个实心月牙并分割它；再换一种颜色画一次。先预测："
                     "类别会随颜色改变吗？边缘是清晰的还是块状的（网络在 1/32 的尺寸上做判断）？",
                     elem_id="seg-fcn-try")
            with gr.Accordion(tr("…or draw a sketch", "……或者画一张草图"), open=False):
                gr.Markdown(tr("Paint filled shapes, in any colour: the shape names the class — "
                               + ", ".join(SKETCH_SHAPES) + ".",
                               "画实心的形状，颜色随意：由形状决定类别——" + "、".join(SKETCH_SHAPES_ZH) + "。"))
                sketch = gr.ImageEditor(
                    value={"background": sketch_canvas(), "layers": [], "composite": None},
                    type="numpy", image_mode="RGB", sources=["upload", "clipboard"], label=tr("Sketch", "草图"),
                    brush=gr.Brush(colors=list(SKETCH_COLORS), default_color=SKETCH_COLORS[0],
                                   default_size=24, color_mode="defaults"),
                    layers=False, transforms=(), canvas_size=(SKETCH_SIZE[1], SKETCH_SIZE[0]), height=360,
                    elem_id="seg-fcn-sketch")
                sketch_btn = gr.Button(tr("Segment the sketch", "分割草图"), elem_id="seg-fcn-sketch-btn")
        with gr.Column(scale=6, min_width=360):
            if net is not None:
                first = run(examples[first_name][0], "fcn")
            else:
                first = (None, "", pd.DataFrame(columns=SHARES_COLUMNS), no_model_message(which))
            summary = gr.Markdown(first[3], elem_id="seg-fcn-summary", latex_delimiters=LATEX_DELIMITERS)
            overlay = gr.Image(first[0], interactive=False, label=tr("Predicted classes", "预测的类别"),
                               elem_id="seg-fcn-overlay", height=360)
            legend = gr.HTML(first[1], elem_id="seg-fcn-legend")
            shares = Dataframe(first[2], interactive=False, label=tr("Pixel share per class", "各类别的像素占比"), elem_id="seg-fcn-shares")
            gr.Markdown(tr(*reference_texts()), elem_id="seg-fcn-reference")
    outputs = [overlay, legend, shares, summary]
    segment_btn.click(run, [image, model, view], outputs, api_name="fcn_segment")
    rerun_on_picture_changes(run, [image, model, view], outputs, image, example, show_example, controls=[view])
    sketch_btn.click(sketch_image, sketch, image, api_visibility="private").success(
        run, [image, model, view], outputs, api_visibility="private")
    weights.input(choose, [weights, image, model, view], [weights, *outputs], api_name="fcn_weights")
    return SegmentView(weights, [image, model, view], outputs, refresh)


