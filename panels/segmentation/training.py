"""The Train FCN section of the Segmentation tab (d2l 14.11): a fresh FCN learns the offline
synthetic VOC-layout set in the page, its records streamed into curves, a preview and a status
(``panels.streaming``); Stop sets this browser session's flag. The trained network becomes the
session's FCN for the Segment section (``panels.session_models``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr
import numpy as np
import torch
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vision_core.data.voc import VOC_CLASSES, VOCSegDataset
from vision_core.data.voc_synthetic import synthetic_voc_dir
from vision_core.device import get_device
from vision_core.fcn import train_fcn
from vision_core.models.fcn import FCN, find_resnet18_imagenet, load_resnet18_imagenet
from vision_core.weights import WeightsError

from ..common import Number, Radio, Slider, handles_out_of_memory, shows_errors
from ..i18n import bilingual, tr
from ..streaming import HEAVY, Stream, epoch_axis, outcome, stopped, training_status
from ..zerogpu import fcn_train_seconds, on_gpu
from .models import sessions

MAX_EPOCHS = 50
MAX_BATCH = 64
# Crop sizes offered for training, (height, width), multiples of the FCN's stride 32.
CROPS = {"320x480": (320, 480), "160x224": (160, 224), "128x192": (128, 192), "64x96": (64, 96)}
CROP_LABELS = {"320x480": "320 × 480 (the book)", "160x224": "160 × 224", "128x192": "128 × 192 (CPU)",
               "64x96": "64 × 96 (a quick look)"}
CROP_LABELS_ZH = {"320x480": "320 × 480（书中）", "160x224": "160 × 224", "128x192": "128 × 192（适合 CPU）",
                  "64x96": "64 × 96（快速看一眼）"}
# Each optimizer's usual learning rate: the book's for SGD; for AdamW within vision_core's advice (1e-4..1e-3).
LEARNING_RATES = {"sgd": 0.001, "adamw": 0.0005}
DATA_SEED = 0
# The synthetic set the section trains on: vision_core.data.voc's default (600 train / 100 val, 320 x 480),
# cached under $VISION_LAB_DATA. Tests shrink it (in place: the Segment section's examples read it too).
SYNTHETIC: dict[str, int] = {"num_train": 600, "num_val": 100, "height": 320, "width": 480}

TrainFrame = tuple[go.Figure, np.ndarray | None, str]  # curves, preview, status


def voc_root(progress: Callable[[int, int], None] | None = None) -> Path:
    """The cached synthetic set (generated once, on first use, with a progress bar)."""
    return synthetic_voc_dir(DATA_SEED, progress=progress, **SYNTHETIC)


def _curves(history: list[dict[str, float]]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss (the book's)",
                                                        "pixel accuracy and mean IoU"))
    epochs = [h["epoch"] for h in history]
    fig.add_trace(go.Scatter(x=epochs, y=[h.get("loss") for h in history], mode="lines+markers", name="train loss"),
                  row=1, col=1)
    for key, name, dash in [("train_acc", "train acc", "solid"), ("test_acc", "test acc", "dot"),
                            ("test_mean_iou", "test mIoU", "dash")]:
        values = [h.get(key) for h in history]
        fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=name, line=dict(dash=dash)),
                      row=1, col=2)
    fig.update_xaxes(**epoch_axis(history))
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    fig.update_annotations(font_size=13)
    return fig


def _enlarge(picture: np.ndarray, min_height: int = 192) -> np.ndarray:
    """Small previews (a 64 x 96 crop) enlarged by a whole factor, nearest neighbour, so classes stay crisp."""
    factor = max(1, -(-min_height // picture.shape[0]))
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1) if factor > 1 else picture


def _crop(crop: str) -> tuple[int, int]:
    """``crop``'s (height, width); the radio offers every crop, the synthetic images may be smaller."""
    height, width = CROPS[crop]
    if height > SYNTHETIC["height"] or width > SYNTHETIC["width"]:
        raise ValueError(bilingual(f"crop {height} × {width} is larger than the synthetic images "
                                   f"({SYNTHETIC['height']} × {SYNTHETIC['width']}); choose a smaller crop",
                                   f"裁剪大小 {height} × {width} 超过了合成图像的大小"
                                   f"（{SYNTHETIC['height']} × {SYNTHETIC['width']}）；请选择更小的裁剪"))
    return height, width


def _backbone() -> tuple[dict[str, torch.Tensor] | None, str]:
    """The trunk's starting weights: ImageNet's when their file is here (as the book), else random."""
    try:
        path = find_resnet18_imagenet()
        if path is not None:
            return load_resnet18_imagenet(path), "ImageNet ResNet-18 trunk (as the book)"
    except WeightsError as err:
        return None, f"random trunk ({err})"
    return None, "random trunk (offline: the book starts from ImageNet weights, which need a download)"


@handles_out_of_memory
@shows_errors
def train(epochs: float, batch_size: float, lr: float | None, num_train: float, optimizer: str = "sgd",
          crop: str = "320x480", progress: gr.Progress = gr.Progress(),
          request: gr.Request | None = None) -> Iterator[TrainFrame]:
    """Train a fresh FCN on the synthetic set, streaming curves, the epoch preview and the status.

    The settings are bound by their components and checked by ``train_fcn`` (a batch larger
    than the training images, say); the trained network becomes this session's FCN.
    """
    epochs, num_train, crop_hw = int(epochs), int(num_train), _crop(crop)
    stream = Stream("batch", picture=_enlarge)  # the pace measured in this run: no speed is promised ahead
    total_images = SYNTHETIC["num_train"] + SYNTHETIC["num_val"]
    yield _curves(stream.history), None, (f"Preparing the offline synthetic set of {total_images:,} images "
                                          "(generated once on first use, then cached)…")
    with sessions.stops.running(request) as stop:
        root = voc_root(progress=lambda done, total: progress(done / total, desc=f"generating image {done}/{total}"))
        train_set = VOCSegDataset(True, crop_hw, root)
        train_set.features, train_set.labels = train_set.features[:num_train], train_set.labels[:num_train]
        test_set = VOCSegDataset(False, crop_hw, root)
        backbone, trunk = _backbone()
        net = FCN(len(VOC_CLASSES), pretrained_backbone=backbone)
        records = train_fcn(train_set, test_set, net=net, epochs=epochs, batch_size=int(batch_size), lr=lr,
                            optimizer=optimizer, stop=stop, record_interval=0.5)
        try:
            yield _curves(stream.history), None, (
                f"Starting: {num_train} images, crops {crop_hw[0]} × {crop_hw[1]}, {len(test_set)} test images, "
                f"{trunk}, on {get_device()}…")
            for record in records:
                progress(record.fraction, desc=f"step {record.step}/{record.total}")
                metrics = stream.read(record)
                epoch = len(stream.history) + (0 if "epoch" in metrics or record.done else 1)
                status = stream.status(record, training_status(record, metrics, epoch, epochs, get_device(),
                                                               rate_format=",.1f"))
                if record.done:
                    history = stream.history
                    if history:
                        sessions.remember(request, net, (
                            f"your network, trained here: {len(history)} epoch(s) on {num_train} images, crops "
                            f"{crop_hw[0]} × {crop_hw[1]}" + (" (stopped early)" if stopped(record) else "")))
                    last = history[-1] if history else {}
                    status = f"{outcome(record, stop)} {status}" + (
                        f" · test pixel accuracy {last['test_acc']:.3f}, test mIoU {last['test_mean_iou']:.3f}"
                        if "test_acc" in last else "") + (
                        " · Segment now uses this network in your session." if history else
                        " · No epoch finished, so Segment keeps its previous model.")
                yield _curves(stream.history), stream.preview, status
        finally:
            records.close()  # frees the trainer's memory if the page went away mid-run


def stop_training(request: gr.Request | None = None) -> str:
    """Stop this session's training after its current batch."""
    return sessions.stops.press(request)


def learning_rate(optimizer: str) -> float:
    """The usual learning rate of ``optimizer`` (one of the radio's choices)."""
    return LEARNING_RATES[optimizer]


def build() -> None:
    """Lay out the Train FCN section and wire its events."""
    available = SYNTHETIC["num_train"]
    default_crop = "320x480" if SYNTHETIC["height"] >= 320 and SYNTHETIC["width"] >= 480 else next(
        c for c, (h, w) in CROPS.items() if h <= SYNTHETIC["height"] and w <= SYNTHETIC["width"])
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            epochs = Slider(1, MAX_EPOCHS, value=5, step=1, label=tr("Epochs (the book: 5)", "迭代周期（书中：5）"))
            batch = Slider(1, MAX_BATCH, value=min(32, available), step=1, label=tr("Batch size (the book: 32)", "批量大小（书中：32）"))
            optimizer = Radio([(tr("SGD (the book)", "SGD（书中）"), "sgd"), (tr("AdamW", "AdamW"), "adamw")],
                                 value="sgd", label=tr("Optimizer", "优化器"),
                                 info=tr("offline the trunk starts random; AdamW leaves the all-background start sooner",
                                         "离线时主干网络从随机初始化开始；AdamW 更快摆脱全是背景的初始预测"))
            lr = Number(LEARNING_RATES["sgd"], minimum=1e-6, maximum=10, label=tr("Learning rate (the book: 0.001)", "学习率（书中：0.001）"))
            num_train = Slider(1, available, value=available, step=1,
                                  label=tr(f"Training images (of {available:,})", f"训练图像数（共 {available:,} 张）"))
            crop = Radio([(tr(CROP_LABELS[c], CROP_LABELS_ZH[c]), c) for c in CROPS], value=default_crop,
                            label=tr("Crop size (height × width)", "裁剪大小（高 × 宽）"),
                            info=tr("multiples of 32, the FCN's stride; smaller crops train much faster on a CPU",
                                    "32 的倍数，即 FCN 的步幅；在 CPU 上，裁剪越小训练越快"))
            with gr.Row():
                start = gr.Button(tr("Start training", "开始训练"), variant="primary", elem_id="seg-fcn-train-btn")
                stop = gr.Button(tr("Stop", "停止"), variant="stop", elem_id="seg-fcn-stop-btn")
            gr.Markdown(tr(f"The data: {available:,} training and {SYNTHETIC['num_val']:,} test images of the offline "
                           f"synthetic set, {SYNTHETIC['height']} × {SYNTHETIC['width']} px, generated on first use. "
                           "On a CPU the book's 600 crops of 320 × 480 train slowly: a 128 × 192 crop has a sixth of "
                           "the pixels, so try it with 100 images for a quick run. While it trains, the status shows "
                           "the time per batch, measured on this machine, and the time left; a GPU is many times "
                           "faster than a CPU.",
                           f"数据：离线合成数据集中的 {available:,} 张训练图像和 {SYNTHETIC['num_val']:,} 张测试图像，"
                           f"{SYNTHETIC['height']} × {SYNTHETIC['width']} 像素，首次使用时生成。在 CPU 上，"
                           "书中 600 张 320 × 480 的裁剪训练得很慢：128 × 192 的裁剪只有其六分之一的像素，"
                           "想快速跑一次，可以用它和 100 张图像试试。训练时，状态栏会显示在本机上测得的每批用时和"
                           "预计剩余时间；GPU 比 CPU 快很多倍。"))
        with gr.Column(scale=6, min_width=360):
            status = gr.Markdown("Not started.", elem_id="seg-fcn-train-status")
            curves = gr.Plot(_curves([]), label=tr("Loss, pixel accuracy and mean IoU per epoch", "每个迭代周期的损失、像素准确率和平均 IoU"), elem_id="seg-fcn-curves")
            preview = gr.Image(None, interactive=False, elem_id="seg-fcn-preview", height=240,
                               label=tr("Each epoch, a test crop: photo · predicted · true classes",
                                        "每个迭代周期的一张测试裁剪：照片 · 预测类别 · 真实类别"))
    optimizer.input(learning_rate, optimizer, lr, api_visibility="private")
    start.click(on_gpu(train, fcn_train_seconds), [epochs, batch, lr, num_train, optimizer, crop],
                [curves, preview, status],
                api_name="fcn_train", **HEAVY)
    stop.click(stop_training, None, status, api_name="fcn_stop")


