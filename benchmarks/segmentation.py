"""FCN inference and training: vision_core against a loop that follows the book, same run, same device.

    python -m benchmarks.segmentation [--images N]

Inference: one 320 x 480 image through the book's FCN (ResNet-18 trunk), ours
(``vision_core.fcn.predict_fcn``: normalise on the device, autocast and channels-last on
CUDA) against the book's ``predict`` (normalise on the host, fp32, ``argmax`` per image).
Training: one epoch each from the same initial weights on the same synthetic crops, after
one warm-up batch. Baseline: the book's ``train_ch13`` loop body (fp32, a DataLoader of
normalised float crops, ``loss.sum().backward()``, and its per-batch ``.item()`` /
accuracy host syncs); ours: ``vision_core.fcn.train_fcn`` (uint8 crops normalised on the
device, metrics accumulated on the device, mixed precision and channels-last on CUDA).
On the CPU also ours with ``cpu_bfloat16=True`` against ours in float32, and the transposed
convolution alone in bfloat16 against float32. On CPU the default is 64 images (a full epoch of 600 is slow on a CPU); on CUDA 600.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import devices, fmt_time, machine_line, print_table, timeit
from vision_core.fcn import predict_fcn, train_fcn
from vision_core.models.fcn import FCN, fcn_loss
from vision_core.data.voc import VOCSegDataset
from vision_core.data.voc_synthetic import synthetic_voc_dir

CROP = (320, 480)
_MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).reshape(3, 1, 1)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def book_predict(net, image, device):
    """The book's ``predict`` (d2l 14.11.4): normalise on the host, one image, fp32."""
    X = ((image.float() / 255 - _MEAN) / _STD).unsqueeze(0)
    pred = net(X.to(device)).argmax(dim=1)
    return pred.reshape(pred.shape[1], pred.shape[2])


def book_epoch(net, items, device, batch_size=32, lr=1e-3):
    """The book's ``train_ch13`` body for one epoch with FCN's loss, timed end to end."""
    features = torch.stack([(x.float() / 255 - _MEAN) / _STD for x, _ in items])  # the book's float dataset
    labels = torch.stack([y for _, y in items])
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(features, labels), batch_size=batch_size,
                                       shuffle=True, drop_last=True)
    trainer = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=1e-3)
    net.to(device).train()
    total, correct, count = 0.0, 0.0, 0
    for X, y in data:
        X, y = X.to(device), y.to(device)
        trainer.zero_grad()
        pred = net(X)
        loss = fcn_loss(pred, y)
        loss.sum().backward()
        trainer.step()
        total += loss.sum().item()  # the book's Accumulator: host syncs every batch
        correct += (pred.argmax(dim=1) == y).float().sum().item()
        count += y.numel()
    return total, correct / count


def ours_epoch(net, items, device, batch_size=32, lr=1e-3, cpu_bfloat16=False):
    images = torch.stack([x for x, _ in items])
    labels = torch.stack([y for _, y in items])
    for record in train_fcn((images, labels), net=net, epochs=1, batch_size=batch_size, lr=lr, device=device,
                            preview=False, record_interval=3600, cpu_bfloat16=cpu_bfloat16):
        last = record
    return last.metrics.get("loss")


def _crops(n, voc_dir=None, crop=CROP):
    """``n`` fixed crops of the synthetic set (default: the cached 320 x 480 one), as
    ``(uint8 image [3, H, W], label [H, W])``; the set's images are the crop size."""
    dataset = VOCSegDataset(True, crop, synthetic_voc_dir(0) if voc_dir is None else voc_dir)
    return [(dataset.features[i], dataset.labels[i].long()) for i in range(n)]


def _transposed_conv_row(device) -> list[str]:
    """Why FCN.forward leaves the CPU autocast for its last layer: the 64 x 64 transposed
    convolution of a batch of 8 (scores of 320 x 480 crops) in bfloat16 against float32."""
    torch.manual_seed(0)
    up = FCN(21).transpose_conv.to(device)
    x = torch.randn(8, 21, CROP[0] // 32, CROP[1] // 32, device=device)
    with torch.no_grad():
        t32 = timeit(lambda: up(x), device, repeat=3)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            t16 = timeit(lambda: up(x), device, repeat=3)
    return ["transposed conv 64 x 64, batch 8, forward: float32 (kept)", device.type, fmt_time(t32),
            f"bfloat16 autocast {fmt_time(t16)}", f"bf16 {t16 / t32:.0f}x slower"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=0, help="training images per epoch (default: 64 on CPU, "
                        "600 on CUDA)")
    args = parser.parse_args()
    print(machine_line())  # absolute times mean little without the machine they came from
    rows = []
    for device in devices():
        n = args.images or (600 if device.type == "cuda" else 64)
        items = _crops(n)
        torch.manual_seed(0)
        net = FCN(21).to(device).eval()
        image = items[0][0]
        with torch.no_grad():
            t_ours = timeit(lambda: predict_fcn(net, image), device, repeat=5)
            t_book = timeit(lambda: book_predict(net, image, device), device, repeat=5)
        rows.append(["FCN inference, one 320 x 480 image", device.type, fmt_time(t_ours),
                     f"book's predict {fmt_time(t_book)}", f"{t_book / t_ours:.2f}x"])
        times = {}
        epochs = [("book", book_epoch), ("ours", ours_epoch)]
        if device.type == "cpu":  # train fcn --cpu-bfloat16 (CUDA already trains under autocast)
            epochs.append(("ours bf16", lambda *a: ours_epoch(*a, cpu_bfloat16=True)))
        for name, epoch in epochs:
            torch.manual_seed(0)
            epoch(FCN(21), items[:32], device)  # warm-up: kernels, allocator, cudnn
            torch.manual_seed(0)
            net = FCN(21)
            _sync(device)
            start = time.perf_counter()
            epoch(net, items, device)
            _sync(device)
            times[name] = time.perf_counter() - start
        rows.append([f"one training epoch, {n} crops 320 x 480, batch 32", device.type, fmt_time(times["ours"]),
                     f"book's loop {fmt_time(times['book'])}", f"{times['book'] / times['ours']:.2f}x"])
        if device.type == "cpu":
            rows.append(["the same epoch with --cpu-bfloat16 (bfloat16 autocast)", device.type,
                         fmt_time(times["ours bf16"]), f"float32 {fmt_time(times['ours'])}",
                         f"{times['ours'] / times['ours bf16']:.2f}x"])
            rows.append(_transposed_conv_row(device))
    print_table(rows, ["workload", "device", "vision_core", "baseline", "ratio"])


if __name__ == "__main__":
    main()
