"""The bilinear-upsampling section of the Segmentation tab (d2l 14.11.2): the bilinear kernel FCN
initialises its transposed convolution with, and the book's demo of a photo enlarged by such a layer.

The kernel and the upsampling come from ``vision_core.transposed`` (``bilinear_kernel``,
``bilinear_upsample``); the panel draws the kernel and shows both pictures at their real size.
"""

from __future__ import annotations

import base64
import io
import time
import gradio as gr
import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image

from vision_core.examples import EXAMPLES, load_example
from vision_core.transposed import bilinear_kernel, bilinear_upsample

from ..common import (
    Dropdown, SafeImage, Slider, as_rgb_image, downscale, example_photo, formula, rerun_on_picture_changes,
    shows_errors, try_this,
)
from ..i18n import tr

MAX_UPSAMPLE_SIDE = 768  # larger photos are downscaled first (the book's catdog is 561 x 728)


@shows_errors
def render_bilinear_kernel(kernel_size: float) -> tuple[go.Figure, str]:
    """``bilinear_kernel(1, 1, k)`` as a heatmap with its values, and its recipe in words."""
    k = int(kernel_size)  # 2..16, bound by its slider
    W = bilinear_kernel(1, 1, k, dtype=torch.float64)[0, 0]
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    fig = go.Figure(go.Heatmap(
        z=W.numpy(), text=[[f"{v:.3f}".rstrip("0").rstrip(".") if v else "0" for v in row] for row in W.tolist()],
        texttemplate="%{text}" if k <= 10 else None, colorscale="Blues", zmin=0, zmax=1, xgap=1, ygap=1,
        hovertemplate="W[%{y}, %{x}] = %{z:.4f}<extra></extra>",
    ))
    fig.update_xaxes(dtick=1 if k <= 10 else 2, side="top", showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(dtick=1 if k <= 10 else 2, autorange="reversed", scaleanchor="x", showgrid=False,
                     zeroline=False, constrain="domain")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text=f"bilinear_kernel(1, 1, {k})", font=dict(size=13)))
    tent = ", ".join(f"{1 - abs(i - center) / factor:.3g}" for i in range(k))
    text = (f"factor = (k + 1) // 2 = **{factor}**, centre = **{center:g}** "
            f"({'on a cell' if k % 2 else 'between the two middle cells'}). Each weight is the product of two "
            f"tents 1 − |i − centre| / factor: [{tent}]. With stride {factor} and padding {factor // 2} a "
            f"transposed convolution with this kernel upsamples {factor}× by bilinear interpolation.")
    return fig, text + "\n\n" + _kernel_formula(W, k, factor, center)


def _kernel_formula(W: torch.Tensor, k: int, factor: int, center: float) -> str:
    """The book's ``bilinear_kernel`` typeset with this ``k``: the factor, the centre, the weight as a
    product of two tents, and one weight worked out (row 0, the column next to it: ``W`` ``[k, k]``)."""
    j = min(1, k - 1)
    c = f"{factor} - 1 = {center:g}" if k % 2 else f"{factor} - 0.5 = {center:g}"
    return ("$$f = \\left\\lfloor \\frac{k + 1}{2} \\right\\rfloor = "
            f"\\left\\lfloor \\frac{{{k + 1}}}{{2}} \\right\\rfloor = {factor}$$\n\n$$c = {c}$$\n\n"
            "$$W_{ij} = \\Big(1 - \\frac{|i - c|}{f}\\Big)\\Big(1 - \\frac{|j - c|}{f}\\Big)$$\n\n"
            f"$$W_{{0{j}}} = \\Big(1 - \\frac{{{abs(0 - center):g}}}{{{factor}}}\\Big)"
            f"\\Big(1 - \\frac{{{abs(j - center):g}}}{{{factor}}}\\Big) = {float(W[0, j]):.4g}$$")


def _data_uri(image: np.ndarray, fmt: str = "JPEG") -> str:
    buf = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(image).save(buf, format="JPEG", quality=92, subsampling=0)
        mime = "image/jpeg"
    else:
        Image.fromarray(image).save(buf, format="PNG")
        mime = "image/png"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@shows_errors
def upsample(image: np.ndarray | None, scale: float = 2) -> tuple[np.ndarray, str, str]:
    """The book's demo: the photo enlarged ``scale`` times by a bilinear-initialised transposed convolution.

    Returns the output image, an HTML view of both at their real pixel sizes, and a summary.
    """
    rgb = as_rgb_image(image, "image")
    scale = int(scale)  # 2..4, bound by its slider
    rgb, note = downscale(rgb, MAX_UPSAMPLE_SIDE)
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()
    start = time.perf_counter()
    y = bilinear_upsample(x, scale)
    ms = (time.perf_counter() - start) * 1e3
    out = y.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    (h, w), (oh, ow) = rgb.shape[:2], out.shape[:2]
    k = 2 * scale - scale % 2
    summary = (f"**input {w} × {h} px → output {ow} × {oh} px**{note} · transposed convolution with kernel {k}, "
               f"stride {scale}, padding {scale // 2}, weights bilinear_kernel(3, 3, {k}) · {ms:.1f} ms on the CPU. "
               "Both images below are shown at their real pixel size (scroll sideways for the output).")
    view = (
        '<div style="display:flex;gap:16px;align-items:flex-start;overflow-x:auto;padding-bottom:6px">'
        f'<figure style="margin:0;flex:none"><img src="{_data_uri(rgb)}" width="{w}" height="{h}" '
        f'style="max-width:none" alt="input"><figcaption>input {w} × {h} px</figcaption></figure>'
        f'<figure style="margin:0;flex:none"><img src="{_data_uri(out)}" width="{ow}" height="{oh}" '
        f'style="max-width:none" alt="output"><figcaption>output {ow} × {oh} px (real size)</figcaption></figure>'
        "</div>"
    )
    return out, view, summary


def build() -> None:
    """Lay out the bilinear-upsampling section and wire its events."""
    gr.Markdown(tr("FCN initialises its transposed convolution with **bilinear interpolation** (d2l 14.11.2). "
                   "Its kernel, and the book's demo: a photo enlarged 2× by such a layer.",
                   "FCN 用**双线性插值**初始化它的转置卷积层（d2l 14.11.2）。下面是这样的卷积核，"
                   "以及书中的演示：用这样一层把照片放大 2 倍。"))
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            kernel_size = Slider(2, 16, value=4, step=1, label=tr("Kernel size k (the book's 2× demo: 4)", "卷积核大小 k（书中 2 倍放大演示：4）"),
                                    elem_id="seg-bilinear-k")
            first = render_bilinear_kernel(4)
            try_this("Before you set k to 3, predict the factor and whether the weight 1 sits on a cell or between "
                     "cells; then set it and read the heatmap.",
                     "把 k 设为 3 之前，先预测 factor 的值，以及权重 1 是落在某个单元格上，还是落在两个单元格之间；"
                     "然后设置并查看热力图。", elem_id="seg-bilinear-try")
            kernel_text = formula(first[1], elem_id="seg-bilinear-kernel-text")
        with gr.Column(scale=6, min_width=360):
            kernel_fig = gr.Plot(first[0], label=tr("bilinear_kernel", "bilinear_kernel（双线性插值核）"), elem_id="seg-bilinear-kernel")
    kernel_size.input(render_bilinear_kernel, kernel_size, [kernel_fig, kernel_text], api_name="bilinear_kernel",
                      trigger_mode="always_last")
    photo0 = load_example("chelsea")
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            example = Dropdown(list(EXAMPLES), value="chelsea", label=tr("Example photo (offline)", "示例照片（离线）"))
            photo = SafeImage(photo0, type="numpy", image_mode="RGB", sources=["upload", "clipboard"],
                             label=tr("Photo (upload your own)", "照片（可上传你自己的）"), height=240, elem_id="seg-bilinear-photo")
            scale = Slider(2, 4, value=2, step=1, label=tr("Scale (the book: 2)", "放大倍数（书中：2）"))
            run = gr.Button(tr("Upsample", "上采样"), variant="primary", elem_id="seg-bilinear-btn")
        with gr.Column(scale=6, min_width=360):
            out0, view0, summary0 = upsample(photo0, 2)
            summary = gr.Markdown(summary0, elem_id="seg-bilinear-summary")
            with gr.Accordion(tr("Output image file", "输出图像文件"), open=False):
                out_image = gr.Image(out0, interactive=False, format="png", label=tr("Upsampled (download)", "上采样结果（下载）"),
                                     elem_id="seg-bilinear-output")
    view = gr.HTML(view0, elem_id="seg-bilinear-view")
    outputs = [out_image, view, summary]
    run.click(upsample, [photo, scale], outputs, api_name="bilinear")
    rerun_on_picture_changes(upsample, [photo, scale], outputs, photo, example, example_photo, controls=[scale])


