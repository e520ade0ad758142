"""The *Pre-training*, *Fine-tuning* and *Jobs* sections of the module's widget (Qt; runs only inside Slicer).

GUI glue only: the jobs are :mod:`VoxMMSDSegmentationLib.jobs` (tested on real processes), the loss chart
:mod:`VoxMMSDSegmentationLib.chart`, and every action a Logic call (``startPretraining``, ``startFinetuning``,
``stopJob``, ``resumeJob``, ``knownRuns``), so the same works from the Python console. Kept out of the
module file so that the file stays thin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import qt
import slicer


class TrainingPanel:
    """Wires the training sections' widgets (``widget.ui``) to the Logic; :meth:`refresh` follows the runs (the
    widget's jobs timer, only while the module is shown)."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.ui = widget.ui
        self.logic = widget.logic
        self.monitor: Any = None
        self.lossChart: Any = None
        self.plotView: Any = None
        self.plotWidget: Any = None
        self._jobRows: List[Any] = []
        self._modelRuns: set = set()

    def setup(self) -> None:
        ui = self.ui
        ui.pretrainStartButton.connect("clicked(bool)", self.onStartPretraining)
        ui.finetuneStartButton.connect("clicked(bool)", self.onStartFinetuning)
        ui.stopJobButton.connect("clicked(bool)", self.onStopJob)
        ui.resumeJobButton.connect("clicked(bool)", self.onResumeJob)
        ui.addRunButton.connect("clicked(bool)", self.onAddRun)
        ui.showChartButton.connect("clicked(bool)", self.onShowChartInLayout)
        ui.jobsTable.connect("itemSelectionChanged()", lambda: self.refresh(selection=True))
        self.setupLossPlot()

    def cleanup(self) -> None:
        if self.lossChart is not None:
            self.lossChart.remove()
        if self.plotView is not None and slicer.mrmlScene.IsNodePresent(self.plotView):
            slicer.mrmlScene.RemoveNode(self.plotView)

    def sceneClosed(self) -> None:
        """The chart's nodes went with the scene: redrawn on the next refresh."""
        if self.lossChart is not None:
            self.lossChart.remove()

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

    def onStartPretraining(self) -> None:
        from VoxMMSDSegmentationLib.commands import PretrainOptions

        if not self.widget.ensureDependencies(training=True):
            return
        crop = int(self.ui.pretrainCropSpinBox.value)
        options = PretrainOptions(data=self.ui.pretrainDataPath.currentPath, out=self.ui.pretrainOutPath.currentPath,
                                  iterations=int(self.ui.pretrainIterationsSpinBox.value), crop_size=(crop,) * 3,
                                  device=self.ui.trainDeviceSelector.currentData)
        with slicer.util.tryWithErrorDisplay("Could not start pre-training.", waitCursor=True):
            self.logic.startPretraining(options)
        self.refresh()

    def onStartFinetuning(self) -> None:
        from VoxMMSDSegmentationLib.commands import FinetuneOptions

        if not self.widget.ensureDependencies(training=True):
            return
        options = FinetuneOptions(data=self.ui.finetuneDataPath.currentPath, out=self.ui.finetuneOutPath.currentPath,
                                  init=self.ui.finetuneInitPath.currentPath,
                                  labelled_cases=int(self.ui.finetuneCasesSpinBox.value),
                                  iterations=int(self.ui.finetuneIterationsSpinBox.value),
                                  device=self.ui.trainDeviceSelector.currentData)
        with slicer.util.tryWithErrorDisplay("Could not start fine-tuning.", waitCursor=True):
            self.logic.startFinetuning(options)
        self.refresh()

    def selectedRun(self) -> Optional[Path]:
        rows = {i.row() for i in self.ui.jobsTable.selectedIndexes()}
        if len(rows) != 1:
            return None
        item = self.ui.jobsTable.item(rows.pop(), 0)
        return Path(item.toolTip()) if item else None

    def refresh(self, selection: bool = False) -> None:
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
            self.widget.refreshModels()  # a finished fine-tuning run appears in the model selector
        if self.widget.cohortPanel is not None:
            self.widget.cohortPanel.refresh(refreshed)

    def onStopJob(self) -> None:
        run = self.selectedRun()
        if run is not None:
            self.logic.stopJob(run)
            self.refresh()

    def onResumeJob(self) -> None:
        run = self.selectedRun()
        if run is not None:
            with slicer.util.tryWithErrorDisplay("Could not resume the job.", waitCursor=True):
                self.logic.resumeJob(run)
            self.refresh()

    def onAddRun(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.widget.parent, "Training run folder (with events.jsonl)")
        if folder:
            self.logic.knownRuns().add(Path(folder))
            self.refresh()
