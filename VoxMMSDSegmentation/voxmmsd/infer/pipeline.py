"""Segmenting one case: the one path every caller takes.

:func:`segment_case` reads a case, checks it, segments it and writes its outputs
(``report.json`` last) into a claimed output folder. ``voxmmsd segment`` runs it for one
case and, per case, for a batch (:func:`voxmmsd.infer.batch.run_batch`); the Slicer module
runs ``voxmmsd segment`` per case, so its single and batch runs take the same path. The
progress events of a case, the warnings and the contents of ``report.json`` are therefore the
same whichever way a case is segmented.

Events of one case (``--progress json``; docs/inference.md), in order: ``read``, ``check``,
``preprocess``, ``predict`` (per window or TTA pass), ``postprocess`` and ``write`` progress
events, then one ``segment``/``warning`` event per warning (with its ``kind``). Every one
carries the ``case_id``.

:class:`Models` chooses the model of each case (the options' model, or the model its package
names for a missing sequence, ``inference.fallback_when_missing``) and builds each predictor
once, on first need: input errors come before any network loads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from voxmmsd.infer.fallback import switch_package
from voxmmsd.infer.options import SegmentOptions
from voxmmsd.infer.outputs import (
    bytes_needed,
    check_free_space,
    check_output_apart,
    claim_output,
    write_outputs,
)
from voxmmsd.infer.predictor import Prediction, Predictor, load_for_package

log = logging.getLogger(__name__)

__all__ = ["CaseOutcome", "Models", "ReadCase", "read_case", "segment_case"]


def _key(package: Any) -> str:
    return f"{package.id}@{package.version}:{getattr(package, 'folder', '')}"


class Models:
    """The predictor of each case. ``main``: a built :class:`Predictor`, a model package, or None for the
    package :attr:`SegmentOptions.model` names (its ``model.json`` and checksums only; no network loads
    until :meth:`predictor`). ``make`` builds a predictor for a package (default: the options' config)."""

    def __init__(self, options: SegmentOptions, main: Any = None,
                 make: Optional[Callable[[Any], Predictor]] = None) -> None:
        from voxmmsd.models.catalog import resolve_model

        self.options = options
        self._resolve = resolve_model
        self._built: Dict[str, Predictor] = {}
        if isinstance(main, Predictor):
            self.package = main.package
            self._built[_key(main.package)] = main
        else:
            self.package = main if main is not None else resolve_model(options.model or None)
        self._make = make or (lambda package: Predictor(package, options.predictor_config()))

    def choose(self, present: Sequence[str]) -> Tuple[Any, Optional[str]]:
        """``(package, warning or None)`` for a case with the sequences ``present``."""
        return switch_package(self.package, list(present), self._resolve, self.options.fallback)

    def predictor(self, package: Any = None) -> Predictor:
        """The predictor of ``package`` (default: the main one), built on first need."""
        package = self.package if package is None else package
        key = _key(package)
        if key not in self._built:
            self._built[key] = self._make(package)
        return self._built[key]


@dataclass
class ReadCase:
    """A case read the way its model needs it, not yet segmented."""

    package: Any
    note: Optional[str]  # the fallback warning, when another model segments the case
    case: Any  # voxmmsd.io.reader.Case
    seconds: float


@dataclass
class CaseOutcome:
    """What :func:`segment_case` did: ``done``, or ``refused`` (implausible, ``on_implausible="refuse"``:
    the report and QC picture but no label map)."""

    case_id: str
    status: str
    prediction: Prediction
    outputs: Dict[str, str]
    model: Dict[str, str]
    seconds: float
    warnings: Sequence[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.status == "refused"


def read_case(files: Any, options: SegmentOptions, models: Models) -> ReadCase:
    """Choose the model of ``files`` and read the case for it (the network is not loaded)."""
    t0 = time.perf_counter()
    package, note = models.choose(list(files.sequences))
    if note:
        log.info("%s", note)
    case = load_for_package(package, files, options.register, options.skull_strip, options.device)
    return ReadCase(package, note, case, time.perf_counter() - t0)


def _stage(events: Any, case_id: str, stage: str, iteration: int, total: int, message: str) -> None:
    if events is not None:
        events.emit(stage, "progress", iteration=iteration, total=total, message=message, case_id=case_id)


def segment_case(files: Any, out_dir: Path, options: SegmentOptions, models: Models, *, events: Any = None,
                 overwrite: bool = False, option: str = "--overwrite",
                 read: Optional[Callable[[], ReadCase]] = None) -> CaseOutcome:
    """Segment the case ``files`` (:class:`~voxmmsd.io.discovery.CaseFiles`) into ``out_dir``.

    The folder is claimed for the whole run (:func:`~voxmmsd.infer.outputs.claim_output`: one writer, an
    existing result replaced only with ``overwrite``, which the caller's ``option`` names in the refusal).
    ``read``: the case already being read (a batch reads the next case while this one is segmented);
    default :func:`read_case`. Raises on bad input or a failure; nothing half-written stays.
    """
    from voxmmsd.plausibility.verdict import refuses

    refuses("", options.on_implausible)  # an unknown choice fails before any work
    t0 = time.perf_counter()
    case_id = files.case_id
    out_dir = Path(out_dir)
    check_output_apart(out_dir, files)  # never the case folder itself
    with claim_output(out_dir, overwrite=overwrite, option=option):
        # read and check the images before the model loads: bad input fails in a second, not after it
        _stage(events, case_id, "read", 0, 1, "reading the images")
        got = read() if read is not None else read_case(files, options, models)
        _stage(events, case_id, "check", 0, 1, "checking the inputs and the free space")
        check_free_space(out_dir, bytes_needed(got.case.geometry.shape))
        predictor = models.predictor(got.package)
        _stage(events, case_id, "preprocess", 0, 1, "model ready; preparing the images")

        def progress(message: str, i: int, n: int) -> None:  # per window, or per TTA pass of one crop
            if message == "done":
                _stage(events, case_id, "postprocess", 1, 1, "post-processing done")
            else:
                _stage(events, case_id, "predict", i, n, message)

        pred = predictor.predict(got.case, progress=progress)
        pred.timings_s = {"read": got.seconds, **pred.timings_s}
        if got.note:
            pred.warnings = [got.note, *pred.warnings]
        model = {"id": predictor.package.id, "version": predictor.package.version}
        refused = refuses(pred.verdict, options.on_implausible)
        _stage(events, case_id, "write", 0, 1, "writing the report" if refused else "writing the outputs")
        outputs = write_outputs(pred, out_dir, model, predictor.package.label_table, options.labels, options.qc,
                                extra={"predictor": predictor.config.to_dict(), "options": options.to_dict()},
                                label_map=not refused)
    _warn(events, case_id, pred)
    return CaseOutcome(case_id, "refused" if refused else "done", pred, outputs, model,
                       time.perf_counter() - t0, list(pred.warnings))


def _warn(events: Any, case_id: str, pred: Prediction) -> None:
    from voxmmsd.infer.outputs import warning_kind

    kinds = {a["message"]: a["kind"] for a in pred.alerts}
    for w in pred.warnings:
        log.warning("%s: %s", case_id, w)
        if events is not None:
            events.emit("segment", "warning", message=w, kind=kinds.get(w, warning_kind(w)), case_id=case_id)
