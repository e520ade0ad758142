"""Experiments a researcher runs on a local cohort.

- :mod:`~voxmmsd.experiment.label_efficiency` — fine-tune from scratch and from pre-trained
  weights with N labelled cases for several N; Dice on a held-out set against N.
- :mod:`~voxmmsd.experiment.crossval` and the ``cv_*`` modules — k-fold cross-validation of a recipe
  or a model through the product's own commands (``voxmmsd experiment crossval``): folds
  (``crossval``), cases (``cv_data``), the commands run in process (``cv_engine``), training and
  segmenting the folds (``cv_run``), scores and comparisons (``cv_score``), the nested choice of
  post-processing limits (``cv_postprocess``), the uncertainty ranking (``cv_uncertainty``) and the
  model protocol's result (``cv_protocol``, with ``protocol`` and ``protocol_tables``).
"""

from __future__ import annotations
