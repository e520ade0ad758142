"""Settings shared by the fine-tuning tests: a tiny network on small synthetic cases."""

from __future__ import annotations

from typing import List

TINY_SETTINGS: List[str] = [
    "network.channels=[4,8,16,32,64]",
    "data.patch_size=[32,32,32]",
    "data.batch_size=2",
    "data.val=1",
    "train.lr=0.003",
    "train.log_every=1",
    "package.onnx=false",
]


def set_args(extra: List[str] = ()) -> List[str]:
    out: List[str] = []
    for s in list(TINY_SETTINGS) + list(extra):
        out += ["--set", s]
    return out
