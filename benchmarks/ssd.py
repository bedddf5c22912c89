"""TinySSD training and detection: vision_core against the book's recipe, same run, same device.

    python -m benchmarks.ssd [--images N]

Baseline: the book's training loop (fp32, ``d2l.multibox_target``, the book's ``cls_eval``/``bbox_eval`` (in vision_core.models.tiny_ssd: the d2l package lacks them) with their host syncs
for the metrics after every batch, a DataLoader over CPU tensors) on the same data and
the same initial weights. Ours: ``vision_core.ssd.train_ssd`` (data on the device once,
vectorised targets, metrics accumulated on the device, mixed precision and channels-last
on CUDA). One epoch each, after one warm-up batch; on the CPU also ours with
``cpu_bfloat16=True`` against ours in float32. On CPU the default is 256 images (a
quarter of an epoch of 1,000, which is slow on a CPU); on CUDA the whole 1,000.
Also: the latency of detecting one 256 x 256 image (ours: ``vision_core.ssd.predict``;
the book's: ``softmax`` + ``d2l.multibox_detection`` + its threshold).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from benchmarks.common import devices, fmt_time, machine_line, print_table, timeit
from vision_core.data.bananas import load_bananas
from vision_core.models.tiny_ssd import TinySSD, bbox_eval, calc_loss, cls_eval
from vision_core.ssd import predict, train_ssd


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def book_epoch(net, images, labels, device, batch_size=32, lr=0.2):
    """The book's loop body for one epoch (d2l 14.7.2), timed end to end."""
    from d2l import torch as d2l

    trainer = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=5e-4)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images.float(), labels), batch_size=batch_size,
                                       shuffle=True)
    net.to(device).train()
    metric = d2l.Accumulator(4)
    for features, target in data:
        X, Y = features.to(device), target.to(device)
        trainer.zero_grad()
        anchors, cls_preds, bbox_preds = net(X)
        bbox_labels, bbox_masks, cls_labels = d2l.multibox_target(anchors, Y)
        loss = calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
        loss.mean().backward()
        trainer.step()
        metric.add(cls_eval(cls_preds, cls_labels), cls_labels.numel(),  # .item(): a host sync per batch
                   bbox_eval(bbox_preds, bbox_labels, bbox_masks), bbox_labels.numel())
    return 1 - metric[0] / metric[1], metric[2] / metric[3]


def ours_epoch(net, images, labels, device, batch_size=32, lr=0.2, cpu_bfloat16=False):
    for record in train_ssd((images, labels), net=net, epochs=1, batch_size=batch_size, lr=lr, device=device,
                            record_interval=3600, cpu_bfloat16=cpu_bfloat16):
        last = record
    return last.metrics.get("class_err"), last.metrics.get("bbox_mae")


def book_predict(net, X):
    from d2l import torch as d2l

    net.eval()
    with torch.no_grad():
        anchors, cls_preds, bbox_preds = net(X)
        cls_probs = F.softmax(cls_preds, dim=2).permute(0, 2, 1)
        output = d2l.multibox_detection(cls_probs, bbox_preds, anchors)
        idx = [i for i, row in enumerate(output[0]) if row[0] != -1]
        rows = output[0, idx]
        return rows[rows[:, 1] >= 0.9]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=0, help="training images per epoch (default: 256 on CPU, 1000 on CUDA)")
    args = parser.parse_args()
    print(machine_line())  # absolute times mean little without the machine they came from
    images, labels = load_bananas(split="train")
    rows = []
    for device in devices():
        n = args.images or (1000 if device.type == "cuda" else 256)
        x, y = images[:n], labels[:n]
        times = {}
        epochs = [("book", book_epoch), ("ours", ours_epoch)]
        if device.type == "cpu":  # train ssd --cpu-bfloat16 (CUDA already trains under autocast)
            epochs.append(("ours bf16", lambda *a: ours_epoch(*a, cpu_bfloat16=True)))
        for name, epoch in epochs:
            torch.manual_seed(0)
            net = TinySSD(1)
            epoch(net, x[:32], y[:32], device)  # warm-up: kernels, allocator, anchor cache
            torch.manual_seed(0)
            net = TinySSD(1)
            _sync(device)
            start = time.perf_counter()
            epoch(net, x, y, device)
            _sync(device)
            times[name] = time.perf_counter() - start
        rows.append([f"one training epoch, {n} images, batch 32", device.type, fmt_time(times["ours"]),
                     f"book's recipe {fmt_time(times['book'])}", f"{times['book'] / times['ours']:.2f}x"])
        if device.type == "cpu":
            rows.append(["the same epoch with --cpu-bfloat16 (bfloat16 autocast)", device.type,
                         fmt_time(times["ours bf16"]), f"float32 {fmt_time(times['ours'])}",
                         f"{times['ours'] / times['ours bf16']:.2f}x"])
        net = TinySSD(1).to(device).eval()
        X = images[:1].float().to(device)
        t_ours = timeit(lambda: predict(net, images[0].to(device), threshold=0.9), device, repeat=20)
        t_book = timeit(lambda: book_predict(net, X), device, repeat=20)
        rows.append(["detect one 256 x 256 image", device.type, fmt_time(t_ours), f"book's predict {fmt_time(t_book)}",
                     f"{t_book / t_ours:.2f}x"])
    print_table(rows, ["workload", "device", "vision_core", "baseline", "ratio"])


if __name__ == "__main__":
    main()
