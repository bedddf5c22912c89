"""SSD panel (d2l 14.7): TinySSD's architecture, detection with the shipped checkpoint, live training.

Training streams ``train_ssd``'s progress records into curves, a preview and a progress bar
(``panels.streaming``); Stop sets this browser session's flag, which the loop checks every
batch. A network trained in the page becomes that session's detector
(``panels.session_models``); the shipped checkpoint stays the default for everyone else.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from vision_core.anchors import multibox_prior
from vision_core.data.bananas import BANANA_SIZE, generate_bananas, load_bananas, read_bananas
from vision_core.device import get_device
from vision_core.checkpoints import SSD_WEIGHTS, load_tiny_ssd
from vision_core.models.tiny_ssd import RATIOS, SIZES, TinySSD
from vision_core.ssd import predict, train_ssd
from vision_core.weights import WeightsError

from .common import (
    Dataframe, Dropdown, Radio, SafeImage, Slider, as_rgb_image, handles_out_of_memory, rerun_on_picture_changes,
    shows_errors,
)
from .figures import color_for, draw_boxes
from .i18n import bilingual, tr
from .session_models import SessionModels
from .streaming import HEAVY, Stream, epoch_axis, log_curves, outcome, stopped, training_status
from .zerogpu import on_gpu, ssd_train_seconds

TITLE = "SSD"
TITLE_ZH = "SSD"
TAB_ID = "ssd"
MAX_EPOCHS = 100
# Each optimizer's usual learning rate: the book's for SGD, Adam's customary one.
LEARNING_RATES = {"sgd": 0.2, "adamw": 0.001}

INTRO = """\
**Single shot multibox detection** (d2l 14.7). TinySSD predicts a class and four offsets for
each of 5,444 anchors over five scales, in one pass. Detect bananas with the shipped
checkpoint (trained by this project on its offline banana set), or train one here and watch
the book's class error and box MAE fall.
"""
INTRO_ZH = (  # one line of Markdown: a line break between Chinese characters would show as a space
    "**单发多框检测**（d2l 14.7）。TinySSD 在一次前向传播中，为五个尺度上 5,444 个锚框中的每一个"
    "预测一个类别和四个偏移量。可以用随附的检查点（由本项目在其离线香蕉数据集上训练）检测香蕉，"
    "也可以在这里训练一个，看着书中的类别误差和边界框 MAE 逐渐下降。"
    "\n"
)

# No time is promised before a run (a machine's speed is not known ahead): the status line
# shows the time per batch measured in the run and the time left.
TRAIN_HINT = ("The time grows with images × epochs. While it trains, the status shows the time per batch, measured "
              "on this machine, and the time left; a GPU is many times faster than a CPU. Lower the images or "
              "epochs for a quick look.")
TRAIN_HINT_ZH = ("用时随图像数 × 迭代周期数增长。训练时，状态栏会显示在本机上测得的每批用时和预计剩余时间；"
                 "GPU 比 CPU 快很多倍。想快速看一眼，可以减少图像数或迭代周期。")

MAX_SESSION_NETS = 8  # a visitor keeps the networks it trained in its 8 most recently used sessions
MAX_SESSION_BYTES = 128 * 2**20  # all visitors' TinySSDs together (~3.9 MiB each, so about 32)


def _load_shipped() -> tuple[TinySSD, str]:
    net, entry = load_tiny_ssd(SSD_WEIGHTS)
    m, nan = entry.metrics, float("nan")
    return net, (f"shipped checkpoint `{entry.file}` (sha256 verified; validation mAP at IoU 0.5 "
                 f"{m.get('val_map_50', nan):.3f}, class error {m.get('val_class_err', nan):.2e}, "
                 f"bbox MAE {m.get('val_bbox_mae', nan):.2e})")


def _unavailable(err: WeightsError) -> str:
    return f"no usable checkpoint ({err}); train one below, or run `python -m vision_core train ssd`"


# Each session's detector: the one it trained here, else the shipped checkpoint; and its Stop flag.
sessions = SessionModels(_load_shipped, _unavailable, MAX_SESSION_NETS, MAX_SESSION_BYTES)


def architecture() -> pd.DataFrame:
    """Per stage: block, feature map, anchor sizes and ratios, anchors per cell and in all."""
    net = TinySSD(1).eval()
    shapes = []
    hooks = [getattr(net, f"blk_{i}").register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
             for i in range(5)]
    with torch.inference_mode():
        net(torch.zeros(1, 3, BANANA_SIZE, BANANA_SIZE))
    for h in hooks:
        h.remove()
    rows = []
    per_cell = len(SIZES[0]) + len(RATIOS[0]) - 1
    for i, ((c, h, w), sizes) in enumerate(zip(shapes, SIZES)):
        rows.append([i + 1, ["base net", "down-sample", "down-sample", "down-sample", "global max-pool"][i], c,
                     f"{h} × {w}", ", ".join(f"{s:g}" for s in sizes), "1, 2, 0.5", per_cell, h * w * per_cell])
    rows.append(["total", "", "", "", "", "", "", sum(r[-1] for r in rows)])
    return pd.DataFrame(rows, columns=["stage", "block", "channels", "feature map", "sizes", "ratios",
                                       "anchors per cell", "anchors"])


def _example_images(count: int = 4) -> dict[str, np.ndarray]:
    """The first validation images of the offline banana set, made in a few milliseconds each.

    The generator seeds every image on its own, so these equal the cached set's first ones
    without generating all 1,100 at start-up.
    """
    with tempfile.TemporaryDirectory() as tmp:
        generate_bananas(tmp, num_train=1, num_val=count)
        images, _ = read_bananas(tmp, "val")
    return {f"banana (validation #{i})": images[i].permute(1, 2, 0).numpy() for i in range(count)}


@handles_out_of_memory
@shows_errors
def detect(image: np.ndarray | None, threshold: float,
           request: gr.Request | None = None) -> tuple[np.ndarray, pd.DataFrame, str]:
    """Detections of the session's model: the image with boxes and scores, the raw table, the latency."""
    rgb = as_rgb_image(image, "image")
    net, which = sessions.active(request)
    if net is None:
        raise ValueError(bilingual(f"no detector yet: {which}", f"还没有可用的检测器：{which}"))
    x = torch.from_numpy(rgb).permute(2, 0, 1)
    start = time.perf_counter()
    rows = predict(net, x, threshold=float(threshold))[0].cpu()
    latency = (time.perf_counter() - start) * 1e3
    labels = [f"banana {s:.2f}" for s in rows[:, 1].tolist()]
    drawn = draw_boxes(rgb, rows[:, 2:].numpy(), [color_for(2)] * len(rows), width=2, labels=labels, min_side=512)
    table = pd.DataFrame(rows.double().numpy().round(3), columns=["class", "score", "x1", "y1", "x2", "y2"])
    summary = (f"**{len(rows)} detection{'s' if len(rows) != 1 else ''}** with score ≥ {float(threshold):g} · "
               f"{latency:.1f} ms on {next(net.parameters()).device} · weights: {which}"
               + sessions.dropped_note(request))
    return drawn, table, summary


@shows_errors
def stage_anchors(image: np.ndarray | None, stage: float) -> np.ndarray:
    """One stage's anchors: all four at the centre cell, and every cell's centre as a dot-sized box."""
    rgb = as_rgb_image(image, "image")
    stage = int(stage)  # 1..5, bound by its slider
    fmap = [32, 16, 8, 4, 1][stage - 1]
    h, w = rgb.shape[:2]
    anchors = multibox_prior(torch.zeros(1, 1, fmap, fmap), SIZES[stage - 1], RATIOS[stage - 1]).reshape(fmap, fmap, -1, 4)
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    centre = anchors[fmap // 2, fmap // 2] * scale  # [4, 4]
    centres = (anchors[..., 0, :2] + anchors[..., 0, 2:]).reshape(-1, 2) / 2 * scale[:2]  # [fmap*fmap, 2]
    dots = torch.cat([centres - 1, centres + 1], dim=1)
    boxes = torch.cat([dots, centre]).numpy()
    colors = ["white"] * len(dots) + [color_for(i) for i in range(len(centre))]
    labels = [""] * len(dots) + [f"s={s}, r={r}" for s, r in [(SIZES[stage - 1][0], 1), (SIZES[stage - 1][1], 1),
                                                               (SIZES[stage - 1][0], 2), (SIZES[stage - 1][0], 0.5)]]
    return draw_boxes(rgb, boxes, colors, width=2, labels=labels, min_side=512)


def _curves(history: list[dict[str, float]]) -> go.Figure:
    epochs = [h["epoch"] for h in history]
    traces = []
    for key, name, dash in [("class_err", "class error (train)", "solid"), ("val_class_err", "class error (val)", "dot"),
                            ("bbox_mae", "bbox MAE (train)", "solid"), ("val_bbox_mae", "bbox MAE (val)", "dot")]:
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            traces.append(go.Scatter(x=epochs, y=values, mode="lines+markers", name=name, line=dict(dash=dash)))
    return log_curves(traces, "The book's metrics per epoch (log scale)", epoch_axis(history), height=320)


TrainFrame = tuple[go.Figure, np.ndarray | None, str]  # curves, preview, status


@handles_out_of_memory
@shows_errors
def train(epochs: float, batch_size: float, lr: float, num_train: float, optimizer: str = "sgd",
          progress: gr.Progress = gr.Progress(), request: gr.Request | None = None) -> Iterator[TrainFrame]:
    """Train a fresh TinySSD on the offline banana set, streaming curves, a preview and the status.

    The settings are bound by their components and checked by ``train_ssd``; the trained network
    becomes this session's detector.
    """
    epochs, num_train = int(epochs), int(num_train)
    images, labels = load_bananas(split="train")
    val = load_bananas(split="val")
    net = TinySSD(1)
    with sessions.stops.running(request) as stop:
        records = train_ssd((images[:num_train], labels[:num_train]), val, net=net, epochs=epochs,
                            batch_size=int(batch_size), lr=lr, optimizer=optimizer, stop=stop)
        stream = Stream("batch")  # the pace measured in this run: no machine's speed is promised ahead of it
        try:
            yield _curves(stream.history), stream.preview, "starting…"
            for record in records:
                progress(record.fraction, desc=f"step {record.step}/{record.total}")
                metrics = stream.read(record)
                status = stream.status(record, training_status(record, metrics, len(stream.history), epochs,
                                                               get_device()))
                if record.done:
                    sessions.remember(request, net, f"trained here: {len(stream.history)} epoch(s) on {num_train} "
                                                    "images" + (" (stopped early)" if stopped(record) else ""))
                    last = stream.history[-1] if stream.history else {}
                    status = f"{outcome(record, stop)} {status}" + (
                        f" · val class error {last['val_class_err']:.2e}, val bbox MAE {last['val_bbox_mae']:.2e}"
                        if "val_class_err" in last else "") + " · Detect now uses this network in your session."
                yield _curves(stream.history), stream.preview, status
        finally:
            records.close()  # frees the trainer's memory if the page went away mid-run


def learning_rate(optimizer: str) -> float:
    """The usual learning rate of ``optimizer`` (one of the radio's choices)."""
    return LEARNING_RATES[optimizer]


def stop_training(request: gr.Request | None = None) -> str:
    """Stop this session's training after its current batch."""
    return sessions.stops.press(request)


def build() -> None:
    """Lay out the SSD tab and wire its events."""
    examples = _example_images()
    first_name = next(iter(examples))
    net, which = sessions.shipped()

    def show_example(name: str) -> np.ndarray:
        return examples[name]

    gr.Markdown(tr(INTRO, INTRO_ZH))
    with gr.Tabs():
        with gr.Tab(tr("Detect", "检测"), id="ssd-detect"):
            with gr.Row():
                with gr.Column(scale=4, min_width=300):
                    example = Dropdown(list(examples), value=first_name, label=tr("Example (offline validation image)", "示例（离线验证集图像）"))
                    image = SafeImage(examples[first_name], type="numpy", image_mode="RGB", sources=["upload", "clipboard"],
                                     label=tr("Image (upload your own)", "图像（可上传你自己的）"), height=260, elem_id="ssd-image")
                    threshold = Slider(0, 1, value=0.9, step=0.01, label=tr("Score threshold (the book: 0.9)", "分数阈值（书中：0.9）"))
                    detect_btn = gr.Button(tr("Detect", "检测"), variant="primary", elem_id="ssd-detect-btn")
                with gr.Column(scale=6, min_width=360):
                    first = detect(examples[first_name], 0.9) if net is not None else (
                        None, pd.DataFrame(columns=["class", "score", "x1", "y1", "x2", "y2"]), which)
                    summary = gr.Markdown(first[2], elem_id="ssd-summary")
                    view = gr.Image(first[0], interactive=False, label=tr("Detections", "检测结果"), elem_id="ssd-view", height=420)
                    table = Dataframe(first[1], interactive=False, label=tr("Raw detections (pixels)", "原始检测结果（像素）"),
                                         elem_id="ssd-table")
            outputs = [view, table, summary]
            detect_btn.click(detect, [image, threshold], outputs, api_name="ssd_detect")
            rerun_on_picture_changes(detect, [image, threshold], outputs, image, example, show_example,
                                     controls=[threshold])

        with gr.Tab(tr("Train", "训练"), id="ssd-train"):
            with gr.Row():
                with gr.Column(scale=4, min_width=300):
                    epochs = Slider(1, MAX_EPOCHS, value=20, step=1, label=tr("Epochs (the book: 20)", "迭代周期（书中：20）"))
                    batch = Slider(1, 128, value=32, step=1, label=tr("Batch size (the book: 32)", "批量大小（书中：32）"))
                    optimizer = Radio([(tr("SGD (the book)", "SGD（书中）"), "sgd"), (tr("AdamW", "AdamW"), "adamw")],
                                         value="sgd", label=tr("Optimizer", "优化器"),
                                         info=tr("AdamW leaves the all-background start sooner",
                                                 "AdamW 更快摆脱全是背景的初始预测"))
                    lr = Slider(0.0005, 1.0, value=0.2, step=0.0005, label=tr("Learning rate (the book: 0.2)", "学习率（书中：0.2）"))
                    num_train = Slider(10, 1000, value=1000, step=10, label=tr("Training images (of 1,000)", "训练图像数（共 1,000 张）"))
                    with gr.Row():
                        start = gr.Button(tr("Start training", "开始训练"), variant="primary", elem_id="ssd-train-btn")
                        stop = gr.Button(tr("Stop", "停止"), variant="stop", elem_id="ssd-stop-btn")
                    gr.Markdown(tr(TRAIN_HINT, TRAIN_HINT_ZH))
                with gr.Column(scale=6, min_width=360):
                    train_status = gr.Markdown("Not started.", elem_id="ssd-train-status")
                    curves = gr.Plot(_curves([]), label=tr("Class error and bbox MAE", "类别误差和边界框 MAE"), elem_id="ssd-curves")
                    preview = gr.Image(None, interactive=False, label=tr("Detections on a validation image, each epoch",
                                                "每个迭代周期在一张验证集图像上的检测结果"),
                                       elem_id="ssd-preview", height=300)
            optimizer.input(learning_rate, optimizer, lr, api_visibility="private")
            start.click(on_gpu(train, ssd_train_seconds), [epochs, batch, lr, num_train, optimizer],
                        [curves, preview, train_status],
                        api_name="ssd_train", **HEAVY)
            stop.click(stop_training, None, train_status, api_name="ssd_stop")

        with gr.Tab(tr("Architecture", "网络结构"), id="ssd-arch"):
            gr.Markdown(tr("Five stages; each predicts classes and offsets for 4 anchors per cell of its feature map "
                           "(input 256 × 256).",
                           "五个阶段；每个阶段为其特征图的每个单元的 4 个锚框预测类别和偏移量（输入为 256 × 256）。"))
            Dataframe(architecture(), interactive=False, label=tr("TinySSD stages", "TinySSD 的各个阶段"), elem_id="ssd-arch-table")
            with gr.Row():
                stage = Slider(1, 5, value=1, step=1, label=tr("Show the anchors of stage", "显示锚框的阶段"))
                show = gr.Button(tr("Show anchors", "显示锚框"), elem_id="ssd-anchors-btn")
            anchor_view = gr.Image(None, interactive=False, label=tr("Centre cell's 4 anchors; white dots: every cell's centre",
                                            "中心单元的 4 个锚框；白点：每个单元的中心"),
                                   elem_id="ssd-anchor-view", height=420)
            show.click(stage_anchors, [image, stage], anchor_view, api_name="ssd_anchors")
