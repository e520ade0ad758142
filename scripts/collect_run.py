"""Pack a fine-tuning run for transfer: half-precision weights in parts of at most 15 MB, and the logs.

Used on a lent GPU machine whose file transfer allows few, small files
(scripts/device_default_model.sh); ``--join`` puts the parts back together and writes the
model package here. Usage:

    python scripts/collect_run.py pack RUN OUTDIR
    python scripts/collect_run.py join OUTDIR PACKAGE_DIR [--set key=value ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tarfile
from pathlib import Path

PART = 15 * 1024 * 1024
LOG_FILES = ("config.yaml", "events.jsonl", "log.txt", "loss.png", "metrics.csv", "model/model.json")

log = logging.getLogger("collect_run")


def best_state(run: Path):
    from voxmmsd.jobs.checkpoint import load_checkpoint
    from voxmmsd.jobs.run_folder import RunFolder

    folder = RunFolder(run)
    for path in (folder.best_checkpoint, folder.last_checkpoint):
        name = path.name
        if path.is_file():
            ckpt = load_checkpoint(path)
            log.info("using %s (iteration %s)", path, ckpt.get("iteration"))
            return ckpt["model"], ckpt.get("config"), ckpt.get("best"), name
    raise SystemExit(f"no checkpoint in {run}/checkpoints")


def pack(run: Path, out: Path, extra: list) -> None:
    import json

    import torch
    from voxmmsd.nets.weights import save_weights

    out.mkdir(parents=True, exist_ok=True)
    state, config, best, name = best_state(run)
    tmp = out / "weights.fp16.safetensors"
    save_weights(state, tmp, {"config": config, "best": best, "checkpoint": name}, dtype=torch.float16)
    data = tmp.read_bytes()
    tmp.unlink()
    for i in range(0, len(data), PART):
        (out / f"weights.part{i // PART}").write_bytes(data[i:i + PART])
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for folder in [run] + [Path(e) for e in extra]:
            for f in LOG_FILES:
                if (folder / f).is_file():
                    tar.add(str(folder / f), arcname=f"{folder.name}/{f}")
    (out / "best.json").write_text(json.dumps({"best": best, "checkpoint": name}, indent=2, default=str))


def join(src: Path, package: Path, overrides: list) -> None:
    from voxmmsd.finetune.config import FinetuneConfig
    from voxmmsd.models.package import save_package
    from voxmmsd.nets.weights import load_weights

    parts = sorted(src.glob("weights.part*"), key=lambda p: int(p.name[len("weights.part"):]))
    whole = src / "weights.fp16.safetensors"
    whole.write_bytes(b"".join(p.read_bytes() for p in parts))
    state, meta = load_weights(whole)
    cfg = FinetuneConfig.from_dict(meta["config"])
    settings = dict(kv.split("=", 1) for kv in overrides)
    save_package(package, {k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                 cfg.network, cfg.preprocessing,
                 model_id=settings.get("id", cfg.package.model_id),
                 version=settings.get("version", cfg.package.version),
                 tolerates_missing=cfg.data.sequence_dropout > 0, training={"config": cfg.to_dict()},
                 metrics={"validation_preprocessed_grid": meta.get("best")}, half_precision=True,
                 description=cfg.package.description, license=cfg.package.license, citation=cfg.package.citation)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("run", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--logs-from", nargs="*", default=[], help="other run folders whose logs to include")
    j = sub.add_parser("join")
    j.add_argument("src", type=Path)
    j.add_argument("package", type=Path)
    j.add_argument("--set", nargs="*", default=[])
    a = ap.parse_args()
    if a.cmd == "pack":
        pack(a.run, a.out, a.logs_from)
    else:
        join(a.src, a.package, a.set)
    return 0


if __name__ == "__main__":
    sys.exit(main())
