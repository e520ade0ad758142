"""What a reviewer changed: the proposed segmentation against the reviewed one, per segment (pure numpy)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import numpy as np

from voxmmsd.io.labels import LABEL_TABLE


def edit_statistics(proposal: Optional[np.ndarray], final: np.ndarray, voxel_ml: float) -> Dict[str, Dict[str, Any]]:
    """Per label (NETC, SNFH, ET, RC; internal BraTS 2023 values): voxels proposed and kept, added and removed.

    ``proposal`` and ``final``: internal label maps on one grid (``proposal`` None when no model proposed
    the segmentation: only the final counts are given). A voxel relabelled from SNFH to ET counts as
    removed from SNFH and added to ET. Labels absent from both maps are left out.
    """
    final = np.asarray(final)
    if proposal is not None:
        proposal = np.asarray(proposal)
        if proposal.shape != final.shape:
            raise ValueError(f"proposal shape {proposal.shape} differs from the reviewed segmentation's {final.shape}")
    out: Dict[str, Dict[str, Any]] = {}
    for info in LABEL_TABLE:
        now = final == info.value
        n_final = int(now.sum())
        if proposal is None:
            if n_final:
                out[info.key] = {"final_voxels": n_final, "final_ml": round(n_final * voxel_ml, 3)}
            continue
        before = proposal == info.value
        n_before = int(before.sum())
        if not n_final and not n_before:
            continue
        added = int(np.count_nonzero(now & ~before))
        removed = int(np.count_nonzero(before & ~now))
        out[info.key] = {"proposed_voxels": n_before, "final_voxels": n_final, "added_voxels": added,
                         "removed_voxels": removed, "changed_ml": round((added + removed) * voxel_ml, 3),
                         "final_ml": round(n_final * voxel_ml, 3)}
    return out


def was_edited(stats: Mapping[str, Mapping[str, Any]], had_proposal: bool) -> Optional[bool]:
    """True when any voxel changed, False when none did, None when there was no proposal to compare with."""
    if not had_proposal:
        return None
    return any(int(s.get("added_voxels", 0)) or int(s.get("removed_voxels", 0)) for s in stats.values())


def changed_voxels(stats: Mapping[str, Mapping[str, Any]]) -> int:
    """Voxels whose label changed (a relabelled voxel counts once per label it left or joined)."""
    return sum(int(s.get("added_voxels", 0)) + int(s.get("removed_voxels", 0)) for s in stats.values())


def summary_text(record: Mapping[str, Any]) -> str:
    """One line about a case's edits for lists: ``edited: SNFH +120/-40 voxels, ET +8``, ``not edited`` or
    ``no proposal``."""
    edited = record.get("edited")
    if edited is None:
        return "drawn without a proposal"
    if not edited:
        return "accepted as proposed"
    parts = []
    for key, s in (record.get("edits") or {}).items():
        added, removed = int(s.get("added_voxels", 0)), int(s.get("removed_voxels", 0))
        if added or removed:
            parts.append(f"{key} +{added}/-{removed}")
    return "edited: " + ", ".join(parts) + " voxels"
