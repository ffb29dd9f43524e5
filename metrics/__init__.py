"""Evaluation metrics: FID (:mod:`metrics.fid`), Cityscapes mIoU (:mod:`metrics.miou` with the DRN
segmenter of :mod:`metrics.drn`) and the shared evaluation protocol (:class:`metrics.evaluate.Evaluator`).

The metric functions are pure functions of tensors and arrays; the networks that make features are
loaded from paths the caller gives, never downloaded.
"""
