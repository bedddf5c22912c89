"""vision_core: the maths behind Vision Lab, with the names of *Dive into Deep Learning*.

PyTorch and torchvision only: no UI code, so a learner can swap ``d2l.X`` for
``vision_core.X`` in a notebook and get the same tensors.
"""

from .anchors import (
    assign_anchor_to_bbox,
    assign_anchor_trace,
    multibox_detection,
    multibox_prior,
    multibox_target,
    nms,
    nms_trace,
    offset_boxes,
    offset_inverse,
)
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
from .regions import roi_align, roi_pool_grid, selective_search
from .fcn import FCN, predict_fcn, train_fcn
from .ssd import TinySSD, predict, train_ssd
from .style import content_loss, gram, style_loss, style_transfer, tv_loss
from .transposed import bilinear_kernel, trans_conv, trans_conv2d
from .data.voc import VOC_CLASSES, VOC_COLORMAP, VOCSegDataset, load_data_voc, read_voc_images

__all__ = [
    # boxes (d2l 14.3)
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
    # anchors (d2l 14.4)
    "multibox_prior",
    "assign_anchor_to_bbox",
    "offset_boxes",
    "offset_inverse",
    "multibox_target",
    "nms",
    "multibox_detection",
    "nms_trace",
    "assign_anchor_trace",
    # regions (d2l 14.8)
    "selective_search",
    "roi_pool_grid",
    "roi_align",
    # SSD (d2l 14.7)
    "TinySSD",
    "predict",
    "train_ssd",
    # transposed convolution and FCN (d2l 14.9-14.11)
    "trans_conv",
    "trans_conv2d",
    "bilinear_kernel",
    "VOC_CLASSES",
    "VOC_COLORMAP",
    "read_voc_images",
    "VOCSegDataset",
    "load_data_voc",
    "FCN",
    "predict_fcn",
    "train_fcn",
    # style transfer (d2l 14.12)
    "gram",
    "content_loss",
    "style_loss",
    "tv_loss",
    "style_transfer",
    # device
    "autocast_dtype",
    "describe_device",
    "get_device",
    "resolve_device",
    "set_device",
]

__version__ = "0.1.0"
