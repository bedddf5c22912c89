"""Style transfer speed: ours against the book's loop, same images, same device, same run.

    python -m benchmarks.style [--cpu-steps 100] [--gpu-steps 500] [--skip-vgg-cpu]

The baseline follows d2l 14.12's ``train`` as written: VGG-19's layers up to 28 with their
weights trainable (so every step also computes weight gradients nobody uses), float32, Adam
and StepLR on the synthesised image. Ours is ``vision_core.style.style_transfer``: the
network frozen, the style Gram matrices computed once, and on CUDA channels-last, cuDNN
autotuning (for the run only) and one step captured as a CUDA graph (optionally bfloat16 autocast). Both sides
run with PyTorch's default precision (cuDNN may use TF32 for convolutions).

VGG-19's weights are random here when torchvision's file is not on the machine: the time of a
step does not depend on the weights. The offline network (EfficientNet-Lite0) uses its real
weights. Rows on CPU: 150 x 225; on CUDA: the book's 300 x 450. Time to first frame is the
time until the first record with a preview (what a page shows first).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.common import fmt_time, machine_line, print_table, time_once
from vision_core.device import describe_device
from vision_core.examples import load_content_photo, load_style_image
from vision_core.models.style_networks import (
    BOOK_CONTENT_LAYERS,
    BOOK_STYLE_LAYERS,
    FeatureTaps,
    _vgg19_features,
    find_vgg19_imagenet,
    load_style_network,
    vgg19_taps,
)
from vision_core.style import (
    compute_loss,
    gram,
    postprocess,
    preprocess,
    style_transfer,
)


def book_style_transfer(content: np.ndarray, style: np.ndarray, net: nn.Sequential, steps: int,
                        image_shape: tuple[int, int], device: torch.device, lr: float = 0.3,
                        lr_decay_epoch: int = 50, content_layers: Sequence[int] = BOOK_CONTENT_LAYERS,
                        style_layers: Sequence[int] = BOOK_STYLE_LAYERS) -> np.ndarray:
    """d2l 14.12's loop as the book runs it: ``net``'s weights not frozen, float32, a Python loop.

    Returns the final image (``uint8 [h, w, 3]``). The losses are vision_core's, which the tests
    check against the book's definitions.
    """
    net = net.to(device)

    def extract_features(X: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        contents, styles = [], []
        for i in range(len(net)):
            X = net[i](X)
            if i in style_layers:
                styles.append(X)
            if i in content_layers:
                contents.append(X)
        return contents, styles

    content_X = preprocess(content, image_shape).to(device)
    style_X = preprocess(style, image_shape).to(device)
    contents_Y, _ = extract_features(content_X)
    _, styles_Y = extract_features(style_X)
    styles_Y_gram = [gram(Y) for Y in styles_Y]
    X = nn.Parameter(content_X.clone())
    trainer = torch.optim.Adam([X], lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(trainer, lr_decay_epoch, 0.8)
    for _ in range(steps):
        trainer.zero_grad()
        contents_Y_hat, styles_Y_hat = extract_features(X)
        _, _, _, total = compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram)
        total.backward()
        trainer.step()
        scheduler.step()
    return postprocess(X)


def _book_net(state: Mapping[str, torch.Tensor] | None) -> nn.Sequential:
    features = _vgg19_features()
    if state is not None:
        features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
    return nn.Sequential(*list(features)[:max(BOOK_CONTENT_LAYERS + BOOK_STYLE_LAYERS) + 1])


def _ours(content: np.ndarray, style: np.ndarray, taps: FeatureTaps, steps: int, shape: tuple[int, int],
          device: torch.device, **kwargs: Any) -> tuple[float, float | None, np.ndarray]:
    """(seconds in all, seconds to the first preview, final image) of one style_transfer run."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    first = None
    for record in style_transfer(content, style, taps, steps=steps, image_shape=shape, device=device, **kwargs):
        if first is None and record.preview is not None:
            first = time.perf_counter() - start
    return time.perf_counter() - start, first, record.preview


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-steps", type=int, default=100, help="steps of the CPU rows (default: 100)")
    parser.add_argument("--gpu-steps", type=int, default=500, help="steps of the CUDA rows (default: 500)")
    parser.add_argument("--skip-vgg-cpu", action="store_true", help="leave out the (slow) VGG-19 CPU rows")
    args = parser.parse_args()
    print(machine_line())  # absolute times mean little without the machine they came from
    content, style = load_content_photo("chelsea"), load_style_image("mosaic")
    vgg_path = find_vgg19_imagenet()
    vgg_state = torch.load(vgg_path, map_location="cpu", weights_only=True) if vgg_path is not None else None
    vgg_label = "VGG-19" + ("" if vgg_state is not None else " (random weights)")
    lite0, lite0_spec = load_style_network("efficientnet_lite0")
    lite0_settings = {k: v for k, v in lite0_spec.preset.items() if k not in ("steps", "image_shape")}
    rows: list[list[str]] = []

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        cuda = device.type == "cuda"
        steps = args.gpu_steps if cuda else args.cpu_steps
        shape = (300, 450) if cuda else (150, 225)
        where = describe_device(device)
        work = f"{steps} steps at {shape[0]} x {shape[1]}"
        if cuda or not args.skip_vgg_cpu:
            if cuda:  # warm-up: cuDNN and the allocator, for both sides
                book_style_transfer(content, style, _book_net(vgg_state), 5, shape, device)
            book = time_once(lambda: book_style_transfer(content, style, _book_net(vgg_state), steps, shape, device),
                         device)
            variants = [("eager, float32", dict(cuda_graph=False))]
            if cuda:
                variants += [("CUDA graph", dict(cuda_graph=True)),
                             ("CUDA graph, bf16 autocast", dict(cuda_graph=True, amp=True))]
            reference = None
            for name, kwargs in variants:
                taps = vgg19_taps(vgg_state)
                if cuda:
                    _ours(content, style, taps, 5, shape, device, **kwargs)
                seconds, first, image = _ours(content, style, taps, steps, shape, device, **kwargs)
                reference = image if reference is None else reference
                quality = "" if image is reference else f" (PSNR {_psnr(image, reference):.1f} dB vs eager fp32)"
                rows.append([f"{vgg_label}, {work}: ours, {name}{quality}", where, fmt_time(seconds), fmt_time(book),
                             f"{book / seconds:.2f}x", fmt_time(first)])
        variants = [("eager", dict(cuda_graph=False))] + ([("CUDA graph", dict(cuda_graph=True))] if cuda else [])
        for name, kwargs in variants:
            if cuda:
                _ours(content, style, lite0, 5, shape, device, **lite0_settings, **kwargs)
            seconds, first, _ = _ours(content, style, lite0, steps, shape, device, **lite0_settings, **kwargs)
            rows.append([f"EfficientNet-Lite0 (offline), {work}: ours, {name}", where, fmt_time(seconds), "",
                         "", fmt_time(first)])
        if not cuda:  # what the panel's offline preset costs on this machine (its status line quotes it)
            preset_steps, preset_shape = lite0_spec.preset["steps"], lite0_spec.preset["image_shape"]
            seconds, first, _ = _ours(content, style, lite0, preset_steps, preset_shape, device, **lite0_settings)
            rows.append([f"EfficientNet-Lite0 offline preset, {preset_steps} steps at {preset_shape[0]} x "
                         f"{preset_shape[1]}: ours", where, fmt_time(seconds), "", "", fmt_time(first)])
    print_table(rows, ["workload", "device", "ours", "book's loop (VGG-19)", "ratio", "first frame"])


if __name__ == "__main__":
    main()
