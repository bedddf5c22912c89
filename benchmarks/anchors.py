"""Anchors, labelling, NMS and RoI pooling: vision_core against the book's functions (d2l) and torchvision.

    python -m benchmarks.anchors

The workloads are the issue's: TinySSD's 5,444 anchors on a 256 x 256 image, batch 32.
Every row is measured in this run, on the named device; ratio = baseline time / ours
(above 1: ours is faster). The d2l rows need the oracle: pip install --no-deps d2l==1.0.3.
"""

from __future__ import annotations

import torch
import torchvision.ops as tv

import vision_core as vc
from benchmarks.common import devices, fmt_time, machine_line, print_table, timeit

TINYSSD_SIZES = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
TINYSSD_FMAPS = [32, 16, 8, 4, 1]
BATCH = 32


def tinyssd_anchors(device: torch.device, fmaps=TINYSSD_FMAPS) -> torch.Tensor:
    """TinySSD's anchors: ``Tensor[1, 5444, 4]`` for a 256 x 256 input (feature maps 32 ... 1)."""
    return torch.cat(
        [vc.multibox_prior(torch.zeros(1, 1, f, f, device=device), s, [1, 2, 0.5])
         for f, s in zip(fmaps, TINYSSD_SIZES)], dim=1)


def random_labels(num_gt: int, device: torch.device, seed: int = 0, batch: int = BATCH) -> torch.Tensor:
    """``Tensor[batch, num_gt, 5]`` rows (class, x1, y1, x2, y2), normalised."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, num_gt, 2, generator=g) * 0.7
    wh = 0.05 + torch.rand(batch, num_gt, 2, generator=g) * 0.25
    cls = torch.randint(0, 3, (batch, num_gt, 1), generator=g).float()
    return torch.cat([cls, xy, (xy + wh).clamp(max=1)], dim=-1).to(device)


def detector_outputs(device: torch.device, seed: int = 0, batch: int = BATCH, num_anchors: int = 5444):
    """Class probabilities ``[batch, 2, A]`` and offsets ``[batch, 4A]`` like a trained TinySSD's:
    most anchors are background."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, 2, num_anchors, generator=g)
    logits[:, 0] += 3
    offsets = torch.randn(batch, num_anchors * 4, generator=g) * 0.1
    return torch.softmax(logits, 1).to(device), offsets.to(device)


def random_boxes(n: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 900
    wh = 5 + torch.rand(n, 2, generator=g) * 100
    return torch.cat([xy, xy + wh], dim=-1).to(device), torch.rand(n, generator=g).to(device)


def main() -> None:
    print(machine_line())  # absolute times mean little without the machine they came from
    from d2l import torch as d2l

    rows = []

    def add(workload, device, ours, baseline_name, baseline, repeat=5):
        t_ours = timeit(ours, device, repeat=repeat)
        t_base = timeit(baseline, device, repeat=repeat)
        rows.append([workload, device.type, fmt_time(t_ours), f"{baseline_name} {fmt_time(t_base)}", f"{t_base / t_ours:.2f}x"])

    for device in devices():
        image = torch.zeros(1, 3, 561, 728, device=device)
        add("multibox_prior 561 x 728, 3 sizes x 3 ratios", device,
            lambda: vc.multibox_prior(image, [0.75, 0.5, 0.25], [1, 2, 0.5]),
            "d2l", lambda: d2l.multibox_prior(image, [0.75, 0.5, 0.25], [1, 2, 0.5]))

        anchors = tinyssd_anchors(device)
        for num_gt in (1, 10):
            labels = random_labels(num_gt, device)
            add(f"multibox_target batch 32 x 5444 anchors x {num_gt} GT", device,
                lambda: vc.multibox_target(anchors, labels), "d2l", lambda: d2l.multibox_target(anchors, labels))

        cls_probs, offsets = detector_outputs(device)
        add("multibox_detection batch 32 x 5444 anchors", device,
            lambda: vc.multibox_detection(cls_probs, offsets, anchors), "d2l",
            lambda: d2l.multibox_detection(cls_probs, offsets, anchors), repeat=3)

        for n in (1000, 10000):
            boxes, scores = random_boxes(n, device)
            add(f"nms {n} boxes, threshold 0.5", device, lambda: vc.nms(boxes, scores, 0.5),
                "torchvision nms", lambda: tv.nms(boxes, scores, 0.5))
        boxes, scores = random_boxes(3000, device)
        add("nms 3000 boxes, threshold 0.5", device, lambda: vc.nms(boxes, scores, 0.5),
            "d2l nms (a host sync per kept box)", lambda: d2l.nms(boxes, scores, 0.5))

        g = torch.Generator().manual_seed(6)
        features = torch.rand(2, 64, 50, 50, generator=g).to(device)
        rois = torch.cat([torch.randint(0, 2, (128, 1), generator=g).float(), random_boxes(128, torch.device("cpu"))[0] / 3],
                         dim=1).to(device)
        add("roi_pool_grid 128 RoIs, 64 x 50 x 50, 7 x 7 (teaching path)", device,
            lambda: vc.roi_pool_grid(features, rois, 7, spatial_scale=1 / 8),
            "torchvision roi_pool", lambda: tv.roi_pool(features, rois, 7, spatial_scale=1 / 8))
    print_table(rows, ["workload", "device", "vision_core", "baseline", "ratio"])


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
