"""Segmentation tab (d2l 14.9-14.11): transposed convolution, bilinear upsampling, the book's FCN.

Four sections, one module each, each a thin layer over ``vision_core``:

* ``transposed``: transposed convolution on a small editable matrix, stepped one input cell at
  a time, beside the book's zero-insertion construction;
* ``bilinear``: the bilinear kernel and the book's 2x upsampling demo;
* ``segment``: segmentation with the FCN (the session's trained network, else the shipped
  checkpoint; networks in ``models``), and torchvision's FCN-ResNet-50 as a reference;
* ``training``: live training on the offline synthetic VOC set.
"""

from __future__ import annotations

import gradio as gr

from ..i18n import tr
from . import bilinear, segment, training, transposed

TITLE = "Segmentation"
TITLE_ZH = "语义分割"
TAB_ID = "segmentation"

INTRO = """\
**Semantic segmentation** (d2l 14.9-14.11). A transposed convolution scatters every input cell's
scaled kernel onto a larger output; initialised as bilinear interpolation it upsamples images, and
on top of a ResNet-18 trunk it turns 32× smaller feature maps back into one class per pixel: the
fully convolutional network (FCN). Offline, the FCN learns the project's synthetic VOC-layout set
(textured shapes labelled with VOC classes).
"""
INTRO_ZH = (  # one line of Markdown: a line break between Chinese characters would show as a space
    "**语义分割**（d2l 14.9-14.11）。转置卷积把每个输入单元格乘以卷积核后的结果散布到更大的输出上；"
    "用双线性插值初始化时，它可以对图像上采样；接在 ResNet-18 主干之后，它把缩小了 32 倍的特征图"
    "还原为每个像素一个类别：这就是全卷积网络（FCN）。离线时，FCN 学习本项目的合成 VOC 布局数据集"
    "（标注为 VOC 类别的带纹理形状）。"
    "\n"
)


def build() -> None:
    """Lay out the Segmentation tab (four sections) and wire its events."""
    examples = segment.example_images()
    gr.Markdown(tr(INTRO, INTRO_ZH))
    with gr.Tabs():
        with gr.Tab(tr("Transposed convolution", "转置卷积"), id="seg-transposed"):
            transposed.build()
        with gr.Tab(tr("Bilinear upsampling", "双线性上采样"), id="seg-bilinear"):
            bilinear.build()
        with gr.Tab(tr("FCN", "全卷积网络 FCN"), id="seg-fcn"):
            view = segment.build(examples)
        with gr.Tab(tr("Train FCN", "训练 FCN"), id="seg-fcn-train") as train_tab:
            data = training.build(view)
        # A Space may fetch VOC after start-up: the data choice says what is here when the tab opens.
        train_tab.select(training.refresh_data_note, None, data, api_visibility="private")
