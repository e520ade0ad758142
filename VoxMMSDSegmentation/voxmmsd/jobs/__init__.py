"""Machinery shared by long jobs (pre-training, fine-tuning, batch inference).

- :mod:`voxmmsd.jobs.config` — the one typed configuration loader (YAML, ``--set``, the resume rule).
- :mod:`voxmmsd.jobs.run_folder` — :class:`RunFolder`, every file of a run folder named once.
- :mod:`voxmmsd.jobs.session` — lock, stop request and clean-up around a training loop.
- :mod:`voxmmsd.jobs.recorder` — events, log file, TensorBoard and plots of a run.
- :mod:`voxmmsd.jobs.events` — progress as JSON lines (``RUN/events.jsonl`` or stdout); ``EventTail`` reads them.
- :mod:`voxmmsd.jobs.stop` — SIGINT/SIGTERM or ``RUN/stop.requested`` turn into a polite stop request.
- :mod:`voxmmsd.jobs.checkpoint` — atomic, safely loadable checkpoints.
- :mod:`voxmmsd.jobs.schedules` — per-iteration schedules as arrays.
- :mod:`voxmmsd.jobs.distributed` — torchrun / DDP set-up; only rank 0 writes.
- :mod:`voxmmsd.jobs.device` — device and precision choice.
"""
