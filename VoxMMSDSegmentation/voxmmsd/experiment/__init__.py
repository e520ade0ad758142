"""Experiments a researcher runs on a local cohort.

- :mod:`~voxmmsd.experiment.label_efficiency` — fine-tune from scratch and from pre-trained
  weights with N labelled cases for several N; Dice on a held-out set against N.
"""

from __future__ import annotations
