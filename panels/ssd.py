"""SSD panel (d2l 14.7): TinySSD's architecture, detection with the shipped checkpoint, live training.

Training streams ``train_ssd``'s progress records into curves, a preview and a progress bar
(``panels.streaming``); Stop sets this browser session's flag, which the loop checks every
batch. A network trained in the page becomes that session's detector
(``panels.session_models``); the shipped checkpoint stays the default for everyone else.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from vision_core._runtime import eval_mode
from vision_core.anchors import multibox_prior, offset_inverse
from vision_core.boxes import box_corner_to_center
from vision_core.data.bananas import BANANA_SIZE, generate_bananas, load_bananas, read_bananas
from vision_core.device import get_device
from vision_core.fetch import fetched
from vision_core.checkpoints import SSD_WEIGHTS, load_tiny_ssd
from vision_core.models.tiny_ssd import RATIOS, SIZES, TinySSD
from vision_core.progress import Progress
from vision_core.ssd import predict, train_ssd
from vision_core.weights import WeightsError

from .common import (
    LATEX_DELIMITERS, Dataframe, Dropdown, Radio, SafeImage, Slider, as_rgb_image, formula, handles_out_of_memory,
    rerun_on_picture_changes, shows_errors, try_this,
)
from .figures import color_for, draw_boxes
from .i18n import bilingual, tr
from .session_models import SessionModels, training_begins, weights_switch
from .streaming import (
    HEAVY, Stream, current_epoch, duration, outcome, stacked_curves, stopped, trained_amount, training_status,
)
from .zerogpu import on_gpu, ssd_train_seconds

TITLE = "SSD"
TITLE_ZH = "SSD"
TAB_ID = "ssd"
MAX_EPOCHS = 100
# With an empty detection list the best anchor's box is drawn dashed at this opacity, so it cannot
# be mistaken for a detection.
CANDIDATE_OPACITY = 0.5
CANDIDATE_NOTE = (" The faded dashed box on the picture is that best candidate: it is not a detection, so it "
                  "is not in the table.")
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

# The book's recipe (d2l 14.7), and a run that fits a CPU: a batch of 32 takes seconds there
# (37 s each on the busy 2-core CPU of issue 17's session), so the quick run's first point comes
# after one batch of 16, Stop answers within one such batch, and the whole run is a small fraction
# of the book's. The page starts with the book's on CUDA and the quick run elsewhere.
BOOK_RECIPE = {"epochs": 20, "batch_size": 32, "lr": 0.2, "num_train": 1000, "optimizer": "sgd"}
QUICK_RUN = {"epochs": 2, "batch_size": 16, "lr": 0.2, "num_train": 200, "optimizer": "sgd"}

# No time is promised before a run (a machine's speed is not known ahead): the status line
# shows the time per batch measured in the run and the time left.
TRAIN_HINT = ("The time grows with images × epochs: the book's recipe trains 20 × 1,000 images, the quick run "
              "2 × 200. While it trains, the status shows the time per batch, measured on this machine, and the "
              "time left; a GPU is many times faster than a CPU.")
TRAIN_HINT_ZH = ("用时随图像数 × 迭代周期数增长：书中的配方训练 20 × 1,000 张图像，快速运行训练 2 × 200 张。"
                 "训练时，状态栏会显示在本机上测得的每批用时和预计剩余时间；GPU 比 CPU 快很多倍。")

MAX_SESSION_NETS = 8  # a visitor keeps the networks it trained in its 8 most recently used sessions
MAX_SESSION_BYTES = 128 * 2**20  # all visitors' TinySSDs together (~3.9 MiB each, so about 32)


def _load_shipped() -> tuple[TinySSD, str]:
    net, entry = load_tiny_ssd(SSD_WEIGHTS)
    m, nan = entry.metrics, float("nan")
    heldout = (f"; on bananas drawn another way, mAP {m['heldout_map_50']:.3f}"
               if "heldout_map_50" in m else "")
    return net, (f"shipped checkpoint `{entry.file}` (sha256 verified; validation mAP at IoU 0.5 "
                 f"{m.get('val_map_50', nan):.3f}, class error {m.get('val_class_err', nan):.2e}, "
                 f"bbox MAE {m.get('val_bbox_mae', nan):.2e}{heldout})")


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


def _example_images(count: int = 4, scan: int = 12, min_side: float = 0.2) -> dict[str, np.ndarray]:
    """The first ``count`` validation images of the offline banana set whose banana's box is at least
    ``min_side`` of the image on its longer side, among the first ``scan``; made in a few milliseconds
    each.

    The set also holds bananas a tenth of the image across; the examples start with ones a
    learner can see at a glance. The generator seeds every image on its own, so these equal the
    cached set's images of the same numbers without generating all 1,100 at start-up.
    """
    with tempfile.TemporaryDirectory() as tmp:
        generate_bananas(tmp, num_train=1, num_val=scan)
        images, labels = read_bananas(tmp, "val")
    sides = (labels[:, 0, 3:] - labels[:, 0, 1:3]).amax(dim=1)  # [scan], fractions of the image
    chosen = torch.nonzero(sides >= min_side).flatten()[:count].tolist()
    return {f"banana (validation #{i})": images[i].permute(1, 2, 0).numpy() for i in chosen}


POS_THRESHOLD = 0.01  # multibox_detection's pos_threshold (0.009999999): below it an anchor is background


def best_anchor(net: TinySSD, rgb: np.ndarray) -> dict[str, float | int | torch.Tensor]:
    """The anchor with the highest banana probability: the top detection when that reaches POS_THRESHOLD
    (NMS keeps the best box first). The same forward pass as ``predict``: the picture resized to
    256 × 256, 0..255 floats, eval mode.

    Returns:
        ``index`` (of the 5,444 anchors), ``prob``, and in pixels of ``rgb`` ``[H, W, 3]``, centre form
        ``(x, y, w, h)``: ``anchor`` ``[4]`` and ``box`` ``[4]`` = the anchor moved by ``offsets`` ``[4]``.
    """
    h, w = rgb.shape[:2]
    device = next(net.parameters()).device
    X = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device).float()  # [1, 3, H, W]
    if (h, w) != (BANANA_SIZE, BANANA_SIZE):
        X = F.interpolate(X, size=(BANANA_SIZE, BANANA_SIZE), mode="bilinear", align_corners=False, antialias=True)
    with eval_mode(net), torch.no_grad():
        anchors, cls_preds, bbox_preds = net(X)  # [1, A, 4], [1, A, 2], [1, A * 4]
    probs = torch.softmax(cls_preds[0].float(), dim=-1)[:, 1]  # [A]: P(banana)
    i = int(probs.argmax())
    anchor, offsets = anchors[0, i:i + 1].float().cpu(), bbox_preds[0].reshape(-1, 4)[i:i + 1].float().cpu()
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)  # normalised -> pixels of the picture
    return {"index": i, "prob": float(probs[i]), "offsets": offsets[0],
            "anchor": box_corner_to_center(anchor * scale)[0],
            "box": box_corner_to_center(offset_inverse(anchor, offsets) * scale)[0]}


def detection_formula(best: dict, in_table: bool) -> str:
    """The best anchor's box from its anchor and offsets: the inverse of the book's ``offset_boxes``
    (d2l 14.4.3 with μ = 0, σ_x = σ_y = 0.1, σ_w = σ_h = 0.2), with its numbers, in pixels.
    ``in_table``: that box is the table's first row (its score reached the threshold)."""
    (xa, ya, wa, ha), (ox, oy, ow, oh), (xb, yb, wb, hb) = (best[k].tolist() for k in ("anchor", "offsets", "box"))
    x1, y1, x2, y2 = xb - wb / 2, yb - hb / 2, xb + wb / 2, yb + hb / 2
    prob = f"{best['prob']:.2f}" if best["prob"] >= POS_THRESHOLD else f"{best['prob']:.2g}"
    return (f"The best anchor (#{best['index']} of 5,444, banana probability {prob}) moved by its "
            "predicted offsets o, in pixels (centre x, y, width w, height h):\n\n"
            "$$\\begin{aligned}"
            # one row of symbols and one of numbers each: a phone's width holds them
            f"x &= x_a + 0.1\\,o_x\\,w_a \\\\ &= {xa:.1f} + 0.1 \\cdot ({ox:.2f}) \\cdot {wa:.1f} = {xb:.1f} \\\\"
            f"y &= y_a + 0.1\\,o_y\\,h_a \\\\ &= {ya:.1f} + 0.1 \\cdot ({oy:.2f}) \\cdot {ha:.1f} = {yb:.1f} \\\\"
            f"w &= w_a\\,e^{{0.2\\,o_w}} \\\\ &= {wa:.1f} \\cdot e^{{0.2 \\cdot ({ow:.2f})}} = {wb:.1f} \\\\"
            f"h &= h_a\\,e^{{0.2\\,o_h}} \\\\ &= {ha:.1f} \\cdot e^{{0.2 \\cdot ({oh:.2f})}} = {hb:.1f}"
            "\\end{aligned}$$\n\n"
            f"Corners (x1, y1, x2, y2) = ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f})"
            + (": the table's first row." if in_table else "."))


def _no_detection_hint(best: float, threshold: float) -> str:
    """Why a detection list is empty: every anchor is background, or the threshold is above the best score."""
    if best < POS_THRESHOLD:
        return (f" — no anchor reaches a banana probability of {POS_THRESHOLD:g} (the best: {best:.2g}), so "
                "multibox_detection labels every anchor background: this network sees no banana here, "
                "even at threshold 0.")
    return (f" — the best score is {_below(best, threshold)}, below the threshold {threshold:g}: lower the threshold "
            f"to {math.floor(best * 100) / 100:.2f} or less to see that box.")


def _below(score: float, threshold: float) -> str:
    """``score`` with two decimals, or as many more as it takes not to read as ``threshold`` or above
    (0.996 under a threshold of 1 is "0.996", not "1.00")."""
    for digits in range(2, 7):
        text = f"{score:.{digits}f}"
        if float(text) < threshold:
            return text
    return f"{score:.6g}"


def _candidate_picture(rgb: np.ndarray, best: dict, threshold: float) -> np.ndarray:
    """The best anchor's box, dashed and faded, with its score against the threshold: what the network
    came closest to calling a banana when the detection list is empty. ``rgb`` ``[H, W, 3]`` uint8."""
    x, y, w, h = best["box"].tolist()  # centre form, pixels
    if best["prob"] >= POS_THRESHOLD:
        label = f"best {best['prob']:.2f} < {threshold:g}"
    else:  # background even at threshold 0: below multibox_detection's own cut
        label = f"best {best['prob']:.1g} < {POS_THRESHOLD:g}"
    return draw_boxes(rgb, np.array([[x - w / 2, y - h / 2, x + w / 2, y + h / 2]]), [color_for(2)], width=2,
                      labels=[label], min_side=512, dashed=[True], opacity=CANDIDATE_OPACITY)


@handles_out_of_memory
@shows_errors
def detect(image: np.ndarray | None, threshold: float,
           request: gr.Request | None = None) -> tuple[np.ndarray, pd.DataFrame, str]:
    """Detections of the session's model: the image with boxes and scores, the raw table, and a summary
    (the latency; why the list is empty when it is; the best anchor's box worked out from its offsets)."""
    rgb = as_rgb_image(image, "image")
    net, which = sessions.active(request)
    if net is None:
        raise ValueError(bilingual(f"no detector yet: {which}", f"还没有可用的检测器：{which}"))
    x = torch.from_numpy(rgb).permute(2, 0, 1)
    start = time.perf_counter()
    rows = predict(net, x, threshold=float(threshold))[0].cpu()
    latency = (time.perf_counter() - start) * 1e3
    best = best_anchor(net, rgb)
    if len(rows):
        labels = [f"banana {s:.2f}" for s in rows[:, 1].tolist()]
        drawn = draw_boxes(rgb, rows[:, 2:].numpy(), [color_for(2)] * len(rows), width=2, labels=labels, min_side=512)
    else:  # an empty picture would look broken: show what came closest, marked as not a detection
        drawn = _candidate_picture(rgb, best, float(threshold))
    table = pd.DataFrame(rows.double().numpy().round(3), columns=["class", "score", "x1", "y1", "x2", "y2"])
    summary = (f"**{len(rows)} detection{'s' if len(rows) != 1 else ''}** with score ≥ {float(threshold):g}"
               + (_no_detection_hint(best["prob"], float(threshold)) + CANDIDATE_NOTE if len(rows) == 0 else "")
               + f" · {latency:.1f} ms on {next(net.parameters()).device} · weights: {which}"
               + sessions.dropped_note(request) + "\n\n" + detection_formula(best, len(rows) > 0))
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


def architecture_formula(table: pd.DataFrame, stage: float) -> str:
    """The anchor count of :func:`architecture`'s ``table`` (sum over stages of h_i · w_i · (n + m − 1),
    d2l 14.4), then stage ``stage``'s count and its anchors' sizes on the 256 × 256 input (d2l 14.4:
    width s√r, height s/√r, times the side)."""
    k = int(stage)  # 1..5, bound by its slider
    stages = table[table["stage"] != "total"]
    maps = [tuple(int(v) for v in str(f).split(" × ")) for f in stages["feature map"]]  # [(h_i, w_i)] * 5
    sizes, ratios = SIZES[k - 1], RATIOS[k - 1]
    n, m = len(sizes), len(ratios)
    pixels = sum(h * w for h, w in maps)
    (h_k, w_k), per_pixel = maps[k - 1], n + m - 1
    pairs = [(s, ratios[0]) for s in sizes] + [(sizes[0], r) for r in ratios[1:]]  # multibox_prior's n + m - 1
    shapes = [f"({BANANA_SIZE * s * r ** 0.5:.1f}, {BANANA_SIZE * s / r ** 0.5:.1f})" for s, r in pairs]
    squares = " + ".join(f"{h}^2" if h == w else f"{h} \\cdot {w}" for h, w in maps)
    # Rows short enough for a phone's width.
    return (f"$$\\begin{{aligned}}&\\sum_{{i=1}}^{{5}} h_i w_i\\,(n + m - 1) \\\\ &\\quad = ({squares}) \\cdot "
            f"({n} + {m} - 1) \\\\ &\\quad = {pixels} \\cdot {per_pixel} = {pixels * per_pixel}\\end{{aligned}}$$\n\n"
            f"$$h_{k} w_{k}\\,(n + m - 1) = {h_k} \\cdot {w_k} \\cdot {per_pixel} = {h_k * w_k * per_pixel}$$\n\n"
            f"$$\\begin{{aligned}}(w, h) &= {BANANA_SIZE}\\,(s\\sqrt{{r}},\\ s/\\sqrt{{r}}) \\\\ "
            f"&= {', '.join(shapes[:2])}, \\\\ &\\phantom{{=}}\\ {', '.join(shapes[2:])}\\end{{aligned}}$$")


def default_recipe(device: str | torch.device) -> dict:
    """The Train tab's starting settings on ``device``: the book's recipe on CUDA, :data:`QUICK_RUN` elsewhere."""
    return BOOK_RECIPE if torch.device(device).type == "cuda" else QUICK_RUN


def _curves(stream: Stream | None = None) -> go.Figure:
    """Above: every batch's loss (the book's ``calc_loss``, mean per image); below: the book's class
    error and bbox MAE per epoch, train and val. Both on a log scale, x in epochs with fractions
    (batch 4 of 16 in the first epoch is at 0.25), so the curve starts after the first batch."""
    history = stream.history if stream is not None else []
    xs, ys = stream.batch_curve() if stream is not None else ([], [])
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.22,
                        subplot_titles=("loss per batch (the book's calc_loss)", "class error and bbox MAE per epoch"))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) <= 60 else "lines", name="loss per batch",
                             marker={"size": 4}, line={"width": 1.5}), row=1, col=1)
    epochs = [h["epoch"] for h in history]
    for key, name, dash in [("class_err", "class error (train)", "solid"), ("val_class_err", "class error (val)", "dot"),
                            ("bbox_mae", "bbox MAE (train)", "solid"), ("val_bbox_mae", "bbox MAE (val)", "dot")]:
        fig.add_trace(go.Scatter(x=epochs, y=[h.get(key) for h in history], mode="lines+markers", name=name,
                                 line={"dash": dash}), row=2, col=1)
    fig.update_yaxes(type="log", dtick=1)  # a tick per decade: readable at this height
    return stacked_curves(fig, stream.epochs_trained() if stream is not None else 0)


TrainFrame = tuple[go.Figure, np.ndarray | None, str]  # curves, preview, status


def training_data(data: str) -> Path | None:
    """The folder to train on: the book's fetched bananas for ``"book"``, None (the offline stand-in,
    generated on first use) for ``"offline"``.

    Raises:
        ValueError: ``"book"`` while this machine does not have them; the message says how to fetch them.
    """
    if data != "book":
        return None
    folder = fetched("bananas")
    if folder is None:
        raise ValueError(bilingual(
            "the book's bananas are not on this machine yet: `python -m vision_core fetch bananas` fetches them "
            "(on a Space, the variable VISION_LAB_FETCH=bananas), or train on the offline stand-in",
            "本机还没有书中的香蕉数据：运行 `python -m vision_core fetch bananas` 下载（在 Space 上设置变量 "
            "VISION_LAB_FETCH=bananas），或者用离线替代数据训练"))
    return folder


# Both notes are recorded for the page's translations when the module loads: which one shows is
# decided again each time the Train tab opens (a Space may fetch the bananas after start-up).
_BOOK_DATA_HERE = tr("The book's bananas are on this machine.", "本机已有书中的香蕉数据。")
_BOOK_DATA_MISSING = tr("The book's bananas are not on this machine: `python -m vision_core fetch bananas` "
                        "fetches them.", "本机还没有书中的香蕉数据：运行 `python -m vision_core fetch bananas` 下载。")


def data_note() -> str:
    """Under the data choice: whether the book's bananas are here, and how to get them when not."""
    return _BOOK_DATA_HERE if fetched("bananas") is not None else _BOOK_DATA_MISSING


def refresh_data_note() -> dict:
    """The data choice's note as this machine now is (on opening the Train tab)."""
    return gr.update(info=data_note())


@handles_out_of_memory
@shows_errors
def train(epochs: float, batch_size: float, lr: float, num_train: float, optimizer: str = "sgd",
          data: str = "offline", progress: gr.Progress = gr.Progress(),
          request: gr.Request | None = None) -> Iterator[TrainFrame]:
    """Train a fresh TinySSD on the offline banana set, streaming curves, a preview and the status.

    The settings are bound by their components and checked by ``train_ssd``; ``data`` is
    ``"offline"`` (the generated stand-in) or ``"book"`` (the book's fetched bananas,
    :func:`training_data`). A run that trained at
    least one batch (finished or stopped) becomes this session's network, "mine", and the session's
    switch moves to it; the status says so ("shipped" is one click back beside Detect).
    """
    epochs, num_train, batch_size = int(epochs), int(num_train), int(batch_size)
    root = training_data(data)
    stream = Stream("batch", epochs=epochs)  # the pace measured in this run: no machine's speed is promised ahead
    with sessions.stops.running(request) as stop:
        yield _curves(stream), None, f"Reading the banana images, then training {num_train} images on {get_device()}…"
        train_set = load_bananas(root, split="train", limit=num_train)  # only what the run trains on
        val = load_bananas(root, split="val")
        net = TinySSD(1)
        records = train_ssd(train_set, val, net=net, epochs=epochs,
                            batch_size=batch_size, lr=lr, optimizer=optimizer, stop=stop)
        rate = None
        try:
            for record in records:
                progress(record.fraction, desc=f"step {record.step}/{record.total}")
                metrics = stream.read(record)
                rate = metrics.get("examples_per_s", rate)
                status = stream.status(record, training_status(record, metrics, current_epoch(record, epochs), epochs,
                                                               get_device()))
                if record.done:
                    status = f"{outcome(record, stop)} {status}" + _final_words(record, stream, epochs, num_train,
                                                                                 request, net, root is not None)
                    if rate:
                        sessions.note_speed(request, rate, f"{rate:.1f} images/s at batch {batch_size} on {get_device()}")
                yield _curves(stream), stream.preview, status
        finally:
            records.close()  # frees the trainer's memory if the page went away mid-run


def _final_words(record: Progress, stream: Stream, epochs: int, num_train: int, request: gr.Request | None,
                 net: TinySSD, book: bool = False) -> str:
    """The end of a run's last status: the last validation numbers, and where the network went
    (:meth:`SessionModels.adopt`, the one Stop rule of both training panels)."""
    last = stream.history[-1] if stream.history else {}
    words = (f" · val class error {last['val_class_err']:.2e}, val bbox MAE {last['val_bbox_mae']:.2e}"
             if "val_class_err" in last else "")
    description = (f"trained here: {trained_amount(record.step, record.total, epochs)} on {num_train} "
                   + ("of the book's images" if book else "images")
                   + (" (stopped early)" if stopped(record) else ""))
    return words + sessions.adopt(request, net, record.step, description, "Detect")


def learning_rate(optimizer: str) -> float:
    """The usual learning rate of ``optimizer`` (one of the radio's choices)."""
    return LEARNING_RATES[optimizer]


def stop_training(request: gr.Request | None = None) -> str:
    """Stop this session's training after its current batch."""
    return sessions.stops.press(request)


def _detect_if_shown(image: np.ndarray | None, threshold: float, request: gr.Request | None) -> tuple:
    """Detect's outputs redone with the network the session now uses; left as they are without a picture."""
    if image is None:
        return gr.skip(), gr.skip(), gr.skip()
    try:
        return detect(image, threshold, request)
    except gr.Error:
        return gr.skip(), gr.skip(), gr.skip()  # the picture's own error shows when the learner presses Detect


def training_ends(request: gr.Request | None = None) -> tuple:
    """After a run (finished, stopped or failed): Start active and Stop inactive again, and the
    switch as the session's slot says (on "mine" after a run that trained)."""
    return gr.update(interactive=True), gr.update(interactive=False), sessions.switch(request)


def redetect(image: np.ndarray | None, threshold: float, request: gr.Request | None = None) -> tuple:
    """Detect's view redone with the network the switch now picks (after a run)."""
    return _detect_if_shown(image, threshold, request)


def choose_weights(which: str, image: np.ndarray | None, threshold: float,
                   request: gr.Request | None = None) -> tuple:
    """The "shipped / mine" switch: Detect uses ``which`` in this session from now on ("mine" only
    when the session trained one); returns the switch as it now is and Detect's outputs redone
    (an unusable network's message shows as Detect's would)."""
    sessions.choose(request, which)
    shown = detect(image, threshold, request) if image is not None else (gr.skip(),) * 3
    return (sessions.switch(request), *shown)


def _recipe_values(recipe: dict) -> tuple:
    return recipe["epochs"], recipe["batch_size"], recipe["lr"], recipe["num_train"], recipe["optimizer"]


def book_recipe(request: gr.Request | None = None) -> tuple:
    """The controls set to the book's recipe, and its cost: images to train, and a time only as
    measured (this session's last run's speed), never promised."""
    work = BOOK_RECIPE["epochs"] * BOOK_RECIPE["num_train"]
    measured = sessions.speed(request)
    cost = (f"**The book's recipe:** {BOOK_RECIPE['epochs']} epochs × {BOOK_RECIPE['num_train']:,} images = "
            f"{work:,} images to train, and the 100 validation images scored after each epoch. ")
    if measured is None:
        cost += ("How long that takes is measured when it runs: the status then shows the time per batch on this "
                 "machine and the time left.")
    else:
        rate, text = measured
        cost += (f"Your last run here measured {text}: at that speed the training alone takes about "
                 f"{duration(work / rate)} (validation adds to it); the status shows the pace measured as it runs.")
    data = "book" if fetched("bananas") is not None else "offline"
    cost += (" It trains on the book's bananas, which are on this machine." if data == "book" else
             " The book's bananas are not on this machine, so it trains on the offline stand-in.")
    return (*_recipe_values(BOOK_RECIPE), data, cost)


def quick_run() -> tuple:
    """The controls set to :data:`QUICK_RUN`, and what it is."""
    note = (f"**A quick run:** {QUICK_RUN['epochs']} epochs × {QUICK_RUN['num_train']} images at batch "
            f"{QUICK_RUN['batch_size']}: the curve starts after the first batch, and Stop ends the run after the "
            "current one.")
    return (*_recipe_values(QUICK_RUN), note)


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
                    weights = weights_switch("ssd-weights", "detector", "检测器")
                    detect_btn = gr.Button(tr("Detect", "检测"), variant="primary", elem_id="ssd-detect-btn")
                    try_this("Set the threshold to 0, but first guess: do the extra boxes that NMS keeps sit on the "
                             "banana or on the background? The table lists their scores.",
                             "把阈值设为 0，但先猜一猜：NMS 额外保留下来的框是落在香蕉上，还是落在背景上？"
                             "表格里列出了它们的分数。", elem_id="ssd-detect-try")
                with gr.Column(scale=6, min_width=360):
                    first = detect(examples[first_name], 0.9) if net is not None else (
                        None, pd.DataFrame(columns=["class", "score", "x1", "y1", "x2", "y2"]), which)
                    summary = gr.Markdown(first[2], elem_id="ssd-summary", latex_delimiters=LATEX_DELIMITERS)
                    view = gr.Image(first[0], interactive=False, label=tr("Detections", "检测结果"), elem_id="ssd-view", height=420)
                    table = Dataframe(first[1], interactive=False, label=tr("Raw detections (pixels)", "原始检测结果（像素）"),
                                         elem_id="ssd-table")
            outputs = [view, table, summary]
            detect_btn.click(detect, [image, threshold], outputs, api_name="ssd_detect")
            rerun_on_picture_changes(detect, [image, threshold], outputs, image, example, show_example,
                                     controls=[threshold])
            weights.input(choose_weights, [weights, image, threshold], [weights, *outputs], api_name="ssd_weights")

        with gr.Tab(tr("Train", "训练"), id="ssd-train") as train_tab:
            recipe = default_recipe(get_device())
            with gr.Row():
                with gr.Column(scale=4, min_width=300):
                    with gr.Row():
                        quick_btn = gr.Button(tr("Quick run", "快速运行"), size="sm", elem_id="ssd-quick-run")
                        book_btn = gr.Button(tr("Book's recipe", "书中的配方"), size="sm", elem_id="ssd-book-recipe")
                    epochs = Slider(1, MAX_EPOCHS, value=recipe["epochs"], step=1, label=tr("Epochs (the book: 20)", "迭代周期（书中：20）"))
                    batch = Slider(1, 128, value=recipe["batch_size"], step=1, label=tr("Batch size (the book: 32)", "批量大小（书中：32）"))
                    optimizer = Radio([(tr("SGD (the book)", "SGD（书中）"), "sgd"), (tr("AdamW", "AdamW"), "adamw")],
                                         value=recipe["optimizer"], label=tr("Optimizer", "优化器"),
                                         info=tr("AdamW leaves the all-background start sooner",
                                                 "AdamW 更快摆脱全是背景的初始预测"))
                    lr = Slider(0.0005, 1.0, value=recipe["lr"], step=0.0005, label=tr("Learning rate (the book: 0.2)", "学习率（书中：0.2）"))
                    num_train = Slider(10, 1000, value=recipe["num_train"], step=10, label=tr("Training images (of 1,000)", "训练图像数（共 1,000 张）"))
                    data = Radio([(tr("Offline stand-in (generated)", "离线替代数据（生成）"), "offline"),
                                  (tr("The book's bananas (fetched)", "书中的香蕉数据（下载）"), "book")],
                                 value="offline", label=tr("Training data", "训练数据"), info=data_note(),
                                 elem_id="ssd-data")
                    with gr.Row():
                        start = gr.Button(tr("Start training", "开始训练"), variant="primary", elem_id="ssd-train-btn")
                        stop = gr.Button(tr("Stop", "停止"), variant="stop", interactive=False, elem_id="ssd-stop-btn")
                    recipe_note = gr.Markdown(tr(TRAIN_HINT, TRAIN_HINT_ZH), elem_id="ssd-recipe-note")
                    try_this("Stop a run after its first epoch, then go to Detect, where the weights switch now says "
                             "“mine”: how many bananas will your network find at threshold 0.9? Guess, look, then "
                             "switch back to “shipped”.",
                             "在第一个迭代周期结束后停止训练，然后转到“检测”，权重开关此时是“我的”：在阈值 0.9 下，"
                             "你的网络能找到几根香蕉？先猜，再看，然后切回“随附”。", elem_id="ssd-train-try")
                with gr.Column(scale=6, min_width=360):
                    train_status = gr.Markdown("Not started.", elem_id="ssd-train-status")
                    curves = gr.Plot(_curves(), label=tr("Loss per batch; class error and bbox MAE per epoch",
                                                         "每批的损失；每个迭代周期的类别误差和边界框 MAE"),
                                     elem_id="ssd-curves")
                    preview = gr.Image(None, interactive=False, label=tr("Detections on a validation image, each epoch",
                                                "每个迭代周期在一张验证集图像上的检测结果"),
                                       elem_id="ssd-preview", height=300)
            optimizer.input(learning_rate, optimizer, lr, api_visibility="private")
            settings = [epochs, batch, lr, num_train, optimizer]
            book_btn.click(book_recipe, None, [*settings, data, recipe_note], api_visibility="private")
            quick_btn.click(quick_run, None, [*settings, recipe_note], api_visibility="private")
            # Start and Stop show whether this session trains: the API's ssd_train is the middle event.
            start.click(training_begins, None, [start, stop], api_visibility="private").then(
                on_gpu(train, ssd_train_seconds), [*settings, data], [curves, preview, train_status],
                api_name="ssd_train", **HEAVY).then(
                training_ends, None, [start, stop, weights], api_visibility="private").then(
                redetect, [image, threshold], outputs, api_visibility="private")
            stop.click(stop_training, None, train_status, api_name="ssd_stop")
            train_tab.select(refresh_data_note, None, data, api_visibility="private")

        with gr.Tab(tr("Architecture", "网络结构"), id="ssd-arch") as arch_tab:
            gr.Markdown(tr("Five stages; each predicts classes and offsets for 4 anchors per cell of its feature map "
                           "(input 256 × 256).",
                           "五个阶段；每个阶段为其特征图的每个单元的 4 个锚框预测类别和偏移量（输入为 256 × 256）。"))
            stages = architecture()
            Dataframe(stages, interactive=False, label=tr("TinySSD stages", "TinySSD 的各个阶段"), elem_id="ssd-arch-table")
            arch_formula = formula(architecture_formula(stages, 1), elem_id="ssd-arch-formula")
            try_this("Before you move the stage slider to 5, predict how many anchors its 1 × 1 feature map has and "
                     "how much of the picture they cover; then look.",
                     "把阶段滑块移到 5 之前，先预测它 1 × 1 的特征图有多少个锚框、这些锚框覆盖图像的多大部分；然后再看。",
                     elem_id="ssd-arch-try")
            with gr.Row():
                stage = Slider(1, 5, value=1, step=1, label=tr("Show the anchors of stage", "显示锚框的阶段"))
                show = gr.Button(tr("Show anchors", "显示锚框"), elem_id="ssd-anchors-btn")
            anchor_view = gr.Image(None, interactive=False, label=tr("Centre cell's 4 anchors; white dots: every cell's centre",
                                            "中心单元的 4 个锚框；白点：每个单元的中心"),
                                   elem_id="ssd-anchor-view", height=420)
            show.click(stage_anchors, [image, stage], anchor_view, api_name="ssd_anchors")

            def show_stage(picture: np.ndarray | None, stage_value: float) -> np.ndarray:
                # The Detect tab's picture, or its first example when that one was cleared.
                return stage_anchors(examples[first_name] if picture is None else picture, stage_value)

            # Drawn when the section is opened (no empty box until a button is pressed), and when the
            # slider moves; rendering it at build would put a picture for an unopened tab in the page.
            arch_tab.select(show_stage, [image, stage], anchor_view, api_visibility="private")
            stage.input(show_stage, [image, stage], anchor_view, api_visibility="private", trigger_mode="always_last")
            stage.change(lambda value: architecture_formula(stages, value), stage, arch_formula,
                         api_visibility="private")
