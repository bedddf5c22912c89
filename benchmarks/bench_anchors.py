"""Anchors, labelling, NMS and RoI pooling: vision_core against the book's functions (d2l) and torchvision.

    python -m benchmarks.bench_anchors

Every row is measured in this run, on the named device; ratio = baseline time / ours
(above 1: ours is faster). The d2l rows need the oracle: pip install --no-deps d2l==1.0.3.
"""

from __future__ import annotations

import torch
import torchvision.ops as tv

import vision_core as vc
from benchmarks.common import devices, fmt_time, print_table, timeit

TINYSSD_ANCHORS = 5444  # TinySSD on a 256 x 256 image


def _boxes(n: int, *lead: int, device: torch.device, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(*lead, n, 2, generator=g) * 0.8 * scale
    wh = (0.02 + torch.rand(*lead, n, 2, generator=g) * 0.3) * scale
    return torch.cat([xy, xy + wh], dim=-1).to(device)


def main() -> None:
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

        anchors = _boxes(TINYSSD_ANCHORS, device=device)[None]  # [1, A, 4]
        gt = _boxes(4, 32, device=device, seed=1)  # [32, 4, 4]
        labels = torch.cat([torch.zeros(32, 4, 1, device=device), gt], dim=-1)
        add("multibox_target batch 32, 5444 anchors, 4 boxes", device,
            lambda: vc.multibox_target(anchors, labels), "d2l", lambda: d2l.multibox_target(anchors, labels))

        cls_probs = torch.softmax(torch.randn(32, 2, TINYSSD_ANCHORS, generator=torch.Generator().manual_seed(2)), 1).to(device)
        offsets = (torch.randn(32, TINYSSD_ANCHORS * 4, generator=torch.Generator().manual_seed(3)) * 0.1).to(device)
        add("multibox_detection batch 32, 5444 anchors", device,
            lambda: vc.multibox_detection(cls_probs, offsets, anchors), "d2l",
            lambda: d2l.multibox_detection(cls_probs, offsets, anchors), repeat=3)

        boxes, scores = _boxes(3000, device=device, seed=4), torch.rand(3000, generator=torch.Generator().manual_seed(5)).to(device)
        add("nms 3000 boxes, threshold 0.5", device, lambda: vc.nms(boxes, scores, 0.5),
            "d2l (a host sync per kept box)", lambda: d2l.nms(boxes, scores, 0.5))

        features = torch.rand(2, 64, 50, 50, generator=torch.Generator().manual_seed(6)).to(device)
        rois = torch.cat([torch.randint(0, 2, (128, 1)).float(), _boxes(128, device=torch.device("cpu"), seed=7, scale=400.0)], dim=1).to(device)
        add("roi_pool_grid 128 RoIs, 64 x 50 x 50, 7 x 7 (teaching path)", device,
            lambda: vc.roi_pool_grid(features, rois, 7, spatial_scale=1 / 8),
            "torchvision roi_pool", lambda: tv.roi_pool(features, rois, 7, spatial_scale=1 / 8))
    print_table(rows, ["workload", "device", "vision_core", "baseline", "ratio"])


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
