"""Saving and loading this project's TinySSD and FCN files through the weights registry.

Each file is a safetensors state dict with a manifest row (:mod:`vision_core.weights`) that says
how to make it again: the command (a chain ``first && second`` for weights trained from earlier
ones, see :func:`continue_chain`), the data seed and the measured metrics. TinySSD is stored in
float32 (about 4 MB), FCN in float16 (about 26 MB for 21 classes; loaded back as float32).

Loading checks the file against the manifest (size and sha256), reads the number of classes from
the head's weight, and leaves the caller's global RNG as it was: the new network's random init,
overwritten at once, does not advance it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from numbers import Real
from pathlib import Path

import torch
from torch import Tensor, nn

from . import weights as _weights
from .models.fcn import FCN, check_fcn
from .models.tiny_ssd import NUM_ANCHORS, TinySSD, check_tiny_ssd

__all__ = [
    "SSD_WEIGHTS",
    "FCN_WEIGHTS",
    "save_tiny_ssd",
    "load_tiny_ssd",
    "save_fcn",
    "load_fcn",
    "continue_chain",
]

SSD_WEIGHTS = "tiny_ssd_bananas"
SSD_LICENSE = "MIT (trained by this project on its synthetic banana data)"
SSD_DATA = "vision_core.data.bananas synthetic, 1000 train / 100 val"
FCN_WEIGHTS = "fcn_resnet18_synthetic"
FCN_LICENSE = "MIT (trained by this project on its synthetic VOC-layout data)"
FCN_DATA = "vision_core.data.voc synthetic, 600 train / 100 val, 320 x 480"


# --- the shared glue ----------------------------------------------------------------------------

def _save(net: nn.Module, dtype: torch.dtype, name: str, *, license: str, source: dict[str, object],
          metrics: Mapping[str, object], description: str, directory: Path | None) -> _weights.WeightEntry:
    # Floating tensors (weights and statistics) in `dtype`; int64 counters (num_batches_tracked) as
    # they are. Only finite numbers go into the manifest's metrics.
    state = {k: (v.detach().to(dtype) if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    numbers = {k: float(v) for k, v in metrics.items()
               if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)}
    return _weights.save_weights(name, state, license=license, source=source, metrics=numbers,
                                 description=description, directory=directory)


def _load(name: str, directory: Path | None, device: str | torch.device, head: str,
          num_classes: Callable[[Tensor], int | None], build: Callable[[int], nn.Module],
          what: str) -> tuple[nn.Module, _weights.WeightEntry]:
    # The registry row, the checked state dict, the class count read from the head's weight, then
    # the network built without touching the caller's RNG and filled with the state.
    entry = _weights.get_entry(name, directory)
    state = _weights.load_state_dict(name, directory, device="cpu")
    weight = state.get(head)
    classes = num_classes(weight) if isinstance(weight, Tensor) and weight.dim() == 4 else None
    if classes is None:
        raise _weights.WeightsError(f"weights {name!r} are not {what}'s (no valid {head})")
    with torch.random.fork_rng(devices=[]):
        net = build(classes)
    try:
        net.load_state_dict(state)  # copies into the float32 parameters
    except RuntimeError as err:
        raise _weights.WeightsError(f"weights {name!r} do not fit {type(net).__name__}: {err}") from None
    return net.to(device).eval(), entry


def continue_chain(previous: _weights.WeightEntry | None, command: str, epochs: int,
                   seconds: float) -> tuple[str, int, float]:
    """The manifest's ``(command, epochs, train_seconds)`` for weights trained by ``command``.

    Trained from ``previous`` (``--init NAME``), the command is the whole chain, oldest first
    (``first && second``), so the file can be made again, and epochs and seconds are totals.

    Args:
        previous (WeightEntry, optional): the registered weights training started from.
        command (str): this run's command line.
        epochs (int): this run's epochs.
        seconds (float): this run's training time.
    """
    if previous is None:
        return command, epochs, seconds
    return (f"{previous.source.get('command', '?')} && {command}", int(previous.metrics.get("epochs", 0)) + epochs,
            float(previous.metrics.get("train_seconds", 0.0)) + seconds)


# --- TinySSD ------------------------------------------------------------------------------------

def save_tiny_ssd(net: TinySSD, metrics: Mapping[str, float], command: str, data_seed: int,
                  name: str = SSD_WEIGHTS, directory: Path | None = None,
                  description: str | None = None, data: str = SSD_DATA) -> _weights.WeightEntry:
    """Record a trained TinySSD in the weights registry (float32 safetensors, about 4 MB).

    Args:
        net (TinySSD): the trained network.
        metrics (Mapping[str, float]): its measured quality (e.g. :func:`~vision_core.ssd.evaluate_ssd`'s);
            only finite numbers are recorded.
        command (str): the command line that trained it, for the manifest's ``source``.
        data_seed (int): the seed of the synthetic banana data it was trained on.
        name (str): the registry name.
        directory (Path, optional): the registry folder; default ``pretrained/``.
        description (str, optional): the manifest's one-line description.
        data (str): what it was trained on, for the manifest's ``source``.

    Returns:
        WeightEntry: the manifest row written.
    """
    check_tiny_ssd(net)
    if description is None:
        description = f"TinySSD (d2l 14.7), {net.num_classes} class(es), trained on the synthetic banana data"
    return _save(net, torch.float32, name, license=SSD_LICENSE,
                 source={"command": command, "data_seed": data_seed, "data": data}, metrics=metrics,
                 description=description, directory=directory)


def _ssd_classes(head: Tensor) -> int | None:
    # cls_0 has NUM_ANCHORS * (classes + 1) output channels, classes >= 1.
    channels = head.shape[0]
    return None if channels % NUM_ANCHORS or channels // NUM_ANCHORS < 2 else channels // NUM_ANCHORS - 1


def load_tiny_ssd(name: str = SSD_WEIGHTS, directory: Path | None = None,
                  device: str | torch.device = "cpu") -> tuple[TinySSD, _weights.WeightEntry]:
    """The registered TinySSD ``name`` (file checked against the manifest) on ``device``, in eval mode.

    Like :func:`load_fcn`: ``directory`` is the registry folder (default ``pretrained/``), the
    result is ``(TinySSD, WeightEntry)``, the caller's global RNG is left as it was, and
    ``WeightsError`` says when the weights are unknown, missing, corrupt, or not a TinySSD's.
    """
    return _load(name, directory, device, "cls_0.weight", _ssd_classes, TinySSD, "a TinySSD")


# --- FCN ----------------------------------------------------------------------------------------

def save_fcn(net: FCN, metrics: Mapping[str, object], command: str, data_seed: int, name: str = FCN_WEIGHTS,
             directory: Path | None = None, description: str | None = None, data: str = FCN_DATA,
             license: str = FCN_LICENSE, trunk: str | None = None) -> _weights.WeightEntry:
    """Record a trained FCN in the weights registry, as float16 safetensors (about 26 MB for 21 classes).

    float16 halves the file; :func:`load_fcn` turns it back into float32. Its predictions
    differ from the float32 network's only on pixels whose two best scores are nearly tied.

    Args:
        net (FCN): the trained network.
        metrics (Mapping): its measured quality (e.g. :func:`~vision_core.fcn.evaluate_fcn`'s); only
            finite numbers are recorded.
        command (str): the command line that trained it, for the manifest's ``source``.
        data_seed (int): the seed of the synthetic data it was trained on.
        name (str): the registry name.
        directory (Path, optional): the registry folder; default ``pretrained/``.
        description (str, optional): the manifest's one-line description.
        data (str): what it was trained on, for the manifest's ``source``.
        license (str): the manifest's license line.
        trunk (str, optional): how the trunk started (``"random"`` or the ImageNet file), for
            the manifest's ``source``.

    Returns:
        WeightEntry: the manifest row written.
    """
    check_fcn(net)
    source: dict[str, object] = {"command": command, "data_seed": data_seed, "data": data, "storage": "float16"}
    if trunk is not None:
        source["trunk"] = trunk
    if description is None:
        description = (f"FCN (d2l 14.11), ResNet-18 trunk, {net.num_classes} classes, trained on the synthetic "
                       "VOC-layout data; stored as float16")
    return _save(net, torch.float16, name, license=license, source=source, metrics=metrics,
                 description=description, directory=directory)


def _fcn_classes(head: Tensor) -> int | None:
    # final_conv is a 1x1 convolution from the trunk's 512 channels to the classes.
    return int(head.shape[0]) if tuple(head.shape[1:]) == (512, 1, 1) and 1 <= head.shape[0] <= 1000 else None


def load_fcn(name: str = FCN_WEIGHTS, directory: Path | None = None,
             device: str | torch.device = "cpu") -> tuple[FCN, _weights.WeightEntry]:
    """An FCN with registered weights (checked against the manifest), in float32 and eval mode.

    The caller's global RNG is left as it was.

    Args:
        name (str): the registry name.
        directory (Path, optional): the registry folder; default ``pretrained/``.
        device: where to put the network.

    Returns:
        (FCN, WeightEntry): the network and its manifest row.

    Raises:
        WeightsError: the weights are unknown, missing, corrupt, or not an FCN's.
    """
    return _load(name, directory, device, "final_conv.weight", _fcn_classes, FCN, "an FCN")
