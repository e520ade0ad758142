"""The model protocol's tables as Markdown, from the result ``voxmmsd experiment crossval protocol`` writes
(protocol.json).

Pure functions of that JSON: the model card's tables are pasted from here, never typed by hand.
"""

from __future__ import annotations

from typing import Any, List, Mapping

REGIONS = ("WT", "TC", "ET")


def _ms(stat: Mapping[str, Any], digits: int = 3) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def clean_rows(name: str, summary: Mapping[str, Any]) -> List[str]:
    """One row per region: Dice, lesion-wise Dice, HD95, far false-positive volume (mean ± SD, median)."""
    out = []
    for r in REGIONS:
        s = summary[r]
        out.append(f"| {name} | {r} | {_ms(s['dice'])} | {_ms(s['lesion_dice'])} | {_ms(s['hd95_mm'], 1)} | "
                   f"{s['fp_far_ml']['mean']:.1f} / {s['fp_far_ml']['median']:.1f} | {s['dice']['n']} |")
    return out


CLEAN_HEAD = ["| model | region | Dice | lesion-wise Dice | HD95 mm | far FP mL mean / median | cases |",
              "|---|---|---|---|---|---|---|"]


def source_rows(name: str, sources: Mapping[str, Any]) -> List[str]:
    """One row per source: mean Dice WT / TC / ET and the number of cases."""
    return [f"| {name} | {src} | " + " | ".join(f"{sources[src][r]['dice']['mean']:.3f}" for r in REGIONS)
            + f" | {sources[src]['WT']['dice']['n']} |" for src in sorted(sources)]


SOURCE_HEAD = ["| model | source | WT | TC | ET | cases |", "|---|---|---|---|---|---|"]


def shift_rows(name: str, shift: Mapping[str, Any]) -> List[str]:
    """One row per shift: Dice per region with its paired drop from clean, the worst case's drop, far FP."""
    out = []
    for sh in shift:
        t = shift[sh]
        cells = " | ".join(f"{t[r]['dice']:.3f} ({0.0 - t[r]['drop']:+.3f})" for r in REGIONS)
        out.append(f"| {name} | {sh} | {cells} | {t['WT']['worst_drop']:.3f} | {t['fp_far_ml_median']:.1f} / "
                   f"{t['fp_far_ml_max']:.1f} | {t['WT']['n']} |")
    return out


SHIFT_HEAD = ["| model | shift | WT (change) | TC (change) | ET (change) | worst WT drop | far FP mL median / max "
              "| cases |", "|---|---|---|---|---|---|---|---|"]


def markdown(result: Mapping[str, Any]) -> str:
    """All tables of a protocol result: 5-fold (all cases, then each baseline's unseen cases paired),
    per source, leave-one-source-out (when present), pipeline shift, and the rule's verdict."""
    cand = result["candidate"]
    baselines = [k for k, v in result.items() if isinstance(v, dict) and "paired" in v]
    lines = [f"### 5-fold cross-validation: {cand} on all {result[cand]['cases']} cases", ""] + CLEAN_HEAD
    lines += clean_rows(cand, result[cand]["clean"])
    for b in baselines:
        n = result[b]["cases"]
        lines += ["", f"### {b} against {cand} on the {n} cases {b} never trained on", ""] + CLEAN_HEAD
        lines += clean_rows(b, result[b]["clean"]) + clean_rows(f"{cand} (paired)", result[b]["paired"]["clean"])
    lines += ["", "### Per source (mean Dice)", ""] + SOURCE_HEAD + source_rows(cand, result[cand]["sources"])
    for b in baselines:
        lines += source_rows(b, result[b]["sources"]) + source_rows(f"{cand} (paired with {b})",
                                                                     result[b]["paired"]["sources"])
    if "loso" in result:
        lines += ["", "### Leave-one-source-out", ""] + CLEAN_HEAD + clean_rows("loso (all scored)",
                                                                                 result["loso"]["clean"])
        lines += ["", ""] + SOURCE_HEAD + source_rows("loso", result["loso"]["sources"])
    lines += ["", "### Pipeline shift (Dice, change against the clean input on the same cases)", ""] + SHIFT_HEAD
    lines += shift_rows(cand, result[cand]["shift"])
    for b in baselines:
        lines += shift_rows(b, result[b]["shift"]) + shift_rows(f"{cand} (paired)", result[b]["paired"]["shift"])
    rule = result.get("rule", {})
    lines += ["", f"### The rule: {'passed' if rule.get('default') else 'not passed'}", ""]
    lines += [f"- {r}" for r in rule.get("reasons", [])]
    return "\n".join(lines) + "\n"
