"""Box conversion and IoU: vision_core against torchvision.ops and the book's functions (d2l).

    python -m benchmarks.boxes

Every row is measured in this run, on the named device; ratio = baseline time / ours
(above 1: ours is faster).
"""

from __future__ import annotations

import torch
import torchvision.ops as tv

import vision_core as vc
from benchmarks.common import devices, fmt_time, machine_line, print_table, timeit


def _boxes(n: int, *lead: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(*lead, n, 2, generator=g) * 500
    wh = 1 + torch.rand(*lead, n, 2, generator=g) * 250
    return torch.cat([xy, xy + wh], dim=-1).to(device)


def main() -> None:
    print(machine_line())  # absolute times mean little without the machine they came from
    try:
        from d2l import torch as d2l
    except ImportError:  # the oracle is a dev requirement; the torchvision rows still run
        d2l = None
    rows = []

    def add(workload, device, ours, baseline_name, baseline):
        t_ours = timeit(ours, device)
        t_base = timeit(baseline, device)
        rows.append([workload, device.type, fmt_time(t_ours), f"{baseline_name} {fmt_time(t_base)}", f"{t_base / t_ours:.2f}x"])

    for device in devices():
        big = _boxes(1_000_000, device=device)
        add("convert xyxy->cxcywh, 1M boxes", device, lambda: vc.box_corner_to_center(big),
            "torchvision box_convert", lambda: tv.box_convert(big, "xyxy", "cxcywh"))
        if d2l is not None:
            add("convert xyxy->cxcywh, 1M boxes", device, lambda: vc.box_corner_to_center(big),
                "d2l box_corner_to_center", lambda: d2l.box_corner_to_center(big))
        a, b = _boxes(2000, device=device), _boxes(5000, device=device, seed=1)
        add("box_iou 2000 x 5000", device, lambda: vc.box_iou(a, b), "torchvision box_iou", lambda: tv.box_iou(a, b))
        if d2l is not None:
            add("box_iou 2000 x 5000", device, lambda: vc.box_iou(a, b), "d2l box_iou", lambda: d2l.box_iou(a, b))
        # TinySSD-sized labelling: 32 images, 5444 anchors each against 8 ground-truth boxes.
        anchors, gt = _boxes(5444, device=device), _boxes(8, 32, device=device, seed=2)
        add("box_iou batch 32 x (5444 x 8)", device, lambda: vc.box_iou(anchors, gt),
            "torchvision box_iou per image", lambda: torch.stack([tv.box_iou(anchors, g) for g in gt]))
    print_table(rows, ["workload", "device", "vision_core", "baseline", "ratio"])


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
