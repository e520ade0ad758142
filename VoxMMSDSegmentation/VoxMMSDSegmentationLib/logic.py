"""The module's Logic and its parameter node (inside Slicer; no GUI calls, so usable from the Python
console and from batch scripts: ``scripts/slicer_batch.py``). Every decision is in the other modules of
``VoxMMSDSegmentationLib`` (tested on ``slicer-core``); this class wires them to ``slicer.app``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

try:  # Slicer >= 5.2
    from slicer.parameterNodeWrapper import parameterNodeWrapper
except ImportError:  # pragma: no cover - older Slicer
    parameterNodeWrapper = None  # noqa: N816


if parameterNodeWrapper is not None:
    @parameterNodeWrapper
    class VoxMMSDSegmentationParameterNode:
        t1n: slicer.vtkMRMLScalarVolumeNode
        t1c: slicer.vtkMRMLScalarVolumeNode
        t2w: slicer.vtkMRMLScalarVolumeNode
        t2f: slicer.vtkMRMLScalarVolumeNode
        tta: bool = False
        refuse_implausible: bool = False
else:  # pragma: no cover
    VoxMMSDSegmentationParameterNode = None


class VoxMMSDSegmentationLogic(ScriptedLoadableModuleLogic):
    """No GUI calls: usable from the Python console and from batch scripts."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        """The typed parameter node (plain MRML node on Slicer without parameterNodeWrapper)."""
        node = super().getParameterNode()
        return VoxMMSDSegmentationParameterNode(node) if VoxMMSDSegmentationParameterNode is not None else node

    # -- environment ------------------------------------------------------------
    @staticmethod
    def pythonExecutable() -> str:
        """``PythonSlicer`` of this Slicer (the engine's interpreter)."""
        from VoxMMSDSegmentationLib import process

        found = process.slicer_python(slicer.app.slicerHome) or shutil.which("PythonSlicer")
        if not found:
            raise RuntimeError(f"PythonSlicer was not found in {slicer.app.slicerHome}/bin.")
        return found

    @staticmethod
    def engineEnvironment() -> Dict[str, str]:
        startup = getattr(slicer.util, "startupEnvironment", None)
        return dict(startup()) if callable(startup) else dict(os.environ)

    # -- inputs, models, dependencies -------------------------------------------
    @staticmethod
    def assignInputs(scene) -> Dict[str, Any]:
        """Sequence key -> volume node guessed from the names of the scene's volumes."""
        from voxmmsd.sequences import assign_volumes

        nodes = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode", scene)
                 if not n.IsA("vtkMRMLLabelMapVolumeNode")]
        names = assign_volumes([n.GetName() for n in nodes])
        by_name = {n.GetName(): n for n in nodes}
        return {key: by_name.get(name) if name else None for key, name in names.items()}

    @staticmethod
    def inputProblem(inputs: Dict[str, Any], model) -> str:
        """Why Apply is disabled ("" when it can run)."""
        from voxmmsd.sequences import SEQUENCES
        from voxmmsd.sequences import missing as missing_sequences

        needed = list(model.sequences) if model is not None and not model.tolerates_missing else \
            ["t1c"] if model is not None else list(SEQUENCES)
        missing = missing_sequences([key for key, node in inputs.items() if node is not None], needed)
        if missing:
            return "Select the input volume(s): " + ", ".join(missing)
        chosen = [n for n in inputs.values() if n is not None]
        if len(set(chosen)) != len(chosen):
            return "The same volume is selected for two sequences."
        return ""

    def listModels(self):
        from VoxMMSDSegmentationLib import models

        finished = [s.run_dir for s in self.jobStatuses() if s.model_dir is not None]
        return models.list_models(run_dirs=finished)

    @staticmethod
    def importModel(folder: Path):
        from VoxMMSDSegmentationLib import models

        return models.import_model_folder(folder)

    @staticmethod
    def dependencyPlan(training: bool):
        from VoxMMSDSegmentationLib import dependencies

        return dependencies.install_plan(training=training)

    @staticmethod
    def installDependencies(plan) -> None:
        from VoxMMSDSegmentationLib import dependencies

        def install_torch() -> None:
            try:
                import PyTorchUtils
            except ImportError:
                raise RuntimeError("Training needs the PyTorch extension: install it from the Extensions Manager, "
                                   "restart Slicer and try again.") from None
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
                raise RuntimeError("PyTorch could not be installed.")

        # PyTorch first (the extension picks the CUDA build), then pip, which may not replace torch
        dependencies.install(plan, slicer.util.pip_install, install_torch)

    # -- segmentation -----------------------------------------------------------
    def startSegmentation(self, inputs: Dict[str, Any], options, **kwargs):
        """Start a :class:`SegmentationJob` (poll it from a timer); raises for bad inputs."""
        from VoxMMSDSegmentationLib.cohort import proposals_dir
        from VoxMMSDSegmentationLib.segmentation import SegmentationJob

        kwargs.setdefault("proposal_store", proposals_dir())  # the unedited result, for a cohort's edit statistics
        # the job's own folder under Slicer's temporary path, removed when the job ends (whatever the outcome)
        job = SegmentationJob(slicer.mrmlScene, inputs, options, python=self.pythonExecutable(),
                              env=self.engineEnvironment(), temp_root=Path(slicer.app.temporaryPath), **kwargs)
        return job.start()

    def segment(self, inputs: Dict[str, Any], options=None, timeout: Optional[float] = None):
        """Blocking segmentation (console, tests); returns the finished job or raises."""
        from VoxMMSDSegmentationLib.commands import SegmentOptions

        job = self.startSegmentation(inputs, options or SegmentOptions())
        if job.run(timeout=timeout) != "finished":
            raise RuntimeError(f"VoxMMSD segmentation {job.status}: {job.error}")
        return job

    def segmentFolder(self, data: Path, out: Path, options=None, timeout: Optional[float] = None, report=None):
        """Batch: every case of ``data`` through the scene into ``out/<case_id>/`` + ``summary.csv``."""
        from VoxMMSDSegmentationLib import batch
        from VoxMMSDSegmentationLib.commands import SegmentOptions

        return batch.segment_folder(slicer.mrmlScene, Path(data), Path(out), options or SegmentOptions(),
                                    python=self.pythonExecutable(), env=self.engineEnvironment(), timeout=timeout,
                                    report=report)

    # -- training jobs ----------------------------------------------------------
    @staticmethod
    def knownRuns():
        from VoxMMSDSegmentationLib import jobs

        return jobs.KnownRuns(jobs.default_runs_file())

    def _launch(self, kind: str, args: List[str], out: str, device: str):
        from VoxMMSDSegmentationLib import jobs, process

        if not out:
            raise ValueError("Choose an output folder for the run.")
        prefix = process.engine_command([], self.pythonExecutable())
        record, handle = jobs.launch(Path(out), kind, prefix, args, self.engineEnvironment(), device)
        self.knownRuns().add(Path(out))
        self._handles = getattr(self, "_handles", []) + [handle]  # reaped while Slicer runs
        return record

    def startPretraining(self, options):
        from VoxMMSDSegmentationLib.commands import pretrain_arguments

        return self._launch("pretrain", pretrain_arguments(options), options.out, options.device)

    def startFinetuning(self, options):
        from VoxMMSDSegmentationLib.commands import finetune_arguments

        return self._launch("finetune", finetune_arguments(options), options.out, options.device)

    def jobStatuses(self):
        for handle in getattr(self, "_handles", []):
            handle.poll()
        return self.knownRuns().statuses()

    @staticmethod
    def stopJob(run: Path) -> bool:
        """Ask the run to checkpoint and stop (``RUN/stop.requested``); does not wait. The Widget's
        refresh kills the process group if it has not stopped within ``jobs.stop_timeout`` of it."""
        from VoxMMSDSegmentationLib import jobs

        return jobs.stop(run)

    @staticmethod
    def stopJobAndWait(run: Path, timeout: Optional[float] = None) -> str:
        """Blocking Stop for the console and scripts: "stopped", "killed" or "not running"."""
        from VoxMMSDSegmentationLib import jobs

        return jobs.stop_and_wait(run, jobs.STOP_TIMEOUT_S if timeout is None else timeout)

    @staticmethod
    def jobWarnings(status) -> str:
        """Warnings of a training run (pre-training collapse first) for the Jobs panel."""
        from VoxMMSDSegmentationLib.segmentation import format_alerts

        return format_alerts(status.events.alerts)

    @staticmethod
    def showIn3D(segmentation, visible: bool = True) -> bool:
        from VoxMMSDSegmentationLib import scene

        return scene.show_in_3d(segmentation, visible)

    # -- cohort: learn from corrections -------------------------------------------
    def addToCohort(self, inputs: Dict[str, Any], segmentation, cohort: Path, register: str = "auto",
                    skull_strip: str = "auto"):
        """Start adding the reviewed ``segmentation`` of the case ``inputs`` to ``cohort`` (an engine process;
        poll the returned :class:`CohortAddJob`, or call its ``run()``)."""
        from VoxMMSDSegmentationLib.cohort import CohortAddJob

        return CohortAddJob(slicer.mrmlScene, inputs, segmentation, Path(cohort), python=self.pythonExecutable(),
                            env=self.engineEnvironment(), temp_root=Path(slicer.app.temporaryPath),
                            register=register, skull_strip=skull_strip).start()

    @staticmethod
    def removeCohortCase(cohort: Path, case_id: str) -> None:
        from voxmmsd.cohort.layout import open_cohort, remove_case

        remove_case(open_cohort(Path(cohort)), case_id)

    def startCohortLearning(self, options):
        """Fine-tune ``options.model`` on the cohort with cross-validation against it (a detached job)."""
        from VoxMMSDSegmentationLib.learning import COHORT_KIND, learn_arguments

        return self._launch(COHORT_KIND, learn_arguments(options), options.out, options.device)

    def startExamPretraining(self, exams: str, out: Path, model: str, iterations: int, device: str = "auto"):
        """Prepare unlabelled exams and pre-train ``model``'s network on them (a detached job)."""
        from VoxMMSDSegmentationLib.learning import EXAM_PRETRAIN_KIND, exam_pretrain_arguments

        return self._launch(EXAM_PRETRAIN_KIND, exam_pretrain_arguments(exams, str(out), model, iterations, device),
                            str(out), device)

    @staticmethod
    def installCohortModel(run: Path, force: bool = False):
        """Install the model of a finished cohort run (refused when worse unless ``force``); its selector entry."""
        from VoxMMSDSegmentationLib.learning import install

        return install(Path(run), force)

    def resumeJob(self, run: Path):
        from VoxMMSDSegmentationLib import jobs

        record, handle = jobs.resume(run, self.engineEnvironment())  # on the device recorded at launch
        self._handles = getattr(self, "_handles", []) + [handle]
        return record
