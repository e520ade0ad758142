"""The label-efficiency experiment: does pre-training pay with few labelled cases?

For every N in ``sizes`` (and every repeat), fine-tune twice on the same N cases, once
from a random network ("scratch") and once from pre-trained weights ("pretrained"),
then score both on the same held-out test cases on their original grids. Outputs in
``OUT``: ``experiment.yaml`` (the plan and settings), ``runs/<arm>_nNNN_rR/`` (full
fine-tuning runs), ``results.csv`` (per run, case and region), ``summary.csv`` (means
per arm, N and region), ``paired.csv`` (pre-trained minus scratch, paired by N, repeat
and test case: :func:`~voxmmsd.experiment.report.paired`) and ``label_efficiency.png``
(Dice against N).

Finished runs are kept: running the same command again skips them and only adds what is
missing (or was stopped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from voxmmsd.errors import ConfigError
from voxmmsd.experiment import report
from voxmmsd.experiment.plan import ARMS, RunSpec, make_plan
from voxmmsd.finetune.config import FinetuneConfig, with_settings
from voxmmsd.io.atomic import ensure_writable_dir, write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelEfficiencyConfig:
    sizes: Tuple[int, ...] = (2, 4, 8)
    test: Any = 0.25  # held-out cases: a number, a fraction or a list of ids
    val: int = 0  # validation cases per run (0: the last weights are scored)
    repeats: int = 1
    seed: int = 0
    arms: Tuple[str, ...] = ARMS

    def to_dict(self) -> Dict[str, Any]:
        return {"sizes": list(self.sizes), "test": list(self.test) if isinstance(self.test, tuple) else self.test,
                "val": self.val, "repeats": self.repeats, "seed": self.seed, "arms": list(self.arms)}


def run_config(base: FinetuneConfig, spec: RunSpec, init: Optional[str], cache_dir: Path) -> FinetuneConfig:
    """The fine-tuning configuration of one run of the plan.

    Repeat r trains with seed ``base.train.seed + r`` (both arms alike), so repeats differ in their
    random start and sampling even where they share the training cases (N = all).
    """
    return with_settings(base, data={"train": list(spec.train), "val": list(spec.val) or 0,
                                     "cache_dir": str(cache_dir)},
                         train={"seed": base.train.seed + spec.repeat},
                         init={"path": init if spec.arm == "pretrained" else None},
                         package={"onnx": False, "model_id": f"label-efficiency-{spec.name}".replace("_", "-")})


def _run_one(data_dir: Path, run_dir: Path, cfg: FinetuneConfig, device: str) -> str:
    from voxmmsd.finetune.loop import finetune
    from voxmmsd.jobs.run_folder import RunFolder

    run = RunFolder(run_dir)
    if (run.model / "model.json").is_file():
        log.info("%s: already finished, kept", run_dir.name)
        return "done"
    resume = run.has_checkpoint()
    return finetune(data_dir, run_dir, cfg, resume=resume, device=device).status


def label_efficiency(data_dir: Path, out_dir: Path, base: FinetuneConfig, exp: LabelEfficiencyConfig,
                     init: Optional[Path], device: str = "auto") -> List[Dict[str, Any]]:
    """Run (or complete) the experiment; return the summary rows. See the module docstring."""
    from voxmmsd.data.cache import build_cache
    from voxmmsd.io.discovery import find_dataset
    from voxmmsd.jobs.device import select_device
    from voxmmsd.models.package import load_package
    from voxmmsd.nets.ensemble import build_network

    if "pretrained" in exp.arms and init is None:
        raise ConfigError("The pretrained arm needs weights: give --init (a pre-training run or weights file), "
                          "or run only --arms scratch.")
    out_dir = ensure_writable_dir(Path(out_dir))
    dataset = find_dataset(Path(data_dir), require_all=True, require_labels=True)
    test_ids, runs = make_plan([c.case_id for c in dataset.cases], exp.sizes, exp.test, exp.val, exp.repeats,
                               exp.seed, exp.arms)
    import yaml

    write_text(out_dir / "experiment.yaml", yaml.safe_dump({
        "experiment": "label-efficiency", "data": str(data_dir), "init": str(init) if init else None,
        "settings": exp.to_dict(), "test_cases": test_ids,
        "runs": [{"name": r.name, "train": list(r.train), "val": list(r.val)} for r in runs],
        "finetune": base.to_dict()}, sort_keys=False))
    cache_dir = out_dir / "cache"
    by_id = dataset.by_id()
    test_set = type(dataset)(dataset.root, tuple(by_id[c] for c in test_ids), dataset.layout)
    test_cases = build_cache(test_set, cache_dir, base.preprocessing, base.data.labels, show_progress=False)
    dev = select_device(device)
    rows: List[Dict[str, Any]] = []
    for i, spec in enumerate(runs):
        log.info("run %d/%d: %s (%d training case(s))", i + 1, len(runs), spec.name, spec.n)
        run_dir = out_dir / "runs" / spec.name
        cfg = run_config(base, spec, str(init) if init else None, cache_dir)
        if _run_one(Path(data_dir), run_dir, cfg, device) != "done":
            log.warning("stopped during %s; run the same command again to continue", spec.name)
            break
        pkg = load_package(run_dir / "model")
        model = build_network(pkg.unet_config())
        model.load_state_dict(pkg.load_state_dict())
        model.to(dev)
        from voxmmsd.experiment.score import score_cases

        for row in score_cases(model, test_cases, by_id, str(pkg.inference.get("output", "classes")), dev):
            rows.append({"arm": spec.arm, "n": spec.n, "repeat": spec.repeat, **row})
        report.write_csv(out_dir / "results.csv", rows, report.RESULT_COLUMNS)
        del model
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    summary = report.summarise(rows) if rows else []
    if summary:
        report.write_csv(out_dir / "summary.csv", summary, report.SUMMARY_COLUMNS)
        pairs = report.paired(rows)
        if pairs:
            report.write_csv(out_dir / "paired.csv", pairs, report.PAIRED_COLUMNS)
        report.plot(out_dir / "label_efficiency.png", summary)
    return summary


def parse_sizes(text: str) -> Tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--sizes {text!r}: give whole numbers separated by commas, e.g. 2,4,8.") from None
    if not sizes:
        raise ConfigError("--sizes needs at least one number of training cases.")
    return sizes


def summary_table(summary: Sequence[Dict[str, Any]]) -> str:
    """The mean Dice per arm and N as aligned text."""
    lines = [f"{'arm':<11}{'N':>4}  {'WT':>6} {'TC':>6} {'ET':>6} {'mean':>6}"]
    for arm, n in sorted({(s["arm"], s["n"]) for s in summary}, key=lambda k: (k[1], k[0])):
        d = {s["region"]: s["dice_mean"] for s in summary if s["arm"] == arm and s["n"] == n}
        lines.append(f"{arm:<11}{n:>4}  " + " ".join(f"{d.get(r, float('nan')):6.3f}" for r in
                                                      ("WT", "TC", "ET", "mean")))
    return "\n".join(lines)


def paired_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Pre-trained minus scratch per N (mean Dice of WT, TC, ET): mean +- SD over repeats, wins, p."""
    lines = [f"{'N':>4}  {'scratch':>15} {'pretrained':>15} {'difference':>15} {'wins':>5} {'p':>7}"]
    for p in rows:
        if p["region"] != "mean":
            continue
        lines.append(f"{p['n']:>4}  {p['scratch_mean']:7.3f} ± {p['scratch_sd']:5.3f} "
                     f"{p['pretrained_mean']:7.3f} ± {p['pretrained_sd']:5.3f} {p['diff_mean']:+7.3f} ± "
                     f"{p['diff_sd']:5.3f} {p['pretrained_better']:>2}/{p['repeats']:<2} {p['case_p_value']!s:>7}")
    return "\n".join(lines)
