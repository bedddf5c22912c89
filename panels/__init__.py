"""Dashboard panels: one module per tab. Each has TITLE, TAB_ID and build()."""

from . import anchors, boxes, regions, ssd

PANELS = (boxes, anchors, regions, ssd)
