"""Helpers of the Slicer tests: MRML volumes on oblique grids, and a tumour-like label map.

``make_volume`` and ``ijk_to_ras`` need the slicer-core wheel: import this module after
``pytest.importorskip("slicer")``. ``phantom_label`` needs numpy only (the Slicer engine double uses it).
"""

from __future__ import annotations

import numpy as np


def phantom_label(shape: tuple) -> np.ndarray:
    """A tumour-like internal label map ``(z, y, x)``: SNFH shell, NETC and ET inside."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    label = np.zeros(shape, np.uint8)
    label[r < 0.7] = 2
    label[r < 0.45] = 3
    label[r < 0.25] = 1
    return label


def rotation_ras(deg_z: float, deg_x: float) -> np.ndarray:
    """A proper rotation (columns = IJK axes in RAS), non-trivial about two axes."""
    a, b = np.radians(deg_z), np.radians(deg_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def make_volume(scene, name: str, shape_kji=(9, 14, 12), spacing=(0.9, 1.3, 3.0), origin=(12.5, -30.0, 7.25),
                direction=None, seed: int = 0):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    array = np.random.default_rng(seed).normal(100, 20, size=shape_kji).astype(np.float32)
    import slicer

    slicer.util.updateVolumeFromArray(node, array)
    node.SetSpacing(*spacing)
    node.SetOrigin(*origin)
    d = rotation_ras(30, 20) if direction is None else np.asarray(direction)
    node.SetIJKToRASDirections(*[float(v) for v in d.ravel()])
    node.CreateDefaultDisplayNodes()
    return node, array


def ijk_to_ras(node) -> np.ndarray:
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
