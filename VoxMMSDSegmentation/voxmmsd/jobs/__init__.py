"""Machinery shared by long jobs (pre-training, fine-tuning, batch inference).

- :mod:`voxmmsd.jobs.events` — progress as JSON lines (``RUN/events.jsonl`` or stdout).
- :mod:`voxmmsd.jobs.stop` — SIGINT/SIGTERM turn into a polite stop request.
- :mod:`voxmmsd.jobs.checkpoint` — atomic, safely loadable checkpoints.
- :mod:`voxmmsd.jobs.schedules` — per-iteration schedules as arrays.
- :mod:`voxmmsd.jobs.distributed` — torchrun / DDP set-up; only rank 0 writes.
- :mod:`voxmmsd.jobs.device` — device and precision choice.
"""
