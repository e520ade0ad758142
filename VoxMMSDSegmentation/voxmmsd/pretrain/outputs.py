"""What a pre-training run writes besides checkpoints: the backbone weights and the loss plot.

Events, ``log.txt`` and TensorBoard are written by :class:`voxmmsd.jobs.recorder.Recorder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping

import torch

from voxmmsd.io.atomic import atomic_path
from voxmmsd.nets.weights import save_weights

BACKBONE = "backbone.safetensors"
UNTRAINED = ["decoder.out_conv.weight", "decoder.out_conv.bias"]


def save_backbone(state: Mapping[str, torch.Tensor], path: Path, config: Dict[str, Any], iteration: int) -> Path:
    """The U-Net's weights (PyMIC names) as safetensors, with what produced them in the metadata."""
    meta = {"kind": "voxmmsd-pretrained-backbone", "iteration": iteration, "network": config["network"],
            "preprocessing": config["preprocessing"], "sequences": ["t1n", "t1c", "t2w", "t2f"],
            "untrained": UNTRAINED, "pretrain_config": config}
    return save_weights(state, path, meta)


def plot_losses(history: Dict[str, List[float]], path: Path) -> Path:
    """PNG of the loss curves (total, distillation, reconstruction) against the iteration."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    its = history.get("iteration", [])
    for key, label in (("loss", "total"), ("distill", "distillation"), ("recon", "reconstruction")):
        if history.get(key):
            ax.plot(its, history[key], label=label, linewidth=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title("Vox-MMSD pre-training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(str(tmp), format="png")
    plt.close(fig)
    return Path(path)
