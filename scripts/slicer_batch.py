"""Segment a folder of cases through the VoxMMSD module's Logic inside 3D Slicer, then exit.

    Slicer --no-splash --no-main-window --python-script scripts/slicer_batch.py -- \\
        --data CASES_DIR --out OUT_DIR [--model ID_or_FOLDER] [--device auto|cuda|cpu] [--tta] [--register auto|on|off]
        [--on-implausible warn|refuse]

Every case (one sub-folder with T1/T1c/T2/FLAIR) is loaded into the scene, segmented by the
engine process, checked, saved to OUT_DIR/<case_id>/ and unloaded; OUT_DIR/summary.csv lists
all cases with the plausibility verdict of each (docs/plausibility.md). Exit status: 0 all cases
segmented, 1 some failed, 2 bad arguments or set-up, 3 some refused as implausible
(--on-implausible refuse).
Without Slicer, the same is ``voxmmsd segment --batch CASES_DIR --out OUT_DIR``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

MODULE_DIR = Path(__file__).resolve().parent.parent / "VoxMMSDSegmentation"


def parse(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="slicer_batch.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder of cases")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--model", default="", help="model id or package folder (default: the bundled default model)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--tta", action="store_true", help="test-time augmentation")
    p.add_argument("--register", nargs="?", const="on", default="auto", choices=("auto", "on", "off"),
                   help="rigid co-registration onto T1c: auto = when the grids differ (default), on (also a bare "
                        "--register), off")
    p.add_argument("--timeout", type=float, default=None, help="seconds per case before it is cancelled")
    p.add_argument("--on-implausible", default="warn", choices=("warn", "refuse"),
                   help="an implausible result: warn (kept, listed in summary.csv) or refuse (no segmentation saved)")
    return p.parse_args([a for a in argv if a != "--"] if argv[:1] == ["--"] else argv)


def module_logic():
    """The module's Logic: from the loaded module, else from the source tree next to this script."""
    import slicer

    try:
        return slicer.util.getModuleLogic("VoxMMSDSegmentation")
    except Exception:  # module not loaded (source tree not added to the module paths)
        if str(MODULE_DIR) not in sys.path:
            sys.path.insert(0, str(MODULE_DIR))
        import VoxMMSDSegmentation

        return VoxMMSDSegmentation.VoxMMSDSegmentationLogic()


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if not args.data.is_dir():
        logging.error("%s is not a folder of cases. Give the folder that holds one sub-folder per case.", args.data)
        return 2
    logic = module_logic()
    if str(MODULE_DIR) not in sys.path:
        sys.path.insert(0, str(MODULE_DIR))
    from VoxMMSDSegmentationLib.batch import exit_code
    from VoxMMSDSegmentationLib.commands import SegmentOptions

    plan = logic.dependencyPlan(training=False)
    if plan.get("pip"):
        logging.info("installing %s", ", ".join(plan["pip"]))
        logic.installDependencies(plan)
    options = SegmentOptions(model=args.model, device=args.device, tta=args.tta, register=args.register,
                             on_implausible=args.on_implausible)

    def report(result) -> None:
        vols = " ".join(f"{k}={result.volumes_ml[k]:.1f}mL" for k in ("WT", "TC", "ET") if k in result.volumes_ml)
        verdict = f" plausibility={result.plausibility}" if result.plausibility else ""
        print(f"{result.case_id}: {result.status} {vols}{verdict} {result.error}".rstrip(), flush=True)

    try:
        results = logic.segmentFolder(args.data, args.out, options, timeout=args.timeout, report=report)
    except Exception as exc:  # set-up errors (no cases, output folder not writable, ...)
        logging.error("%s", exc)
        return 2
    counts = {s: sum(r.status == s for r in results) for s in ("finished", "skipped", "refused", "failed")}
    implausible = sum(r.plausibility == "implausible" for r in results)
    print(f"{counts['finished']} segmented, {counts['skipped']} already done, {counts['refused']} refused, "
          f"{counts['failed']} failed of {len(results)} case folder(s); {implausible} implausible; "
          f"summary: {args.out / 'summary.csv'}", flush=True)
    return exit_code(results)


if __name__ == "__main__":
    code = main()
    try:
        import slicer

        slicer.util.exit(code)
    except (ImportError, AttributeError):
        sys.exit(code)
