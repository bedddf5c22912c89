"""The book's fully convolutional network on a ResNet-18 trunk, its loss, and the trunk's weights (d2l 14.11).

* :class:`FCN` is the book's ``net``: torchvision's ResNet-18 without its global pooling and
  classifier (children ``0`` .. ``7``), then ``final_conv`` (1x1, 512 -> classes) and
  ``transpose_conv`` (kernel 64, stride 32, padding 16) initialised with
  :func:`~vision_core.transposed.bilinear_kernel`. It is an ``nn.Sequential`` built the way the
  book builds it, so its state dict has the book's keys (``0.weight``, ``4.0.conv1.weight``,
  ``final_conv.weight``, ...). A ``[B, 3, H, W]`` input gives ``[B, classes, H, W]`` scores when
  ``H`` and ``W`` are multiples of 32.
* :func:`init_fcn_backbone` loads torchvision's ImageNet ResNet-18 state dict (``conv1.*``,
  ``layer1.*``, ...; ``fc.*`` is dropped) into the trunk; :func:`find_resnet18_imagenet` finds
  torchvision's file in the user's cache without the network (offline, the trunk starts random).
* :func:`fcn_loss` is the book's ``loss``.
* :func:`load_torchvision_fcn_resnet50` loads torchvision's own FCN-ResNet-50, the reference the
  Segmentation tab compares with, from a local file.

Training, prediction and evaluation are in :mod:`vision_core.fcn`; this project's own FCN files
are saved and loaded by :mod:`vision_core.checkpoints`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from .. import weights as _weights
from .._checks import ArgumentError, check_int, describe
from ..data.voc import VOID_INDEX
from ..transposed import bilinear_kernel

__all__ = [
    "TRUNK_CHILDREN",
    "STRIDE",
    "RESNET18_IMAGENET_SHA256_PREFIX",
    "FCN_RESNET50_SHA256_PREFIX",
    "FCN",
    "init_fcn_backbone",
    "find_resnet18_imagenet",
    "load_resnet18_imagenet",
    "fcn_loss",
    "load_torchvision_fcn_resnet50",
]

# torchvision's names of the ResNet-18 children the FCN keeps, in order: child i of FCN is
# TRUNK_CHILDREN[i] of the ResNet (avgpool and fc are dropped, as in the book).
TRUNK_CHILDREN = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
STRIDE = 32  # the trunk halves height and width five times; transpose_conv multiplies them back
# torchvision names its checkpoints <stem>-<first 8 hex digits of the file's sha256>.pth.
RESNET18_IMAGENET_SHA256_PREFIX = "f37072fd"
FCN_RESNET50_SHA256_PREFIX = "1167a1af"


class FCN(nn.Sequential):
    """The book's fully convolutional network on a ResNet-18 trunk.

    Children, in the book's order and with its names: ``0`` .. ``7`` are torchvision's
    ResNet-18 ``conv1, bn1, relu, maxpool, layer1 .. layer4`` (:data:`TRUNK_CHILDREN`), then
    ``final_conv`` = ``Conv2d(512, num_classes, 1)`` and ``transpose_conv`` =
    ``ConvTranspose2d(num_classes, num_classes, kernel_size=64, padding=16, stride=32)`` whose
    weight starts as :func:`bilinear_kernel` (its bias keeps PyTorch's default init, as in the
    book). 11.2 M trunk parameters plus 1.8 M for 21 classes.

    The trunk is random unless ``pretrained_backbone`` is given (the book starts from
    ImageNet weights; see :func:`find_resnet18_imagenet` for a local copy).

    Args:
        num_classes (int): classes including the background, in ``[1, 1000]``; the book: 21.
        pretrained_backbone (dict, optional): torchvision's ResNet-18 state dict for the trunk,
            loaded with :func:`init_fcn_backbone`.

    Shapes:
        ``[B, 3, H, W]`` float (ImageNet-normalised) -> ``[B, num_classes, H', W']`` scores with
        ``H' = 32 * ceil(H / 32)``: ``H`` when it is a multiple of 32 (the book's 320 x 480).
    """

    def __init__(self, num_classes: int = 21, pretrained_backbone: Mapping[str, Tensor] | None = None):
        num_classes = check_int(num_classes, "num_classes", 1, 1000)
        resnet = torchvision.models.resnet18(weights=None)
        super().__init__(*list(resnet.children())[:-2])
        self.add_module("final_conv", nn.Conv2d(512, num_classes, kernel_size=1))
        self.add_module("transpose_conv", nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64,
                                                             padding=16, stride=STRIDE))
        with torch.no_grad():
            self.transpose_conv.weight.copy_(bilinear_kernel(num_classes, num_classes, 64))
        self.num_classes = num_classes
        if pretrained_backbone is not None:
            init_fcn_backbone(self, pretrained_backbone)

    def forward(self, X: Tensor) -> Tensor:
        """``Tensor[B, 3, H, W]`` -> ``Tensor[B, num_classes, H', W']``: the children in order.

        Under a CPU autocast the transposed convolution runs in float32: oneDNN's bfloat16
        kernel for its 64 x 64 window is about 40 times slower than float32 there (see
        benchmarks.segmentation), while the trunk's convolutions gain from bfloat16 on CPUs with
        AMX or AVX-512 BF16.
        """
        for module in list(self._modules.values())[:-1]:
            X = module(X)
        if X.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return self.transpose_conv(X.float())
        return self.transpose_conv(X)

    def __getitem__(self, idx):
        # nn.Sequential builds a slice as self.__class__(OrderedDict), which FCN's arguments do not
        # take: a slice (e.g. net[:8], the trunk) is a plain Sequential of the same modules.
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)


def check_fcn(net: object, name: str = "net") -> None:
    """Raise :class:`~vision_core._checks.ArgumentError` unless ``net`` is an :class:`FCN`."""
    if not isinstance(net, FCN):
        raise ArgumentError(name, "an FCN", type(net).__name__)


def init_fcn_backbone(net: FCN, state_dict: Mapping[str, Tensor]) -> FCN:
    """Load torchvision's ResNet-18 weights (e.g. ImageNet's) into the FCN's trunk.

    Keys are torchvision's (``conv1.weight``, ``bn1.running_mean``, ``layer1.0.conv1.weight``,
    ...) and become the FCN's (``0.weight``, ``1.running_mean``, ``4.0.conv1.weight``, ...).
    Strict on the trunk: every trunk tensor must be given, with its shape (BatchNorm's
    ``num_batches_tracked`` counters excepted, which old checkpoints lack), and nothing else but
    the classifier ``fc.*``, which the FCN has no use for. ``final_conv`` and ``transpose_conv``
    are left as they are.

    Args:
        net (FCN): the network, changed in place.
        state_dict (Mapping[str, Tensor]): ``torchvision.models.resnet18().state_dict()``'s keys.

    Returns:
        FCN: ``net``.

    Raises:
        ArgumentError: keys are missing or unexpected, or a shape differs.
    """
    check_fcn(net)
    if not isinstance(state_dict, Mapping):
        raise ArgumentError("state_dict", "a mapping of torchvision ResNet-18 keys to tensors", describe(state_dict))
    position = {name: str(i) for i, name in enumerate(TRUNK_CHILDREN)}
    renamed, unexpected = {}, []
    for key, value in state_dict.items():
        child, _, rest = str(key).partition(".")
        if child == "fc":
            continue
        if child in position and rest:
            renamed[f"{position[child]}.{rest}"] = value
        else:
            unexpected.append(key)
    trunk_keys = {k for k in net.state_dict() if k.partition(".")[0] in position.values()}
    # BatchNorm's num_batches_tracked counters are optional: checkpoints saved before PyTorch 0.4.1
    # lack them (BatchNorm itself accepts that); the FCN keeps its own.
    missing = sorted(k for k in trunk_keys - renamed.keys() if not k.endswith(".num_batches_tracked"))
    unexpected += sorted(k for k in renamed if k not in trunk_keys)
    if missing or unexpected:
        raise ArgumentError("state_dict", "a torchvision ResNet-18 state dict (keys conv1.*, bn1.*, layer1-4.*, "
                            "fc.*)", f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected "
                            f"{unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
    try:
        net.load_state_dict(renamed, strict=False)
    except RuntimeError as err:  # a shape mismatch
        raise ArgumentError("state_dict", "a state dict that fits the FCN's ResNet-18 trunk", str(err)) from None
    return net


def find_resnet18_imagenet(directory: Path | None = None) -> Path | None:
    """torchvision's ImageNet ResNet-18 file, if this machine has it; never touches the network.

    Looks for ``resnet18-f37072fd.pth`` (the name ``torchvision.models.resnet18(weights=
    "IMAGENET1K_V1")`` downloads) in the registry folder, then in ``$TORCH_HOME/hub/checkpoints``
    (``TORCH_HOME`` defaults to ``~/.cache/torch``), and checks that the file's sha256 starts with
    the 8 hex digits in its name, as torchvision's downloader does.

    Args:
        directory (Path, optional): the registry folder; default ``pretrained/``.

    Returns:
        Path or None: the file, or None when neither folder has it (offline, the FCN's trunk
        then starts from random weights).

    Raises:
        WeightsError: the file is there but its sha256 does not match.
    """
    return _weights.find_torchvision_checkpoint(f"resnet18-{RESNET18_IMAGENET_SHA256_PREFIX}.pth", directory)


def load_resnet18_imagenet(path: str | Path | None = None) -> dict[str, Tensor]:
    """torchvision's ImageNet ResNet-18 state dict, from ``path`` or :func:`find_resnet18_imagenet`.

    Loaded with ``torch.load(..., weights_only=True)``: tensors only, no arbitrary pickle.

    Raises:
        WeightsError: no file was given or found, or it is not a state dict of tensors.
    """
    if path is None:
        path = find_resnet18_imagenet()
        if path is None:
            raise _weights.WeightsError(
                f"resnet18-{RESNET18_IMAGENET_SHA256_PREFIX}.pth is not in {_weights.PRETRAINED_DIR} nor in "
                f"{_weights.torch_cache_dir()}: on a machine with internet, torchvision.models.resnet18(weights="
                "'IMAGENET1K_V1') downloads it; offline, build FCN() without it (random trunk)")
    return _load_pth(Path(path))


def _load_pth(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise _weights.WeightsError(f"{path} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a plain state dict"
        raise _weights.WeightsError(f"{path} is not a state dict of tensors loadable with weights_only=True: "
                                    f"{type(err).__name__}: {str(err)[:200]}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise _weights.WeightsError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return dict(state)


def fcn_loss(inputs: Tensor, targets: Tensor) -> Tensor:
    """The book's ``loss``: per-pixel cross-entropy, averaged over each image's pixels.

    Pixels labelled :data:`~vision_core.data.voc.VOID_INDEX` are left out of both the sum and the
    count; with none (the book's labels), this is the book's
    ``F.cross_entropy(..., reduction='none').mean(1).mean(1)``. Training sums it over the batch
    before ``backward``, as the book's ``train_batch_ch13``.

    Args:
        inputs (Tensor[B, C, H, W]): class scores (logits).
        targets (Tensor[B, H, W]): int64 class indices.

    Returns:
        Tensor[B]: each image's mean loss (0 for an image with only void pixels).
    """
    ce = F.cross_entropy(inputs, targets, reduction="none", ignore_index=VOID_INDEX)  # [B, H, W]
    counted = (targets != VOID_INDEX).sum(dim=(1, 2)).clamp(min=1)
    return ce.sum(dim=(1, 2)) / counted


def load_torchvision_fcn_resnet50(path: str | Path | None = None, device: str | torch.device = "cpu",
                                  directory: Path | None = None) -> nn.Module:
    """torchvision's FCN-ResNet-50 (COCO images, the 21 VOC classes) from a local weight file.

    The model is ``torchvision.models.segmentation.fcn_resnet50(weights=None,
    weights_backbone=None, aux_loss=True)``; the file is the state dict torchvision publishes
    (``fcn_resnet50_coco-1167a1af.pth``), loaded with ``weights_only=True``. Nothing is
    downloaded. Its forward returns a dict; :func:`~vision_core.fcn.predict_fcn` and
    :func:`~vision_core.fcn.evaluate_fcn` take it as it is. It expects ImageNet-normalised input,
    like :class:`FCN`.

    Args:
        path (str or Path, optional): the ``.pth`` file; None looks for torchvision's file in
            the registry folder and the torch cache (its sha256 prefix checked).
        device: where to put the network.
        directory (Path, optional): the registry folder searched when ``path`` is None.

    Returns:
        nn.Module: the network, in eval mode.

    Raises:
        WeightsError: no file, not a state dict, or not FCN-ResNet-50's keys and shapes.
    """
    from torchvision.models.segmentation import fcn_resnet50

    if path is None:
        path = _weights.find_torchvision_checkpoint(f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth", directory)
        if path is None:
            raise _weights.WeightsError(
                f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth is not in the registry folder nor in "
                f"{_weights.torch_cache_dir()}: pass its path, or train the offline FCN (train_fcn)")
    state = _load_pth(Path(path))
    # The new net's random init is overwritten: keep it from advancing the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        net = fcn_resnet50(weights=None, weights_backbone=None, aux_loss=True)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise _weights.WeightsError(f"{path} does not fit torchvision's fcn_resnet50 (aux_loss=True): "
                                    f"{str(err)[:300]}") from None
    return net.to(device).eval()
