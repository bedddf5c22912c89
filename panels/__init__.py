"""Dashboard panels: one module (or package) per tab, each with TITLE, TITLE_ZH, TAB_ID and build()."""

from . import anchors, boxes, regions, segmentation, ssd, style

PANELS = (boxes, anchors, regions, ssd, segmentation, style)
