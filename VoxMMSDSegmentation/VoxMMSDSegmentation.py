"""VoxMMSD brain tumour segmentation for 3D Slicer: Module, Widget, Logic, Test.

Thin on purpose: the decisions live in ``VoxMMSDSegmentationLib`` (tested without
Slicer) and the engine ``voxmmsd`` runs as a separate process. Nothing here imports
torch, and nothing is installed or computed at import time.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

try:  # Slicer >= 5.2
    from slicer.parameterNodeWrapper import parameterNodeWrapper
except ImportError:  # pragma: no cover - older Slicer
    parameterNodeWrapper = None  # noqa: N816

log = logging.getLogger("VoxMMSDSegmentation")

SEQUENCE_TITLES = (("t1n", "T1 native"), ("t1c", "T1 post-contrast (reference)"), ("t2w", "T2-weighted"),
                   ("t2f", "T2-FLAIR"))
CITATION = ("Vox-MMSD: Voxel-wise Multi-scale and Multi-modal Self-Distillation for Self-supervised Brain Tumor "
            "Segmentation, IEEE Journal of Biomedical and Health Informatics, 2025, doi:10.1109/JBHI.2025.3592116. "
            "Please cite it, and the BraTS papers for the bundled model and sample, when you publish results "
            "obtained with this module.")
def registerSampleData() -> None:
    from VoxMMSDSegmentationLib.sampledata import register

    register(Path(__file__).resolve().parent)


class VoxMMSDSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "VoxMMSD Brain Tumor Segmentation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["VoxMMSD developers (VoxMMSD project)"]
        self.parent.helpText = (
            "Segments brain tumours (necrotic/non-enhancing core, oedema, enhancing tumour, resection cavity) "
            "from T1, T1c, T2 and FLAIR MRI with Vox-MMSD, and trains new models (self-supervised pre-training, "
            "fine-tuning) as background jobs. The segmentation runs in a separate process with ONNX Runtime; "
            "training needs the PyTorch extension. See docs/slicer.md in the source tree.")
        self.parent.acknowledgementText = CITATION
        slicer.app.connect("startupCompleted()", registerSampleData)


# ---------------------------------------------------------------------------- parameters

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


# ---------------------------------------------------------------------------- widget

class VoxMMSDSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """GUI only: every decision is a Logic or VoxMMSDSegmentationLib call."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: Optional[VoxMMSDSegmentationLogic] = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.job = None
        self.models: List[Any] = []
        self.timer = qt.QTimer()  # runs only while a segmentation runs (drains the engine's output queue)
        self.timer.setInterval(200)
        self.jobTimer = qt.QTimer()  # runs only while the module is shown
        self.jobTimer.setInterval(2000)
        self.monitor = None
        self.lossChart = None
        self.plotView = None
        self.plotWidget = None
        self._jobRows: List[Any] = []
        self._modelRuns: set = set()
        self.cohortPanel = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        ui_widget = slicer.util.loadUI(self.resourcePath("UI/VoxMMSDSegmentation.ui"))
        self.layout.addWidget(ui_widget)
        self.ui = slicer.util.childWidgetVariables(ui_widget)
        ui_widget.setMRMLScene(slicer.mrmlScene)
        self.logic = VoxMMSDSegmentationLogic()

        for name in ("auto", "cuda", "cpu"):
            self.ui.deviceSelector.addItem({"auto": "Automatic", "cuda": "GPU", "cpu": "CPU"}[name], name)
            self.ui.trainDeviceSelector.addItem({"auto": "Automatic", "cuda": "GPU", "cpu": "CPU"}[name], name)
        for name, text in (("auto", "Co-register: automatic (when the grids differ)"),
                           ("on", "Co-register: always"), ("off", "Co-register: never")):
            self.ui.registerSelector.addItem(text, name)  # the engine's three states (SegmentOptions.register)
        self.refreshModels()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)

        self.ui.autoAssignButton.connect("clicked(bool)", self.autoAssignInputs)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModel)
        self.ui.pretrainStartButton.connect("clicked(bool)", self.onStartPretraining)
        self.ui.finetuneStartButton.connect("clicked(bool)", self.onStartFinetuning)
        self.ui.stopJobButton.connect("clicked(bool)", self.onStopJob)
        self.ui.resumeJobButton.connect("clicked(bool)", self.onResumeJob)
        self.ui.addRunButton.connect("clicked(bool)", self.onAddRun)
        self.ui.showChartButton.connect("clicked(bool)", self.onShowChartInLayout)
        self.ui.show3DCheckBox.connect("toggled(bool)", self.onShow3D)
        self.ui.jobsTable.connect("itemSelectionChanged()", lambda: self.refreshJobs(selection=True))
        self.timer.connect("timeout()", self.pollSegmentation)
        self.jobTimer.connect("timeout()", self.refreshJobs)
        self.ui.cancelButton.enabled = False
        self.setupLossPlot()
        from VoxMMSDSegmentationLib.cohort_panel import CohortPanel

        self.cohortPanel = CohortPanel(self)  # the "Learn from corrections" section
        self.cohortPanel.setup()

        self.initializeParameterNode()

    def enter(self) -> None:
        """Module shown: re-attach to the runs and follow them (only while shown)."""
        self.refreshJobs()
        self.jobTimer.start()

    def exit(self) -> None:
        """Module hidden: stop following the runs (they go on; a running segmentation is still polled)."""
        self.jobTimer.stop()

    def cleanup(self) -> None:
        """Module closed: stop watching; a running segmentation is cancelled, training jobs keep running."""
        self.timer.stop()
        self.jobTimer.stop()
        if self.job is not None and not self.job.done:
            self.job.cancel()
        if self.cohortPanel is not None:
            self.cohortPanel.cleanup()
        if self.lossChart is not None:
            self.lossChart.remove()
        if self.plotView is not None and slicer.mrmlScene.IsNodePresent(self.plotView):
            slicer.mrmlScene.RemoveNode(self.plotView)
        self.removeObservers()

    def setupLossPlot(self) -> None:
        """The loss curves: Slicer plot nodes shown in an embedded plot widget (no picture files)."""
        from VoxMMSDSegmentationLib.chart import LossChart

        self.lossChart = LossChart(slicer.mrmlScene)
        widget_class = getattr(slicer, "qMRMLPlotWidget", None)
        if widget_class is None:  # the button below still shows the chart in the view layout
            return
        self.plotWidget = widget_class()
        self.plotWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.lossPlotFrame.layout().addWidget(self.plotWidget)

    def _plotViewNode(self):
        if self.plotView is None or not slicer.mrmlScene.IsNodePresent(self.plotView):
            self.plotView = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotViewNode", "VoxMMSD losses view")
            self.plotView.SetSaveWithScene(False)
            if self.plotWidget is not None:
                self.plotWidget.setMRMLPlotViewNode(self.plotView)
        return self.plotView

    def onShowChartInLayout(self) -> None:
        if self.lossChart is not None and self.lossChart.chart is not None:
            slicer.modules.plots.logic().ShowChartInLayout(self.lossChart.chart)

    # -- parameter node ---------------------------------------------------------
    def initializeParameterNode(self) -> None:
        if VoxMMSDSegmentationParameterNode is None:
            return
        self.setParameterNode(self.logic.getParameterNode())
        if not any(getattr(self._parameterNode, key) for key, _ in SEQUENCE_TITLES):
            self.autoAssignInputs()

    def setParameterNode(self, node) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyState)
        self._parameterNode = node
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyState)
        self.updateApplyState()

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.lossChart is not None:  # its nodes went with the scene: redrawn on the next refresh
            self.lossChart.remove()
        if self.parent.isEntered:
            self.initializeParameterNode()
            self.refreshJobs(selection=True)

    def onNodeAdded(self, caller, event) -> None:
        qt.QTimer.singleShot(0, self.autoAssignEmptyInputs)

    def autoAssignInputs(self) -> None:
        if not self._parameterNode:
            return
        for key, node in self.logic.assignInputs(slicer.mrmlScene).items():
            setattr(self._parameterNode, key, node)

    def autoAssignEmptyInputs(self) -> None:
        if not self._parameterNode:
            return
        taken = {getattr(self._parameterNode, k) for k, _ in SEQUENCE_TITLES} - {None}
        for key, node in self.logic.assignInputs(slicer.mrmlScene).items():
            if getattr(self._parameterNode, key) is None and node is not None and node not in taken:
                setattr(self._parameterNode, key, node)

    def selectedInputs(self) -> Dict[str, Any]:
        return {key: getattr(self._parameterNode, key) for key, _ in SEQUENCE_TITLES}

    def selectedModel(self):
        index = self.ui.modelSelector.currentIndex
        return self.models[index] if 0 <= index < len(self.models) else None

    def updateApplyState(self, caller=None, event=None) -> None:
        busy = self.job is not None and not self.job.done
        reason = "" if self._parameterNode is None else self.logic.inputProblem(self.selectedInputs(),
                                                                                 self.selectedModel())
        self.ui.applyButton.enabled = not busy and not reason
        self.ui.applyButton.toolTip = reason or "Segment the tumour"

    # -- segmentation -----------------------------------------------------------
    def refreshModels(self) -> None:
        from VoxMMSDSegmentationLib import models as model_lib

        self.models = self.logic.listModels()
        self.ui.modelSelector.clear()
        for entry in self.models:
            self.ui.modelSelector.addItem(entry.label)
        self.ui.modelSelector.setCurrentIndex(model_lib.default_index(self.models))

    def onImportModel(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.parent, "Model folder (with model.json)")
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay("Could not import the model.", waitCursor=True):
            entry = self.logic.importModel(Path(folder))
            self.refreshModels()
            ids = [(m.id, m.version, m.source) for m in self.models]
            if (entry.id, entry.version, "installed") in ids:
                self.ui.modelSelector.setCurrentIndex(ids.index((entry.id, entry.version, "installed")))

    def ensureDependencies(self, training: bool) -> bool:
        """Ask before installing what is missing; False if the user declined or it failed."""
        from VoxMMSDSegmentationLib import dependencies

        plan = self.logic.dependencyPlan(training)
        question = dependencies.describe(plan)
        if not question:
            return True
        if not slicer.util.confirmOkCancelDisplay(question, "VoxMMSD: install dependencies"):
            return False
        with slicer.util.tryWithErrorDisplay("Installing the dependencies failed.", waitCursor=True):
            progress = slicer.util.createProgressDialog(labelText="Installing Python packages...", maximum=0)
            try:
                self.logic.installDependencies(plan)
            finally:
                progress.close()
            return True
        return False

    def onApply(self) -> None:
        from VoxMMSDSegmentationLib.commands import SegmentOptions

        if not self.ensureDependencies(training=False):
            return
        model = self.selectedModel()
        options = SegmentOptions(model=model.argument if model else "",
                                 device=self.ui.deviceSelector.currentData,
                                 tta=self._parameterNode.tta, register=self.ui.registerSelector.currentData,
                                 on_implausible="refuse" if self._parameterNode.refuse_implausible else "warn")
        with slicer.util.tryWithErrorDisplay("Could not start the segmentation.", waitCursor=True):
            self.ui.logText.clear()
            self.ui.warningLabel.text = ""
            self.ui.progressBar.setValue(0)
            self.job = self.logic.startSegmentation(self.selectedInputs(), options, on_line=self.appendLog)
            self.ui.cancelButton.enabled = True
            self.ui.statusLabel.text = "Segmenting..."
            self.timer.start()
        self.updateApplyState()

    def appendLog(self, line: str) -> None:
        self.ui.logText.appendPlainText(line)

    def pollSegmentation(self) -> None:
        if self.job is None:
            self.timer.stop()
            return
        done = self.job.poll()
        self.ui.progressBar.setMaximum(1000)  # per-mille: the bar moves with every window
        self.ui.progressBar.setValue(int(round(1000 * self.job.state.fraction)))
        self.ui.statusLabel.text = self.job.state.message or self.job.status
        if not done:
            return
        self.timer.stop()
        self.ui.cancelButton.enabled = False
        self.ui.statusLabel.text = self.job.status_text()  # volumes and the plausibility verdict
        dialog = self.job.dialog_text()  # an implausible or refused result: a dialog says why
        if self.job.status == "finished":
            result = self.job.result
            slicer.util.setSliceViewerLayers(background=self.job.reference, fit=False)
            warning = self.job.warning_text()
            self.ui.warningLabel.text = warning
            if dialog:
                slicer.util.warningDisplay(dialog, windowTitle="VoxMMSD: implausible segmentation",
                                           detailedText=warning)
            elif any(a["kind"] == "uncertainty" for a in result.alerts):
                slicer.util.warningDisplay(warning, windowTitle="VoxMMSD: check this segmentation")
            if self.ui.show3DCheckBox.checked:
                self.onShow3D(True)
            if self.cohortPanel is not None:
                self.cohortPanel.segmentationFinished(result.segmentation)
        elif self.job.status == "refused":
            self.ui.warningLabel.text = self.job.warning_text()
            slicer.util.errorDisplay(dialog or self.job.error, windowTitle="VoxMMSD: result refused",
                                     detailedText="\n".join(self.job.log))
        elif self.job.status == "failed":
            self.ui.statusLabel.text = "Failed."
            slicer.util.errorDisplay(f"Segmentation failed: {self.job.error}", detailedText="\n".join(self.job.log))
        else:
            self.ui.statusLabel.text = "Cancelled."
        self.updateApplyState()

    def onShow3D(self, visible: bool) -> None:
        result = self.job.result if self.job is not None and self.job.status == "finished" else None
        if result is not None and slicer.mrmlScene.IsNodePresent(result.segmentation):
            with slicer.util.tryWithErrorDisplay("Could not show the segmentation in 3D.", waitCursor=True):
                self.logic.showIn3D(result.segmentation, visible)

    def onCancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.pollSegmentation()

    # -- training ---------------------------------------------------------------
    def onStartPretraining(self) -> None:
        from VoxMMSDSegmentationLib.commands import PretrainOptions

        if not self.ensureDependencies(training=True):
            return
        crop = int(self.ui.pretrainCropSpinBox.value)
        options = PretrainOptions(data=self.ui.pretrainDataPath.currentPath, out=self.ui.pretrainOutPath.currentPath,
                                  iterations=int(self.ui.pretrainIterationsSpinBox.value), crop_size=(crop,) * 3,
                                  device=self.ui.trainDeviceSelector.currentData)
        with slicer.util.tryWithErrorDisplay("Could not start pre-training.", waitCursor=True):
            self.logic.startPretraining(options)
        self.refreshJobs()

    def onStartFinetuning(self) -> None:
        from VoxMMSDSegmentationLib.commands import FinetuneOptions

        if not self.ensureDependencies(training=True):
            return
        options = FinetuneOptions(data=self.ui.finetuneDataPath.currentPath, out=self.ui.finetuneOutPath.currentPath,
                                  init=self.ui.finetuneInitPath.currentPath,
                                  labelled_cases=int(self.ui.finetuneCasesSpinBox.value),
                                  iterations=int(self.ui.finetuneIterationsSpinBox.value),
                                  device=self.ui.trainDeviceSelector.currentData)
        with slicer.util.tryWithErrorDisplay("Could not start fine-tuning.", waitCursor=True):
            self.logic.startFinetuning(options)
        self.refreshJobs()

    def selectedRun(self) -> Optional[Path]:
        rows = {i.row() for i in self.ui.jobsTable.selectedIndexes()}
        if len(rows) != 1:
            return None
        item = self.ui.jobsTable.item(rows.pop(), 0)
        return Path(item.toolTip()) if item else None

    def refreshJobs(self, selection: bool = False) -> None:
        """Follow the runs: only the bytes appended to each events.jsonl are read, the table and
        the loss chart are redrawn only when something changed, and an overdue Stop is enforced."""
        from VoxMMSDSegmentationLib import jobs
        from VoxMMSDSegmentationLib.events import format_duration

        if self.monitor is None:
            self.monitor = jobs.JobMonitor(self.logic.knownRuns())
        refreshed = self.monitor.refresh()
        for st, _ in refreshed:
            jobs.enforce_stop_timeout(st)
        rows = [(st.run_dir.name, st.kind, st.state, f"{st.events.iteration}/{st.events.total}" if st.events.total
                 else "", " ".join(f"{k} {v:.4g}" for k, v in sorted(st.events.losses.items())),
                 "" if st.events.eta_s is None or not st.active else format_duration(st.events.eta_s),
                 str(st.run_dir)) for st, _ in refreshed]
        table = self.ui.jobsTable
        selected = self.selectedRun()
        if rows != self._jobRows:
            table.blockSignals(True)
            table.setRowCount(len(rows))
            for row, values in enumerate(rows):
                for col, value in enumerate(values[:-1]):
                    item = qt.QTableWidgetItem(value)
                    item.setToolTip(values[-1])
                    table.setItem(row, col, item)
                if selected is not None and values[-1] == str(selected):
                    table.selectRow(row)
            table.blockSignals(False)
            self._jobRows = rows
        current = next(((st, new) for st, new in refreshed if st.run_dir == self.selectedRun()), None)
        st = current[0] if current else None
        self.ui.stopJobButton.enabled = bool(st and st.active)
        self.ui.resumeJobButton.enabled = bool(st and st.resumable)
        self.ui.jobStatusLabel.text = st.events.describe() if st else ""
        self.ui.jobWarningLabel.text = self.logic.jobWarnings(st) if st else ""
        if st is not None and self.lossChart is not None and (current[1] or selection or
                                                              self.lossChart.run != str(st.run_dir)):
            if self.lossChart.show(st.run_dir, st.events.history):
                self._plotViewNode().SetPlotChartNodeID(self.lossChart.chart.GetID())
        finished = {str(s.run_dir) for s, _ in refreshed if s.model_dir is not None}
        if finished != self._modelRuns:
            self._modelRuns = finished
            self.refreshModels()  # a finished fine-tuning run appears in the model selector
        if self.cohortPanel is not None:
            self.cohortPanel.refresh(refreshed)

    def onStopJob(self) -> None:
        run = self.selectedRun()
        if run is not None:
            self.logic.stopJob(run)
            self.refreshJobs()

    def onResumeJob(self) -> None:
        run = self.selectedRun()
        if run is not None:
            with slicer.util.tryWithErrorDisplay("Could not resume the job.", waitCursor=True):
                self.logic.resumeJob(run)
            self.refreshJobs()

    def onAddRun(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.parent, "Training run folder (with events.jsonl)")
        if folder:
            self.logic.knownRuns().add(Path(folder))
            self.refreshJobs()


# ---------------------------------------------------------------------------- logic

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
        from VoxMMSDSegmentationLib.naming import assign_inputs

        nodes = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode", scene)
                 if not n.IsA("vtkMRMLLabelMapVolumeNode")]
        names = assign_inputs([n.GetName() for n in nodes])
        by_name = {n.GetName(): n for n in nodes}
        return {key: by_name.get(name) if name else None for key, name in names.items()}

    @staticmethod
    def inputProblem(inputs: Dict[str, Any], model) -> str:
        """Why Apply is disabled ("" when it can run)."""
        needed = list(model.sequences) if model is not None and not model.tolerates_missing else \
            ["t1c"] if model is not None else ["t1n", "t1c", "t2w", "t2f"]
        missing = [key for key in needed if inputs.get(key) is None]
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


# ---------------------------------------------------------------------------- test

class VoxMMSDSegmentationTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: the whole module on the bundled sample case (Resources/Sample/BraTS18-sample)."""

    SAMPLE = Path(__file__).resolve().parent / "Resources" / "Sample" / "BraTS18-sample"  # the bundled real case

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
