"""Input volumes out to files for the engine (no scene change; Slicer RAS -> file LPS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping

import numpy as np
from voxmmsd.errors import InputError


def _slicer() -> Any:
    import slicer  # local: the module must import without Slicer

    return slicer


def node_ijk_to_lps(node: Any) -> np.ndarray:
    """The node's 4x4 IJK -> LPS matrix (Slicer keeps IJK -> RAS)."""
    import vtk
    from voxmmsd.io.geometry import lps_to_ras_matrix

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    return lps_to_ras_matrix(ras)  # the flip is its own inverse


def node_geometry(node: Any) -> Any:
    """The :class:`voxmmsd.io.geometry.Geometry` (LPS) of a scalar volume node."""
    from voxmmsd.io.geometry import Geometry

    image = node.GetImageData()
    if image is None:
        raise InputError(f"Volume '{node.GetName()}' has no image data. Load the image again.")
    m = node_ijk_to_lps(node)
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    direction = m[:3, :3] / spacing
    return Geometry(tuple(int(v) for v in image.GetDimensions()), tuple(float(s) for s in spacing),
                    tuple(float(v) for v in m[:3, 3]), tuple(float(v) for v in direction.ravel()))


def check_input_node(node: Any, what: str) -> None:
    """Raise :class:`InputError` for inputs that cannot be written faithfully."""
    if node is None:
        raise InputError(f"No volume is selected as {what}. Choose one in the Inputs section.")
    if not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"'{node.GetName()}' ({what}) is not a scalar image volume. Choose an MRI volume.")
    if node.GetImageData() is None:
        raise InputError(f"'{node.GetName()}' ({what}) has no image data. Load the image again.")
    if node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise InputError(f"'{node.GetName()}' ({what}) has several components per voxel (colour or vector "
                         f"image). Choose a single-component MRI volume.")
    if node.GetParentTransformNode() is not None:
        raise InputError(f"'{node.GetName()}' ({what}) is under a transform. Harden the transform "
                         f"(Data module: right-click > Harden transform) and apply again.")


def export_volume(node: Any, path: Path) -> Path:
    """Write a volume node to ``path`` (NIfTI or NRRD by extension) without touching the scene.

    The storage node used is not added to the scene and the volume keeps its own
    storage node, so saving the scene later is unaffected.
    """
    slicer = _slicer()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(path.name.endswith(".gz"))
    if not storage.WriteData(node) or not path.is_file():
        raise InputError(f"Could not write '{node.GetName()}' to {path}. Check the free disk space "
                         f"and that the temporary folder can be written.")
    return path


def export_inputs(nodes: Mapping[str, Any], folder: Path, extension: str = ".nrrd") -> Dict[str, Path]:
    """Write each input (sequence key -> volume node) to ``folder/<key><extension>``."""
    from voxmmsd.io.discovery import SEQUENCE_NAMES

    out: Dict[str, Path] = {}
    for key, node in nodes.items():
        check_input_node(node, SEQUENCE_NAMES.get(key, key))
        out[key] = export_volume(node, Path(folder) / f"{key}{extension}")
    return out
