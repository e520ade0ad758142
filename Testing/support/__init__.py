"""Helpers shared by several test files (imported as ``support.<module>``; ``Testing/`` is on the path).

- :mod:`support.waiting` — ``wait_until``: poll a condition, failing early if a watched process ends;
- :mod:`support.training` — real training processes: environment, progress, losses; the tiny fine-tuning settings;
- :mod:`support.exams` — raw clinical exams (a head, oblique thick slices, clinical names) from a phantom;
- :mod:`support.packages` — a tiny real model package (random U-Net, standardised output layer);
- :mod:`support.shapes` — random blob pairs for the metric tests;
- :mod:`support.plausibility_phantom` — hand-made brains for the plausibility checks;
- :mod:`support.slicer_scene` — MRML volumes and the phantom label of the Slicer tests (needs slicer-core).
"""
