"""Dashboard panels: one module per tab. Each has TITLE, TAB_ID and build()."""

from . import anchors, boxes, regions, segmentation, ssd, style

PANELS = (boxes, anchors, regions, ssd, segmentation, style)
