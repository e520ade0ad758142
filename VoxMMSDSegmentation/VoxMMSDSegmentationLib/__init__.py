"""Slicer-side helpers of the VoxMMSD module: engine processes, jobs, scene <-> files.

Nothing here imports torch, qt or slicer at import time; the scene helpers take a
``vtkMRMLScene`` and the node classes come from ``slicer`` when they are called. The
engine itself (``voxmmsd``) always runs in a separate process.
"""
from __future__ import annotations
