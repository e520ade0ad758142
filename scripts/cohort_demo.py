"""The module's correct-and-learn loop on real cases, without Slicer's GUI, and the pictures of docs/slicer.md.

    python scripts/cohort_demo.py --cases CASE_DIR [CASE_DIR ...] --work WORK --model voxmmsd-brats-default@2.0.0 \
        --images docs/images [--iters 100]

1. The first case's four volumes are loaded into a real MRML scene (slicer-core) and segmented by the module's
   ``SegmentationJob`` (the real engine process); the proposal is remembered as the module remembers it.
2. The review: every segment is replaced by the case's expert label, segment by segment, the way a Segment
   Editor effect writes into a segment (a label map imported into it). ``cohort-review.png`` shows the T1c slice
   through the tumour with the proposal, the reviewed segmentation and what changed, read from the scene.
3. *Add to cohort*: the module's ``CohortAddJob`` (the real ``voxmmsd cohort add`` process).
4. The other cases are segmented with ``voxmmsd segment`` and added with ``voxmmsd cohort add --proposal``
   (their expert labels as the reviewed segmentations).
5. ``voxmmsd cohort finetune`` (cross-validation against the starting model, then the final model),
   ``cohort-comparison.png`` from its ``comparison.json`` (the panel's table rows), then
   ``voxmmsd cohort install`` (refused when worse: shown) into ``WORK/home`` (not the user's cache);
   ``cohort-cases.png``: the cohort list as the panel's table shows it.

``--replot`` redraws the last two pictures from a finished ``WORK`` without running anything.

The pictures show the module's scene content and the engine's results; none is a screenshot of Slicer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))

log = logging.getLogger("cohort_demo")
SEQUENCES = ("t1n", "t1c", "t2w", "t2f")


def engine(args: List[str], env: Dict[str, str]) -> str:
    cmd = [sys.executable, "-m", "voxmmsd", "-q"] + [str(a) for a in args]
    log.info("$ %s", " ".join(cmd[2:]))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(done.stderr)
    return done.stdout + done.stderr


def review(scene, seg, reference, expert: np.ndarray) -> None:
    """Replace each segment by the expert's voxels (oedema first, then core, then enhancing; a label the model
    missed gets a new segment with the label's name), as Segment Editor effects write into segments."""
    import slicer
    import vtk
    from VoxMMSDSegmentationLib import cohort as cohort_lib
    from VoxMMSDSegmentationLib import scene as scene_io

    values = cohort_lib.segment_values(seg)
    by_value = {v: k for k, v in values.items()}
    specs = {s.value: s for s in scene_io.default_labels()}
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    for value in (2, 1, 3):
        if value not in by_value:
            if not (expert == value).any():
                continue
            by_value[value] = seg.GetSegmentation().AddEmptySegment("", specs[value].name, list(specs[value].color))
        lm = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "edit")
        lm.CopyOrientation(reference)
        slicer.util.updateVolumeFromArray(lm, (expert == value).astype(np.uint8))
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(by_value[value])
        if not logic.ImportLabelmapToSegmentationNode(lm, seg, ids):
            raise RuntimeError(f"could not edit segment {by_value[value]}")
        scene.RemoveNode(lm)


def review_picture(t1c: np.ndarray, proposal: np.ndarray, reviewed: np.ndarray, spacing, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    k = int(np.argmax(((proposal > 0) | (reviewed > 0)).sum(axis=(1, 2))))
    colors = ListedColormap([(0, 0, 0, 0), (0.95, 0.85, 0.15, 0.55), (0.2, 0.75, 0.3, 0.45), (0.9, 0.2, 0.2, 0.6)])
    image = t1c[k]
    lo, hi = np.percentile(image[image > 0], [1, 99]) if (image > 0).any() else (0, 1)
    diff = np.zeros(image.shape + (4,))
    added = (reviewed[k] > 0) & (reviewed[k] != proposal[k])
    removed = (proposal[k] > 0) & (reviewed[k] == 0)
    diff[added] = (0.1, 0.9, 0.9, 0.85)
    diff[removed] = (1.0, 0.2, 0.8, 0.85)
    aspect = spacing[1] / spacing[0]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (title, overlay) in zip(axes, (("model proposal", proposal[k]), ("after review", reviewed[k]),
                                           ("changed voxels", None))):
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=aspect)
        if overlay is not None:
            ax.imshow(np.ma.masked_equal(overlay, 0), cmap=colors, vmin=0, vmax=3, origin="lower", aspect=aspect,
                      interpolation="nearest")
        else:
            ax.imshow(diff, origin="lower", aspect=aspect, interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    axes[2].text(0.02, 0.02, "cyan: added or relabelled  magenta: removed", transform=axes[2].transAxes,
                 color="w", fontsize=8)
    fig.suptitle(f"Axial T1c slice {k} through the tumour; yellow NETC, green SNFH, red ET", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out


def table_picture(ax, rows, columns, font: int = 8) -> None:
    ax.axis("off")
    table = ax.table(cellText=[list(r) for r in rows], colLabels=list(columns), loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(font)
    table.auto_set_column_width(list(range(len(columns))))
    table.scale(1.1, 1.8)


def comparison_picture(comparison: dict, rows: List[dict], out: Path) -> Path:
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from VoxMMSDSegmentationLib import learning

    fig, (ax, tab) = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1, 1.5]})
    regions = ("WT", "TC", "ET")
    for i, (model, colour) in enumerate((("start", "#888888"), ("finetuned", "#2a7ab0"))):
        means = [comparison["summary"][model][r]["dice"] for r in regions]
        ax.bar(np.arange(3) + (i - 0.5) * 0.38, means, 0.36, color=colour,
               label="starting model" if model == "start" else "fine-tuned")
        for j, r in enumerate(regions):
            pts = [float(x["dice"]) for x in rows if x["model"] == model and x["region"] == r]
            ax.plot(np.full(len(pts), j + (i - 0.5) * 0.38), pts, "k.", ms=5)
    ax.set_xticks(range(3), regions)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Dice on held-out cohort cases (dots: cases)")
    ax.legend(loc="upper right", fontsize=8)
    table_picture(tab, learning.comparison_rows(comparison), learning.COMPARISON_COLUMNS, font=10)
    fig.suptitle("\n".join(textwrap.wrap(learning.verdict(comparison), 150)), fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out


def cohort_picture(cohort: Path, out: Path) -> Path:
    """The cohort list as the panel's table shows it (:func:`learning.cohort_rows`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from VoxMMSDSegmentationLib import learning

    rows = learning.cohort_rows(cohort)
    fig, ax = plt.subplots(figsize=(13, 0.5 + 0.4 * (len(rows) + 1)))
    table_picture(ax, rows, learning.CASE_COLUMNS)
    fig.tight_layout()
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out


def pictures_from_run(work: Path, images: Path) -> None:
    """The pictures that need no scene, from ``WORK/cohort`` and ``WORK/run`` (redrawn without running)."""
    import csv

    run = work / "run"
    comparison = json.loads((run / "comparison.json").read_text())
    with open(run / "comparison.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    comparison_picture(comparison, rows, images / "cohort-comparison.png")
    cohort_picture(work / "cohort", images / "cohort-cases.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=Path, nargs="+", required=True, help="labelled case folders (expert labels)")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--model", default="voxmmsd-brats-default@2.0.0")
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--replot", action="store_true",
                   help="only redraw cohort-comparison.png and cohort-cases.png from a finished WORK")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.replot:
        pictures_from_run(args.work, args.images)
        return 0

    import slicer
    from voxmmsd.io.discovery import find_case
    from voxmmsd.metrics.evaluate import load_label
    from VoxMMSDSegmentationLib import cohort as cohort_lib
    from VoxMMSDSegmentationLib.batch import load_volume
    from VoxMMSDSegmentationLib.commands import SegmentOptions
    from VoxMMSDSegmentationLib.segmentation import FINISHED, SegmentationJob

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, VOXMMSD_HOME=str(work / "home"),
               PYTHONPATH=str(ROOT / "VoxMMSDSegmentation") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    os.environ["VOXMMSD_HOME"] = env["VOXMMSD_HOME"]
    cohort = work / "cohort"
    first = find_case(args.cases[0])

    # 1-3: the first case through the scene, as the module does it
    scene = slicer.vtkMRMLScene()
    inputs = {k: load_volume(scene, first.sequences[k], f"case {k}") for k in SEQUENCES}
    job = SegmentationJob(scene, inputs, SegmentOptions(model=args.model, device="cpu"), temp_root=work,
                          proposal_store=work / "proposals")
    if job.run(timeout=3600) != FINISHED:
        raise RuntimeError(job.error)
    seg = job.result.segmentation
    proposal = cohort_lib.reviewed_labels(scene, seg, inputs["t1c"])
    expert = load_label(first.label, "auto")[0]
    review(scene, seg, inputs["t1c"], expert)
    reviewed = cohort_lib.reviewed_labels(scene, seg, inputs["t1c"])
    if not np.array_equal(reviewed, expert):
        raise RuntimeError("the review did not reproduce the expert label")
    args.images.mkdir(parents=True, exist_ok=True)
    review_picture(slicer.util.arrayFromVolume(inputs["t1c"]), proposal, reviewed,
                   inputs["t1c"].GetSpacing(), args.images / "cohort-review.png")
    add = cohort_lib.CohortAddJob(scene, inputs, seg, cohort, temp_root=work, env=env)
    if add.run(timeout=3600) != "finished":
        raise RuntimeError(add.error)
    log.info("added %s through the scene", add.case_id)

    # 4: the other cases from the command line
    for case in args.cases[1:]:
        files = find_case(case)
        out = work / "proposals-cli" / files.case_id
        if not (out / "segmentation.nii.gz").is_file():
            engine(["segment", case, "--out", out, "--model", args.model, "--device", "cpu", "--no-qc"], env)
        print(engine(["cohort", "add", cohort, case, "--proposal", out / "segmentation.nii.gz",
                      "--proposed-by", args.model], env).strip().splitlines()[-1])
    print(engine(["cohort", "list", cohort], env))

    # 5: learn, compare, install
    run = work / "run"
    print(engine(["cohort", "finetune", cohort, "--out", run, "--model", args.model, "--max-iters", args.iters,
                  "--folds", args.folds, "--device", "cpu"], env))
    pictures_from_run(work, args.images)
    print(engine(["cohort", "install", run], env))
    print(engine(["models", "list"], env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
