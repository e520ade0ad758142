#!/usr/bin/env python
"""Keep finished fold models of a multi-sitting training in the repository, as float16 model packages.

    scripts/save_fold_pieces.py out/train-v3 pieces/v3 fold0 fold1 ...

Each ``WORK/<piece>/model`` becomes ``DEST/<piece>`` (weights float16, about 11 MB for the 3.0.0
recipe; no ONNX) with the id ``voxmmsd-v3-<piece>`` so that it is never taken for the bundled
default. ``scripts/train_default_v3.sh`` starts a missing piece from here (a finished piece
is not trained again), and the evaluation uses them as the fold models. A piece already saved is
skipped unless its source model changed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("save_fold_pieces")


def main(argv: List[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", type=Path, help="the training's working folder (WORK of train_default_v3.sh)")
    p.add_argument("dest", type=Path, help="where the pieces are kept in the repository (e.g. pieces/v3)")
    p.add_argument("pieces", nargs="+", help="piece names (fold0 ... fold4, loso-<source>)")
    args = p.parse_args(argv)
    from voxmmsd.models.package import load_package, save_package

    for piece in args.pieces:
        src = args.work / piece / "model"
        if not (src / "model.json").is_file():
            log.warning("%s: not finished (%s missing); skipped", piece, src / "model.json")
            continue
        pkg = load_package(src)
        dest = args.dest / piece
        sha = pkg.meta.get("files", {}).get("weights.safetensors")
        old = dest / "model.json"
        if old.is_file() and sha and load_package(dest).meta.get("training", {}).get("source_sha256") == sha:
            log.info("%s: already saved in %s", piece, dest)
            continue
        training = dict(pkg.meta.get("training", {}))
        training["source_sha256"] = sha
        save_package(dest, pkg.load_state_dict(), pkg.unet_config(), pkg.preprocessing,
                     model_id=f"voxmmsd-v3-{piece}", version=pkg.version, sequences=pkg.sequences,
                     tolerates_missing=pkg.tolerates_missing, training=training,
                     metrics=pkg.meta.get("metrics", {}), export_onnx=False,
                     description=f"Piece {piece} of the 3.0.0 recipe's training (float16). " + pkg.meta.get(
                         "description", ""), name=f"3.0.0 recipe, {piece}", inference=dict(pkg.inference),
                     half_precision=True)
        log.info("%s: saved to %s", piece, dest)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))
    sys.exit(main(sys.argv[1:]))
