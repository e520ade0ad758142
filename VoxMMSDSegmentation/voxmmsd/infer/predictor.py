"""The predictor: built once from a model package, then ``predict(case)`` / ``predict_files(files)``.

Preprocessing is the package's own (the same as in training). The crop around the brain
runs through the network in one pass when memory allows, else in Gaussian-blended
windows; running out of device memory falls back to smaller windows, then to the CPU.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from voxmmsd.errors import ConfigError, InputError
from voxmmsd.exam.acquisition import working_preprocessing
from voxmmsd.infer import uncertainty, window
from voxmmsd.infer.backends.base import Backend, DeviceOutOfMemoryError
from voxmmsd.infer.backends.select import create_backend
from voxmmsd.infer.memory import available_memory_bytes, max_whole_voxels
from voxmmsd.infer.postprocess import PostprocessLimits, confidence_map, labels_from_scores, postprocess_label
from voxmmsd.infer.tta import mirror_axes, with_mirroring
from voxmmsd.io.discovery import CaseFiles, missing_error
from voxmmsd.io.geometry import Geometry
from voxmmsd.io.labels import volumes_ml
from voxmmsd.io.orientation import to_canonical
from voxmmsd.io.reader import Case
from voxmmsd.models.limits import check_window_plan
from voxmmsd.models.package import ModelPackage
from voxmmsd.plausibility.reference import lr_axis_of
from voxmmsd.plausibility.verdict import assess, warning_for
from voxmmsd.preprocessing import crop, prepare, restore, restore_scores
from voxmmsd.sequences import SEQUENCE_NAMES, SEQUENCES, missing

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PredictorConfig:
    """How inference runs (recorded in every report)."""

    backend: str = "auto"  # auto | torch | onnx
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | bf16 | fp16 | fp32 (PyTorch backend)
    tta: Optional[bool] = None  # None: the package's default
    #: window size (z, y, x); None: whole crop in one pass when memory allows
    patch_size: Optional[Tuple[int, int, int]] = None
    overlap: Optional[float] = None  # None: the package's default
    blend: str = "gaussian"  # how overlapping windows are blended: gaussian | constant
    #: fraction of the available memory a whole-crop pass on the CPU may use
    memory_fraction: float = 0.6
    #: tumour components smaller than this (mL) are removed, the largest always kept;
    #: None: the package's ``inference.min_component_ml`` (else 0)
    min_component_ml: Optional[float] = None
    #: a predicted ET smaller than this (mL) becomes NETC; None: the package's ``inference.min_et_ml`` (else 0)
    min_et_ml: Optional[float] = None
    #: an ET component smaller than this (mL) becomes NETC, the largest kept; None: ``inference.min_et_component_ml``
    min_et_component_ml: Optional[float] = None
    #: log-odds added to tumour against background before the label is taken; None: ``inference.tumour_bias``
    tumour_bias: Optional[float] = None
    #: measure how sure the network was (report ``uncertainty``, warnings); costs the on-device argmax
    uncertainty: bool = True
    channels_last: bool = True
    mask_outside_brain: bool = True
    #: co-registration onto T1c: auto (when grids differ) | on | off (see voxmmsd.exam.load)
    register: str = "auto"
    #: brain extraction: auto (when the images do not look skull-stripped) | on | off
    skull_strip: str = "auto"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Prediction:
    """A segmentation on the reference grid (internal BraTS 2023 labels) and what went into it."""

    case_id: str
    label: np.ndarray  # uint8 (z, y, x)
    geometry: Geometry
    reference_image: np.ndarray  # float32 (z, y, x), for the QC picture
    volumes_ml: Dict[str, float]
    warnings: List[str] = field(default_factory=list)
    timings_s: Dict[str, float] = field(default_factory=dict)
    #: confidence inside the predicted tumour and TTA disagreement (see :mod:`voxmmsd.infer.uncertainty`)
    uncertainty: Dict[str, Any] = field(default_factory=dict)
    #: structured warnings ``{"kind", "message"}`` (their messages are also in ``warnings``)
    alerts: List[Dict[str, str]] = field(default_factory=list)
    inputs: Dict[str, Any] = field(default_factory=dict)
    run: Dict[str, Any] = field(default_factory=dict)  # backend, device, precision, mode
    brain_mask: Optional[np.ndarray] = None  # uint8 (z, y, x) from brain extraction, or None
    exam_picture: Optional[np.ndarray] = None  # RGB registration / brain-mask QC, or None
    #: the plausibility checks and their verdict (see :mod:`voxmmsd.plausibility.verdict`)
    plausibility: Dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``plausible``, ``doubtful`` or ``implausible`` ("" when the checks did not run)."""
        return str(self.plausibility.get("verdict", ""))


def network_input(case: Case, sequences: Tuple[str, ...], tolerates_missing: bool) -> Tuple[np.ndarray, List[str]]:
    """The (C, z, y, x) input in the package's channel order; missing sequences zero-filled if tolerated."""
    absent = missing(case.sequences, sequences)
    if absent and not tolerates_missing:
        names = ", ".join(SEQUENCE_NAMES[s] for s in absent)
        raise InputError(f"Case {case.case_id!r} has no {names}, and this model needs all of "
                         f"{', '.join(SEQUENCE_NAMES[s] for s in sequences)} (it was not trained to tolerate a "
                         f"missing sequence). Provide the missing image(s), or choose a model that tolerates "
                         f"missing sequences.")
    warnings = [f"{SEQUENCE_NAMES[s]} is missing: segmented without it (the model tolerates a missing "
                f"sequence, but expect lower accuracy)." for s in absent]
    if list(case.sequences) == list(sequences) and case.image.dtype == np.float32:
        return case.image, warnings  # already in the package's order: no full-size copy (read-only from here)
    channels = [case.channel(s) if s in case.sequences else np.zeros(case.geometry.shape, np.float32)
                for s in sequences]
    return np.stack(channels).astype(np.float32, copy=False), warnings


def load_for_package(package: ModelPackage, files: CaseFiles, register: str = "auto", skull_strip: str = "auto",
                     device: str = "auto") -> Case:
    """Read and check a case the way ``package`` needs it (missing sequences allowed only if tolerated);
    needs no backend, so input errors come before the model loads."""
    allow = [s for s in SEQUENCES if s not in package.sequences or package.tolerates_missing]
    absent = missing(files.sequences, package.sequences, allow)
    if absent:
        raise missing_error(files, absent, f"This model needs every one of its sequences (it does not tolerate a "
                                           f"missing one). Provide the image(s) (e.g. --{absent[0]} FILE) or choose "
                                           f"a model that tolerates missing sequences.")
    from voxmmsd.exam.load import ExamOptions, load_exam

    if register not in ("auto", "on", "off"):  # a bool here was the Slicer bug: False read as "auto" elsewhere
        raise ConfigError(f"register must be auto, on or off, not {register!r}")
    return load_exam(files, ExamOptions(register=register, skull_strip=skull_strip, device=device), allow)


class Predictor:
    """Segment cases with one model package. Build once; call :meth:`predict` per case."""

    def __init__(self, package: ModelPackage, config: Optional[PredictorConfig] = None,
                 backend: Optional[Backend] = None) -> None:
        self.package = package
        self.config = config or PredictorConfig()
        if self.config.overlap is not None and not 0 <= self.config.overlap < 1:
            raise ConfigError(f"overlap must be in [0, 1), got {self.config.overlap}.")
        self.backend = backend or create_backend(package, self.config.backend, self.config.device,
                                                 self.config.precision, self.config.channels_last)
        inf = package.inference
        self.tta = bool(inf.get("tta", False)) if self.config.tta is None else self.config.tta
        self.overlap = float(inf.get("overlap", 0.5)) if self.config.overlap is None else self.config.overlap
        patch = self.config.patch_size or inf.get("patch_size")
        self.patch: Optional[Tuple[int, int, int]] = (int(patch[0]), int(patch[1]), int(patch[2])) if patch else None
        if self.patch and any(p % 16 for p in self.patch):
            raise ConfigError(f"patch size {self.patch} must be multiples of 16.")
        # the package's values were range-checked at load; the same rule for --patch-size / --overlap
        check_window_plan(self.patch, self.overlap, package.preprocessing.spacing, "segment", ConfigError,
                          ("--patch-size", "--overlap"))
        if self.config.blend not in ("gaussian", "constant"):
            raise ConfigError(f"Unknown blending {self.config.blend!r}; use gaussian or constant.")
        self.fallback_notes: List[str] = []
        self.output = str(inf.get("output", "classes"))

        def limit(key: str) -> float:  # the caller's value, else the package's inference default, else off
            mine = getattr(self.config, key)
            return float(inf.get(key, 0.0)) if mine is None else float(mine)

        self.min_et_ml = limit("min_et_ml")
        self.min_component_ml = limit("min_component_ml")
        self.min_et_component_ml = limit("min_et_component_ml")
        self.tumour_bias = limit("tumour_bias")
        self._tta_masks: List[np.ndarray] = []

    # -- running the network -------------------------------------------------------------
    def _forward(self, progress: Optional[Progress] = None) -> window.Forward:
        f: window.Forward = self.backend.forward
        if self.tta and progress is not None:  # one whole-crop pass: each TTA pass is a step of the bar
            f = window.counted(f, len(mirror_axes()), lambda i, n: progress(f"network: TTA pass {i}/{n}", i, n))
        return with_mirroring(f, on_pass=self._tta_pass if self.config.uncertainty else None) if self.tta else f

    def _tta_pass(self, out: np.ndarray) -> None:
        self._tta_masks.append(labels_from_scores(out[0], self.output, self.tumour_bias) > 0)

    def _whole_allowed(self, shape: Tuple[int, ...]) -> bool:
        if self.backend.device != "cpu":
            return True  # try; out of memory falls back to windows
        avail = available_memory_bytes()
        budget = None if avail is None else int(avail * self.config.memory_fraction)
        precision = self.backend.describe().get("precision", "float32")
        return window.whole_fits(shape, max_whole_voxels(self.package.unet_config().channels[0], precision, budget))

    def _logits(self, image: np.ndarray, progress: Optional[Progress],
                labels_ok: bool = False) -> Tuple[np.ndarray, str]:
        """Logits (K, z, y, x); or, for a whole-crop pass with ``labels_ok``, labels (z, y, x)."""
        shape = tuple(image.shape[1:])
        if self.patch is None and self._whole_allowed(shape):
            plans: List[Optional[Tuple[int, int, int]]] = [None]
        else:
            plans = [self.patch or (128, 128, 128)]
        plans += window.fallback_patches(plans[0])
        for i, patch in enumerate(plans):
            try:
                return self._run_plan(image, patch, progress, labels_ok)
            except DeviceOutOfMemoryError as exc:
                nxt = plans[i + 1] if i + 1 < len(plans) else None
                what = f"windows of {nxt[0]}^3" if nxt else "the CPU"
                note = f"Out of memory on {self.backend.device} ({exc}); retrying with {what}."
                log.warning("%s", note)
                self.fallback_notes.append(note)
        self.backend = self.backend.on_cpu()
        return self._run_plan(image, self.patch if self.patch else None, progress, labels_ok)

    def _run_plan(self, image: np.ndarray, patch: Optional[Tuple[int, int, int]],
                  progress: Optional[Progress], labels_ok: bool = False) -> Tuple[np.ndarray, str]:
        forward = self._forward(progress if patch is None else None)
        if patch is None:
            if progress:
                progress("network: whole crop in one pass", 0, 1)
            labels = getattr(self.backend, "labels", None)
            if labels_ok and not self.tta and labels is not None:
                forward = labels  # argmax on the device: 1 byte per voxel comes back instead of 4 x 4
            return window.whole(image, forward), "whole"
        cb = (lambda i, n: progress(f"network: window {i}/{n}", i, n)) if progress else None
        return (window.sliding(image, forward, patch, self.overlap, gaussian=self.config.blend == "gaussian",
                               progress=cb), f"windows {patch}")

    # -- public API ------------------------------------------------------------------------
    def predict(self, case: Case, progress: Optional[Progress] = None) -> Prediction:
        """Segment a loaded case; the label map lies on the case's reference grid."""
        t0 = time.perf_counter()
        self.fallback_notes = []
        self._tta_masks = []
        image, warnings = network_input(case, self.package.sequences, self.package.tolerates_missing)
        # the network sees one orientation, however the file was stored (undone on the label map below)
        image, turn = to_canonical(image, case.geometry)
        spacing = turn.canonical.spacing
        prepared = prepare(image, spacing, working_preprocessing(self.package.preprocessing, spacing))
        brain = np.any(crop(image, prepared.box) != 0, axis=0)  # on the crop grid
        del image
        t1 = time.perf_counter()
        resampled = tuple(prepared.image.shape[1:]) != tuple(prepared.crop_shape)
        labels_ok = (not resampled and self.output == "classes" and not self.config.uncertainty
                     and not self.tumour_bias)  # the device's argmax knows no bias
        scores, mode = self._logits(prepared.image, progress, labels_ok=labels_ok)
        t2 = time.perf_counter()
        conf = tumour = None
        if scores.ndim == 3:
            small = scores.astype(np.uint8, copy=False)  # the backend took the argmax
        else:
            if self.config.uncertainty:  # measured on the network's grid (cheaper than on the crop)
                conf = confidence_map(scores, self.output)
                tumour = (labels_from_scores(scores, self.output, self.tumour_bias) > 0) & prepared.brain
            if resampled:
                scores = restore_scores(scores, prepared)  # back to the crop grid
            small = labels_from_scores(scores, self.output, self.tumour_bias)
        if self.config.mask_outside_brain:
            small[~brain] = 0
        disagreement = uncertainty.tta_disagreement(self._tta_masks) if mode == "whole" else None
        unsure = (uncertainty.summarise(conf, small > 0 if tumour is None else tumour, disagreement)
                  if self.config.uncertainty else {})
        self._tta_masks = []
        label = turn.undo(restore(small, prepared))
        del scores, conf
        # the component rules judge each component on the images (voxmmsd.infer.components)
        images = {s: case.channel(s) for s in case.sequences}
        spacing_zyx = tuple(float(v) for v in case.geometry.spacing[::-1])
        label, removed_note = postprocess_label(label, images, spacing_zyx, case.geometry.voxel_volume_ml,
                                                PostprocessLimits(self.min_et_ml, self.min_et_component_ml,
                                                                  self.min_component_ml), case.brain_mask)
        t3 = time.perf_counter()
        # the plausibility checks of the final label map, on the same path for every caller
        checked = assess(images, label, spacing_zyx, case.brain_mask, lr_axis_of(case.geometry.direction), unsure)
        plausibility = checked.to_dict()
        doubt = warning_for(checked)
        del images
        t4 = time.perf_counter()
        if progress:
            progress("done", 1, 1)
        ref = case.channel(case.reference) if case.reference in case.sequences else case.image[0]
        alerts = list(case.alerts) + (uncertainty.warnings_for(unsure, self.package.inference.get(
            "typical_low_confidence")) if unsure else []) + ([doubt] if doubt else [])
        warnings = list(case.warnings) + warnings + self.fallback_notes + [a["message"] for a in alerts
                                                                            if a not in case.alerts]
        run = dict(self.backend.describe())
        run.update({"mode": mode, "tta": self.tta, "overlap": self.overlap, "blend": self.config.blend,
                    "output": self.output, "tumour_bias": self.tumour_bias, "min_et_ml": self.min_et_ml,
                    "min_component_ml": self.min_component_ml, "min_et_component_ml": self.min_et_component_ml,
                    "notes": removed_note})
        inputs = {"sequences": {s: str(case.files.sequences[s]) for s in case.sequences} if case.files else {},
                  "reference": case.reference, "geometry": case.geometry.to_dict(),
                  "resampled": dict(case.resampled), "preparation": dict(case.preparation),
                  "orientation": turn.describe()}
        return Prediction(case.case_id, label, case.geometry, ref, volumes_ml(label, case.geometry.voxel_volume_ml),
                          warnings, {"preprocess": t1 - t0, "inference": t2 - t1, "postprocess": t3 - t2,
                                     "plausibility": t4 - t3},
                          unsure, alerts, inputs, run, case.brain_mask, case.exam_picture, plausibility)

    def load(self, files: CaseFiles, register: Any = None) -> Case:
        """Read a case the way this model needs it (missing sequences allowed only if tolerated); ``register``
        None = the config's."""
        return load_for_package(self.package, files, self.config.register if register is None else register,
                                self.config.skull_strip, self.config.device)

    def predict_files(self, files: CaseFiles, register: Any = None,
                      progress: Optional[Progress] = None) -> Prediction:
        """Read, then segment, a case given by its files."""
        t0 = time.perf_counter()
        case = self.load(files, register)
        t1 = time.perf_counter()
        pred = self.predict(case, progress)
        pred.timings_s = {"read": t1 - t0, **pred.timings_s}
        return pred
