"""Pictures shared by the panels: a photo with labelled boxes, as a plotly figure or burnt into the picture."""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageColor, ImageDraw, ImageFont

from .common import MAX_IMAGE_SIDE

# The book draws boxes in blue, green, red, magenta, cyan; these are the same hues, a
# little darker so white label text stays readable on them.
PALETTE = ("#1f5fbf", "#1a8a3a", "#c62828", "#9c27b0", "#00838f", "#ef6c00", "#5d4037", "#37474f")
MAX_DISPLAY_SIDE = 1024  # larger photos are sent downscaled; coordinates stay in full-size pixels
FIGURE_HEIGHT = 520
# draw_boxes enlarges a small picture (SSD's views: to 512 px) at most to this many pixels: a
# 256 x 256 banana becomes 512 x 512, a 2 x 40 strip stops at 456 x 9120 instead of 512 x 10240.
MAX_ENLARGED_PIXELS = 2048 * 2048
# draw_boxes' labels: text 1/32 of the picture's longer side high (16 px on SSD's 512 px views),
# at least 12 px and at most 48 px (a label on a 9120 px strip need not be 285 px high).
LABEL_TEXT_FRACTION = 1 / 32
LABEL_TEXT_PX = (12, 48)
MAX_SPREAD_LABELS = 32  # the first labels are kept from covering each other; more could not all be apart anyway


def color_for(index: int) -> str:
    """The palette colour of the ``index``-th box (stable while other rows are edited)."""
    return PALETTE[index % len(PALETTE)]


def image_trace(image: np.ndarray) -> go.Image:
    """A plotly Image trace of an RGB ``uint8`` array ``[H, W, 3]``, in full-size pixel coordinates.

    The photo travels as a JPEG data URI (tens of kB) instead of a JSON pixel array
    (megabytes). Pixel centres sit on integer coordinates, as in matplotlib's ``imshow``
    that the book uses, so the book's box coordinates land on the same pixels.
    """
    height, width = image.shape[:2]
    scale = max(height, width) / MAX_DISPLAY_SIDE
    pil = Image.fromarray(image)
    if scale > 1:
        pil = pil.resize((max(1, round(width / scale)), max(1, round(height / scale))), Image.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=88)
    dx, dy = width / pil.width, height / pil.height
    return go.Image(
        source="data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
        x0=0.5 * dx - 0.5,
        y0=0.5 * dy - 0.5,
        dx=dx,
        dy=dy,
        hovertemplate="x %{x:.0f}, y %{y:.0f}<extra></extra>",
        name="image",
    )


def _box_trace(box: Sequence[float], label: str, color: str, dash: bool) -> dict:
    """One box ``(x1, y1, x2, y2)`` in pixels as a closed outline with its own hover text.

    A plain dict: the Figure validates it once, where a ``go.Scatter`` would be validated twice.
    """
    x1, y1, x2, y2 = box
    return dict(
        type="scatter",
        x=[x1, x2, x2, x1, x1],
        y=[y1, y1, y2, y2, y1],
        mode="lines",
        line=dict(color=color, width=3 if label else 1, dash="dash" if dash else "solid"),
        name=label or "box",
        hovertemplate=f"{label}<br>x1 {x1:.1f}, y1 {y1:.1f}<br>x2 {x2:.1f}, y2 {y2:.1f}<extra></extra>",
    )


def _box_annotation(box: Sequence[float], label: str, color: str) -> dict:
    """The label of one box, white on its colour, at its upper-left corner ``(x1, y1)``."""
    return dict(
        x=box[0], y=box[1], text=label, showarrow=False, xanchor="left", yanchor="top",
        font=dict(color="white", size=12), bgcolor=color, borderpad=2,
    )


def boxes_figure(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[str],
    colors: Sequence[str],
    dashed: Sequence[bool] | None = None,
    title: str = "",
    height: int = FIGURE_HEIGHT,
) -> go.Figure:
    """The photo with one outlined, labelled rectangle per box.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        boxes: ``[K, 4]`` corner-format boxes in pixels.
        labels: ``K`` labels, written at each box's upper-left corner.
        colors: ``K`` CSS colours.
        dashed: ``K`` flags; a dashed outline marks a box drawn clipped to the image.
    """
    dashed = dashed if dashed is not None else [False] * len(labels)
    rows = list(zip(np.asarray(boxes).tolist(), labels, colors, dashed))
    # Every box's trace and label first, then one Figure: plotly re-validates the whole figure on
    # each add_trace / add_annotation, so adding them one by one cost the square of the boxes.
    traces = [_box_trace(box, label, color, dash) for box, label, color, dash in rows]
    # Unlabelled boxes (e.g. hundreds of proposals) stay uncluttered: no annotation.
    annotations = [_box_annotation(box, label, color) for box, label, color, _ in rows if label]
    fig = go.Figure(data=[image_trace(image), *traces], layout=dict(annotations=annotations))
    h, w = image.shape[:2]
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=36 if title else 10, b=10),
        title=dict(text=title, font=dict(size=14)) if title else None,
        showlegend=False,
        dragmode="pan",
        plot_bgcolor="white",
    )
    fig.update_xaxes(range=[-0.5, w - 0.5], constrain="domain", showgrid=False, zeroline=False)
    fig.update_yaxes(range=[h - 0.5, -0.5], scaleanchor="x", constrain="domain", showgrid=False, zeroline=False)
    return fig


def drawing_scale(height: int, width: int, min_side: int) -> float:
    """What :func:`draw_boxes` resizes a ``height x width`` picture by: a whole enlargement until the
    shorter side reaches ``min_side``, kept within MAX_ENLARGED_PIXELS and MAX_IMAGE_SIDE; a shrink
    to MAX_IMAGE_SIDE when the picture itself is longer (a caller that skipped ``as_rgb_image``)."""
    longest = max(height, width)
    if longest > MAX_IMAGE_SIDE:
        return MAX_IMAGE_SIDE / longest
    wanted = min_side // min(height, width) if min_side else 1
    # Without these caps an 8 x 20000 strip asked for 512 px would grow 64 times each way (GBs).
    allowed = min(MAX_IMAGE_SIDE // longest, math.isqrt(MAX_ENLARGED_PIXELS // (height * width)))
    return max(1, min(wanted, allowed))


def draw_boxes(image: np.ndarray, boxes: np.ndarray, colors: Sequence[str], width: int = 2,
               labels: Sequence[str] | None = None, min_side: int = 0,
               dashed: Sequence[bool] | None = None, opacity: float = 1.0) -> np.ndarray:
    """Boxes burnt into a copy of the photo (for clickable ``gr.Image`` views), via torchvision.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        boxes: ``[K, 4]`` corner-format boxes in pixels (clipped to the image here).
        labels: ``K`` labels (empty ones are not drawn), each on a filled tab of its box's colour
            in black or white text, whichever contrasts more (:func:`text_color`).
        dashed: ``K`` flags; a flagged box gets a dashed outline (a box drawn clipped to the image).
        opacity: outlines and labels are blended into the photo at this opacity, so a box that
            is only a candidate (below the score threshold) reads as faded, the photo showing through.
        min_side: small images are first enlarged (nearest neighbour, whole factor) until
            their shorter side reaches this, so labels stay legible on a 256 px image; never
            beyond MAX_ENLARGED_PIXELS pixels or MAX_IMAGE_SIDE a side.

    Returns:
        ``[H', W', 3]`` uint8, with ``max(H', W') <= MAX_IMAGE_SIDE`` whatever comes in.
    """
    import torch
    from torchvision.utils import draw_bounding_boxes

    height, width_px = image.shape[:2]
    scale = drawing_scale(height, width_px, min_side)
    if scale > 1:
        image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    elif scale < 1:
        size = (max(1, round(width_px * scale)), max(1, round(height * scale)))
        image = np.array(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.BILINEAR))
    h, w = image.shape[:2]
    if len(boxes) == 0:
        return image
    # Box coordinates follow the picture's resize, axis by axis ([4]: x, y, x, y).
    t = torch.as_tensor(np.asarray(boxes, dtype=np.float32)) * torch.tensor([w / width_px, h / height] * 2)
    t[:, 0::2] = t[:, 0::2].clamp(0, w - 1)
    t[:, 1::2] = t[:, 1::2].clamp(0, h - 1)
    dash = torch.as_tensor(list(dashed) if dashed is not None else [False] * len(t), dtype=torch.bool)
    solid = ~dash
    out = draw_bounding_boxes(
        torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), t[solid],
        colors=[c for c, s in zip(colors, solid.tolist()) if s], width=width,
    ).permute(1, 2, 0).numpy() if solid.any() else image.copy()
    if dash.any() or (labels and any(labels)):
        picture = Image.fromarray(np.ascontiguousarray(out))
        _draw_dashed(picture, t[dash].tolist(), [c for c, d in zip(colors, dash.tolist()) if d], width)
        if labels and any(labels):
            _draw_labels(picture, t[:, :2].tolist(), labels, colors)
        out = np.asarray(picture)
    if opacity < 1:
        out = (opacity * out.astype(np.float32) + (1 - opacity) * image.astype(np.float32)).round().astype(np.uint8)
    return out


def _draw_dashed(picture: Image.Image, boxes: Sequence[Sequence[float]], colors: Sequence[str], width: int) -> None:
    """Dashed outlines, ``width`` px thick, along the inside of each ``(x1, y1, x2, y2)`` box (as
    torchvision draws solid ones): dashes of 4 line widths (at least 8 px) with gaps half as long,
    so a clipped box reads as "cut here" at any picture size.

    Args:
        picture: edited in place.
        boxes: ``K`` boxes in the picture's pixels, already clipped to it.
        colors: ``K`` CSS colours.
    """
    draw = ImageDraw.Draw(picture)
    dash = max(8, 4 * width)
    period = dash + dash // 2
    for (x1, y1, x2, y2), color in zip(boxes, colors):
        x1, y1, x2, y2 = int(x1), int(y1), int(x2), int(y2)
        for start in range(x1, x2 + 1, period):  # top and bottom edges
            end = min(start + dash - 1, x2)
            draw.rectangle((start, y1, end, min(y1 + width - 1, y2)), fill=color)
            draw.rectangle((start, max(y2 - width + 1, y1), end, y2), fill=color)
        for start in range(y1, y2 + 1, period):  # left and right edges
            end = min(start + dash - 1, y2)
            draw.rectangle((x1, start, min(x1 + width - 1, x2), end), fill=color)
            draw.rectangle((max(x2 - width + 1, x1), start, x2, end), fill=color)


def text_color(color: str) -> str:
    """Black or white, whichever contrasts more with the CSS colour ``color`` (WCAG 2 relative luminance)."""
    channels = [c / 255 for c in ImageColor.getrgb(color)[:3]]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    # Contrast with black is (L + 0.05) / 0.05, with white 1.05 / (L + 0.05).
    return "black" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "white"


@functools.lru_cache(maxsize=8)
def _label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's bundled font at ``size`` px (no font file needed); its bitmap font where FreeType is missing.
    try:
        return ImageFont.load_default(size)
    except ImportError:
        return ImageFont.load_default()


def _draw_labels(picture: Image.Image, corners: Sequence[Sequence[float]], labels: Sequence[str],
                 colors: Sequence[str]) -> None:
    """Each label on a filled tab of its box's colour just above the box's upper-left corner (inside
    the box where the picture's top leaves no room), in black or white text, whichever contrasts more
    with that colour: readable on any photo (a coloured text straight on the photo was not: red on
    purple bananas), and off the object. A tab that would cover an earlier one (anchors sharing a
    centre) goes just below it instead, so the first MAX_SPREAD_LABELS stack like a legend. Tabs stay
    inside the picture.

    Args:
        picture: the drawn picture, edited in place.
        corners: ``K`` ``(x1, y1)`` pairs in the picture's pixels.
        labels, colors: ``K`` each; empty labels are not drawn.
    """
    low, high = LABEL_TEXT_PX
    font = _label_font(int(min(max(round(max(picture.size) * LABEL_TEXT_FRACTION), low), high)))
    draw = ImageDraw.Draw(picture)
    pad = max(2, round(getattr(font, "size", low) / 6))
    placed: list[tuple[int, int, int, int]] = []  # tabs drawn so far, (x1, y1, x2, y2) exclusive
    for (x1, y1), label, color in zip(corners, labels, colors):
        if not label:
            continue
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tab_w, tab_h = right - left + 2 * pad, bottom - top + 2 * pad
        x = min(max(int(x1), 0), max(picture.width - tab_w, 0))
        y = int(y1) - tab_h + 1 if int(y1) >= tab_h - 1 else min(max(int(y1), 0), max(picture.height - tab_h, 0))
        if len(placed) < MAX_SPREAD_LABELS:
            y = _below_tabs(placed, x, y, tab_w, tab_h, picture.height)
            placed.append((x, y, x + tab_w, y + tab_h))
        draw.rectangle((x, y, x + tab_w - 1, y + tab_h - 1), fill=color)
        draw.text((x + pad - left, y + pad - top), label, fill=text_color(color), font=font)


def _below_tabs(placed: Sequence[tuple[int, int, int, int]], x: int, y: int, w: int, h: int, height: int) -> int:
    """The top of a ``w x h`` tab at ``(x, y)`` moved down past every placed tab it would overlap
    (at most one move per placed tab), kept inside a picture ``height`` pixels high."""
    for _ in range(len(placed)):
        hits = [bottom for left, top, right, bottom in placed if left < x + w and x < right and top < y + h and y < bottom]
        if not hits:
            break
        y = max(hits)
    return min(y, max(height - h, 0))
