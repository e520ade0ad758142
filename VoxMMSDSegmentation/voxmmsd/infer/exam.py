"""Read a raw clinical exam onto the reference (T1c) grid: co-registration where the grids differ, brain
extraction where the skull is still there, and warnings where the acquisition is unlike the training data.

1. Every sequence is read on its own grid (with the plausibility checks of :mod:`voxmmsd.io.checks`).
2. ``register``: ``auto`` registers each sequence whose grid differs from the reference's rigidly onto it
   (:mod:`voxmmsd.infer.register`, with its convergence check); ``on`` registers every one; ``off`` trusts
   the scanner's coordinates (resampling only).
3. ``skull_strip``: ``auto`` runs brain extraction (:mod:`voxmmsd.skullstrip`, deepbet) when any sequence
   does not look skull-stripped; ``on`` always; ``off`` never (a warning if the images show a head). It runs
   on T1n's own grid (T1c where T1n is absent): the mask follows T1n's registration onto the reference grid
   and is applied to every sequence. When extraction is needed but cannot run, the exam is refused.
4. Thick slices and unusual voxel sizes give warnings (:mod:`voxmmsd.infer.acquisition`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from voxmmsd.errors import ConfigError, InputError
from voxmmsd.infer import register as reg
from voxmmsd.infer.acquisition import acquisition_warnings
from voxmmsd.infer.exam_qc import exam_picture
from voxmmsd.io.checks import check_distinct, check_distinct_arrays, looks_skull_stripped
from voxmmsd.io.discovery import SEQUENCE_NAMES, SEQUENCES, CaseFiles, missing_error
from voxmmsd.io.geometry import Geometry, check_overlap
from voxmmsd.io.parallel import map_ordered
from voxmmsd.io.reader import Case, read_sequences

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
    present = [s for s in SEQUENCES if s in files.sequences]
    if any(s not in set(allow_missing) for s in files.missing) or not present:
        raise missing_error(files, allow_missing)
    check_distinct({s: files.sequences[s] for s in present}, SEQUENCE_NAMES)
    reference = options.reference if options.reference in present else present[0]
    ref_name = SEQUENCE_NAMES[reference]
    warnings: List[str] = []
    alerts: List[Dict[str, str]] = []
    native: Dict[str, sitk.Image] = {}
    for seq, (img, found) in read_sequences({s: files.sequences[s] for s in present}).items():  # in parallel
        native[seq] = img
        warnings.extend(found)
    ref_geom = Geometry.of(native[reference])
    prep: Dict[str, Any] = {"register": reg_mode, "skull_strip": strip_mode, "registration": {}}
    if files.matches:
        prep["discovery"] = dict(files.matches)
        for key, why in files.matches.items():
            log.info("case %s: %s <- %s", files.case_id, SEQUENCE_NAMES.get(key, key), why)
    extractor = _extractor_if_needed(files, native, strip_mode, options, extractor, alerts, prep)
    alerts.extend(acquisition_warnings({s: native[s].GetSpacing() for s in present}, SEQUENCE_NAMES))
    identity = sitk.Transform()
    transforms: Dict[str, sitk.Transform] = {reference: identity}
    resampled: Dict[str, str] = {}
    for seq in present:
        if seq == reference:
            continue
        geom = Geometry.of(native[seq])
        name = f"{SEQUENCE_NAMES[seq]} ({files.sequences[seq]})"
        if reg_mode == "on" or (reg_mode == "auto" and not geom.same_as(ref_geom)):
            result = reg.register_rigid(native[reference], native[seq], name, ref_name)
            transforms[seq], note = reg.check_result(result, name, ref_name, native[reference])
            prep["registration"][seq] = result.to_dict()
            if note:
                alerts.append(_warning("registration", note))
                prep["registration"][seq]["used"] = "scanner alignment" if "kept" in note else "result"
            resampled[seq] = (f"rigidly registered (mutual information) onto {ref_name}: rotation "
                              f"{result.rotation_deg:.1f} deg, shift {result.translation_mm:.1f} mm; "
                              f"{geom.describe()} -> {ref_geom.describe()}")
        else:
            transforms[seq] = identity
            if not geom.same_as(ref_geom):
                check_overlap(name, geom, ref_geom, f"{ref_name} ({files.sequences[reference]})")
                resampled[seq] = f"{geom.describe()} -> {ref_geom.describe()}"
    # a sequence already on the reference grid (and not registered) is taken voxel for voxel: resampling it
    # through the identity would still move intensities by rounding (and the brain's edge with them)
    # one float32 (C, z, y, x) block, each channel converted straight into it (no per-channel copy, no stack)
    image = np.empty((len(present),) + tuple(ref_geom.shape), dtype=np.float32)
    for c, s in enumerate(present):
        image[c] = (sitk.GetArrayViewFromImage(native[s]) if s not in resampled else
                    sitk.GetArrayFromImage(reg.resample_with(native[s], ref_geom, transforms[s])))
    channels = dict(zip(present, image))
    check_distinct_arrays(channels, files.sequences, {s: SEQUENCE_NAMES[s] for s in present})
    mask = _brain_mask(files, native, transforms, ref_geom, extractor, prep) if extractor is not None else None
    picture = None
    if options.qc and (prep["registration"] or mask is not None):  # drawn before masking: the whole head shows
        others = {s: channels[s] for s in present if s != reference}
        picture = exam_picture(channels[reference], others, ref_geom.spacing, mask)
    if mask is not None:
        image *= mask[None].astype(np.float32)
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
    from voxmmsd.skullstrip import shared_extractor

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
    on_ref = reg.resample_with(mask_native, ref_geom, transforms[source], label=True)
    mask = sitk.GetArrayFromImage(on_ref).astype(np.uint8)
    ml = float(mask.sum()) * ref_geom.voxel_volume_ml
    prep["brain_extraction"].update({**extractor.describe(), "source": source, "brain_ml": round(ml, 1)})
    log.info("case %s: brain extraction (%s on %s): %.0f mL", files.case_id, prep["brain_extraction"].get("tool"),
             source, ml)
    return mask
