"""Training steps per second and whole-brain inference seconds of candidate model designs, side by side.

Each candidate is a network size, an input grid and a batch, run in this one process one after
another with the same threads and allocator (so the ratios hold on a noisy machine better than
the absolute times). One training step = forward, Dice+CE loss, backward and an AdamW update,
with bf16 autocast (the recipes' precision on CPUs with bf16) and, where named, channels-last-3d.
Inference = one forward pass over the whole brain crop at the design's grid (eval mode, no grad).

    .venv/bin/python benchmarks/bench_training.py [--steps 5] [--warmup 2] [--only NAME,...]

Candidates:

* ``full-1mm-64``: the full-size U-Net (32-512), 64^3 patches, batch 2 (2.1.0's warm-start recipe);
* ``full-1mm-128``: the full-size U-Net, 128^3 patches, batch 1 (1.0.0's GPU recipe on a CPU);
* ``half-2mm``: the half-width U-Net (16-256), the whole brain at 2 mm (80x96x80), batch 2 (3.0.0);
* ``half-2mm-noCL``: the same without channels-last-3d;
* ``half-1.5mm``: the half-width U-Net, the whole brain at 1.5 mm (112x128x112), batch 1.

Inference crops: a 1 mm brain crop is about 144x176x144 voxels (the full-size models' input);
at 2 mm 80x96x80; at 1.5 mm 112x128x112. Prints one JSON line per candidate and the ratios
against ``full-1mm-64`` (steps per second) and ``full-1mm-128`` (inference seconds).
For the allocator, run it as the training script does:
``LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from typing import Dict, List, Tuple

log = logging.getLogger("bench_training")

FULL = (32, 64, 128, 256, 512)
HALF = (16, 32, 64, 128, 256)

#: name -> (channels, training patch (z, y, x), batch, channels_last, inference crop (z, y, x))
CANDIDATES: Dict[str, Tuple[Tuple[int, ...], Tuple[int, int, int], int, bool, Tuple[int, int, int]]] = {
    "full-1mm-64": (FULL, (64, 64, 64), 2, True, (144, 176, 144)),
    "full-1mm-128": (FULL, (128, 128, 128), 1, True, (144, 176, 144)),
    "half-2mm": (HALF, (80, 96, 80), 2, True, (80, 96, 80)),
    "half-2mm-noCL": (HALF, (80, 96, 80), 2, False, (80, 96, 80)),
    "half-1.5mm": (HALF, (112, 128, 112), 1, True, (112, 128, 112)),
}


def bench(name: str, steps: int, warmup: int) -> Dict[str, object]:
    import torch
    from voxmmsd.finetune.loss import training_loss
    from voxmmsd.nets.config import UNetConfig
    from voxmmsd.nets.unet import VoxUNet

    channels, patch, batch, cl, crop = CANDIDATES[name]
    torch.manual_seed(0)
    fmt = torch.channels_last_3d if cl else torch.contiguous_format
    model = VoxUNet(UNetConfig(channels=channels)).to(memory_format=fmt)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = training_loss("dice_ce")
    x = torch.rand((batch, 4) + patch).contiguous(memory_format=fmt)
    y = torch.randint(0, 4, (batch,) + patch)
    times: List[float] = []
    model.train()
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
        loss, _ = loss_fn(logits, y)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    model.eval()
    xi = torch.rand((1, 4) + crop).contiguous(memory_format=fmt)
    inf: List[float] = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(1 + max(steps // 2, 1)):
            t0 = time.perf_counter()
            model(xi)
            if i >= 1:
                inf.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    return {"name": name, "channels": list(channels), "patch": list(patch), "batch": batch, "channels_last": cl,
            "step_s": round(step_s, 3), "steps_per_s": round(1.0 / step_s, 3),
            "voxels_per_s": round(batch * patch[0] * patch[1] * patch[2] / step_s),
            "inference_crop": list(crop), "inference_s": round(statistics.median(inf), 3),
            "params_m": round(params / 1e6, 2), "threads": torch.get_num_threads()}


def main(argv: List[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per candidate (median)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default=",".join(CANDIDATES), help="comma-separated candidate names")
    args = ap.parse_args(argv)
    results = {}
    for name in [n for n in args.only.split(",") if n]:
        if name not in CANDIDATES:
            ap.error(f"unknown candidate {name!r}; choose from {', '.join(CANDIDATES)}")
        log.info("benchmarking %s", name)
        results[name] = bench(name, args.steps, args.warmup)
        sys.stdout.write(json.dumps(results[name]) + "\n")
    if "full-1mm-64" in results:
        base = results["full-1mm-64"]["steps_per_s"]
        for name, r in results.items():
            sys.stdout.write(f"{name}: {float(r['steps_per_s']) / float(base):.2f}x the training steps/s of "
                             f"full-1mm-64\n")
    if "full-1mm-128" in results:
        base = results["full-1mm-128"]["inference_s"]
        for name, r in results.items():
            sys.stdout.write(f"{name}: whole-brain forward {float(base) / float(r['inference_s']):.1f}x faster "
                             f"than full-1mm-128 ({r['inference_s']} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
