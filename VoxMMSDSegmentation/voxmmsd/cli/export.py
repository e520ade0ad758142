"""``voxmmsd export WEIGHTS --out FOLDER --id ID``: turn a checkpoint into a model package (+ ONNX)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="make a model package (safetensors + ONNX + model.json) from weights",
                       description="Read weights safely (safetensors, or a PyTorch/PyMIC checkpoint with "
                                   "weights_only=True), check them against the network, and write a model "
                                   "package with an ONNX export verified against PyTorch.")
    p.add_argument("weights", type=Path, help=".safetensors, .pt or .pth (e.g. the authors' PyMIC checkpoint)")
    p.add_argument("--out", type=Path, required=True, help="package folder to write")
    p.add_argument("--id", required=True, help="model id")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--name", default=None)
    p.add_argument("--description", default="")
    p.add_argument("--channels", type=int, nargs=5, default=None,
                   help="network channels per level (default: from the file's metadata, else 32 64 128 256 512)")
    p.add_argument("--num-classes", type=int, default=None, help="output classes incl. background (default 4)")
    p.add_argument("--tolerates-missing", action="store_true", help="the model was trained with sequence dropout")
    p.add_argument("--crop-margin", type=int, default=2)
    p.add_argument("--percentile", type=float, default=99.9)
    p.add_argument("--spacing", type=float, nargs=3, default=None, help="preprocessing spacing (x y z mm)")
    p.add_argument("--license", default="research use only")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxmmsd.models.package import save_package
    from voxmmsd.nets.unet import UNetConfig
    from voxmmsd.nets.weights import load_weights
    from voxmmsd.preprocessing import PreprocessConfig

    state, meta = load_weights(args.weights)
    net = dict(meta.get("network") or {})
    if args.channels:
        net["channels"] = list(args.channels)
    if args.num_classes:
        net["num_classes"] = args.num_classes
    if "decoder.out_conv.weight" in state and not args.num_classes and "num_classes" not in net:
        net["num_classes"] = int(state["decoder.out_conv.weight"].shape[0])
    cfg = UNetConfig.from_dict(net)
    pre = PreprocessConfig(args.percentile, args.crop_margin, tuple(args.spacing) if args.spacing else None)
    folder = save_package(args.out, state, cfg, pre, model_id=args.id, version=args.version, name=args.name,
                          description=args.description, tolerates_missing=args.tolerates_missing,
                          export_onnx=not args.no_onnx, license=args.license,
                          training={"source": str(args.weights)})
    sys.stdout.write(f"model package written: {folder}\n")
    return 0
