"""The run folder of a training job: every file's name, in one place (no PyTorch needed).

::

    RUN/config.yaml            the run's settings (also inside every checkpoint)
    RUN/events.jsonl           progress events (voxmmsd.jobs.events)
    RUN/log.txt                the engine's log
    RUN/checkpoints/last.pt    the checkpoint a resume continues from
    RUN/checkpoints/best.pt    fine-tuning: the best validation Dice
    RUN/tensorboard/           TensorBoard scalars
    RUN/loss.png               loss curves
    RUN/metrics.csv            fine-tuning: one row per epoch
    RUN/backbone.safetensors   pre-training: the pre-trained U-Net weights
    RUN/model/                 fine-tuning: the model package
    RUN/stop.requested         created by whoever wants the run to stop (the Slicer module)
    RUN/.voxmmsd.lock          held by the trainer for the whole run (voxmmsd.io.lock)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from voxmmsd.errors import InputError
from voxmmsd.io.lock import lock_path

log = logging.getLogger(__name__)

STOP_FILE = "stop.requested"


@dataclass(frozen=True)
class RunFolder:
    """Paths of one run folder; ``RunFolder(path).last_checkpoint`` etc."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "log.txt"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def loss_plot(self) -> Path:
        return self.root / "loss.png"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def backbone(self) -> Path:
        return self.root / "backbone.safetensors"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def stop_file(self) -> Path:
        return self.root / STOP_FILE

    @property
    def lock_file(self) -> Path:
        return lock_path(self.root)

    def has_checkpoint(self) -> bool:
        """True if the run can be resumed (``checkpoints/last.pt`` exists)."""
        return self.last_checkpoint.is_file()

    def latest_checkpoint(self) -> Optional[Path]:
        return self.last_checkpoint if self.has_checkpoint() else None

    def require_checkpoint(self, kind: str) -> Path:
        """``last_checkpoint``, or :class:`InputError` saying this is no resumable ``kind`` run folder."""
        if not self.has_checkpoint():
            raise InputError(f"Cannot resume {self.root}: {self.last_checkpoint} does not exist (no "
                             f"checkpoints/last.pt). Give the folder of an earlier {kind} run, or start a new run "
                             f"with --out.")
        return self.last_checkpoint

    def saved_settings(self, kind: str) -> Dict[str, Any]:
        """The settings the run holds in its last checkpoint (:meth:`require_checkpoint` first): what a resume
        starts from, with :func:`voxmmsd.jobs.config.resume_config` deciding which changes it may make."""
        from voxmmsd.jobs.checkpoint import load_checkpoint

        return dict(load_checkpoint(self.require_checkpoint(kind))["config"])

    def require_new(self) -> None:
        """:class:`InputError` if the folder already holds a run, or what a run made (its model package, its
        pre-trained weights): a new run never replaces one, even when the checkpoints were deleted."""
        if self.has_checkpoint():
            raise InputError(f"{self.root} already holds a run. Continue it with --resume {self.root}, or choose "
                             f"another --out folder.")
        made = [p for p in (self.model, self.backbone) if p.exists()]
        if made:
            listed = ", ".join(str(p) for p in made)
            raise InputError(f"{self.root} holds {listed} from an earlier run (its checkpoints are gone, so it cannot "
                             f"be resumed): a new run would replace it. Choose another --out folder, or move it away "
                             f"first.")

    def request_stop(self) -> Path:
        """Ask the trainer of this run to stop at its next iteration (what the Slicer module's Stop does)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.stop_file.write_text("stop\n", encoding="utf-8")
        return self.stop_file

    def clear_stop_request(self) -> bool:
        try:
            self.stop_file.unlink()
        except FileNotFoundError:
            return False
        return True

    def stale_temp_files(self) -> List[Path]:
        """Temporary files of interrupted atomic writes (``.last.pt.XXXX.tmp.pt``, ``.loss.png.XXXX.tmp.png``)."""
        out: List[Path] = []
        for folder in (self.root, self.checkpoints):
            if folder.is_dir():
                out += [p for p in folder.iterdir() if p.is_file() and p.name.startswith(".") and ".tmp" in p.name
                        and p.name != self.lock_file.name]
        return sorted(out)

    def clean_temp_files(self) -> List[Path]:
        """Remove :meth:`stale_temp_files` (call only while holding the run's lock); return what was removed."""
        removed = []
        for p in self.stale_temp_files():
            try:
                p.unlink()
                removed.append(p)
            except OSError as exc:  # pragma: no cover - e.g. permissions; harmless, only space
                log.warning("could not remove the stale temporary file %s: %s", p, exc)
        if removed:
            log.info("removed %d stale temporary file(s) of an interrupted run: %s", len(removed),
                     ", ".join(p.name for p in removed))
        return removed
