"""Engine command lines for segmentation, pre-training and fine-tuning (pure functions).

Segmentation options are the engine's record, :class:`voxmmsd.infer.options.SegmentOptions`
(re-exported here): the module fills it from its widgets and the engine builds the command line
from it, so the two sides cannot mean different things by an option.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Tuple

from voxmmsd.infer.options import SegmentOptions

__all__ = ["FinetuneOptions", "PretrainOptions", "SegmentOptions", "finetune_arguments", "pretrain_arguments",
           "segment_arguments"]


def segment_arguments(inputs: Mapping[str, Path], out_dir: Path, options: SegmentOptions) -> List[str]:
    """``voxmmsd segment`` arguments for explicit input files, JSON progress on stdout. The options are the
    engine's own record (:class:`voxmmsd.infer.options.SegmentOptions`, checked when made), spelt out whole by
    :meth:`~voxmmsd.infer.options.SegmentOptions.to_arguments`: no engine default decides for the module."""
    args = ["segment"]
    for key in ("t1n", "t1c", "t2w", "t2f"):
        if key in inputs and inputs[key] is not None:
            args += [f"--{key}", str(inputs[key])]
    return args + ["--out", str(out_dir), "--progress", "json"] + options.to_arguments()


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
            "--set", f"train.iterations={int(o.iterations)}", "--set", f"data.patch_size={crop}"]


def finetune_arguments(o: FinetuneOptions) -> List[str]:
    args = ["finetune", "--data", str(o.data), "--out", str(o.out), "--device", o.device,
            "--set", f"train.iterations={int(o.iterations)}"]
    if o.init:
        args += ["--init", str(o.init)]
    if o.labelled_cases > 0:
        args += ["--set", f"data.train={int(o.labelled_cases)}"]
    return args
