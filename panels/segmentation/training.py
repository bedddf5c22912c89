"""The Train FCN section of the Segmentation tab (d2l 14.11): a fresh FCN learns the offline
synthetic VOC-layout set in the page, its records streamed into a per-batch loss curve, the epoch
metrics, a preview and a status with the measured pace (``panels.streaming``); Stop sets this
browser session's flag. A run that trained a batch or more becomes the session's FCN, "mine", and
the Segment section's "shipped / mine" switch moves to it (``panels.session_models``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vision_core.data.voc import VOC_CLASSES, VOCSegDataset
from vision_core.data.voc_synthetic import synthetic_voc_dir
from vision_core.fetch import fetched
from vision_core.device import get_device
from vision_core.fcn import train_fcn
from vision_core.models.fcn import FCN, find_resnet18_imagenet, load_resnet18_imagenet
from vision_core.weights import WeightsError

from vision_core.progress import Progress

from ..common import Number, Radio, Slider, handles_out_of_memory, shows_errors, try_this
from ..i18n import bilingual, tr
from ..streaming import (
    HEAVY, Stream, current_epoch, duration, outcome, stacked_curves, stopped, trained_amount, training_status,
)
from ..zerogpu import fcn_train_seconds, on_gpu
from ..session_models import training_begins
from .models import SegmentView, sessions

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

# The book's recipe (d2l 14.11), and a run that fits a CPU: a batch of 32 crops of 320 x 480 takes
# about a minute there (issue 17: "Starting…" for 60 s), so the quick run trains batches of 8 crops
# of 128 x 192 (a sixth of the pixels; 11 s each on the busy 2-core CPU of issue 17's session, a few
# on an idle one): its first point comes after one such batch, and Stop answers within one.
BOOK_RECIPE = {"epochs": 5, "batch_size": 32, "lr": 0.001, "num_train": 600, "optimizer": "sgd", "crop": "320x480"}
QUICK_RUN = {"epochs": 2, "batch_size": 8, "lr": 0.001, "num_train": 96, "optimizer": "sgd", "crop": "128x192"}
# Pascal VOC 2012's segmentation training list: the most a run on the book's data can use (the
# book keeps those at least as large as the crop: 1,114 at 320 x 480).
VOC_TRAIN_IMAGES = 1464

TrainFrame = tuple[go.Figure, np.ndarray | None, str]  # curves, preview, status


def voc_root(progress: Callable[[int, int], None] | None = None) -> Path:
    """The cached synthetic set (generated once, on first use, with a progress bar)."""
    return synthetic_voc_dir(DATA_SEED, progress=progress, **SYNTHETIC)


def _curves(stream: Stream | None = None) -> go.Figure:
    """Above: every batch's loss (the book's, mean per image) and each epoch's mean; below: pixel
    accuracy and mean IoU per epoch. x in epochs with fractions, so the curve starts after one batch."""
    history = stream.history if stream is not None else []
    xs, ys = stream.batch_curve() if stream is not None else ([], [])
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.22,
                        subplot_titles=("training loss per batch (the book's)", "pixel accuracy and mean IoU per epoch"))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) <= 60 else "lines", name="loss per batch",
                             marker={"size": 4}, line={"width": 1.5}), row=1, col=1)
    epochs = [h["epoch"] for h in history]
    fig.add_trace(go.Scatter(x=epochs, y=[h.get("loss") for h in history], mode="markers", name="epoch's loss",
                             marker={"size": 8, "symbol": "diamond"}), row=1, col=1)
    for key, name, dash in [("train_acc", "train acc", "solid"), ("test_acc", "test acc", "dot"),
                            ("test_mean_iou", "test mIoU", "dash")]:
        fig.add_trace(go.Scatter(x=epochs, y=[h.get(key) for h in history], mode="lines+markers", name=name,
                                 line={"dash": dash}), row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], row=2, col=1)
    return stacked_curves(fig, stream.epochs_trained() if stream is not None else 0)


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


def default_recipe(device: str | torch.device) -> dict[str, Any]:
    """The section's starting settings on ``device``: the book's recipe on CUDA, :data:`QUICK_RUN`
    elsewhere; both fitted to the synthetic set (tests shrink it)."""
    return fitted(BOOK_RECIPE if torch.device(device).type == "cuda" else QUICK_RUN)


def fitted(recipe: dict[str, Any]) -> dict[str, Any]:
    """``recipe`` within the synthetic set: at most its training images, a batch at most those, and
    the largest offered crop that fits its pictures when the recipe's does not."""
    available = SYNTHETIC["num_train"]
    num_train = min(recipe["num_train"], available)
    height, width = CROPS[recipe["crop"]]
    crop = recipe["crop"] if height <= SYNTHETIC["height"] and width <= SYNTHETIC["width"] else next(
        c for c, (h, w) in CROPS.items() if h <= SYNTHETIC["height"] and w <= SYNTHETIC["width"])
    return {**recipe, "num_train": num_train, "batch_size": min(recipe["batch_size"], num_train), "crop": crop}


def book_voc() -> Path:
    """The book's fetched Pascal VOC 2012 folder.

    Raises:
        ValueError: this machine does not have it; the message says how to fetch it.
    """
    folder = fetched("voc2012")
    if folder is None:
        raise ValueError(bilingual(
            "Pascal VOC 2012 is not on this machine yet: `python -m vision_core fetch voc2012` fetches it (2 GB; on a "
            "Space, the variable VISION_LAB_FETCH=voc2012), or train on the offline synthetic set",
            "本机还没有 Pascal VOC 2012：运行 `python -m vision_core fetch voc2012` 下载（2 GB；在 Space 上设置变量 "
            "VISION_LAB_FETCH=voc2012），或者用离线合成数据集训练"))
    return folder


@handles_out_of_memory
@shows_errors
def train(epochs: float, batch_size: float, lr: float | None, num_train: float, optimizer: str = "sgd",
          crop: str = "320x480", data: str = "offline", progress: gr.Progress = gr.Progress(),
          request: gr.Request | None = None) -> Iterator[TrainFrame]:
    """Train a fresh FCN on the synthetic set, streaming curves, the epoch preview and the status.

    The settings are bound by their components and checked by ``train_fcn`` (a batch larger
    than the training images, say). A run that trained at least one batch (finished or stopped)
    becomes this session's FCN, "mine", and the session's switch moves to it; the status says so.
    """
    epochs, num_train, batch_size, crop_hw = int(epochs), int(num_train), int(batch_size), _crop(crop)
    book = book_voc() if data == "book" else None
    stream = Stream("batch", picture=_enlarge, epochs=epochs)  # the pace measured in this run: none promised ahead
    total_images = SYNTHETIC["num_train"] + SYNTHETIC["num_val"]
    with sessions.stops.running(request) as stop:  # from the first frame: a Stop while preparing ends it too
        if book is None:
            yield _curves(stream), None, (f"Preparing the offline synthetic set of {total_images:,} images "
                                          "(generated once on first use, then cached)…")
            root = voc_root(progress=lambda done, total: progress(done / total, desc=f"generating image {done}/{total}"))
        else:
            yield _curves(stream), None, "Reading the book's Pascal VOC 2012…"
            root = book
        train_set = VOCSegDataset(True, crop_hw, root)
        train_set.features, train_set.labels = train_set.features[:num_train], train_set.labels[:num_train]
        test_set = VOCSegDataset(False, crop_hw, root)
        backbone, trunk = _backbone()
        net = FCN(len(VOC_CLASSES), pretrained_backbone=backbone)
        # What Segment tells a learner about pictures unlike these (segment.outside_notice).
        net.training_data = "synthetic" if book is None else "voc2012"
        records = train_fcn(train_set, test_set, net=net, epochs=epochs, batch_size=batch_size, lr=lr,
                            optimizer=optimizer, stop=stop, record_interval=0.5)
        rate = None
        try:
            yield _curves(stream), None, (
                f"Starting: {len(train_set)} images, crops {crop_hw[0]} × {crop_hw[1]}, {len(test_set)} test images, "
                f"{trunk}, on {get_device()}; the curve starts after the first batch…")
            for record in records:
                progress(record.fraction, desc=f"step {record.step}/{record.total}")
                metrics = stream.read(record)
                rate = metrics.get("examples_per_s", rate)
                status = stream.status(record, training_status(record, metrics, current_epoch(record, epochs), epochs,
                                                               get_device(), rate_format=",.1f"))
                if record.done:
                    what = f"{len(train_set)} {'VOC 2012 ' if book is not None else ''}images"
                    status = f"{outcome(record, stop)} {status}" + _final_words(
                        record, stream, epochs, f"{what}, crops {crop_hw[0]} × {crop_hw[1]}", request, net)
                    if rate:
                        sessions.note_speed(request, rate, f"{rate:,.1f} images/s at batch {batch_size}, crops "
                                                           f"{crop_hw[0]} × {crop_hw[1]}, on {get_device()}")
                yield _curves(stream), stream.preview, status
        finally:
            records.close()  # frees the trainer's memory if the page went away mid-run


# Both notes are recorded for the page's translations when the module loads; which one shows is
# decided again each time the Train FCN tab opens (a Space may fetch VOC after start-up).
_VOC_HERE = tr("The book's Pascal VOC 2012 is on this machine.", "本机已有书中的 Pascal VOC 2012。")
_VOC_MISSING = tr("The book's Pascal VOC 2012 is not on this machine: `python -m vision_core fetch voc2012` fetches "
                  "it (2 GB).", "本机还没有书中的 Pascal VOC 2012：运行 `python -m vision_core fetch voc2012` 下载（2 GB）。")


def data_note() -> str:
    """Under the data choice: whether VOC 2012 is here, and how to get it when not."""
    return _VOC_HERE if fetched("voc2012") is not None else _VOC_MISSING


def refresh_data_note() -> dict:
    """The data choice's note as this machine now is (on opening the Train FCN tab)."""
    return gr.update(info=data_note())


def _final_words(record: Progress, stream: Stream, epochs: int, data: str, request: gr.Request | None,
                 net: FCN) -> str:
    """The end of a run's last status: the last test numbers, and where the network went
    (:meth:`SessionModels.adopt`, the one Stop rule of both training panels)."""
    last = stream.history[-1] if stream.history else {}
    words = (f" · test pixel accuracy {last['test_acc']:.3f}, test mIoU {last['test_mean_iou']:.3f}"
             if "test_acc" in last else "")
    description = (f"your network, trained here: {trained_amount(record.step, record.total, epochs)} on {data}"
                   + (" (stopped early)" if stopped(record) else ""))
    return words + sessions.adopt(request, net, record.step, description, "Segment")


def stop_training(request: gr.Request | None = None) -> str:
    """Stop this session's training after its current batch."""
    return sessions.stops.press(request)


def learning_rate(optimizer: str) -> float:
    """The usual learning rate of ``optimizer`` (one of the radio's choices)."""
    return LEARNING_RATES[optimizer]


def _recipe_values(recipe: dict[str, Any], fit: bool = True) -> tuple:
    recipe = fitted(recipe) if fit else recipe
    return (recipe["epochs"], recipe["batch_size"], recipe["lr"], recipe["num_train"], recipe["optimizer"],
            recipe["crop"])


def book_recipe(request: gr.Request | None = None) -> tuple:
    """The controls set to the book's recipe and its cost: on the book's VOC 2012 when it is here
    (every training image), else within the synthetic set; crops to train, and a time only as
    measured (this session's last run's speed), never promised."""
    book = fetched("voc2012") is not None
    recipe = {**BOOK_RECIPE, "num_train": VOC_TRAIN_IMAGES} if book else fitted(BOOK_RECIPE)
    work = recipe["epochs"] * recipe["num_train"]
    height, width = CROPS[recipe["crop"]]
    up_to = "up to " if book else ""
    cost = (f"**The book's recipe:** {recipe['epochs']} epochs × {up_to}{recipe['num_train']:,} crops of {height} × "
            f"{width} = {up_to}{work:,} crops to train, and the test images scored after each epoch. ")
    measured = sessions.speed(request)
    if measured is None:
        cost += ("How long that takes is measured when it runs: the status then shows the time per batch on this "
                 "machine and the time left.")
    else:
        rate, text = measured
        cost += (f"Your last run here measured {text}; larger crops train slower, so at that speed the book's "
                 f"{work:,} crops would take at least {duration(work / rate)} (testing adds to it). The status "
                 "shows the pace measured as it runs.")
    cost += (" It trains on the book's Pascal VOC 2012, which is on this machine (the images at least as large as "
             "the crop)." if book else
             " Pascal VOC 2012 is not on this machine, so it trains on the offline synthetic set.")
    return (*_recipe_values(recipe, fit=not book), "book" if book else "offline", cost)


def quick_run() -> tuple:
    """The controls set to :data:`QUICK_RUN` (within the synthetic set), and what it is."""
    recipe = fitted(QUICK_RUN)
    height, width = CROPS[recipe["crop"]]
    note = (f"**A quick run:** {recipe['epochs']} epochs × {recipe['num_train']} crops of {height} × {width} at batch "
            f"{recipe['batch_size']}: the curve starts after the first batch, and Stop ends the run after the current "
            "one.")
    return (*_recipe_values(QUICK_RUN), note)


def training_ends(request: gr.Request | None = None) -> tuple:
    """After a run (finished, stopped or failed): Start active and Stop inactive again, and the
    Segment section's switch as the session's slot says (on "mine" after a run that trained)."""
    return gr.update(interactive=True), gr.update(interactive=False), sessions.switch(request)


def build(segment_view: SegmentView) -> Radio:
    """Lay out the Train FCN section and wire its events; after a run, ``segment_view`` (the Segment
    section) shows the session's switch and network. Returns the data choice, whose note
    :func:`refresh_data_note` updates."""
    available = SYNTHETIC["num_train"]
    recipe, book, quick = default_recipe(get_device()), fitted(BOOK_RECIPE), fitted(QUICK_RUN)
    (book_h, book_w), (quick_h, quick_w) = CROPS[book["crop"]], CROPS[quick["crop"]]
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            with gr.Row():
                quick_btn = gr.Button(tr("Quick run", "快速运行"), size="sm", elem_id="seg-fcn-quick-run")
                book_btn = gr.Button(tr("Book's recipe", "书中的配方"), size="sm", elem_id="seg-fcn-book-recipe")
            epochs = Slider(1, MAX_EPOCHS, value=recipe["epochs"], step=1, label=tr("Epochs (the book: 5)", "迭代周期（书中：5）"))
            batch = Slider(1, MAX_BATCH, value=recipe["batch_size"], step=1, label=tr("Batch size (the book: 32)", "批量大小（书中：32）"))
            optimizer = Radio([(tr("SGD (the book)", "SGD（书中）"), "sgd"), (tr("AdamW", "AdamW"), "adamw")],
                                 value=recipe["optimizer"], label=tr("Optimizer", "优化器"),
                                 info=tr("offline the trunk starts random; AdamW leaves the all-background start sooner",
                                         "离线时主干网络从随机初始化开始；AdamW 更快摆脱全是背景的初始预测"))
            lr = Number(recipe["lr"], minimum=1e-6, maximum=10, label=tr("Learning rate (the book: 0.001)", "学习率（书中：0.001）"))
            num_train = Slider(1, VOC_TRAIN_IMAGES, value=recipe["num_train"], step=1,
                               label=tr(f"Training images (synthetic set {available:,}, VOC 2012 {VOC_TRAIN_IMAGES:,})",
                                        f"训练图像数（合成数据集 {available:,} 张，VOC 2012 {VOC_TRAIN_IMAGES:,} 张）"),
                               info=tr("a run uses at most what its data has", "一次训练最多用到数据集中的全部图像"))
            crop = Radio([(tr(CROP_LABELS[c], CROP_LABELS_ZH[c]), c) for c in CROPS], value=recipe["crop"],
                            label=tr("Crop size (height × width)", "裁剪大小（高 × 宽）"),
                            info=tr("multiples of 32, the FCN's stride; smaller crops train much faster on a CPU",
                                    "32 的倍数，即 FCN 的步幅；在 CPU 上，裁剪越小训练越快"))
            data = Radio([(tr("Offline synthetic set", "离线合成数据集"), "offline"),
                          (tr("The book's Pascal VOC 2012 (fetched)", "书中的 Pascal VOC 2012（下载）"), "book")],
                         value="offline", label=tr("Training data", "训练数据"), info=data_note(),
                         elem_id="seg-fcn-data")
            with gr.Row():
                start = gr.Button(tr("Start training", "开始训练"), variant="primary", elem_id="seg-fcn-train-btn")
                stop = gr.Button(tr("Stop", "停止"), variant="stop", interactive=False, elem_id="seg-fcn-stop-btn")
            recipe_note = gr.Markdown(tr(
                f"The data: {available:,} training and {SYNTHETIC['num_val']:,} test images of the offline synthetic "
                f"set, {SYNTHETIC['height']} × {SYNTHETIC['width']} px, generated on first use. The book's recipe "
                f"trains {book['epochs']} epochs of {book['num_train']} crops of {book_h} × {book_w} in batches of "
                f"{book['batch_size']}, slow on a CPU; the quick run trains {quick['epochs']} epochs of "
                f"{quick['num_train']} crops of {quick_h} × {quick_w} in batches of {quick['batch_size']}. While it "
                "trains, the status shows the time per batch, measured on this machine, and the time left; a GPU is "
                "many times faster than a CPU.",
                f"数据：离线合成数据集中的 {available:,} 张训练图像和 {SYNTHETIC['num_val']:,} 张测试图像，"
                f"{SYNTHETIC['height']} × {SYNTHETIC['width']} 像素，首次使用时生成。书中的配方以 {book['batch_size']} "
                f"为批量、用 {book['num_train']} 个 {book_h} × {book_w} 的裁剪训练 {book['epochs']} 个迭代周期，"
                f"在 CPU 上很慢；快速运行以 {quick['batch_size']} 为批量、用 {quick['num_train']} 个 "
                f"{quick_h} × {quick_w} 的裁剪训练 {quick['epochs']} 个迭代周期。训练时，状态栏会显示在本机上测得的"
                "每批用时和预计剩余时间；GPU 比 CPU 快很多倍。"), elem_id="seg-fcn-recipe-note")
            try_this("Stop a run after its first epoch, then go to FCN, where the weights switch now says “mine”: "
                     "will your network's mean IoU on validation #0 be nearer the shipped one's 0.9 or 0.2? Guess, "
                     "look, then switch back to “shipped”.",
                     "在第一个迭代周期结束后停止训练，然后转到“全卷积网络 FCN”，权重开关此时是“我的”：你的网络在"
                     "验证图像 #0 上的平均 IoU 会更接近随附网络的 0.9，还是 0.2？先猜，再看，然后切回“随附”。",
                     elem_id="seg-fcn-train-try")
        with gr.Column(scale=6, min_width=360):
            status = gr.Markdown("Not started.", elem_id="seg-fcn-train-status")
            curves = gr.Plot(_curves(), label=tr("Loss per batch; pixel accuracy and mean IoU per epoch",
                                                 "每批的损失；每个迭代周期的像素准确率和平均 IoU"),
                             elem_id="seg-fcn-curves")
            preview = gr.Image(None, interactive=False, elem_id="seg-fcn-preview", height=240,
                               label=tr("Each epoch, a test crop: photo · predicted · true classes",
                                        "每个迭代周期的一张测试裁剪：照片 · 预测类别 · 真实类别"))
    optimizer.input(learning_rate, optimizer, lr, api_visibility="private")
    settings = [epochs, batch, lr, num_train, optimizer, crop]
    book_btn.click(book_recipe, None, [*settings, data, recipe_note], api_visibility="private")
    quick_btn.click(quick_run, None, [*settings, recipe_note], api_visibility="private")
    # Start and Stop show whether this session trains: the API's fcn_train is the middle event.
    start.click(training_begins, None, [start, stop], api_visibility="private").then(
        on_gpu(train, fcn_train_seconds), [*settings, data], [curves, preview, status], api_name="fcn_train",
        **HEAVY).then(
        training_ends, None, [start, stop, segment_view.weights], api_visibility="private").then(
        segment_view.refresh, segment_view.inputs, segment_view.outputs, api_visibility="private")
    stop.click(stop_training, None, status, api_name="fcn_stop")
    return data
