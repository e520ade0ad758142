"""One segmentation from scene volumes: inputs to files, the engine process, the result back.

:class:`SegmentationJob` never blocks: the GUI calls :meth:`SegmentationJob.poll` from a
timer; batch scripts and tests call :meth:`SegmentationJob.run`. A cancelled or failed
job leaves the scene as it was and removes its temporary files.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from voxmmsd.errors import InputError, VoxMMSDError

from VoxMMSDSegmentationLib import plausibility
from VoxMMSDSegmentationLib import scene as scene_io
from VoxMMSDSegmentationLib.commands import SegmentOptions, segment_arguments
from VoxMMSDSegmentationLib.events import EventState
from VoxMMSDSegmentationLib.process import EngineProcess, engine_command, engine_environment, run_to_end

log = logging.getLogger(__name__)

PENDING, RUNNING, IMPORTING, FINISHED, FAILED, CANCELLED, REFUSED = (
    "pending", "running", "importing", "finished", "failed", "cancelled", "refused")
#: the engine's exit status when it refused an implausible result (voxmmsd.plausibility.verdict)
REFUSED_EXIT_CODE = 3
REFERENCE_ORDER = ("t1c", "t1n", "t2w", "t2f")


#: headings of warning kinds in the module's warning box, shown in this order
#: (the kinds of the engine's report.json warnings, voxmmsd.infer.outputs, and of pre-training's collapse)
ALERT_TITLES = (("plausibility", "Plausibility check"), ("uncertainty", "The model is unsure"),
                ("thick_slices", "Thick slices"),
                ("voxel_size", "Voxel size outside the training data"), ("not_skull_stripped", "Not skull-stripped"),
                ("missing_sequence", "Missing sequence"), ("collapse", "Pre-training collapsed"))


def format_alerts(alerts: Sequence[Mapping[str, str]]) -> str:
    """Warnings as text, grouped by kind (known kinds first, each message once)."""
    order = {kind: i for i, (kind, _) in enumerate(ALERT_TITLES)}
    titles = dict(ALERT_TITLES)
    seen, lines = set(), []
    for alert in sorted(alerts, key=lambda a: order.get(a.get("kind", ""), len(order))):
        message = alert.get("message", "")
        if not message or message in seen:
            continue
        seen.add(message)
        kind = alert.get("kind", "warning")
        lines.append(f"{titles[kind]}: {message}" if kind in titles else message)
    return "\n".join(lines)


def reference_key(inputs: Mapping[str, Any]) -> str:
    """The reference sequence: T1c, else the first present of T1n, T2w, FLAIR."""
    for key in REFERENCE_ORDER:
        if inputs.get(key) is not None:
            return key
    raise InputError("No input volume is selected. Choose at least the T1c volume.")


class SegmentationJob:
    """Segment the volumes ``inputs`` (sequence key -> volume node) of ``scene``."""

    def __init__(self, scene: Any, inputs: Mapping[str, Any], options: SegmentOptions, *,
                 python: Optional[str] = None, engine: Optional[Sequence[str]] = None,
                 env: Optional[Mapping[str, str]] = None, output_dir: Optional[Path] = None,
                 temp_root: Optional[Path] = None,
                 name: Optional[str] = None, labels: Optional[Sequence[scene_io.LabelSpec]] = None,
                 on_line: Optional[Callable[[str], None]] = None,
                 on_progress: Optional[Callable[[EventState], None]] = None,
                 proposal_store: Optional[Path] = None) -> None:
        self.scene = scene
        self.inputs = {k: v for k, v in inputs.items() if v is not None}
        self.options = options
        self.python = python
        self.engine = list(engine) if engine else None  # command prefix replacing ``python -m voxmmsd``
        self.env = env
        self.output_dir = Path(output_dir) if output_dir else None
        self.temp_root = temp_root
        self.labels = labels
        self.on_line = on_line
        self.on_progress = on_progress
        self.proposal_store = proposal_store  # where the model's unedited result is kept (None: not kept)
        self.reference = self.inputs.get(reference_key(self.inputs))
        self.name = name or f"{self.reference.GetName()} tumour segmentation"
        self.state = EventState(staged=True)
        self.status = PENDING
        self.error = ""
        self.log: List[str] = []
        self.result: Optional[scene_io.ImportedResult] = None
        #: the engine's report.json (also for a refused result, which adds nothing to the scene)
        self.report: Dict[str, Any] = {}
        self.process: Optional[EngineProcess] = None
        self.work_dir: Optional[Path] = None
        self.started = 0.0

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> "SegmentationJob":
        """Write the inputs and start the engine; raises InputError for bad inputs (nothing started)."""
        self.work_dir = Path(tempfile.mkdtemp(prefix="voxmmsd-", dir=str(self.temp_root) if self.temp_root else None))
        try:
            files = scene_io.export_inputs(self.inputs, self.work_dir / "inputs")
            args = segment_arguments(files, self.out_dir, self.options)
            command = self.engine + args if self.engine else engine_command(args, self.python)
            env = engine_environment(self.env, self.options.device)
            self.process = EngineProcess(command, env=env, cwd=self.work_dir).start()
        except BaseException:
            self._cleanup()
            self.status = FAILED
            raise
        self.started = time.monotonic()
        self.status = RUNNING
        return self

    @property
    def out_dir(self) -> Path:
        assert self.work_dir is not None
        return self.output_dir or (self.work_dir / "output")

    @property
    def done(self) -> bool:
        return self.status in (FINISHED, FAILED, CANCELLED, REFUSED)

    @property
    def verdict(self) -> str:
        """The plausibility verdict of the engine's report (plausible | doubtful | implausible; "" if none)."""
        return plausibility.verdict(self.report)

    def poll(self) -> bool:
        """Handle the engine's new output; True once the job is over (see :attr:`status`)."""
        if self.status != RUNNING or self.process is None:
            return self.done
        for kind, value in self.process.poll():
            if kind == "line":
                self._line(str(value))
            elif kind == "exit":
                self._finish(int(value))  # type: ignore[arg-type]
                break
        return self.done

    def run(self, timeout: Optional[float] = None, interval: float = 0.1) -> str:
        """Start (if needed) and wait until the job is over; the final status."""
        if self.status == PENDING:
            self.start()
        return run_to_end(self, timeout, "the engine", interval)

    def cancel(self) -> None:
        """Kill the engine's process tree; the scene stays as it was, temporary files go."""
        if self.done:
            return
        if self.process is not None:
            self.process.cancel()
        if self.result is not None:  # cancelled while importing: undo it
            self._remove_result()
        self.status = CANCELLED
        self._cleanup()

    # -- internals ------------------------------------------------------------------
    def _line(self, line: str) -> None:
        event = self.state.feed_line(line)
        if event is None:
            self.log.append(line)
        if self.on_line is not None:
            self.on_line(line)
        if event is not None and self.on_progress is not None:
            self.on_progress(self.state)

    def _finish(self, returncode: int) -> None:
        if self.process is not None and self.process.cancelled:
            return
        if returncode == REFUSED_EXIT_CODE:  # implausible and --on-implausible refuse: a report, no label map
            self.status = REFUSED
            self.error = self.state.error or "the result was refused as implausible"
            try:
                self.report = scene_io.read_report(self.out_dir)
            except VoxMMSDError:
                self.report = {}
            self._cleanup()
            if self.on_progress is not None:
                self.on_progress(self.state)
            return
        if returncode != 0 or self.state.outcome == "failed":
            self.status = FAILED
            self.error = self.state.error or self._last_log_line() or f"the engine exited with code {returncode}"
            self._cleanup()
            return
        self.status = IMPORTING
        try:
            self.result = scene_io.import_result(self.scene, self.out_dir, self.reference, self.name,
                                                 labels=self.labels, outputs=self.state.outputs)
            self.report = dict(self.result.report)
            self.result.warnings[:0] = [w for w in self.state.warnings if w not in self.result.warnings]
            known = {a["message"] for a in self.result.alerts}
            self.result.alerts[:0] = [a for a in self.state.alerts if a["message"] not in known]
            self._remember_proposal()
            self.status = FINISHED
        except VoxMMSDError as exc:
            self.status = FAILED
            self.error = str(exc)
        finally:
            self._cleanup()
        if self.on_progress is not None:
            self.on_progress(self.state)

    def _remember_proposal(self) -> None:
        """Keep the model's unedited result, so that adding the reviewed segmentation to a cohort can say what
        was edited (:mod:`VoxMMSDSegmentationLib.cohort`); a failure only loses the edit statistics."""
        from VoxMMSDSegmentationLib.cohort import remember_proposal

        assert self.result is not None
        if self.proposal_store is None:
            return
        try:
            remember_proposal(self.result.segmentation, self.out_dir, self.result.report, self.proposal_store)
        except OSError as exc:
            log.warning("could not keep the proposal for the cohort's edit statistics: %s", exc)

    def _last_log_line(self) -> str:
        for line in reversed(self.log):
            if line.strip():
                return line.strip()
        return ""

    def _remove_result(self) -> None:
        assert self.result is not None
        changes = scene_io.SceneChanges(self.scene)
        changes.track(self.result.table)
        changes.track(self.result.segmentation)
        changes.rollback()
        self.result = None

    def _cleanup(self) -> None:
        """Remove the temporary folder (inputs, and outputs unless an output folder was given)."""
        if self.work_dir is not None and self.work_dir.exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def warning_text(self) -> str:
        """What the module shows as a warning after the run ("" when none): uncertainty first."""
        alerts = self.result.alerts if self.result is not None else self.state.alerts
        return format_alerts(alerts)

    def status_text(self) -> str:
        """The module's status line after the run: volumes and the plausibility verdict."""
        if self.status == FINISHED and self.result is not None:
            vols = "; ".join(f"{k} {self.result.volumes_ml[k]:.1f} mL" for k in ("WT", "TC", "ET")
                             if k in self.result.volumes_ml)
            line = plausibility.status_line(self.report)
            return "Done. " + vols + (f". {line}" if line else "")
        if self.status == REFUSED:
            return "Refused: the result is implausible; nothing was added. " + plausibility.status_line(self.report)
        return {FAILED: "Failed.", CANCELLED: "Cancelled."}.get(self.status, self.status)

    def dialog_text(self) -> Optional[str]:
        """The text of the dialog the module opens for an implausible or refused result (None: no dialog)."""
        if self.status not in (FINISHED, REFUSED):
            return None
        return plausibility.dialog_text(self.report, refused=self.status == REFUSED)

    def summary(self) -> Dict[str, Any]:
        return {"status": self.status, "error": self.error, "seconds": round(time.monotonic() - self.started, 2)
                if self.started else 0.0, "warnings": list(self.result.warnings) if self.result else
                list(self.state.warnings), "plausibility": self.verdict}
