"""Neural style transfer: the book's losses and optimisation loop (d2l 14.12), network-independent.

What the book builds, with its names where it has them:

* :data:`RGB_MEAN`, :data:`RGB_STD`, :func:`preprocess` and :func:`postprocess` move between
  photos and the ImageNet-normalised ``[1, 3, h, w]`` tensors a backbone reads;
  :func:`postprocess` returns a ``uint8 [h, w, 3]`` array rather than a PIL image.
* :func:`gram`, :func:`content_loss`, :func:`style_loss`, :func:`tv_loss` and
  :func:`compute_loss` are the book's definitions (``compute_loss`` adds optional per-style-layer
  weights).
* :class:`FeatureTaps` is the book's ``extract_features`` as a module: a frozen sequential
  backbone and the indices of the layers whose outputs are the content and the style
  representations. :func:`vgg19_taps` builds the book's one, torchvision's VGG-19 ``features``
  with style layers ``0, 5, 10, 19, 28`` and content layer ``25``, from a state dict the caller
  has (nothing is downloaded here; offline, another backbone may be wrapped the same way).
* :func:`style_transfer` is the book's ``train`` run as a generator of :class:`Progress`
  records: Adam on the synthesised image alone (it starts as the content image), StepLR decay.

Images are single pictures, batch 1, as in the book: :func:`gram` reshapes to
``[channels, h * w]``.
"""

from __future__ import annotations

import math
import threading
import time
from numbers import Integral, Real
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .device import autocast_dtype, get_device, resolve_device
from .progress import Progress

__all__ = [
    "RGB_MEAN",
    "RGB_STD",
    "BOOK_STYLE_LAYERS",
    "BOOK_CONTENT_LAYERS",
    "preprocess",
    "postprocess",
    "gram",
    "content_loss",
    "style_loss",
    "tv_loss",
    "compute_loss",
    "FeatureTaps",
    "vgg19_taps",
    "style_transfer",
]

RGB_MEAN = torch.tensor([0.485, 0.456, 0.406])  # ImageNet channel means of 0..1 pixels
RGB_STD = torch.tensor([0.229, 0.224, 0.225])   # ImageNet channel standard deviations
BOOK_STYLE_LAYERS = (0, 5, 10, 19, 28)  # VGG-19 `features` indices the book takes style from
BOOK_CONTENT_LAYERS = (25,)             # ... and content from
_MAX_WEIGHT = 1e12
_MAX_SIDE = 2048
DEFAULT_FRAME_INTERVAL = 0.25  # seconds between previews: a few frames a second


# --- argument checks ------------------------------------------------------------------------

def _check_int(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _check_real(value, name: str, lo: float, hi: float, lo_open: bool = False) -> float:
    ok = isinstance(value, (Real, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        raise ValueError(f"{name} must be a finite number in {'(' if lo_open else '['}{lo}, {hi}], got {value!r}")
    return float(value)


def _check_weight(value, name: str) -> float:
    return _check_real(value, name, 0.0, _MAX_WEIGHT, lo_open=True)


def _check_shape(image_shape, name: str = "image_shape") -> Tuple[int, int]:
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 2:
        raise ValueError(f"{name} must be a pair (height, width) of integers in [16, {_MAX_SIDE}], "
                         f"got {image_shape!r}")
    h = _check_int(image_shape[0], f"{name}[0] (height)", 16, _MAX_SIDE)
    w = _check_int(image_shape[1], f"{name}[1] (width)", 16, _MAX_SIDE)
    return h, w


def _describe(value) -> str:
    if isinstance(value, (Tensor, np.ndarray)):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__


def _check_layer_weights(weights, count: int) -> Optional[List[float]]:
    if weights is None:
        return None
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) != count:
        raise ValueError(f"style_layer_weights must be a sequence of {count} positive numbers (one per style "
                         f"layer), got {weights!r}")
    return [_check_weight(w, f"style_layer_weights[{i}]") for i, w in enumerate(weights)]


# --- pictures in and out --------------------------------------------------------------------

def _as_chw_uint8(img: Any, name: str = "img") -> Tensor:
    """PIL image, ``uint8 Tensor[3, H, W]`` or ``uint8 ndarray[H, W, 3]`` -> ``uint8 Tensor[3, H, W]``."""
    if hasattr(img, "convert") and hasattr(img, "size") and not isinstance(img, (Tensor, np.ndarray)):
        img = np.asarray(img.convert("RGB"))  # a PIL image (PIL itself is not imported here)
        return torch.from_numpy(img.copy()).permute(2, 0, 1).contiguous()
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
            raise ValueError(f"{name} must be a PIL image, a uint8 Tensor[3, H, W] or a uint8 array [H, W, 3], "
                             f"got {_describe(img)}")
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()
    if isinstance(img, Tensor):
        if img.dim() != 3 or img.shape[0] != 3 or img.dtype != torch.uint8 or min(img.shape[1:]) < 1:
            raise ValueError(f"{name} must be a PIL image, a uint8 Tensor[3, H, W] or a uint8 array [H, W, 3], "
                             f"got {_describe(img)}")
        return img.detach().cpu()
    raise ValueError(f"{name} must be a PIL image, a uint8 Tensor[3, H, W] or a uint8 array [H, W, 3], "
                     f"got {_describe(img)}")


def preprocess(img: Any, image_shape: Tuple[int, int]) -> Tensor:
    """The book's ``preprocess``: resize a photo and normalise it with the ImageNet statistics.

    Resizing is bilinear with antialiasing (as torchvision's ``Resize`` on a PIL image), skipped
    when the photo already has ``image_shape``.

    Args:
        img: a PIL image (converted to RGB), ``uint8 Tensor[3, H, W]`` or ``uint8 ndarray[H, W, 3]``.
        image_shape ((int, int)): ``(h, w)``, each in ``[16, 2048]`` (the book: ``(300, 450)``).

    Returns:
        Tensor[1, 3, h, w]: float32 on the CPU, ``(pixel / 255 - RGB_MEAN) / RGB_STD`` per channel.
    """
    h, w = _check_shape(image_shape)
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
        raise ValueError(f"img must be a float Tensor[1, 3, h, w] (normalised), got {_describe(img)}")
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
        raise ValueError(f"X must be a Tensor[1, c, h, w] (one image's features), got {_describe(X)}")
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


def compute_loss(X: Tensor, contents_Y_hat: Sequence[Tensor], styles_Y_hat: Sequence[Tensor],
                 contents_Y: Sequence[Tensor], styles_Y_gram: Sequence[Tensor], content_weight: float = 1.0,
                 style_weight: float = 1e4, tv_weight: float = 10.0,
                 style_layer_weights: Optional[Sequence[float]] = None
                 ) -> Tuple[List[Tensor], List[Tensor], Tensor, Tensor]:
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
        raise ValueError(f"style_layer_weights must have one weight per style layer ({len(styles_Y_hat)}), "
                         f"got {len(layer_weights)}")
    contents_l = [content_loss(Y_hat, Y) * content_weight for Y_hat, Y in zip(contents_Y_hat, contents_Y)]
    styles_l = [style_loss(Y_hat, Y) * (style_weight * w)
                for Y_hat, Y, w in zip(styles_Y_hat, styles_Y_gram, layer_weights)]
    tv_l = tv_loss(X) * tv_weight
    total = sum(styles_l + contents_l + [tv_l])
    return contents_l, styles_l, tv_l, total


# --- feature extraction ---------------------------------------------------------------------

def _check_indices(indices, name: str, count: int) -> Tuple[int, ...]:
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence) or len(indices) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of layer indices in [0, {count - 1}], got {indices!r}")
    return tuple(_check_int(i, f"{name}[{k}]", 0, count - 1) for k, i in enumerate(indices))


class FeatureTaps(nn.Module):
    """A frozen sequential backbone read at chosen layers: the book's ``extract_features``.

    The backbone's layers up to the deepest tapped one are kept (the rest is never run), their
    parameters get ``requires_grad=False``, and they stay in eval mode (``train()`` leaves them
    there). The output of layer ``i`` is the activation after ``backbone[i]`` (the book's VGG-19
    indices tap convolution outputs before their ReLU).

    Args:
        backbone (nn.Sequential): the layers, applied one after the other.
        content_layers (sequence of int): indices whose outputs are content features (the book: ``[25]``).
        style_layers (sequence of int): indices whose outputs are style features (the book:
            ``[0, 5, 10, 19, 28]``).

    Shapes:
        ``forward(X)`` with ``X: [1, 3, h, w]`` (normalised) -> ``(contents, styles)``: lists of
        ``[1, c_i, h_i, w_i]`` tensors in the order of ``content_layers`` and ``style_layers``.
    """

    def __init__(self, backbone: nn.Sequential, content_layers: Sequence[int], style_layers: Sequence[int]):
        super().__init__()
        if not isinstance(backbone, nn.Sequential) or len(backbone) == 0:
            raise ValueError(f"backbone must be a non-empty nn.Sequential of layers, got {_describe(backbone)}")
        self.content_layers = _check_indices(content_layers, "content_layers", len(backbone))
        self.style_layers = _check_indices(style_layers, "style_layers", len(backbone))
        deepest = max(self.content_layers + self.style_layers)
        self.layers = nn.Sequential(*list(backbone)[:deepest + 1])
        self.layers.requires_grad_(False)
        self.layers.eval()

    def train(self, mode: bool = True) -> "FeatureTaps":
        super().train(mode)
        self.layers.eval()  # frozen: dropout and batch-norm statistics never switch on
        return self

    def forward(self, X: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        tapped: Dict[int, Tensor] = {}
        wanted = set(self.content_layers) | set(self.style_layers)
        for i, layer in enumerate(self.layers):
            X = layer(X)
            if i in wanted:
                tapped[i] = X
        return [tapped[i] for i in self.content_layers], [tapped[i] for i in self.style_layers]


def _vgg19_features() -> nn.Sequential:
    # Only the convolutional part: the full torchvision VGG-19 also allocates (and initialises) its
    # 548 MB classifier, which style transfer never uses. Same layers, same indices, same init.
    try:
        from torchvision.models.vgg import cfgs, make_layers
        features = make_layers(cfgs["E"], batch_norm=False)
    except (ImportError, KeyError, TypeError):  # a torchvision without these helpers
        import torchvision
        return torchvision.models.vgg19(weights=None).features
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return features


def vgg19_taps(state_dict: Optional[Mapping[str, Tensor]] = None) -> FeatureTaps:
    """The book's feature extractor: VGG-19's ``features`` tapped at the book's layers.

    Nothing is downloaded: pass torchvision's VGG-19 state dict (e.g. the ImageNet one, from a
    local file loaded with ``torch.load(..., weights_only=True)``). Without it the weights are
    random (torchvision's init), which gives no useful transfer (see docs/DESIGN.md's offline notes).

    Args:
        state_dict (Mapping[str, Tensor], optional): keys as ``torchvision.models.vgg19().state_dict()``
            (``features.N.weight``, ``features.N.bias``; ``classifier.*`` is ignored) or already
            without the ``features.`` prefix. Strict on the convolutions up to layer 28.

    Returns:
        FeatureTaps: content layers :data:`BOOK_CONTENT_LAYERS`, style layers :data:`BOOK_STYLE_LAYERS`.

    Raises:
        ValueError: keys are missing or unexpected, or a shape differs.
    """
    taps = FeatureTaps(_vgg19_features(), BOOK_CONTENT_LAYERS, BOOK_STYLE_LAYERS)
    if state_dict is None:
        return taps
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of torchvision VGG-19 keys to tensors, "
                         f"got {type(state_dict).__name__}")
    own = taps.layers.state_dict()
    renamed, unexpected = {}, []
    for key, value in state_dict.items():
        key = str(key)
        if key.startswith("classifier."):
            continue
        rest = key[len("features."):] if key.startswith("features.") else key
        index = rest.partition(".")[0]
        if rest in own:
            renamed[rest] = value
        elif not (index.isdigit() and int(index) >= len(taps.layers)):  # deeper layers are not needed
            unexpected.append(key)
    missing = sorted(set(own) - set(renamed))
    if missing or unexpected:
        raise ValueError("state_dict must be a torchvision VGG-19 state dict (keys features.N.weight / .bias): "
                         f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected "
                         f"{unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
    bad = [k for k, v in renamed.items() if not isinstance(v, Tensor) or tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"state_dict does not fit VGG-19's features: wrong shape or type for {bad[:4]}")
    taps.layers.load_state_dict(renamed)
    return taps


# --- the optimisation -----------------------------------------------------------------------

def style_transfer(content: Any, style: Any, taps: FeatureTaps, *, steps: int = 500, lr: float = 0.3,
                   lr_decay_epoch: int = 50, content_weight: float = 1.0, style_weight: float = 1e4,
                   tv_weight: float = 10.0, image_shape: Tuple[int, int] = (300, 450),
                   style_layer_weights: Optional[Sequence[float]] = None,
                   device: Union[None, str, torch.device] = None, seed: int = 0,
                   stop: Optional[threading.Event] = None, frame_interval: Optional[float] = None,
                   amp: bool = False) -> Iterator[Progress]:
    """Synthesise an image with ``content``'s content and ``style``'s style (the book's ``train``).

    Both photos are :func:`preprocess`-ed to ``image_shape``. The synthesised image starts as the
    content image and is the only thing optimised: Adam with ``lr``, multiplied by 0.8 every
    ``lr_decay_epoch`` steps (the book's StepLR). The style Gram matrices and the content
    features are computed once, without gradients. ``taps`` is moved to ``device`` and left there.

    Records (:class:`Progress`, ``total = steps``), ``metrics``: ``content``, ``style``, ``tv``
    (the weighted losses, summed over layers), ``total`` and ``lr``:

    * on the CPU, one record after every step (reading the losses costs nothing there);
    * on an accelerator, where reading a loss waits for the device, records come only with a
      preview (one device sync each, so the loop never waits on the GPU in between);
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
    ends with the last good image. On the CPU the loss is checked every step, before the update.

    Args:
        content, style: PIL images, ``uint8 Tensor[3, H, W]`` or ``uint8 ndarray[H, W, 3]``.
        taps (FeatureTaps): the frozen backbone and its layers (:func:`vgg19_taps` for the book's).
        steps (int): in ``[1, 10000]`` (the book: 500).
        lr (float): Adam's learning rate, in ``(0, 10]`` (the book: 0.3).
        lr_decay_epoch (int): steps between decays by 0.8, in ``[1, 10000]`` (the book: 50).
        content_weight, style_weight, tv_weight (float): positive and finite (the book: 1, 1e4, 10).
        image_shape ((int, int)): ``(h, w)``, each in ``[16, 2048]`` (the book: ``(300, 450)``).
        style_layer_weights (sequence of float, optional): a positive factor per style layer.
        device: where to run; None means :func:`vision_core.device.get_device`.
        seed (int): in ``[0, 2**31 - 1]``. The book's algorithm draws no random numbers, so a run
            on the CPU repeats exactly; ``torch.manual_seed(seed)`` is called before the first step
            so that a backbone with random layers would repeat too.
        stop (threading.Event, optional): set it to end the run before the next step.
        frame_interval (float, optional): seconds between previews, in ``[0, 3600]``
            (0: a preview with every record); default 0.25.
        amp (bool): on CUDA, run the backbone under bfloat16/float16 autocast (losses stay in
            float32). Ignored elsewhere.

    Returns:
        Iterator[Progress]: the records.

    Raises:
        ValueError: an argument is out of range (raised by this call, before the first record).
    """
    if not isinstance(taps, FeatureTaps):
        raise ValueError(f"taps must be a FeatureTaps (e.g. vgg19_taps()), got {_describe(taps)}")
    image_shape = _check_shape(image_shape)
    content_img = _as_chw_uint8(content, "content")
    style_img = _as_chw_uint8(style, "style")
    steps = _check_int(steps, "steps", 1, 10000)
    lr = _check_real(lr, "lr", 0.0, 10.0, lo_open=True)
    lr_decay_epoch = _check_int(lr_decay_epoch, "lr_decay_epoch", 1, 10000)
    content_weight = _check_weight(content_weight, "content_weight")
    style_weight = _check_weight(style_weight, "style_weight")
    tv_weight = _check_weight(tv_weight, "tv_weight")
    layer_weights = _check_layer_weights(style_layer_weights, len(taps.style_layers))
    seed = _check_int(seed, "seed", 0, 2**31 - 1)
    frame_interval = DEFAULT_FRAME_INTERVAL if frame_interval is None else \
        _check_real(frame_interval, "frame_interval", 0.0, 3600.0)
    if not isinstance(amp, bool):
        raise ValueError(f"amp must be True or False, got {amp!r}")
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise ValueError(f"stop must be a threading.Event, got {type(stop).__name__}")
    device = get_device() if device is None else resolve_device(device)
    weights = (content_weight, style_weight, tv_weight, layer_weights)
    return _transfer_records(content_img, style_img, taps, steps, lr, lr_decay_epoch, weights, image_shape,
                             device, seed, stop, frame_interval, amp)


def _sync_free(device: torch.device) -> bool:
    """Whether the loop avoids reading numbers every step: on accelerators, where a read waits for them."""
    return device.type != "cpu"


def _transfer_records(content_img, style_img, taps, steps, lr, lr_decay_epoch, weights, image_shape, device,
                      seed, stop, frame_interval, amp) -> Iterator[Progress]:
    content_weight, style_weight, tv_weight, layer_weights = weights
    amp_dtype = autocast_dtype(device) if (amp and device.type == "cuda") else None
    sync_free = _sync_free(device)
    channels_last = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    X = good = content_X = style_X = contents_Y = styles_Y_gram = optimizer = scheduler = None
    try:
        torch.manual_seed(seed)
        taps.to(device=device, memory_format=channels_last)
        content_X = preprocess(content_img, image_shape).to(device).contiguous(memory_format=channels_last)
        style_X = preprocess(style_img, image_shape).to(device).contiguous(memory_format=channels_last)

        def extract(Y: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
            if amp_dtype is None:
                return taps(Y)
            with torch.autocast(device.type, dtype=amp_dtype):
                contents, styles = taps(Y)
            return [c.float() for c in contents], [s.float() for s in styles]

        with torch.no_grad():
            contents_Y = extract(content_X)[0]
            styles_Y_gram = [gram(Y) for Y in extract(style_X)[1]]
        del style_X
        style_X = None
        X = nn.Parameter(content_X.clone())  # the book's SynthesizedImage.weight
        good = X.detach().clone()            # the image before the last step with a finite loss
        optimizer = torch.optim.Adam([X], lr=lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, lr_decay_epoch, 0.8)
        # content, style, tv, total of the last step whose loss was finite, and that step. The step
        # is counted on the device too: copying a host number in would wait for the device.
        good_metrics = torch.zeros(5, dtype=torch.float64, device=device)
        step_count = torch.zeros(1, dtype=torch.float64, device=device)
        lrs = [0.0]  # lrs[i]: the learning rate of step i
        last_frame = -math.inf
        for step in range(1, steps + 1):
            if stop is not None and stop.is_set():
                metrics, _ = _read(good_metrics, lrs)
                yield Progress(step - 1, steps, metrics, postprocess(X),
                               message=f"stopped after {step - 1} of {steps} steps", done=True)
                return
            lrs.append(float(optimizer.param_groups[0]["lr"]))
            optimizer.zero_grad(set_to_none=True)
            contents_Y_hat, styles_Y_hat = extract(X)
            contents_l, styles_l, tv_l, total = compute_loss(
                X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram,
                content_weight, style_weight, tv_weight, layer_weights)
            with torch.no_grad():
                values = torch.stack([sum(contents_l).double(), sum(styles_l).double(), tv_l.double(),
                                      total.double()])
                step_count += 1
                values = torch.cat([values, step_count])
                finite = torch.isfinite(total)
                # Kept on the device, no sync: the NaN record can show the last good image.
                good.copy_(torch.where(finite, X.detach(), good))
                good_metrics.copy_(torch.where(finite, values, good_metrics))
            if not sync_free and not math.isfinite(float(total.detach())):
                yield _nan_record(good, good_metrics, lrs, step, steps)
                return
            total.backward()
            optimizer.step()
            scheduler.step()
            last = step == steps
            frame_due = step == 1 or last or time.perf_counter() - last_frame >= frame_interval
            if sync_free and not frame_due:
                continue
            metrics, good_step = _read(good_metrics, lrs)  # the host sync (free on the CPU)
            if good_step != step:  # the loss turned NaN/inf since the last record (accelerators only)
                yield _nan_record(good, good_metrics, lrs, step, steps)
                return
            preview = None
            if frame_due:
                preview = postprocess(X)
                last_frame = time.perf_counter()
            if last:
                yield Progress(step, steps, metrics, preview,
                               message=f"done: {steps} steps, total loss {metrics['total']:.4g}", done=True)
            else:
                yield Progress(step, steps, metrics, preview, message=f"step {step}/{steps}")
    finally:
        # Drop the device tensors (and Adam's moments) before emptying the cache.
        del X, good, content_X, style_X, contents_Y, styles_Y_gram, optimizer, scheduler
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _read(good_metrics: Tensor, lrs: List[float]) -> Tuple[Dict[str, float], int]:
    """One host sync: the last finite step's metrics (empty before any) and that step (0: none)."""
    content, style, tv, total, step = good_metrics.tolist()
    if step == 0:
        return {}, 0
    return {"content": content, "style": style, "tv": tv, "total": total, "lr": lrs[int(step)]}, int(step)


def _nan_record(good: Tensor, good_metrics: Tensor, lrs: List[float], step: int, steps: int) -> Progress:
    metrics, good_step = _read(good_metrics, lrs)
    return Progress(good_step, steps, metrics, postprocess(good),
                    message=(f"stopped at step {step}: the loss became NaN or infinite after step {good_step} "
                             f"(try a lower lr or smaller loss weights); showing the image of step {good_step}, "
                             "the last with a finite loss"),
                    done=True)
