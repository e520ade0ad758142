"""``--init``: start fine-tuning from pre-trained weights.

Accepted: a pre-training run folder (``RUN/backbone.safetensors``), a model package or
fine-tuning run folder (``weights.safetensors``, ``model/weights.safetensors``), one of
our ``.safetensors`` files, or a PyTorch checkpoint such as the authors' PyMIC files
(``{"model_state_dict": ...}``, read with ``weights_only=True``).

Every tensor whose name and shape fit the network is copied; the others are reported
with the reason. The output layer is re-initialised unless ``init.keep_head`` is set:
after pre-training it was never trained, and it must be fresh for another label set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from voxmmsd.errors import ModelError
from voxmmsd.jobs.run_folder import RunFolder
from voxmmsd.nets.weights import LoadReport, load_into, load_weights, strip_prefixes
from voxmmsd.preprocessing import PreprocessConfig

log = logging.getLogger(__name__)

HEAD_PREFIX = "decoder.out_conv."
HEAD_REASON = "output layer re-initialised for fine-tuning (set init.keep_head=true to keep it)"

#: files looked for, in order, when --init names a folder
FOLDER_CANDIDATES = ("backbone.safetensors", "weights.safetensors", "model/weights.safetensors",
                     "checkpoints/best.pt", "checkpoints/last.pt")


@dataclass
class InitResult:
    """Where the weights came from and what :func:`load_into` did with them."""

    source: Path
    report: LoadReport
    metadata: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        d = self.report.to_dict()
        d["source"] = str(self.source)
        return d


def input_mismatch(metadata: Mapping[str, Any], preprocessing: PreprocessConfig) -> List[str]:
    """How the inputs the weights were trained on (``metadata["preprocessing"]``, written by
    pre-training and by model packages) differ from fine-tuning's ``preprocessing``: voxel spacing and
    intensity normalisation, one sentence each; [] when they agree or the weights do not say."""
    saved = metadata.get("preprocessing")
    if not isinstance(saved, Mapping):
        return []
    theirs = PreprocessConfig.from_dict(dict(saved))
    out = []
    if theirs.spacing != preprocessing.spacing:
        out.append(f"voxel spacing {_spacing_text(theirs.spacing)} in the weights, "
                   f"{_spacing_text(preprocessing.spacing)} here (preprocessing.spacing)")
    if theirs.normalization != preprocessing.normalization:
        out.append(f"intensity normalisation {theirs.normalization!r} in the weights, "
                   f"{preprocessing.normalization!r} here (preprocessing.normalization)")
    return out


def _spacing_text(spacing: Optional[Tuple[float, ...]]) -> str:
    return "x".join(f"{v:g}" for v in spacing) + " mm" if spacing else "the reference grid's"


def resolve_init(path: Path) -> Path:
    """The weights file that ``path`` (a file or a run/package folder) stands for."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        run = RunFolder(path)
        for candidate in (run.backbone, path / "weights.safetensors", run.model / "weights.safetensors",
                          run.best_checkpoint, run.last_checkpoint):  # the order of FOLDER_CANDIDATES
            if candidate.is_file():
                return candidate
        raise ModelError(f"--init {path}: the folder holds none of {list(FOLDER_CANDIDATES)}. Give a finished "
                         f"pre-training run (with backbone.safetensors), a model package, or a weights file.")
    raise ModelError(f"--init {path}: no such file or folder.")


def channels_of(state: Mapping[str, torch.Tensor]) -> Optional[List[int]]:
    """The U-Net channel widths a state dict was made for (from its encoder's first convolutions)."""
    keys = ["encoder.in_conv.conv_conv.0.weight"] + [f"encoder.down{i}.maxpool_conv.1.conv_conv.0.weight"
                                                     for i in range(1, 5)]
    out = []
    for k in keys:
        t = state.get(k)
        if t is None or t.ndim != 5:
            return None
        out.append(int(t.shape[0]))
    return out


def initialise(model: nn.Module, path: Path, keep_head: bool = False) -> InitResult:
    """Copy the fitting tensors of the weights at ``path`` into ``model``.

    Raises :class:`ModelError` when not a single tensor fits (wrong network settings),
    naming the channel widths the checkpoint was made for.
    """
    source = resolve_init(path)
    state, meta = load_weights(source)
    state = {strip_prefixes(k): v for k, v in state.items()}
    if any(k.startswith("members.") for k in state):  # a fold ensemble: start from its first member
        from voxmmsd.nets.ensemble import member_state

        log.info("--init %s is a fold ensemble: starting from its first member", source)
        state = member_state(state, 0)
    head = {k: v for k, v in state.items() if k.startswith(HEAD_PREFIX)}
    if not keep_head:
        state = {k: v for k, v in state.items() if k not in head}
    report = load_into(model, state)
    if not keep_head:
        for k in head:
            report.skipped[k] = HEAD_REASON
    if not [k for k in report.loaded if not k.endswith("num_batches_tracked")]:
        have = channels_of(state)
        own = [int(c) for c in getattr(getattr(model, "cfg", None), "channels", ())]
        hint = (f" The checkpoint was made for network.channels={have}; this network has {own}: "
                f"add --set network.channels=[{','.join(str(c) for c in have)}].") if have else ""
        raise ModelError(f"--init {source}: none of its {len(state)} tensors fit the network.{hint}")
    log.info("initialised from %s: %s", source, report.summary())
    for key, why in list(report.skipped.items())[:20]:
        log.info("  skipped %s: %s", key, why)
    return InitResult(source, report, meta)
