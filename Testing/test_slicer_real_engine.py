"""The whole Slicer-side path with the REAL engine process (``python -m voxmmsd segment``):
a tiny model package (random weights, small network) segments rotated, anisotropic scene
volumes through ONNX Runtime, and the result comes back on the T1c node's grid."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (Python >= 3.10)")
torch = pytest.importorskip("torch")

MODULE_DIR = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from support.slicer_scene import ijk_to_ras, make_volume, rotation_ras  # noqa: E402
from VoxMMSDSegmentationLib import scene as scene_io  # noqa: E402
from VoxMMSDSegmentationLib.commands import SegmentOptions  # noqa: E402
from VoxMMSDSegmentationLib.segmentation import FINISHED, SegmentationJob  # noqa: E402


@pytest.fixture(scope="module")
def tiny_package(tmp_path_factory):
    from voxmmsd.models.package import save_package
    from voxmmsd.nets.unet import UNetConfig, VoxUNet
    from voxmmsd.preprocessing import PreprocessConfig

    torch.manual_seed(0)
    cfg = UNetConfig(channels=(4, 8, 16, 32, 64))
    model = VoxUNet(cfg).eval()
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_package(folder, model.state_dict(), cfg, PreprocessConfig(), model_id="tiny-test", version="0.0.1",
                 export_onnx=True)
    return folder


def test_real_engine_through_the_scene(tmp_path, tiny_package):
    scene = slicer.vtkMRMLScene()
    inputs = {}
    for i, key in enumerate(("t1n", "t1c", "t2w", "t2f")):
        inputs[key], _ = make_volume(scene, f"case_{key}", shape_kji=(20, 36, 32), spacing=(1.2, 0.9, 2.5),
                                     direction=rotation_ras(20, 10), seed=i)
    before = scene_io.scene_node_ids(scene)
    lines = []
    job = SegmentationJob(scene, inputs, SegmentOptions(model=str(tiny_package), backend="onnx", device="cpu",
                                                         skull_strip="off"),
                          temp_root=tmp_path, output_dir=tmp_path / "out", on_line=lines.append)
    status = job.run(timeout=300)
    assert status == FINISHED, f"{job.error}\n" + "\n".join(lines[-30:])
    assert job.state.outcome == "finished" and job.state.total > 0
    result = job.result
    seg = result.segmentation
    assert seg.GetNodeReferenceID("referenceImageGeometryRef") == inputs["t1c"].GetID()
    assert seg.GetSegmentation().GetNumberOfSegments() >= 1
    label = scene_io.labelmap_array(scene, seg, inputs["t1c"], scene_io.default_labels())
    assert label.shape == (20, 36, 32)
    # the engine's NIfTI output, read by the engine's reader, is on the T1c node's grid
    from voxmmsd.io.geometry import Geometry
    from voxmmsd.io.reader import read_image

    written = Geometry.of(read_image(tmp_path / "out" / "segmentation.nii.gz", "output"))
    np.testing.assert_allclose(written.ijk_to_lps(), np.diag([-1.0, -1, 1, 1]) @ ijk_to_ras(inputs["t1c"]),
                               atol=1e-4)
    assert set(result.volumes_ml) >= {"WT", "TC", "ET"}
    assert [i for i in scene_io.scene_node_ids(scene) if i not in before]  # result added ...
    assert result.table.GetNumberOfRows() >= 3  # ... with its volumes table


def engine_events(args, tmp_path):
    import json

    from VoxMMSDSegmentationLib.events import EventState
    from VoxMMSDSegmentationLib.process import EngineProcess, engine_command, engine_environment

    proc = EngineProcess(engine_command(args), env=engine_environment(device="cpu")).start()
    assert proc.wait(300) == 0
    lines = []
    while not lines or lines[-1][0] != "exit":
        lines += proc.poll()
    text = [str(v) for k, v in lines if k == "line"]
    events = [json.loads(t) for t in text if t.startswith("{")]
    state, fractions = EventState(staged=True), []
    for t in text:
        if state.feed_line(t) is not None:
            fractions.append(state.fraction)
    return events, fractions, "\n".join(text[-20:])


@pytest.mark.parametrize("extra,passes", [(["--patch-size", "32", "32", "32"], None), (["--tta"], 8)])
def test_engine_reports_every_stage_and_window(tmp_path, tiny_package, extra, passes):
    """The real engine's progress: read, check, preprocess, every window (or TTA pass), postprocess,
    write; the module's bar (EventState) only moves forward and ends at 100 %."""
    from voxmmsd import synthetic

    case = tmp_path / "case"
    synthetic.write_case(case, "case000", seed=1)
    events, fractions, tail = engine_events(["segment", str(case), "--out", str(tmp_path / "out"), "--model",
                                             str(tiny_package), "--backend", "onnx", "--device", "cpu",
                                             "--skull-strip", "off", "--progress", "json"] + extra, tmp_path)
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    order = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]
    assert order == ["read", "check", "preprocess", "predict", "postprocess", "write"], tail
    predict = [(e["iteration"], e["total"]) for e in events if e["stage"] == "predict"]
    total = predict[-1][1]
    if passes:
        assert total == passes and [i for i, _ in predict] == list(range(passes + 1))  # 0 = start, then each pass
    else:
        assert total > 1 and [i for i, _ in predict] == list(range(1, total + 1))  # one event per window
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len({round(f, 4) for f in fractions}) >= 5 + min(total, 8)
