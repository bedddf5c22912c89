"""vision_core: the maths behind Vision Lab, with the names of *Dive into Deep Learning*.

PyTorch and torchvision only: no UI code, so a learner can swap ``d2l.X`` for
``vision_core.X`` in a notebook and get the same tensors.
"""

from .boxes import (
    BOX_FORMATS,
    box_area,
    box_center_to_corner,
    box_convert,
    box_corner_to_center,
    box_corner_to_xywh,
    box_iou,
    box_xywh_to_corner,
    clip_boxes_to_image,
    denormalize_boxes,
    normalize_boxes,
)
from .device import autocast_dtype, describe_device, get_device, resolve_device, set_device

__all__ = [
    "BOX_FORMATS",
    "box_area",
    "box_center_to_corner",
    "box_convert",
    "box_corner_to_center",
    "box_corner_to_xywh",
    "box_iou",
    "box_xywh_to_corner",
    "clip_boxes_to_image",
    "denormalize_boxes",
    "normalize_boxes",
    "autocast_dtype",
    "describe_device",
    "get_device",
    "resolve_device",
    "set_device",
]

__version__ = "0.1.0"
