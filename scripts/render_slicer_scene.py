"""Render what the Slicer module puts into the scene for one segmented case, without Slicer's GUI.

    python scripts/render_slicer_scene.py --case CASE_DIR --result ENGINE_OUT_DIR --out picture.png

The case's T1c volume and the engine's result are loaded into a real MRML scene (slicer-core)
by the module's own code (``VoxMMSDSegmentationLib.scene.import_result``), the segmentation's
closed surfaces are built as *Show the result in 3D* builds them, and VTK renders them
off screen over an axial T1c slice through the tumour. The picture shows the module's scene
content; it is not a screenshot of the Slicer application.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))

log = logging.getLogger("render_slicer_scene")


def register_conversion_rules() -> None:
    """What Slicer's Segmentations module registers at start (slicer-core has no application)."""
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    names = {type(r).__name__ for r in factory.GetConverterRules()}
    for cls in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule):
        if cls.__name__ not in names:
            factory.RegisterConverterRule(cls())


def slice_actor(volume, k: int):
    """An axial slice ``k`` of a scalar volume node, placed in RAS, grey levels from its 1-99 % range."""
    import numpy as np
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    image = volume.GetImageData()
    values = vtk_to_numpy(image.GetPointData().GetScalars())
    low, high = np.percentile(values[values > 0], [1, 99]) if np.any(values > 0) else (0.0, 1.0)
    colors = vtk.vtkImageMapToWindowLevelColors()
    colors.SetInputData(image)
    colors.SetWindow(float(high - low))
    colors.SetLevel(float(low + high) / 2.0)
    colors.SetOutputFormatToRGB()
    actor = vtk.vtkImageActor()
    actor.GetMapper().SetInputConnection(colors.GetOutputPort())
    extent = image.GetExtent()
    actor.SetDisplayExtent(extent[0], extent[1], extent[2], extent[3], k, k)
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    actor.SetUserMatrix(matrix)
    return actor


def render(case: Path, result: Path, out: Path, size=(900, 700)) -> Path:
    import numpy as np
    import slicer
    import vtk
    from VoxMMSDSegmentationLib import scene as scene_io
    from VoxMMSDSegmentationLib.batch import load_volume

    register_conversion_rules()
    scene = slicer.vtkMRMLScene()
    t1c = next(p for p in sorted(case.glob("*")) if p.name.lower().split(".")[0].endswith(("t1ce", "t1c")))
    reference = load_volume(scene, t1c, "T1c")
    imported = scene_io.import_result(scene, result, reference, "tumour segmentation")
    seg = imported.segmentation
    if not scene_io.show_in_3d(seg):
        raise RuntimeError("no closed surface could be built")
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.1, 0.1, 0.14)
    segmentation = seg.GetSegmentation()
    for segment_id in imported.segment_ids:
        poly = seg.GetClosedSurfaceInternalRepresentation(segment_id)
        if poly is None or poly.GetNumberOfPoints() == 0:
            continue
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(poly)
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*segmentation.GetSegment(segment_id).GetColor())
        oedema = segmentation.GetSegment(segment_id).GetName().startswith("Surrounding")
        actor.GetProperty().SetOpacity(0.45 if oedema else 1.0)
        renderer.AddActor(actor)
    label = scene_io.labelmap_array(scene, seg, reference, scene_io.default_labels())
    k = int(np.argmax((label > 0).sum(axis=(1, 2))))  # the axial slice through most of the tumour
    plane = slice_actor(reference, k)
    plane.SetOpacity(0.8)  # the part of the tumour below the slice shows through
    renderer.AddActor(plane)
    renderer.ResetCamera()
    camera = renderer.GetActiveCamera()
    camera.SetViewUp(0, 0, 1)
    camera.SetPosition(*(np.array(camera.GetFocalPoint()) + np.array([0.0, -1.0, 0.9]) * camera.GetDistance()))
    camera.Zoom(1.7)
    renderer.ResetCameraClippingRange()
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*size)
    window.AddRenderer(renderer)
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(out))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    log.info("wrote %s (%d segments, slice %d)", out, len(imported.segment_ids), k)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", type=Path, required=True, help="case folder (its T1c is the reference)")
    p.add_argument("--result", type=Path, required=True, help="output folder of 'voxmmsd segment'")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    render(args.case, args.result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
