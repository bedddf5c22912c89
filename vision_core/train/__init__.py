"""Training plumbing that TinySSD and FCN share: the streaming epoch skeleton (:mod:`.loop`), the
DistributedDataParallel helpers (:mod:`.distributed`) and the segmentation batches (:mod:`.seg_batches`).

The book's training functions themselves stay in their topic modules:
:func:`vision_core.ssd.train_ssd` and :func:`vision_core.fcn.train_fcn`.
"""
