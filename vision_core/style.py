"""Neural style transfer: the book's losses and optimisation loop (d2l 14.12), network-independent.

What the book builds, with its names where it has them:

* :data:`RGB_MEAN`, :data:`RGB_STD`, :func:`preprocess` and :func:`postprocess` move between
  photos and the ImageNet-normalised ``[1, 3, h, w]`` tensors a backbone reads;
  :func:`postprocess` returns a ``uint8 [h, w, 3]`` array rather than a PIL image.
* :func:`gram`, :func:`content_loss`, :func:`style_loss`, :func:`tv_loss` and
  :func:`compute_loss` are the book's definitions (``compute_loss`` adds optional per-style-layer
  weights).
* :func:`style_transfer` is the book's ``train`` run as a generator of :class:`Progress`
  records: Adam on the synthesised image alone (it starts as the content image), StepLR decay.
* :func:`high_frequency_energy` and :func:`grain` (not the book's) measure pixel-scale noise in a
  result against its sources: what a preset must keep low.

The networks whose features it reads (the book's ``extract_features``: VGG-19, or the offline
EfficientNet-Lite0) are in :mod:`vision_core.models.style_networks`.

Images are single pictures, batch 1, as in the book: :func:`gram` reshapes to
``[channels, h * w]``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _runtime
from ._checks import ArgumentError, check_bool, check_int, check_pair, check_real, describe
from .device import autocast_dtype, get_device, resolve_device
from .models.style_networks import FeatureTaps
from .progress import Progress

__all__ = [
    "RGB_MEAN",
    "RGB_STD",
    "preprocess",
    "postprocess",
    "gram",
    "content_loss",
    "style_loss",
    "tv_loss",
    "smooth",
    "compute_loss",
    "style_transfer",
    "high_frequency_energy",
    "grain",
]

RGB_MEAN = torch.tensor(_runtime.IMAGENET_MEAN)  # ImageNet channel means of 0..1 pixels
RGB_STD = torch.tensor(_runtime.IMAGENET_STD)    # ImageNet channel standard deviations
_MAX_WEIGHT = 1e12
_MAX_SIDE = 2048
DEFAULT_FRAME_INTERVAL = 0.25  # seconds between previews: a few frames a second
_IMAGE_KINDS = "a PIL image, a uint8 Tensor[3, H, W] or a uint8 array [H, W, 3]"


# --- argument checks ------------------------------------------------------------------------

def _check_weight(value: Any, name: str) -> float:
    return check_real(value, name, 0.0, _MAX_WEIGHT, lo_open=True)


def _check_layer_weights(weights: Any, count: int) -> list[float] | None:
    if weights is None:
        return None
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) != count:
        raise ArgumentError("style_layer_weights", f"a sequence of {count} positive numbers (one per style layer)",
                            repr(weights))
    return [_check_weight(w, f"style_layer_weights[{i}]") for i, w in enumerate(weights)]


# --- pictures in and out --------------------------------------------------------------------

def _with_dtype(value: Any) -> str:
    # The dtype matters here (photos must be uint8, normalised tensors float): name it with the shape.
    return describe(value) + (f" of dtype {value.dtype}" if isinstance(value, (Tensor, np.ndarray)) else "")


def _bad_image(name: str, img: Any) -> ArgumentError:
    return ArgumentError(name, _IMAGE_KINDS, _with_dtype(img))


def _as_chw_uint8(img: Any, name: str = "img") -> Tensor:
    """PIL image, ``uint8 Tensor[3, H, W]`` or ``uint8 ndarray[H, W, 3]`` -> ``uint8 Tensor[3, H, W]``."""
    if hasattr(img, "convert") and hasattr(img, "size") and not isinstance(img, (Tensor, np.ndarray)):
        img = np.asarray(img.convert("RGB"))  # a PIL image (PIL itself is not imported here)
        return torch.from_numpy(img.copy()).permute(2, 0, 1).contiguous()
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
            raise _bad_image(name, img)
        if not img.flags.writeable:  # e.g. np.asarray of a PIL image; torch wants memory it may write
            img = img.copy()
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()
    if isinstance(img, Tensor):
        if img.dim() != 3 or img.shape[0] != 3 or img.dtype != torch.uint8 or min(img.shape[1:]) < 1:
            raise _bad_image(name, img)
        return img.detach().cpu()
    raise _bad_image(name, img)


def preprocess(img: Any, image_shape: tuple[int, int]) -> Tensor:
    """The book's ``preprocess``: resize a photo and normalise it with the ImageNet statistics.

    Resizing is bilinear with antialiasing (as torchvision's ``Resize`` on a PIL image), skipped
    when the photo already has ``image_shape``.

    Args:
        img: a PIL image (converted to RGB), ``uint8 Tensor[3, H, W]`` or ``uint8 ndarray[H, W, 3]``.
        image_shape (tuple[int, int]): ``(h, w)``, each in ``[16, 2048]`` (the book: ``(300, 450)``).

    Returns:
        Tensor[1, 3, h, w]: float32 on the CPU, ``(pixel / 255 - RGB_MEAN) / RGB_STD`` per channel.
    """
    h, w = check_pair(image_shape, "image_shape", 16, _MAX_SIDE)
    X = _as_chw_uint8(img).float().div_(255)[None]
    if tuple(X.shape[-2:]) != (h, w):
        X = F.interpolate(X, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return (X - RGB_MEAN.view(1, 3, 1, 1)) / RGB_STD.view(1, 3, 1, 1)


def postprocess(img: Tensor) -> np.ndarray:
    """The book's ``postprocess``: undo the normalisation, clamp to ``[0, 1]``, make a picture.

    Args:
        img (Tensor[1, 3, h, w] or Tensor[3, h, w]): normalised, on any device.

    Returns:
        np.ndarray: ``uint8 [h, w, 3]`` (the book returns a PIL image of the same pixels;
        NaN pixels become 0).
    """
    if not isinstance(img, Tensor) or not img.is_floating_point() or img.dim() not in (3, 4) \
            or (img.dim() == 4 and img.shape[0] != 1) or img.shape[-3] != 3:
        raise ArgumentError("img", "a float Tensor[1, 3, h, w] (normalised)", _with_dtype(img))
    X = img.detach()[0] if img.dim() == 4 else img.detach()
    X = X.float().cpu() * RGB_STD.view(3, 1, 1) + RGB_MEAN.view(3, 1, 1)
    X = torch.nan_to_num(X, nan=0.0).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return X.permute(1, 2, 0).contiguous().numpy()


# --- the book's losses ----------------------------------------------------------------------

def gram(X: Tensor) -> Tensor:
    """The book's Gram matrix of one feature map, normalised by its number of elements.

    Args:
        X (Tensor[1, c, h, w]): features of one image (``[c, h, w]`` is taken too).

    Returns:
        Tensor[c, c]: ``Y @ Y.T / (c * h * w)`` with ``Y = X.reshape(c, h * w)``.
    """
    if not isinstance(X, Tensor) or X.dim() not in (3, 4) or (X.dim() == 4 and X.shape[0] != 1):
        raise ArgumentError("X", "a Tensor[1, c, h, w] (one image's features)", describe(X))
    num_channels = X.shape[-3]
    n = X.numel() // max(num_channels, 1)
    Y = X.reshape(num_channels, n)
    return (Y @ Y.T) / (num_channels * n)


def content_loss(Y_hat: Tensor, Y: Tensor) -> Tensor:
    """The book's content loss: mean squared difference, ``Y`` treated as a constant.

    Args:
        Y_hat (Tensor[1, c, h, w]): the synthesised image's features at a content layer.
        Y (Tensor[1, c, h, w]): the content image's features there (detached here).

    Returns:
        Tensor[]: the mean of ``(Y_hat - Y) ** 2``.
    """
    return torch.square(Y_hat - Y.detach()).mean()


def style_loss(Y_hat: Tensor, gram_Y: Tensor) -> Tensor:
    """The book's style loss: mean squared difference of Gram matrices, ``gram_Y`` constant.

    Args:
        Y_hat (Tensor[1, c, h, w]): the synthesised image's features at a style layer.
        gram_Y (Tensor[c, c]): :func:`gram` of the style image's features there (detached here).

    Returns:
        Tensor[]: the mean of ``(gram(Y_hat) - gram_Y) ** 2``.
    """
    return torch.square(gram(Y_hat) - gram_Y.detach()).mean()


def tv_loss(Y_hat: Tensor) -> Tensor:
    """The book's total-variation loss: half the sum of the mean absolute vertical and horizontal steps.

    Args:
        Y_hat (Tensor[B, C, H, W]): an image (``H, W >= 2``).

    Returns:
        Tensor[]: ``0.5 * (mean |Y[.., i+1, j] - Y[.., i, j]| + mean |Y[.., i, j+1] - Y[.., i, j]|)``.
    """
    return 0.5 * ((Y_hat[:, :, 1:, :] - Y_hat[:, :, :-1, :]).abs().mean()
                  + (Y_hat[:, :, :, 1:] - Y_hat[:, :, :, :-1]).abs().mean())


def smooth(X: Tensor, passes: int = 1) -> Tensor:
    """``passes`` rounds of a 3 x 3 binomial blur (``[1, 2, 1] / 4`` along each axis), each channel on its
    own, edges repeated: a Gaussian of variance ``passes / 2`` pixels squared.

    Args:
        X (Tensor[B, C, H, W]): float images (or their gradients).
        passes (int): ``>= 0``; 0 returns ``X`` itself.

    Returns:
        Tensor[B, C, H, W]: same dtype and device.
    """
    if passes == 0:
        return X
    row = torch.tensor([0.25, 0.5, 0.25], dtype=X.dtype, device=X.device)
    kernel = (row[:, None] * row[None, :]).expand(X.shape[1], 1, 3, 3)  # [C, 1, 3, 3]
    for _ in range(passes):
        X = F.conv2d(F.pad(X, (1, 1, 1, 1), mode="replicate"), kernel, groups=X.shape[1])
    return X


def _as_float_images(img: Any, name: str) -> Tensor:
    # uint8 [H, W, 3] array, uint8 / float Tensor[3, H, W] or [N, 3, H, W] -> float [N, 3, H, W] in 0..1.
    if isinstance(img, np.ndarray):
        img = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    if not isinstance(img, Tensor) or img.dim() not in (3, 4) or img.shape[-3] != 3:
        raise _bad_image(name, img)
    img = img[None] if img.dim() == 3 else img
    return img.float() / 255.0 if img.dtype == torch.uint8 else img.float()


def high_frequency_energy(img: Any) -> Tensor:
    """How much of a picture is pixel-scale detail: the mean squared difference between it and its
    3 x 3 box blur, over pixels and channels.

    Fine grain or per-pixel colour noise raises it sharply; smooth regions, broad strokes and
    edges a few pixels wide add little.

    Args:
        img: uint8 ``[H, W, 3]`` array, or ``Tensor[3, H, W]`` / ``Tensor[N, 3, H, W]`` (uint8, or
            float in ``0..1``).

    Returns:
        Tensor[N]: float32, one value per picture (0 for a flat one).
    """
    X = _as_float_images(img, "img")
    blurred = F.avg_pool2d(F.pad(X, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # [N, 3, H, W]
    return torch.square(X - blurred).mean(dim=(1, 2, 3))


def grain(result: Any, content: Any, style: Any) -> float:
    """Pixel-scale noise a result has that neither of its sources has: :func:`high_frequency_energy`
    of ``result`` over the larger of the content photo's and the style image's, each resized
    (bilinear, antialiased) to the result's size first. Below 1 the result is no grainier than its
    grainier source; the offline preset's speckle measured 2 to 5 (``benchmarks.style_grain``).

    Args:
        result, content, style: pictures as :func:`high_frequency_energy` takes them (one each).

    Returns:
        float: the ratio.
    """
    R = _as_float_images(result, "result")
    size = R.shape[-2:]

    def at_size(img: Any, name: str) -> Tensor:
        X = _as_float_images(img, name)
        return X if X.shape[-2:] == size else F.interpolate(X, size=size, mode="bilinear", antialias=True,
                                                            align_corners=False)

    sources = torch.maximum(high_frequency_energy(at_size(content, "content")),
                            high_frequency_energy(at_size(style, "style")))
    return float(high_frequency_energy(R)[0] / sources[0].clamp_min(1e-12))


def compute_loss(X: Tensor, contents_Y_hat: Sequence[Tensor], styles_Y_hat: Sequence[Tensor],
                 contents_Y: Sequence[Tensor], styles_Y_gram: Sequence[Tensor], content_weight: float = 1.0,
                 style_weight: float = 1e4, tv_weight: float = 10.0,
                 style_layer_weights: Sequence[float] | None = None
                 ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
    """The book's ``compute_loss``: weighted content, style and total-variation losses.

    Args:
        X (Tensor[1, 3, h, w]): the synthesised image.
        contents_Y_hat, styles_Y_hat (lists of Tensor[1, c, h', w']): its features at the content
            and the style layers.
        contents_Y (list of Tensor[1, c, h', w']): the content image's content features.
        styles_Y_gram (list of Tensor[c, c]): Gram matrices of the style image's style features.
        content_weight, style_weight, tv_weight (float): the book's 1, 1e4 and 10.
        style_layer_weights (sequence of float, optional): one extra factor per style layer
            (default all 1, the book's), e.g. to even out the layers' starting losses.

    Returns:
        (list of Tensor[], list of Tensor[], Tensor[], Tensor[]): the weighted content losses,
        the weighted style losses, the weighted TV loss, and their sum.
    """
    layer_weights = [1.0] * len(styles_Y_hat) if style_layer_weights is None else list(style_layer_weights)
    if len(layer_weights) != len(styles_Y_hat):
        raise ArgumentError("style_layer_weights", f"one weight per style layer ({len(styles_Y_hat)})",
                            f"{len(layer_weights)} weights")
    contents_l = [content_loss(Y_hat, Y) * content_weight for Y_hat, Y in zip(contents_Y_hat, contents_Y)]
    styles_l = [style_loss(Y_hat, Y) * (style_weight * w)
                for Y_hat, Y, w in zip(styles_Y_hat, styles_Y_gram, layer_weights)]
    tv_l = tv_loss(X) * tv_weight
    total = sum(styles_l + contents_l + [tv_l])
    return contents_l, styles_l, tv_l, total



# --- the optimisation -----------------------------------------------------------------------

def style_transfer(content: Any, style: Any, taps: FeatureTaps, *, steps: int = 500, lr: float = 0.3,
                   lr_decay_epoch: int = 50, content_weight: float = 1.0, style_weight: float = 1e4,
                   tv_weight: float = 10.0, image_shape: tuple[int, int] = (300, 450),
                   style_layer_weights: Sequence[float] | None = None,
                   device: str | torch.device | None = None, seed: int = 0,
                   stop: threading.Event | None = None, frame_interval: float | None = None,
                   amp: bool = False, balance_style_layers: bool = False,
                   cuda_graph: bool | None = None, smooth_gradient: int = 0) -> Iterator[Progress]:
    """Synthesise an image with ``content``'s content and ``style``'s style (the book's ``train``).

    Both photos are :func:`preprocess`-ed to ``image_shape``. The synthesised image starts as the
    content image and is the only thing optimised: Adam with ``lr``, multiplied by 0.8 every
    ``lr_decay_epoch`` steps (the book's StepLR). The style Gram matrices and the content
    features are computed once, without gradients. ``taps`` is moved to ``device`` and left there.
    On CUDA the run turns cuDNN autotuning on (``torch.backends.cudnn.benchmark``: one image
    shape for the whole run, so it pays) and puts the process's setting back when it ends, is
    stopped, fails or is closed.

    Records (:class:`Progress`, ``total = steps``), ``metrics``: ``content``, ``style``, ``tv``
    (the weighted losses, summed over layers), ``total`` and ``lr``:

    * on the CPU, one record after every step (reading the losses costs nothing there);
    * on an accelerator, where reading a loss waits for the device, records come only with a
      preview (one device sync each, so the loop never waits on the GPU in between);
    * ``series``: every step's ``content``, ``style``, ``tv`` and ``total`` since the previous
      record (one step on the CPU, all of them between previews on an accelerator);
    * ``preview`` (``uint8 [h, w, 3]``, :func:`postprocess` of the image): after the first step,
      then at most one every ``frame_interval`` seconds, and on the last record;
    * the last record has ``done=True`` and the final image: after ``steps`` steps (``message``
      ``"done ..."``); when ``stop`` was set (checked before every step: ``"stopped ..."``); or
      when the loss became NaN or infinite (``"stopped at step N: the loss became ..."``, with
      the last image whose loss was finite, and that step's metrics).

    Host syncs: on an accelerator the loop reads nothing from the device between records (the
    losses, the step count and the NaN/inf check stay there; only each record's read and its
    preview wait for the device). Every step keeps, on the device, the image as it was before
    the last step whose loss was finite, and that step's losses, so a NaN/inf noticed late still
    ends with the last good image. On the CPU the loss is checked every step, after the update
    (the record then shows the image before it).

    Args:
        content, style: PIL images, ``uint8 Tensor[3, H, W]`` or ``uint8 ndarray[H, W, 3]``.
        taps (FeatureTaps): the frozen backbone and its layers
            (:func:`~vision_core.models.style_networks.vgg19_taps` for the book's).
        steps (int): in ``[1, 10000]`` (the book: 500).
        lr (float): Adam's learning rate, in ``(0, 10]`` (the book: 0.3).
        lr_decay_epoch (int): steps between decays by 0.8, in ``[1, 10000]`` (the book: 50).
        content_weight, style_weight, tv_weight (float): positive and finite (the book: 1, 1e4, 10).
        image_shape (tuple[int, int]): ``(h, w)``, each in ``[16, 2048]`` (the book: ``(300, 450)``).
        style_layer_weights (Sequence[float], optional): a positive factor per style layer.
        device: where to run; None means :func:`vision_core.device.get_device`.
        seed (int): in ``[0, 2**31 - 1]``. The book's algorithm draws no random numbers, so a run
            on the CPU repeats exactly; ``torch.manual_seed(seed)`` is called before the first step
            so that a backbone with random layers would repeat too.
        stop (threading.Event, optional): set it to end the run before the next step.
        frame_interval (float, optional): seconds between previews, in ``[0, 3600]``
            (0: a preview with every record); default 0.25.
        amp (bool): run the backbone under autocast to the dtype
            :func:`vision_core.device.autocast_dtype` picks (bfloat16/float16 on CUDA; losses stay
            in float32). Ignored where it picks none (MPS, the CPU).
        balance_style_layers (bool): scale each style layer so that all start with the same loss
            (their mean; measured on the content image, where the run starts), on top of
            ``style_layer_weights``. Layers of a network differ in scale by orders of magnitude;
            unbalanced, one or two of them decide the style. The book: False.
        cuda_graph (bool, optional): on CUDA, capture one step as a CUDA graph and replay it (the
            per-step kernel launches, not the arithmetic, bound a step at the book's size); falls
            back to eager steps, with a note in the messages, if capturing fails. None: on CUDA.
            Ignored elsewhere.
        smooth_gradient (int): passes of a 3 x 3 binomial blur (:func:`smooth`) over the image's
            gradient before each Adam step, in ``[0, 16]``. Adam scales every pixel's step by that
            pixel's own gradient history, so gradient noise one pixel wide becomes grain one pixel
            wide, in colours no input has; smoothed, the steps move regions, not pixels. 0 (the
            book): the raw gradient.

    Returns:
        Iterator[Progress]: the records.

    Raises:
        ArgumentError (a ValueError): an argument is out of range (raised by this call, before the
            first record).
    """
    if not isinstance(taps, FeatureTaps):
        raise ArgumentError("taps", "a FeatureTaps (e.g. vgg19_taps())", describe(taps))
    image_shape = check_pair(image_shape, "image_shape", 16, _MAX_SIDE)
    content_img = _as_chw_uint8(content, "content")
    style_img = _as_chw_uint8(style, "style")
    steps = check_int(steps, "steps", 1, 10000)
    lr = check_real(lr, "lr", 0.0, 10.0, lo_open=True)
    lr_decay_epoch = check_int(lr_decay_epoch, "lr_decay_epoch", 1, 10000)
    content_weight = _check_weight(content_weight, "content_weight")
    style_weight = _check_weight(style_weight, "style_weight")
    tv_weight = _check_weight(tv_weight, "tv_weight")
    layer_weights = _check_layer_weights(style_layer_weights, len(taps.style_layers))
    seed = check_int(seed, "seed", 0, 2**31 - 1)
    frame_interval = DEFAULT_FRAME_INTERVAL if frame_interval is None else \
        check_real(frame_interval, "frame_interval", 0.0, 3600.0)
    amp = check_bool(amp, "amp")
    if cuda_graph is not None and not isinstance(cuda_graph, bool):
        raise ArgumentError("cuda_graph", "True, False or None", repr(cuda_graph))
    balance_style_layers = check_bool(balance_style_layers, "balance_style_layers")
    smooth_gradient = check_int(smooth_gradient, "smooth_gradient", 0, 16)
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise ArgumentError("stop", "a threading.Event", describe(stop))
    device = get_device() if device is None else resolve_device(device)
    weights = (content_weight, style_weight, tv_weight, layer_weights, balance_style_layers)
    return _transfer_records(content_img, style_img, taps, steps, lr, lr_decay_epoch, weights, image_shape,
                             device, seed, stop, frame_interval, amp, cuda_graph is not False, smooth_gradient)


def _balanced_layer_weights(styles_Y: Sequence[Tensor], styles_Y_gram: Sequence[Tensor],
                            layer_weights: Sequence[float] | None) -> list[Tensor]:
    """Per-layer factors that give every style layer the mean starting loss (times its own weight).

    A layer whose starting loss is 0 (content and style alike there) keeps factor 1. Stays on
    the device: 0-dim tensors, no host read.
    """
    raw = torch.stack([style_loss(Y, G) for Y, G in zip(styles_Y, styles_Y_gram)]).float()  # [L]
    factors = torch.where(raw > 0, raw.mean() / raw.clamp_min(torch.finfo(raw.dtype).tiny), torch.ones_like(raw))
    user = [1.0] * len(raw) if layer_weights is None else layer_weights
    return [factors[i] * w for i, w in enumerate(user)]


def _sync_free(device: torch.device) -> bool:
    """Whether the loop avoids reading numbers every step: on accelerators, where a read waits for them."""
    return device.type != "cpu"


def _autotunes(device: torch.device) -> bool:
    """Whether a run turns cuDNN autotuning on: on CUDA, where one image shape for the whole run makes it pay."""
    return device.type == "cuda"


def _transfer_records(content_img: Tensor, style_img: Tensor, taps: FeatureTaps, steps: int, lr: float,
                      lr_decay_epoch: int, weights: tuple, image_shape: tuple[int, int], device: torch.device,
                      seed: int, stop: threading.Event | None, frame_interval: float, amp: bool,
                      cuda_graph: bool, smooth_gradient: int = 0) -> Iterator[Progress]:
    content_weight, style_weight, tv_weight, layer_weights, balance = weights
    amp_dtype = autocast_dtype(device) if amp else None  # None off CUDA: device.autocast_dtype decides
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    run = None
    # cudnn.benchmark is process-wide: on for this run only, and back to what it was when the run
    # ends, stops, fails or is closed (closing this generator leaves the block too).
    with _runtime.cudnn_autotune(_autotunes(device)):
        try:
            torch.manual_seed(seed)
            taps.to(device=device, memory_format=memory_format)
            content_X = _runtime.to_device_layout(preprocess(content_img, image_shape).to(device), device)
            style_X = _runtime.to_device_layout(preprocess(style_img, image_shape).to(device), device)

            def extract(Y: Tensor) -> tuple[list[Tensor], list[Tensor]]:
                if amp_dtype is None:
                    return taps(Y)
                with _runtime.autocast(device, amp_dtype):
                    contents, styles = taps(Y)
                return [c.float() for c in contents], [s.float() for s in styles]

            contents_Y, styles_Y_gram, layer_weights = _targets(extract, content_X, style_X, balance, layer_weights)
            del style_X

            def loss(X: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
                contents_Y_hat, styles_Y_hat = extract(X)
                return compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram,
                                    content_weight, style_weight, tv_weight, layer_weights)

            run = _Run(content_X, loss, steps, lr, lr_decay_epoch, graph=cuda_graph and device.type == "cuda",
                       smooth_gradient=smooth_gradient)
            note = run.capture() if run.graph else ""
            yield from _records(run, steps, stop, frame_interval, _sync_free(device), note)
        finally:
            # Drop the device tensors (the image, Adam's moments, a captured graph) before emptying the
            # cache; the closures above share these names, so they let go too.
            content_X = contents_Y = styles_Y_gram = layer_weights = None
            if run is not None:
                run.close()
            run = None
            if device.type == "cuda":
                torch.cuda.empty_cache()


@torch.no_grad()
def _targets(extract: Callable[[Tensor], tuple[list[Tensor], list[Tensor]]], content_X: Tensor, style_X: Tensor,
             balance: bool, layer_weights: list[float] | None
             ) -> tuple[list[Tensor], list[Tensor], list[float] | list[Tensor] | None]:
    """What the run aims at, computed once: the content image's content features, the style
    image's Gram matrices, and the style layers' weights (balanced on the content image if asked)."""
    contents_Y, content_styles = extract(content_X)
    styles_Y_gram = [gram(Y) for Y in extract(style_X)[1]]
    if balance:
        layer_weights = _balanced_layer_weights(content_styles, styles_Y_gram, layer_weights)
    return contents_Y, styles_Y_gram, layer_weights


def _records(run: _Run, steps: int, stop: threading.Event | None, frame_interval: float, sync_free: bool,
             note: str) -> Iterator[Progress]:
    """Step ``run`` ``steps`` times and yield :func:`style_transfer`'s records."""
    last_frame, last_record = -math.inf, 0
    for step in range(1, steps + 1):
        if stop is not None and stop.is_set():
            metrics, _ = run.read()
            yield Progress(step - 1, steps, metrics, postprocess(run.X), message=f"stopped after {step - 1} of "
                           f"{steps} steps", done=True, series=run.series(last_record, step - 1))
            return
        total = run.step(step)
        if not sync_free and not math.isfinite(float(total)):
            yield _nan_record(run, step, steps, last_record)
            return
        last = step == steps
        frame_due = step == 1 or last or time.perf_counter() - last_frame >= frame_interval
        if sync_free and not frame_due:
            continue
        metrics, good_step = run.read()  # the host sync (free on the CPU)
        if good_step != step:  # the loss turned NaN/inf since the last record (accelerators only)
            yield _nan_record(run, step, steps, last_record)
            return
        series = run.series(last_record, step)
        last_record = step
        preview = None
        if frame_due:
            preview = postprocess(run.X)
            last_frame = time.perf_counter()
        if last:
            yield Progress(step, steps, metrics, preview, done=True, series=series,
                           message=f"done: {steps} steps, total loss {metrics['total']:.4g}{note}")
        else:
            yield Progress(step, steps, metrics, preview, message=f"step {step}/{steps}{note}", series=series)


class _Run:
    """The optimisation's state on the device, and one step of it (eager, or a replayed CUDA graph).

    Every step writes its losses into ``history`` (row = step) and keeps, beside the image, the
    image as it was before the last step whose loss was finite and that step's losses, all on
    the device, so nothing waits for the device between records.

    CUDA graph: a few warm-up steps on a side stream (cuDNN picks its algorithms, Adam makes its
    state), one step captured, then the image, Adam's state and the bookkeeping reset to the
    start, so replay ``k`` is step ``k``. Adam runs with ``capturable=True`` and a tensor
    learning rate that the host refills (no sync) to follow the book's StepLR. If capturing
    fails the run goes on eagerly from the same reset state.
    """

    WARMUP = 3

    def __init__(self, content_X: Tensor, loss: Callable[[Tensor], tuple[list[Tensor], list[Tensor], Tensor, Tensor]],
                 steps: int, lr: float, lr_decay_epoch: int, graph: bool = False, smooth_gradient: int = 0):
        device = content_X.device
        self.loss, self.lr, self.lr_decay_epoch, self.graph = loss, lr, lr_decay_epoch, graph
        self.smooth_gradient = smooth_gradient
        self.content_X = content_X
        self.X = nn.Parameter(content_X.clone())  # the book's SynthesizedImage.weight
        self.good = self.X.detach().clone()
        self.good_metrics = torch.zeros(5, dtype=torch.float64, device=device)  # content, style, tv, total, step
        self.step_count = torch.zeros(1, dtype=torch.float64, device=device)    # counted on the device: no copy in
        self.history = torch.zeros(steps + self.WARMUP + 1, 4, dtype=torch.float64, device=device)
        self.lrs = [0.0]  # lrs[i]: the learning rate of step i
        self.lr_tensor = torch.tensor(float(lr), device=device) if graph else None
        self.optimizer = torch.optim.Adam([self.X], lr=self.lr_tensor if graph else lr, capturable=graph)
        self.scheduler = None if graph else torch.optim.lr_scheduler.StepLR(self.optimizer, lr_decay_epoch, 0.8)
        self.cuda_graph = None
        self.total: Tensor | None = None

    def _body(self) -> Tensor:
        """Forward, losses into the bookkeeping, backward, Adam: device work only."""
        X = self.X
        self.optimizer.zero_grad(set_to_none=True)
        contents_l, styles_l, tv_l, total = self.loss(X)
        with torch.no_grad():
            values = torch.stack([sum(contents_l).double(), sum(styles_l).double(), tv_l.double(), total.double()])
            self.step_count += 1
            self.history[self.step_count.long()] = values[None]  # [1, 4] into row `step`, no sync
            finite = torch.isfinite(total)
            self.good.copy_(torch.where(finite, X.detach(), self.good))
            self.good_metrics.copy_(torch.where(finite, torch.cat([values, self.step_count]), self.good_metrics))
        total.backward()
        if self.smooth_gradient:
            X.grad.copy_(smooth(X.grad, self.smooth_gradient))
        self.optimizer.step()
        return total.detach()

    def _step_lr(self, step: int) -> float:
        return self.lr * 0.8 ** ((step - 1) // self.lr_decay_epoch)  # what StepLR gives step `step`

    def _reset(self) -> None:
        with torch.no_grad():
            self.X.copy_(self.content_X)
            self.good.copy_(self.content_X)
            self.good_metrics.zero_()
            self.step_count.zero_()
            self.history.zero_()
            for state in self.optimizer.state.values():
                for value in state.values():
                    if isinstance(value, Tensor):
                        value.zero_()

    def capture(self) -> str:
        """Warm up, capture one step as a CUDA graph, reset; '' or a note saying why it runs eagerly."""
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(self.WARMUP):
                    self._body()
            torch.cuda.current_stream().wait_stream(side)
            self.cuda_graph = torch.cuda.CUDAGraph()
            self.optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.cuda_graph):
                self.total = self._body()
            note = ""
        except (RuntimeError, AssertionError) as err:  # an op that cannot be captured: run eagerly instead
            self.cuda_graph = None
            note = f" (CUDA graph unavailable, running eagerly: {str(err).splitlines()[0][:120]})"
        self._reset()
        if self.cuda_graph is None:  # eager from here on: a plain float lr and the book's StepLR
            self.optimizer = torch.optim.Adam([self.X], lr=self.lr)
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, self.lr_decay_epoch, 0.8)
            self.lr_tensor, self.graph = None, False
        return note

    def step(self, step: int) -> Tensor:
        """Run step ``step`` (1-based); returns its total loss (a device tensor: reading it syncs)."""
        lr = self._step_lr(step)
        self.lrs.append(lr)
        if self.cuda_graph is not None:
            self.lr_tensor.fill_(lr)
            self.cuda_graph.replay()
            return self.total
        total = self._body()
        if self.scheduler is not None:
            self.scheduler.step()
        return total

    def read(self) -> tuple[dict[str, float], int]:
        """One host sync: the last finite step's metrics (empty before any) and that step (0: none)."""
        content, style, tv, total, step = self.good_metrics.tolist()
        if step == 0:
            return {}, 0
        return {"content": content, "style": style, "tv": tv, "total": total, "lr": self.lrs[int(step)]}, int(step)

    def series(self, first: int, last: int) -> dict[str, list[float]]:
        """Per-step losses of steps ``first + 1 .. last`` (one host read)."""
        rows = self.history[first + 1:last + 1].tolist()
        return {key: [row[i] for row in rows] for i, key in enumerate(("content", "style", "tv", "total"))}

    def close(self) -> None:
        self.cuda_graph = self.total = self.X = self.good = self.optimizer = self.scheduler = None
        self.history = self.content_X = self.loss = None


def _nan_record(run: _Run, step: int, steps: int, last_record: int) -> Progress:
    metrics, good_step = run.read()
    series = run.series(last_record, good_step) if good_step > last_record else {}
    return Progress(good_step, steps, metrics, postprocess(run.good), series=series,
                    message=(f"stopped at step {step}: the loss became NaN or infinite after step {good_step} "
                             f"(try a lower lr or smaller loss weights); showing the image of step {good_step}, "
                             "the last with a finite loss"),
                    done=True)
