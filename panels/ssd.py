"""SSD panel (d2l 14.7): TinySSD's architecture, detection with the shipped checkpoint, live training.

Training streams ``vision_core.ssd.train_ssd``'s progress records into curves, a preview and
a progress bar; Stop sets this browser session's flag, which the loop checks every batch.
A network trained in the page becomes that session's detector; the shipped checkpoint stays
the default for everyone else.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from vision_core.anchors import multibox_prior
from vision_core.bananas import BANANA_SIZE, generate_bananas, load_bananas, read_bananas
from vision_core.device import get_device
from vision_core.ssd import RATIOS, SIZES, SSD_WEIGHTS, TinySSD, load_tiny_ssd, predict, train_ssd
from vision_core.weights import WeightsError

from .common import (
    Dataframe, Dropdown, Pace, Radio, SafeImage, Slider, StopFlags, as_rgb_image, handles_out_of_memory,
    session_of, shows_errors,
)
from .i18n import bilingual, tr, with_chinese
from .zerogpu import on_gpu, park, ssd_train_seconds
from .figures import color_for, draw_boxes

TITLE = "SSD"
TITLE_ZH = "SSD"
TAB_ID = "ssd"
HEAVY = dict(concurrency_id="heavy", concurrency_limit=1)  # one training run at a time per server
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

MAX_SESSION_NETS = 8  # networks trained in the page are kept for the most recent sessions only

_lock = threading.Lock()
_stops = StopFlags()  # each session's Stop flag, while it trains
_session_nets: "OrderedDict[str, Tuple[TinySSD, str]]" = OrderedDict()  # session -> (net, description)
_shipped: Dict[str, object] = {}


def _remember(session: str, net: TinySSD, description: str) -> None:
    """Keep ``session``'s trained net, forgetting the oldest beyond MAX_SESSION_NETS (bounded memory)."""
    with _lock:
        _session_nets[session] = (net, description)
        _session_nets.move_to_end(session)
        while len(_session_nets) > MAX_SESSION_NETS:
            old, _ = _session_nets.popitem(last=False)
            _stops.forget(old)


def shipped_model() -> Tuple[Optional[TinySSD], str]:
    """The registry's TinySSD (loaded and sha256-checked once), or None with the reason."""
    with _lock:
        if "net" not in _shipped:
            try:
                net, entry = load_tiny_ssd(SSD_WEIGHTS)
                m = entry.metrics
                _shipped["net"] = net
                nan = float("nan")
                _shipped["text"] = (f"shipped checkpoint `{entry.file}` (sha256 verified; validation mAP at IoU 0.5 "
                                    f"{m.get('val_map_50', nan):.3f}, class error {m.get('val_class_err', nan):.2e}, "
                                    f"bbox MAE {m.get('val_bbox_mae', nan):.2e})")
            except WeightsError as err:
                _shipped["net"] = None
                _shipped["text"] = f"no usable checkpoint ({err}); train one below, or run `python -m vision_core train ssd`"
        return _shipped["net"], _shipped["text"]


def active_model(request: Optional[gr.Request]) -> Tuple[Optional[TinySSD], str]:
    """This session's trained net if it has one, else the shipped checkpoint."""
    mine = _session_nets.get(session_of(request))
    return mine if mine is not None else shipped_model()


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


def _example_images(count: int = 4) -> Dict[str, np.ndarray]:
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
def detect(image, threshold, request: gr.Request = None):
    """Detections of the active model: the image with boxes and scores, the raw table, the latency."""
    rgb = as_rgb_image(image, "image")
    threshold = float(threshold)
    if not 0 <= threshold <= 1:
        raise ValueError(bilingual(f"score threshold must be in [0, 1], got {threshold}",
                                   f"分数阈值须在 [0, 1] 之间，收到的是 {threshold}"))
    net, which = active_model(request)
    if net is None:
        raise ValueError(bilingual(f"no detector yet: {which}", f"还没有可用的检测器：{which}"))
    x = torch.from_numpy(rgb).permute(2, 0, 1)
    start = time.perf_counter()
    rows = predict(net, x, threshold=threshold)[0].cpu()
    latency = (time.perf_counter() - start) * 1e3
    labels = [f"banana {s:.2f}" for s in rows[:, 1].tolist()]
    drawn = draw_boxes(rgb, rows[:, 2:].numpy(), [color_for(2)] * len(rows), width=2, labels=labels, min_side=512)
    table = pd.DataFrame(rows.double().numpy().round(3), columns=["class", "score", "x1", "y1", "x2", "y2"])
    summary = (f"**{len(rows)} detection{'s' if len(rows) != 1 else ''}** with score ≥ {threshold:g} · "
               f"{latency:.1f} ms on {next(net.parameters()).device} · weights: {which}")
    return drawn, table, summary


@shows_errors
def stage_anchors(image, stage):
    """One stage's anchors: all four at the centre cell, and every cell's centre as a dot-sized box."""
    rgb = as_rgb_image(image, "image")
    stage = int(stage)
    if not 1 <= stage <= 5:
        raise ValueError(bilingual(f"stage must be in 1..5, got {stage}", f"阶段须在 1..5 之间，收到的是 {stage}"))
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


def _curves(history: list) -> go.Figure:
    fig = go.Figure()
    epochs = [h["epoch"] for h in history]
    for key, name, dash in [("class_err", "class error (train)", "solid"), ("val_class_err", "class error (val)", "dot"),
                            ("bbox_mae", "bbox MAE (train)", "solid"), ("val_bbox_mae", "bbox MAE (val)", "dot")]:
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=name, line=dict(dash=dash)))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), yaxis_type="log",
                      title=dict(text="The book's metrics per epoch (log scale)", font=dict(size=13)),
                      xaxis=dict(title="epoch", dtick=max(1, len(epochs) // 10)),  # whole epochs only
                      legend=dict(orientation="h", y=-0.25))
    return fig


@handles_out_of_memory
def train(epochs, batch_size, lr, num_train, optimizer="sgd", progress=gr.Progress(), request: gr.Request = None):
    """Train a fresh TinySSD on the offline banana set, streaming curves, a preview and the status."""
    stop = None
    try:
        epochs, batch_size, lr, num_train = int(epochs), int(batch_size), float(lr), int(num_train)
        if not 1 <= epochs <= MAX_EPOCHS:
            raise ValueError(bilingual(f"epochs must be in 1..{MAX_EPOCHS}, got {epochs}",
                                       f"迭代周期数须在 1..{MAX_EPOCHS} 之间，收到的是 {epochs}"))
        if not 10 <= num_train <= 1000:
            raise ValueError(bilingual(f"training images must be in 10..1000, got {num_train}",
                                       f"训练图像数须在 10..1000 之间，收到的是 {num_train}"))
        images, labels = load_bananas(split="train")
        val = load_bananas(split="val")
        net = TinySSD(1)
        stop = _stops.start(request)
        records = train_ssd((images[:num_train], labels[:num_train]), val, net=net, epochs=epochs,
                            batch_size=batch_size, lr=lr, optimizer=optimizer, stop=stop)
    except ValueError as err:
        if stop is not None:
            _stops.finish(request, stop)
        raise gr.Error(with_chinese(str(err))) from None
    history, preview, status = [], None, "starting…"
    pace = Pace("batch")  # measured in this run: no machine's speed is promised ahead of it
    try:
        yield _curves(history), preview, status
        for record in records:
            progress(record.fraction, desc=f"step {record.step}/{record.total}")
            m = dict(record.metrics)
            if "epoch" in m:
                history.append(m)
                preview = record.preview if record.preview is not None else preview
            rate = m.get("examples_per_s")
            status = (f"Epoch {len(history)}/{epochs} · step {record.step}/{record.total}"
                      + (f" · loss {m['loss']:.4f}" if "loss" in m else "")
                      + (f" · {rate:,.0f} examples/s on {get_device()}" if rate else ""))
            timing = pace(record.step, record.total, done=record.done)
            status += f" · {timing}" if timing else ""
            if record.done:
                stopped = record.message == "stopped"
                desc = (f"trained here: {len(history)} epoch(s) on {num_train} images"
                        + (" (stopped early)" if stopped else ""))
                _remember(session_of(request), park(net), desc)
                last = history[-1] if history else {}
                status = ("**Stopped.** " if stopped else "**Done.** ") + status + (
                    f" · val class error {last['val_class_err']:.2e}, val bbox MAE {last['val_bbox_mae']:.2e}"
                    if "val_class_err" in last else "") + " · Detect now uses this network in your session."
            yield _curves(history), preview, status
    finally:
        records.close()  # frees the trainer's memory if the page went away mid-run
        _stops.finish(request, stop)


def stop_training(request: gr.Request = None) -> str:
    return "Stopping after the current batch…" if _stops.stop(request) else "Nothing is training in this session."


def build() -> None:
    """Lay out the SSD tab and wire its events."""
    examples = _example_images()
    first_name = next(iter(examples))
    net, which = shipped_model()
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
            threshold.input(detect, [image, threshold], outputs, api_visibility="private", trigger_mode="always_last")
            image.upload(detect, [image, threshold], outputs, api_visibility="private")
            example.input(lambda name: examples[name], example, image, api_visibility="private").then(
                detect, [image, threshold], outputs, api_visibility="private")

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
            optimizer.input(lambda name: LEARNING_RATES.get(name, 0.2), optimizer, lr, api_visibility="private")
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
