"""Plausibility checks of a segmentation against its own images (numpy/SciPy only; no torch).

Computed after every segmentation from the four input images and the label map: whether the
inputs are the sequences they are said to be (:mod:`.sequences`), whether the segmented tumour
looks like tumour on them (:mod:`.appearance`), whether its size, number and place are those of a
tumour (:mod:`.spatial`), and the verdict ``plausible | doubtful | implausible``
(:mod:`.verdict`). :mod:`.evidence` judges single tumour components the same way, for the
component rules of post-processing. Thresholds and how they were measured: docs/plausibility.md.
"""
