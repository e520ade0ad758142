"""The module's self-test, run inside Slicer (Reload and Test, or ``Slicer --testing``): the whole module on the
bundled sample case (``Resources/Sample/BraTS18-sample``)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from VoxMMSDSegmentationLib.logic import VoxMMSDSegmentationLogic


class VoxMMSDSegmentationTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: the whole module on the bundled sample case (Resources/Sample/BraTS18-sample)."""

    SAMPLE = Path(__file__).resolve().parents[1] / "Resources" / "Sample" / "BraTS18-sample"  # the bundled real case

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        from VoxMMSDSegmentationLib.dependencies import self_test_skip_reason

        self.setUp()
        reason = self_test_skip_reason()
        if reason:  # e.g. a build machine where nobody installed the engine's packages
            logging.warning("%s", reason)
            self.delayDisplay(reason)
            return
        self.test_segment_sample_case()

    def test_segment_sample_case(self) -> None:
        self.delayDisplay("Loading the sample case")
        files = {key: sorted(self.SAMPLE.glob(f"*_{suffix}.nii.gz")) for key, suffix in
                 (("t1n", "t1"), ("t1c", "t1ce"), ("t2w", "t2"), ("t2f", "flair"))}
        if not all(files.values()):
            self.delayDisplay(f"Sample case not found in {self.SAMPLE}; test skipped")
            return
        for paths in files.values():
            slicer.util.loadVolume(str(paths[0]))
        logic = VoxMMSDSegmentationLogic()
        inputs = logic.assignInputs(slicer.mrmlScene)
        self.assertTrue(all(inputs.values()), f"auto-assignment failed: {inputs}")
        self.assertTrue(inputs["t1c"].GetName().endswith("t1ce"))
        before = slicer.mrmlScene.GetNumberOfNodes()

        self.delayDisplay("Segmenting (engine process)")
        job = logic.segment(inputs, timeout=1800)
        seg = job.result.segmentation
        self.assertEqual(seg.GetNodeReferenceID("referenceImageGeometryRef"), inputs["t1c"].GetID())
        self.assertGreater(seg.GetSegmentation().GetNumberOfSegments(), 0)
        self.assertGreater(job.result.volumes_ml.get("WT", 0.0), 0.0)
        self.assertGreater(job.result.table.GetNumberOfRows(), 2)

        self.delayDisplay("Cancel leaves the scene as it was")
        count = slicer.mrmlScene.GetNumberOfNodes()
        job2 = logic.startSegmentation(inputs, job.options)
        job2.cancel()
        self.assertEqual(job2.status, "cancelled")
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        self.assertGreater(count, before)

        self.delayDisplay("Batch through the Logic")
        out = Path(tempfile.mkdtemp(prefix="voxmmsd-test-"))
        try:
            results = logic.segmentFolder(self.SAMPLE.parent, out, job.options, timeout=1800)
            self.assertTrue(results and all(r.status == "finished" for r in results))
            self.assertTrue((out / "summary.csv").is_file())
        finally:
            shutil.rmtree(out, ignore_errors=True)
        self.delayDisplay("Test passed")
