"""Plotly figure helpers shared by the panels: a photo with labelled boxes drawn over it."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image

# The book draws boxes in blue, green, red, magenta, cyan; these are the same hues, a
# little darker so white label text stays readable on them.
PALETTE = ("#1f5fbf", "#1a8a3a", "#c62828", "#9c27b0", "#00838f", "#ef6c00", "#5d4037", "#37474f")
MAX_DISPLAY_SIDE = 1024  # larger photos are sent downscaled; coordinates stay in full-size pixels
FIGURE_HEIGHT = 520


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
    fig = go.Figure(image_trace(image))
    dashed = dashed if dashed is not None else [False] * len(labels)
    for (x1, y1, x2, y2), label, color, dash in zip(np.asarray(boxes).tolist(), labels, colors, dashed):
        fig.add_trace(
            go.Scatter(
                x=[x1, x2, x2, x1, x1],
                y=[y1, y1, y2, y2, y1],
                mode="lines",
                line=dict(color=color, width=3 if label else 1, dash="dash" if dash else "solid"),
                name=label or "box",
                hovertemplate=f"{label}<br>x1 {x1:.1f}, y1 {y1:.1f}<br>x2 {x2:.1f}, y2 {y2:.1f}<extra></extra>",
            )
        )
        if not label:
            continue  # unlabelled boxes (e.g. hundreds of proposals) stay uncluttered
        fig.add_annotation(
            x=x1, y=y1, text=label, showarrow=False, xanchor="left", yanchor="top",
            font=dict(color="white", size=12), bgcolor=color, borderpad=2,
        )
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


def draw_boxes(image: np.ndarray, boxes: np.ndarray, colors: Sequence[str], width: int = 2,
               labels: Sequence[str] | None = None, min_side: int = 0) -> np.ndarray:
    """Boxes burnt into a copy of the photo (for clickable ``gr.Image`` views), via torchvision.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        boxes: ``[K, 4]`` corner-format boxes in pixels (clipped to the image here).
        min_side: small images are first enlarged (nearest neighbour, whole factor) until
            their shorter side reaches this, so labels stay legible on a 256 px image.
    """
    import torch
    from torchvision.utils import draw_bounding_boxes

    factor = max(1, min_side // min(image.shape[:2])) if min_side else 1
    if factor > 1:
        image = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    h, w = image.shape[:2]
    if len(boxes) == 0:
        return image
    t = torch.as_tensor(np.asarray(boxes, dtype=np.float32)) * factor
    t[:, 0::2] = t[:, 0::2].clamp(0, w - 1)
    t[:, 1::2] = t[:, 1::2].clamp(0, h - 1)
    out = draw_bounding_boxes(
        torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), t, labels=list(labels) if labels else None,
        colors=list(colors), width=width,
    )
    return out.permute(1, 2, 0).numpy()
