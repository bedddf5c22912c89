"""Data sets of the chapter: the banana-detection set (d2l 14.6) and Pascal VOC 2012 (d2l 14.9),
read in the book's layout, and the offline stand-ins generated when there is no download.

- :mod:`.bananas`: the banana-detection reader, loaders and its offline generator.
- :mod:`.bananas_heldout`: a held-out banana set drawn by another method, and banana-free photos.
- :mod:`.augment`: SSD's augmentations of a detection batch (zoom out, crop, flip, colours), boxes moved with the pixels.
- :mod:`.voc`: VOC's classes and colours, the book's readers, ``VOCSegDataset``, ``load_data_voc``.
- :mod:`.voc_synthetic`: an offline stand-in for VOC in the same layout, and its cached copy.
- :mod:`.downloads`: fetching the real VOC archive (on request only), checked and safely extracted.
- :mod:`.voc_metrics`: pixel accuracy, the confusion matrix and IoU over VOC-style labels.
- ``_synth``: what both generators share (seeds, backgrounds, bundled photos, the cache folder).
"""
