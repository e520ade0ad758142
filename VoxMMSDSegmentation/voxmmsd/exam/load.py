"""Read a raw clinical exam onto the reference (T1c) grid: co-registration where the grids differ, brain
extraction where the skull is still there, and warnings where the acquisition is unlike the training data.

1. Every sequence is read on its own grid by the one case reader (:func:`voxmmsd.io.reader.read_sequences`: the
   missing-sequence check, the plausibility checks of :mod:`voxmmsd.io.checks`).
2. ``register``: ``auto`` registers each sequence whose grid differs from the reference's rigidly onto it
   (:mod:`voxmmsd.exam.register`, with its convergence check); ``on`` registers every one; ``off`` trusts
   the scanner's coordinates (resampling only).
3. ``skull_strip``: ``auto`` runs brain extraction (:mod:`voxmmsd.exam.skullstrip`, deepbet) when any sequence
   does not look skull-stripped; ``on`` always; ``off`` never (a warning if the images show a head). It runs
   on T1n's own grid (T1c where T1n is absent): the mask follows T1n's registration onto the reference grid
   and is applied to every sequence. When extraction is needed but cannot run, the exam is refused.
4. Thick slices and unusual voxel sizes give warnings (:mod:`voxmmsd.exam.acquisition`).
5. The sequences go onto the reference grid as :func:`voxmmsd.io.reader.onto_grid` puts them (through their
   registration where one ran; the one resampler, :func:`voxmmsd.io.geometry.resample_to`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from voxmmsd.errors import ConfigError, InputError
from voxmmsd.exam import register as reg
from voxmmsd.exam.acquisition import acquisition_warnings
from voxmmsd.exam.qc import exam_picture
from voxmmsd.io.checks import check_distinct_arrays, looks_skull_stripped
from voxmmsd.io.discovery import CaseFiles
from voxmmsd.io.geometry import Geometry, resample_to
from voxmmsd.io.parallel import map_ordered
from voxmmsd.io.reader import Case, onto_grid, read_sequences
from voxmmsd.sequences import SEQUENCE_NAMES, reference_for

log = logging.getLogger(__name__)

#: brain extraction runs on the first of these present (deepbet is trained on T1-weighted images)
STRIP_SOURCES = ("t1n", "t1c")


@dataclass(frozen=True)
class ExamOptions:
    """How a raw exam is brought onto the reference grid."""

    register: str = "auto"  # auto | on | off
    skull_strip: str = "auto"  # auto | on | off
    reference: str = "t1c"
    device: str = "auto"  # for brain extraction
    qc: bool = True  # render the exam QC picture when registration or extraction ran


def _warning(kind: str, message: str) -> Dict[str, str]:
    return {"kind": kind, "message": message}


def load_exam(files: CaseFiles, options: Optional[ExamOptions] = None, allow_missing: Sequence[str] = (),
              extractor: Any = None) -> Case:
    """The case on the reference grid, co-registered and skull-stripped as ``options`` say (no label)."""
    options = options or ExamOptions()
    reg_mode = reg.check_mode(options.register)
    strip_mode = reg.check_mode(options.skull_strip, "--skull-strip")
    present, native, warnings = read_sequences(files, allow_missing)
    reference = reference_for(present, options.reference)
    ref_name = SEQUENCE_NAMES[reference]
    alerts: List[Dict[str, str]] = []
    ref_geom = Geometry.of(native[reference])
    prep: Dict[str, Any] = {"register": reg_mode, "skull_strip": strip_mode, "registration": {}}
    if files.matches:
        prep["discovery"] = dict(files.matches)
        for key, why in files.matches.items():
            log.info("case %s: %s <- %s", files.case_id, SEQUENCE_NAMES.get(key, key), why)
    extractor = _extractor_if_needed(files, native, strip_mode, options, extractor, alerts, prep)
    alerts.extend(acquisition_warnings({s: native[s].GetSpacing() for s in present}, SEQUENCE_NAMES))
    transforms: Dict[str, sitk.Transform] = {}
    registered: Dict[str, str] = {}
    for seq in present:
        geom = Geometry.of(native[seq])
        if seq == reference or not (reg_mode == "on" or (reg_mode == "auto" and not geom.same_as(ref_geom))):
            continue
        name = f"{SEQUENCE_NAMES[seq]} ({files.sequences[seq]})"
        result = reg.register_rigid(native[reference], native[seq], name, ref_name)
        transforms[seq], note = reg.check_result(result, name, ref_name, native[reference])
        prep["registration"][seq] = result.to_dict()
        if note:
            alerts.append(_warning("registration", note))
            prep["registration"][seq]["used"] = "scanner alignment" if "kept" in note else "result"
        registered[seq] = (f"rigidly registered (mutual information) onto {ref_name}: rotation "
                           f"{result.rotation_deg:.1f} deg, shift {result.translation_mm:.1f} mm; "
                           f"{geom.describe()} -> {ref_geom.describe()}")
    # the unregistered sequences as load_case puts them on the grid (voxel for voxel where they are on it)
    channels, resampled = onto_grid(files, native, reference, transforms)
    resampled.update(registered)
    check_distinct_arrays(channels, files.sequences, {s: SEQUENCE_NAMES[s] for s in present})
    identity = sitk.Transform()
    mask = None if extractor is None else \
        _brain_mask(files, native, {s: transforms.get(s, identity) for s in present}, ref_geom, extractor, prep)
    image = np.stack([channels[s] for s in present])
    if mask is not None:
        image *= mask[None].astype(np.float32)
    picture = None
    if options.qc and (prep["registration"] or mask is not None):  # drawn before masking: the whole head shows
        others = {s: channels[s] for s in present if s != reference}
        picture = exam_picture(channels[reference], others, ref_geom.spacing, mask)
    for seq, why in resampled.items():
        log.info("case %s: %s: %s", files.case_id, seq, why)
    warnings += [a["message"] for a in alerts]
    return Case(files.case_id, image, present, ref_geom, reference, None, files, resampled, warnings, alerts,
                brain_mask=mask, preparation=prep, exam_picture=picture)


def _extractor_if_needed(files: CaseFiles, native: Dict[str, sitk.Image], mode: str, options: ExamOptions,
                         extractor: Any, alerts: List[Dict[str, str]], prep: Dict[str, Any]) -> Any:
    """The brain extractor when brain extraction is to run (None when not); refuses, before any compute, a head
    that needs extraction when extraction cannot run here."""
    heads = []
    checks = map_ordered(lambda img: looks_skull_stripped(sitk.GetArrayViewFromImage(img), img.GetSpacing()),
                         list(native.values()), name="voxmmsd-check")  # one thread per sequence
    for seq, check in zip(native, checks):
        if not check.stripped:
            heads.append(f"{SEQUENCE_NAMES[seq]}: {check.reason}")
    prep["looks_skull_stripped"] = not heads
    if mode == "off" or (mode == "auto" and not heads):
        if heads:
            alerts.append(_warning("not_skull_stripped", (
                f"The images do not look skull-stripped ({'; '.join(heads)}) and brain extraction is off "
                f"(--skull-strip off): the model expects skull-stripped brains, so tumour labels outside the "
                f"brain (scalp, skull, eyes) are likely. Use --skull-strip auto.")))
        return None
    why = "it was asked for (--skull-strip on)" if mode == "on" else \
        "the images do not look skull-stripped (" + "; ".join(heads) + ")"
    prep["brain_extraction"] = {"why": why}
    if extractor is not None:
        return extractor
    from voxmmsd.exam.skullstrip import shared_extractor

    try:
        return shared_extractor(options.device)
    except ConfigError as exc:
        raise InputError(f"Case {files.case_id!r}: brain extraction is needed because {why}, but it cannot run: "
                         f"{exc} Refusing to segment a head with skull and scalp (tumour labels would spill into "
                         f"the scalp).") from None


def _brain_mask(files: CaseFiles, native: Dict[str, sitk.Image], transforms: Dict[str, sitk.Transform],
                ref_geom: Geometry, extractor: Any, prep: Dict[str, Any]) -> np.ndarray:
    """The brain mask on the reference grid (uint8): extraction on T1n's own grid (else T1c's), then through
    that sequence's registration onto the reference grid."""
    source = next(s for s in (*STRIP_SOURCES, *native) if s in native)
    mask_native = extractor.mask(native[source], f"{SEQUENCE_NAMES[source]} ({files.sequences[source]})")
    on_ref = resample_to(mask_native, ref_geom, label=True, transform=transforms[source])
    mask = sitk.GetArrayFromImage(on_ref).astype(np.uint8)
    ml = float(mask.sum()) * ref_geom.voxel_volume_ml
    prep["brain_extraction"].update({**extractor.describe(), "source": source, "brain_ml": round(ml, 1)})
    log.info("case %s: brain extraction (%s on %s): %.0f mL", files.case_id, prep["brain_extraction"].get("tool"),
             source, ml)
    return mask
