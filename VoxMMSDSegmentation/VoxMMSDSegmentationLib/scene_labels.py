"""How label values look in Slicer: segment names, colours and DICOM terminology."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence

TERMINOLOGY_CONTEXT = "Segmentation category and type - DICOM master list"


@dataclass(frozen=True)
class LabelSpec:
    """How one label value is shown: segment id, name, colour (0-1), terminology codes."""

    value: int
    key: str
    name: str
    color: Sequence[float]
    category: Sequence[str] = ()
    type: Sequence[str] = ()


def default_labels() -> List[LabelSpec]:
    """The engine's internal label table (BraTS 2023 convention)."""
    from voxmmsd.io.labels import LABEL_TABLE

    return [LabelSpec(i.value, i.key, i.name, i.color, i.category, i.type) for i in LABEL_TABLE]


def labels_from_model(model_json: Mapping[str, Any]) -> List[LabelSpec]:
    """Label specs from a model package's ``model.json`` ``labels`` list."""
    out = []
    for entry in model_json.get("labels", []):
        snomed = entry.get("snomed") or {}
        out.append(LabelSpec(int(entry["value"]), str(entry["key"]), str(entry["name"]),
                             tuple(float(c) for c in entry["color"]), tuple(snomed.get("category", ())),
                             tuple(snomed.get("type", ()))))
    return out


def terminology_string(spec: LabelSpec) -> str:
    """Slicer's serialised terminology entry (``context~category~type~modifier~anatomy...``)."""
    def code(c: Sequence[str]) -> str:
        return "^".join(str(v) for v in c) if len(c) == 3 else "^^"

    return "~".join([TERMINOLOGY_CONTEXT, code(spec.category), code(spec.type), "^^",
                     "", "^^", "^^"])


def set_terminology(segment: Any, value: str) -> None:
    """Store a terminology string on a segment (API differs between Slicer versions)."""
    if hasattr(segment, "SetTerminology"):
        segment.SetTerminology(value)
    else:  # Slicer <= 5.6
        segment.SetTag(segment.GetTerminologyEntryTagName(), value)


def get_terminology(segment: Any) -> str:
    if hasattr(segment, "GetTerminology"):
        return str(segment.GetTerminology() or "")
    import vtk

    holder = vtk.reference("")
    segment.GetTag(segment.GetTerminologyEntryTagName(), holder)
    return str(holder)


def style_segments(seg: Any, labels: Sequence[LabelSpec]) -> List[str]:
    """Give every segment of ``seg`` its label's id, name, colour and terminology (by label value).

    Returns the segment ids in label order. Segments with unknown values keep theirs.
    """
    segmentation = seg.GetSegmentation()
    by_value = {spec.value: spec for spec in labels}
    ids: Dict[int, str] = {}
    for i in range(segmentation.GetNumberOfSegments()):
        seg_id = segmentation.GetNthSegmentID(i)
        segment = segmentation.GetSegment(seg_id)
        spec = by_value.get(int(segment.GetLabelValue()))
        if spec is None:
            continue
        segment.SetName(spec.name)
        segment.SetColor(*[float(c) for c in spec.color])
        if spec.category and spec.type:
            set_terminology(segment, terminology_string(spec))
        ids[spec.value] = seg_id
    return [ids[v] for v in sorted(ids)]
