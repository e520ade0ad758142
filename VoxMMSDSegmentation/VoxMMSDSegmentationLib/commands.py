"""Engine command lines for segmentation, pre-training and fine-tuning (pure functions)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

DEVICES = ("auto", "cuda", "cpu")
BACKENDS = ("auto", "onnx", "torch")


@dataclass(frozen=True)
class SegmentOptions:
    """What the Segmentation section sets (saved in the parameter node / batch runs)."""

    model: str = ""  # model id or package folder; "" = the engine's default model
    device: str = "auto"
    backend: str = "auto"
    tta: bool = False
    register: bool = False
    #: brain extraction: auto (the engine decides) | on | off (images already skull-stripped)
    skull_strip: str = "auto"
    min_component_ml: Optional[float] = None
    #: an implausible result: warn (loaded with a warning) | refuse (not loaded; the engine writes no label map)
    on_implausible: str = "warn"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def segment_arguments(inputs: Mapping[str, Path], out_dir: Path, options: SegmentOptions) -> List[str]:
    """``voxmmsd segment`` arguments for explicit input files, JSON progress on stdout."""
    if options.device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {options.device!r}")
    if options.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {options.backend!r}")
    args = ["segment"]
    for key in ("t1n", "t1c", "t2w", "t2f"):
        if key in inputs and inputs[key] is not None:
            args += [f"--{key}", str(inputs[key])]
    args += ["--out", str(out_dir), "--progress", "json", "--device", options.device, "--backend", options.backend]
    if options.model:
        args += ["--model", options.model]
    if options.tta:
        args.append("--tta")
    if options.register:
        args.append("--register")
    if options.skull_strip not in ("auto", "on", "off"):
        raise ValueError(f"skull_strip must be auto, on or off, not {options.skull_strip!r}")
    if options.skull_strip != "auto":
        args += ["--skull-strip", options.skull_strip]
    if options.min_component_ml is not None:
        args += ["--min-component-ml", f"{float(options.min_component_ml):g}"]
    if options.on_implausible not in ("warn", "refuse"):
        raise ValueError(f"on_implausible must be warn or refuse, not {options.on_implausible!r}")
    if options.on_implausible != "warn":
        args += ["--on-implausible", options.on_implausible]
    return args


@dataclass(frozen=True)
class PretrainOptions:
    data: str
    out: str
    iterations: int = 60000
    crop_size: Tuple[int, int, int] = (96, 96, 96)
    device: str = "auto"


@dataclass(frozen=True)
class FinetuneOptions:
    data: str
    out: str
    init: str = ""  # pre-training run, backbone.safetensors or checkpoint; "" = from scratch
    labelled_cases: int = 0  # 0 = every case not used for validation
    iterations: int = 20000
    device: str = "auto"


def pretrain_arguments(o: PretrainOptions) -> List[str]:
    crop = ",".join(str(int(v)) for v in o.crop_size)
    return ["pretrain", "--data", str(o.data), "--out", str(o.out), "--device", o.device,
            "--set", f"iterations={int(o.iterations)}", "--set", f"crop_size={crop}"]


def finetune_arguments(o: FinetuneOptions) -> List[str]:
    args = ["finetune", "--data", str(o.data), "--out", str(o.out), "--device", o.device,
            "--set", f"train.iterations={int(o.iterations)}"]
    if o.init:
        args += ["--init", str(o.init)]
    if o.labelled_cases > 0:
        args += ["--set", f"data.train={int(o.labelled_cases)}"]
    return args
