"""VoxMMSD brain tumour segmentation for 3D Slicer: Module and Widget (the Logic, its parameter node and the
self-test are in ``VoxMMSDSegmentationLib.logic`` and ``.selftest``; the training and cohort sections in
``.training_panel`` and ``.cohort_panel``).

Thin on purpose: the decisions live in ``VoxMMSDSegmentationLib`` (tested without
Slicer) and the engine ``voxmmsd`` runs as a separate process. Nothing here imports
torch, and nothing is installed or computed at import time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin
from VoxMMSDSegmentationLib.logic import VoxMMSDSegmentationLogic, VoxMMSDSegmentationParameterNode
from VoxMMSDSegmentationLib.selftest import VoxMMSDSegmentationTest  # noqa: F401  (Slicer looks for it here)

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
        self.trainingPanel = None
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
        self.ui.show3DCheckBox.connect("toggled(bool)", self.onShow3D)
        self.timer.connect("timeout()", self.pollSegmentation)
        self.jobTimer.connect("timeout()", self.refreshJobs)
        self.ui.cancelButton.enabled = False
        from VoxMMSDSegmentationLib.cohort_panel import CohortPanel
        from VoxMMSDSegmentationLib.training_panel import TrainingPanel

        self.trainingPanel = TrainingPanel(self)  # the training sections and the Jobs table
        self.trainingPanel.setup()
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
        if self.trainingPanel is not None:
            self.trainingPanel.cleanup()
        self.removeObservers()

    def refreshJobs(self, selection: bool = False) -> None:
        """Follow the training runs (the jobs timer, while the module is shown)."""
        if self.trainingPanel is not None:
            self.trainingPanel.refresh(selection)

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
        if self.trainingPanel is not None:  # the chart's nodes went with the scene: redrawn on the next refresh
            self.trainingPanel.sceneClosed()
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
