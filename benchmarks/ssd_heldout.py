"""How a TinySSD generalises: its own generator's val split against bananas drawn another way.

    python -m benchmarks.ssd_heldout [--weights NAME] [--device cpu] [--val-data DIR] [--json PATH] [--out PNG]

A detector trained on ``vision_core.data.bananas`` can score near 1 on that generator's val
split and still miss bananas drawn differently. This measures the registered weights
(default the shipped ``tiny_ssd_bananas``) on (a) the generated val split, (b) the held-out
set of ``vision_core.data.bananas_heldout`` (other shapes, colours, sizes, occluders and
photos), and (c) its banana-free negatives:

* COCO mAP (IoU 0.50:0.95) and mAP@0.5, from ``vision_core.ssd.evaluate_ssd``;
* the share of images whose top-scoring box has IoU >= 0.5 with the truth and a score >= 0.9
  (what the book's ``display(..., threshold=0.9)`` would show as a correct box), and the share
  at any score;
* the median top score, and how many images get no detection row at all;
* on the negatives, how many images get a box of score >= 0.5 (false boxes).

``--out`` also draws the first images of each set with the truth (green) and the top box with
its score (white, at any score; none when the image has no detection row).

Quality, not speed: the numbers do not depend on the machine beyond float rounding (CPU by
default: fp32, no autocast).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from benchmarks.common import machine_line, print_table, save_labelled_grid
from vision_core.checkpoints import SSD_WEIGHTS, load_tiny_ssd
from vision_core.data.bananas import load_bananas
from vision_core.data.bananas_heldout import load_heldout_bananas
from vision_core.device import get_device, resolve_device
from vision_core.ssd import evaluate_ssd, predict

BOOK_THRESHOLD = 0.9  # the book displays detections at 0.9
FALSE_BOX_SCORE = 0.5
IOU_HIT = 0.5

# measure()'s keys, in the table's order, with how each is shown.
_ROWS = (
    ("map", "COCO mAP (IoU 0.50:0.95)", "{:.3f}"),
    ("map_50", "mAP@0.5", "{:.3f}"),
    ("correct_at_0.9", "top box IoU >= 0.5 and score >= 0.9", "{:.1%}"),
    ("top_iou_0.5", "top box IoU >= 0.5, any score", "{:.1%}"),
    ("median_top_score", "median top score", "{:.3f}"),
    ("no_rows", "images with no detection row", "{:.0f}"),
    ("false_box_images", "negatives with a box of score >= 0.5", "{:.0f}"),
)


def _top_rows(net: nn.Module, images: Tensor, batch_size: int) -> Tensor:
    """Each image's best detection: ``Tensor[N, 6]`` rows ``(class, score, x1, y1, x2, y2)`` in pixels.

    An image with no row (every anchor background or below ``multibox_detection``'s 0.01)
    gets ``(-1, 0, 0, 0, 0, 0)``. ``predict`` sorts rows by decreasing score: the first is the top.
    """
    rows = predict(net, images, threshold=0.0, batch_size=batch_size)
    empty = torch.tensor([-1.0, 0, 0, 0, 0, 0])
    return torch.stack([r[0] if len(r) else empty for r in rows])  # one row per image, no loop over boxes


def _pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of ``a[i]`` with ``b[i]``: ``Tensor[N, 4]`` xyxy twice -> ``Tensor[N]`` (0 for empty boxes)."""
    lo, hi = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (hi - lo).clamp(min=0).prod(dim=1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clamp(min=0).prod(dim=1)
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def measure(net: nn.Module, images: Tensor, labels: Tensor, negatives: Tensor | None = None,
            device: str | torch.device | None = None, batch_size: int = 32) -> dict[str, float]:
    """How well ``net`` finds the one banana of each image, and whether it boxes banana-free ones.

    Args:
        net (TinySSD): the detector; moved to ``device``.
        images (Tensor[N, 3, H, W]): uint8 or float ``0..255``, one object each.
        labels (Tensor[N, 1, 5]): normalised ``(class, x1, y1, x2, y2)`` (the first row is the truth).
        negatives (Tensor[M, 3, H, W], optional): banana-free images.
        device: None means :func:`vision_core.device.get_device`.
        batch_size (int): images per forward pass.

    Returns:
        dict[str, float]: ``images`` (N); ``map`` and ``map_50`` (COCO, from ``evaluate_ssd``);
        ``correct_at_0.9`` and ``top_iou_0.5``, shares in ``[0, 1]`` of images whose top box
        has IoU >= 0.5 with the truth and a score >= 0.9, resp. at any score;
        ``median_top_score`` (0 for an image with no row); ``no_rows``, the count of images with
        no detection row; with ``negatives`` also ``negatives`` (M) and ``false_box_images``, the
        count of negatives with a box of score >= 0.5.
    """
    device = get_device() if device is None else resolve_device(device)
    net.to(device)
    result = {"images": float(len(images))}
    result.update({k: v for k, v in evaluate_ssd(net, images, labels, device=device, batch_size=batch_size).items()
                   if k in ("map", "map_50")})
    top = _top_rows(net, images, batch_size)
    height, width = images.shape[-2:]
    truth = labels[:, 0, 1:].float() * torch.tensor([width, height, width, height], dtype=torch.float32)
    hit = (_pairwise_iou(top[:, 2:], truth) >= IOU_HIT) & (top[:, 0] >= 0)
    result["correct_at_0.9"] = int((hit & (top[:, 1] >= BOOK_THRESHOLD)).sum()) / len(hit)  # exact shares
    result["top_iou_0.5"] = int(hit.sum()) / len(hit)
    result["median_top_score"] = float(torch.quantile(top[:, 1], 0.5))
    result["no_rows"] = float((top[:, 0] < 0).sum())
    if negatives is not None:
        found = predict(net, negatives, threshold=FALSE_BOX_SCORE, batch_size=batch_size) if len(negatives) else []
        result["negatives"] = float(len(negatives))
        result["false_box_images"] = float(sum(len(r) > 0 for r in found))
    return result


def _tiles(net: nn.Module, images: Tensor, labels: Tensor | None, name: str, count: int) -> list[tuple[str, object]]:
    """The first ``count`` images, each with its truth (green) and top box (white, with its score)."""
    from torchvision.utils import draw_bounding_boxes

    from vision_core.ssd import draw_detections

    top = _top_rows(net, images[:count], count)
    tiles = []
    for i in range(min(count, len(images))):
        picture = torch.as_tensor(images[i]).to(torch.uint8)
        if labels is not None:
            truth = labels[i, :1, 1:] * torch.tensor([picture.shape[2], picture.shape[1]] * 2)
            picture = draw_bounding_boxes(picture, truth, colors="lime", width=1)
        rows = top[i:i + 1] if top[i, 0] >= 0 else top[:0]
        tiles.append((f"{name} #{i}: top {float(top[i, 1]):.2f}", draw_detections(picture, rows)))
    return tiles


SIZE_BUCKETS = ((0.0, 0.15), (0.15, 0.22), (0.22, 0.30), (0.30, 1.01))  # the box's longer side / the image's


def by_size(net: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 32) -> list[list[str]]:
    """Table rows per banana size (the true box's longer side over the image's): how many images,
    the share whose top box is right (IoU >= 0.5), its median score, the share right at >= 0.9."""
    top = _top_rows(net, images, batch_size)
    height, width = images.shape[-2:]
    truth = labels[:, 0, 1:].float() * torch.tensor([width, height, width, height], dtype=torch.float32)
    side = torch.maximum((truth[:, 2] - truth[:, 0]) / width, (truth[:, 3] - truth[:, 1]) / height)  # [N]
    hit = (_pairwise_iou(top[:, 2:], truth) >= IOU_HIT) & (top[:, 0] >= 0)
    rows = []
    for lo, hi in SIZE_BUCKETS:
        m = (side >= lo) & (side < hi)
        if m.any():
            rows.append([f"{lo:.0%}-{min(hi, 1):.0%}", f"{int(m.sum())}", f"{hit[m].float().mean():.0%}",
                         f"{top[m, 1].median():.2f}", f"{(hit[m] & (top[m, 1] >= BOOK_THRESHOLD)).float().mean():.0%}"])
    return rows


def _cell(metrics: dict[str, float], key: str, fmt: str) -> str:
    if key not in metrics:
        return "-"
    text = fmt.format(metrics[key])
    if key == "no_rows":
        text += f" / {metrics['images']:.0f}"
    elif key == "false_box_images":
        text += f" / {metrics['negatives']:.0f}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=SSD_WEIGHTS, help=f"registered TinySSD (default: {SSD_WEIGHTS})")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    parser.add_argument("--seed", type=int, default=0, help="the held-out set's seed (default: 0)")
    parser.add_argument("--images", type=int, default=200, help="held-out images (default: 200)")
    parser.add_argument("--negatives", type=int, default=200, help="banana-free images (default: 200)")
    parser.add_argument("--val-data", type=Path,
                        help="read the val split from this folder in the book's layout (e.g. the cache of the "
                             "generator version the weights were trained on, or the book's archive) instead of "
                             "load_bananas' current cache")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    parser.add_argument("--out", type=Path, help="also draw the first 6 images of each set, truth and top box, "
                        "into this PNG (e.g. docs/ssd-heldout.png)")
    args = parser.parse_args()
    print(machine_line())
    device = resolve_device(args.device)
    net, entry = load_tiny_ssd(args.weights, device=device)
    val_images, val_labels = load_bananas(args.val_data, split="val")
    images, labels, negatives = load_heldout_bananas(seed=args.seed, num_images=args.images,
                                                     num_negatives=args.negatives)
    results = {
        "val": measure(net, val_images, val_labels, device=device),
        "heldout": measure(net, images, labels, negatives, device=device),
    }
    print(f"weights: {entry.name}, device: {device.type}")
    val_name = "generated val split" if args.val_data is None else f"val split of {args.val_data.name}"
    header = ["metric", f"{val_name} ({len(val_images)})",
              f"held-out, seed {args.seed} ({len(images)} + {len(negatives)} negatives)"]
    print_table([[name, _cell(results["val"], key, fmt), _cell(results["heldout"], key, fmt)]
                 for key, name, fmt in _ROWS], header)
    print("held-out images by the banana's size (its box's longer side over the image's):")
    print_table(by_size(net, images, labels), ["size", "images", "top box right", "median top score",
                                               "right at >= 0.9"])
    if args.json is not None:
        payload = {"machine": machine_line(), "weights": entry.name, "device": device.type,
                   "val_data": None if args.val_data is None else str(args.val_data), "heldout_seed": args.seed,
                   **results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.out is not None:
        rows = [_tiles(net, val_images, val_labels, "val", 6), _tiles(net, images, labels, "held-out", 6),
                _tiles(net, negatives, None, "banana-free", 6)]
        save_labelled_grid(rows, (256, 256), str(args.out))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
