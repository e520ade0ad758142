"""The options of one segmentation: one typed record, owned by the engine.

:class:`SegmentOptions` is what ``voxmmsd segment`` parses its options into, what
:func:`voxmmsd.infer.pipeline.segment_case` runs with, and what the Slicer module fills from
its widgets and turns into the engine's command line with :meth:`SegmentOptions.to_arguments`
(or saves with :meth:`SegmentOptions.to_dict`). The arguments are declared once, here
(:func:`add_arguments`), so that ``to_arguments`` and the parser cannot drift apart: the tests
parse ``to_arguments()`` back and get the same record.

Three-state values are strings, never booleans: ``register`` and ``skull_strip`` are
``auto | on | off`` (``auto``: the engine decides per case), so "off" is something a caller
can say.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple

from voxmmsd.errors import ConfigError

BACKENDS = ("auto", "torch", "onnx")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BLENDS = ("gaussian", "constant")
THREE_STATE = ("auto", "on", "off")
ON_IMPLAUSIBLE = ("warn", "refuse")
LABEL_CONVENTIONS = ("brats2023", "legacy")


class OptionError(ConfigError, ValueError):
    """A segmentation option has a value it cannot have (the command line prints it without a traceback)."""


def _choice(name: str, value: Any, allowed: Tuple[str, ...]) -> None:
    if value not in allowed:
        raise OptionError(f"The segmentation option {name} must be one of {', '.join(allowed)}, not {value!r}.")


@dataclass(frozen=True)
class SegmentOptions:
    """How one case (or each case of a batch) is segmented. Every value is checked on creation
    (:class:`OptionError`, a ``ValueError``, naming the option), so a bad record never reaches a process."""

    model: str = ""  # model id (ID or ID@VERSION) or package folder; "" = the default model
    backend: str = "auto"  # auto | torch | onnx
    device: str = "auto"  # auto | cpu | cuda (a CUDA index such as cuda:1 is accepted)
    precision: str = "auto"  # auto | bf16 | fp16 | fp32 (PyTorch backend)
    tta: bool = False  # mirroring test-time augmentation; False = the model's default
    #: sliding windows of this size (z, y, x); None = the whole brain in one pass when memory allows
    patch_size: Optional[Tuple[int, int, int]] = None
    overlap: Optional[float] = None  # window overlap; None = the model's
    blend: str = "gaussian"  # gaussian | constant
    register: str = "auto"  # rigid co-registration onto T1c: auto (when the grids differ) | on | off
    skull_strip: str = "auto"  # brain extraction: auto (when not skull-stripped) | on | off
    min_component_ml: Optional[float] = None  # None = the model's inference.min_component_ml
    min_et_component_ml: Optional[float] = None  # None = the model's inference.min_et_component_ml
    tumour_bias: Optional[float] = None  # None = the model's inference.tumour_bias
    fallback: bool = True  # a model that cross-validated better when a sequence is missing
    on_implausible: str = "warn"  # warn | refuse
    labels: str = "brats2023"  # label values of the NIfTI output: brats2023 | legacy (ET = 4)
    qc: bool = True  # write qc.png

    def __post_init__(self) -> None:
        _choice("backend", self.backend, BACKENDS)
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise OptionError(f"The segmentation option device must be one of {', '.join(DEVICES)} (or cuda:N), "
                              f"not {self.device!r}.")
        _choice("precision", self.precision, PRECISIONS)
        _choice("blend", self.blend, BLENDS)
        _choice("register", self.register, THREE_STATE)
        _choice("skull_strip", self.skull_strip, THREE_STATE)
        _choice("on_implausible", self.on_implausible, ON_IMPLAUSIBLE)
        _choice("labels", self.labels, LABEL_CONVENTIONS)
        for name in ("tta", "fallback", "qc"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(f"The segmentation option {name} must be true or false, not "
                                  f"{getattr(self, name)!r}.")
        if self.patch_size is not None:
            patch = tuple(int(v) for v in self.patch_size)
            if len(patch) != 3:
                raise OptionError(f"The segmentation option patch_size needs three values (z, y, x), not "
                                  f"{self.patch_size!r}.")
            object.__setattr__(self, "patch_size", patch)
        for name in ("overlap", "min_component_ml", "min_et_component_ml", "tumour_bias"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))

    # -- records -------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["patch_size"] = list(self.patch_size) if self.patch_size else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SegmentOptions":
        """The record of :meth:`to_dict`; an unknown key is refused (a typo must not be ignored)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise OptionError(f"Unknown segmentation option(s): {', '.join(unknown)}; the options are "
                              f"{', '.join(sorted(names))}.")
        values = dict(data)
        if values.get("patch_size") is not None:
            values["patch_size"] = tuple(values["patch_size"])
        return cls(**values)

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> "SegmentOptions":
        """The record of the arguments declared by :func:`add_arguments`."""
        return cls(model=args.model or "", backend=args.backend, device=args.device, precision=args.precision,
                   tta=bool(args.tta), patch_size=tuple(args.patch_size) if args.patch_size else None,
                   overlap=args.overlap, blend=args.blend, register=args.register, skull_strip=args.skull_strip,
                   min_component_ml=args.min_component_ml, min_et_component_ml=args.min_et_component_ml,
                   tumour_bias=args.tumour_bias, fallback=not args.no_fallback, on_implausible=args.on_implausible,
                   labels=args.labels, qc=not args.no_qc)

    def to_arguments(self) -> List[str]:
        """The ``voxmmsd segment`` options that give this record back (every value spelt out, so that the
        engine's defaults cannot change what a caller asked for)."""
        args: List[str] = []
        if self.model:
            args += ["--model", self.model]
        args += ["--backend", self.backend, "--device", self.device, "--precision", self.precision,
                 "--blend", self.blend, "--register", self.register, "--skull-strip", self.skull_strip,
                 "--on-implausible", self.on_implausible, "--labels", self.labels]
        if self.tta:
            args.append("--tta")
        if self.patch_size:
            args += ["--patch-size"] + [str(v) for v in self.patch_size]
        for flag, value in (("--overlap", self.overlap), ("--min-component-ml", self.min_component_ml),
                            ("--min-et-component-ml", self.min_et_component_ml),
                            ("--tumour-bias", self.tumour_bias)):
            if value is not None:
                args += [flag, repr(float(value))]
        if not self.fallback:
            args.append("--no-fallback")
        if not self.qc:
            args.append("--no-qc")
        return args

    def predictor_config(self) -> Any:
        """The :class:`~voxmmsd.infer.predictor.PredictorConfig` of these options."""
        from voxmmsd.infer.predictor import PredictorConfig

        return PredictorConfig(backend=self.backend, device=self.device, precision=self.precision,
                               tta=True if self.tta else None, patch_size=self.patch_size, overlap=self.overlap,
                               blend=self.blend, min_component_ml=self.min_component_ml,
                               min_et_component_ml=self.min_et_component_ml, tumour_bias=self.tumour_bias,
                               register=self.register, skull_strip=self.skull_strip)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the options of :class:`SegmentOptions` on the parser of ``voxmmsd segment``."""
    d = SegmentOptions()
    p.add_argument("--model", default=None, help="model id (ID or ID@VERSION) or package folder "
                                                  "(default: voxmmsd-brats-default)")
    p.add_argument("--backend", default=d.backend, choices=BACKENDS,
                   help="auto = PyTorch when installed, else ONNX Runtime")
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="PyTorch backend precision (auto: bf16 where the hardware supports it)")
    p.add_argument("--tta", action="store_true", help="mirroring test-time augmentation (8x slower)")
    p.add_argument("--patch-size", type=int, nargs=3, metavar=("D", "H", "W"),
                   help="sliding windows of this size instead of one pass over the whole brain")
    p.add_argument("--overlap", type=float, default=None, help="window overlap (default: the model's, 0.5)")
    p.add_argument("--blend", default=d.blend, choices=BLENDS,
                   help="how overlapping windows are blended (default: gaussian)")
    p.add_argument("--register", nargs="?", const="on", default=d.register, choices=THREE_STATE,
                   help="rigid co-registration onto T1c (mutual information): auto = when the grids differ "
                        "(default), on (also a bare --register), off = trust the scanner's coordinates")
    p.add_argument("--skull-strip", default=d.skull_strip, choices=THREE_STATE,
                   help="brain extraction (deepbet, needs PyTorch): auto = when the images do not look "
                        "skull-stripped (default; refuses when it cannot run), on, off")
    p.add_argument("--min-component-ml", type=float, default=None,
                   help="remove tumour components smaller than this many mL, the largest always kept "
                        "(default: the model's own setting, inference.min_component_ml; 0 = off)")
    p.add_argument("--min-et-component-ml", type=float, default=None,
                   help="relabel NETC every ET component smaller than this many mL, the largest kept "
                        "(default: the model's inference.min_et_component_ml; 0 = off)")
    p.add_argument("--tumour-bias", type=float, default=None, metavar="LOGODDS",
                   help="favour tumour over background by this many log-odds before labelling (positive: "
                        "more tumour; default: the model's inference.tumour_bias, chosen on its folds; 0 = off)")
    p.add_argument("--no-fallback", action="store_true",
                   help="use the chosen model even when a sequence is missing for which its package names a "
                        "better model (inference.fallback_when_missing; the default model: 1.0.0 without T2w "
                        "or FLAIR)")
    p.add_argument("--on-implausible", default=d.on_implausible, choices=ON_IMPLAUSIBLE,
                   help="what to do when the plausibility checks find the result implausible (docs/plausibility.md): "
                        "warn = write it with a warning (default); refuse = write report.json (and qc.png) but no "
                        "label map, exit status 3 (batch: the case is listed as refused)")
    p.add_argument("--labels", default=d.labels, choices=LABEL_CONVENTIONS,
                   help="label values of the NIfTI output (legacy: ET = 4)")
    p.add_argument("--no-qc", action="store_true", help="do not write qc.png")
