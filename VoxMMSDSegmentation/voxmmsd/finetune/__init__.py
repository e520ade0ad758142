"""Fine-tuning: a pre-trained (or fresh) U-Net becomes a segmentation model package.

- :mod:`~voxmmsd.finetune.config` — the typed run configuration (YAML + ``--set`` overrides).
- :mod:`~voxmmsd.finetune.split` — seeded training/validation split.
- :mod:`~voxmmsd.finetune.data` — patches with foreground over-sampling, augmentation, sequence dropout.
- :mod:`~voxmmsd.finetune.loss` — Dice + cross-entropy.
- :mod:`~voxmmsd.finetune.init` — ``--init``: pre-training run, our weights, or a PyMIC checkpoint.
- :mod:`~voxmmsd.finetune.validate` — sliding-window validation, Dice per region.
- :mod:`~voxmmsd.finetune.loop` — the training loop (events, checkpoints, stop/resume, DDP).
"""

from __future__ import annotations
