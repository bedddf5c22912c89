"""Why the shipped TinySSD was trained with AdamW: the book's SGD against AdamW, same run, same device.

    python -m benchmarks.ssd_optimizers [--images 640] [--epochs 3]

Both start from the same initial weights and see the same images in the same order; after
each epoch the validation split is scored with ``evaluate_ssd`` (the book's class error and
torchmetrics' mAP at IoU 0.5). A class error of about 3.47e-3 is the share of positive
anchors: the network still calls every anchor background.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import machine_line, print_table
from vision_core.data.bananas import load_bananas
from vision_core.ssd import TinySSD, evaluate_ssd, train_ssd

RECIPES = (("sgd", 0.2), ("adamw", 1e-3))  # the book's, and Adam's customary rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=640, help="training images (default: 640)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default: 3)")
    args = parser.parse_args()
    print(machine_line())  # absolute times mean little without the machine they came from
    images, labels = load_bananas(split="train")
    val = load_bananas(split="val")
    train = (images[:args.images], labels[:args.images])
    rows = []
    for optimizer, lr in RECIPES:
        torch.manual_seed(0)
        net = TinySSD(1)
        start = time.perf_counter()
        for record in train_ssd(train, net=net, epochs=args.epochs, lr=lr, optimizer=optimizer, device="cpu",
                                record_interval=3600):
            if "epoch" in record.metrics:
                m = evaluate_ssd(net, *val, device="cpu")
                rows.append([optimizer, f"{lr:g}", str(record.metrics["epoch"]), f"{m['class_err']:.3e}",
                             f"{m['map_50']:.3f}", f"{time.perf_counter() - start:.0f} s"])
    print_table(rows, ["optimizer", "lr", "epoch", "val class err", "val mAP@0.5", "time (cpu)"])


if __name__ == "__main__":
    main()
