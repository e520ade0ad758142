"""The *Learn from corrections* section of the module's widget (Qt; runs only inside Slicer).

GUI glue only: every decision is in :mod:`VoxMMSDSegmentationLib.learning` and
:mod:`VoxMMSDSegmentationLib.cohort` (tested on ``slicer-core``), and every action is a Logic call
(``addToCohort``, ``removeCohortCase``, ``startCohortLearning``, ``startExamPretraining``,
``installCohortModel``), so the same works from the Python console. Kept out of the module file so that
the file stays thin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

SETTINGS_COHORT = "VoxMMSD/cohortFolder"
SETTINGS_RUN = "VoxMMSD/lastCohortRun"


class CohortPanel:
    """Wires the section's widgets (``widget.ui``) to the Logic; :meth:`refresh` is called by the jobs timer."""

    def __init__(self, widget: Any) -> None:
        import qt

        self.widget = widget
        self.ui = widget.ui
        self.logic = widget.logic
        self.addJob: Any = None
        self.timer = qt.QTimer()  # runs only while a case is being added
        self.timer.setInterval(200)
        self._caseRows: List[Any] = []
        self._comparisonShown: Optional[str] = None

    # -- set-up -------------------------------------------------------------------
    def setup(self) -> None:
        import qt
        import slicer

        from VoxMMSDSegmentationLib import learning

        ui = self.ui
        ui.cohortSegmentationSelector.setMRMLScene(slicer.mrmlScene)
        ui.cohortPath.currentPath = str(qt.QSettings().value(SETTINGS_COHORT) or learning.default_cohort())
        ui.cohortPath.connect("currentPathChanged(QString)", self.onCohortChanged)
        ui.addToCohortButton.connect("clicked(bool)", self.onAddToCohort)
        ui.removeCaseButton.connect("clicked(bool)", self.onRemoveCase)
        ui.learnStartButton.connect("clicked(bool)", self.onStartLearning)
        ui.examsPretrainButton.connect("clicked(bool)", self.onPretrainExams)
        ui.installButton.connect("clicked(bool)", self.onInstall)
        ui.installOverrideCheckBox.connect("toggled(bool)", lambda _: self.refresh(force=True))
        self.timer.connect("timeout()", self.pollAdd)
        self.refresh(force=True)

    def cleanup(self) -> None:
        self.timer.stop()
        if self.addJob is not None and not self.addJob.done:
            self.addJob.cancel()

    @property
    def cohort(self) -> Path:
        return Path(self.ui.cohortPath.currentPath)

    def onCohortChanged(self, path: str) -> None:
        import qt

        qt.QSettings().setValue(SETTINGS_COHORT, path)
        self.refresh(force=True)

    def segmentationFinished(self, segmentation: Any) -> None:
        """A new result is the natural candidate for review and the cohort."""
        self.ui.cohortSegmentationSelector.setCurrentNode(segmentation)

    # -- cohort -------------------------------------------------------------------
    def onAddToCohort(self) -> None:
        import slicer

        seg = self.ui.cohortSegmentationSelector.currentNode()
        with slicer.util.tryWithErrorDisplay("Could not add the case to the cohort.", waitCursor=True):
            self.addJob = self.logic.addToCohort(self.widget.selectedInputs(), seg, self.cohort)
            self.ui.addToCohortButton.enabled = False
            self.ui.cohortStatusLabel.text = "Adding the case (reading, checking, writing)..."
            self.timer.start()

    def pollAdd(self) -> None:
        import slicer

        job = self.addJob
        if job is None or not job.poll():
            return
        self.timer.stop()
        self.ui.addToCohortButton.enabled = True
        if job.status == "finished":
            self.ui.cohortStatusLabel.text = f"Added {job.case_id} to {self.cohort}."
        else:
            self.ui.cohortStatusLabel.text = f"Not added: {job.error}"
            if job.status == "failed":
                slicer.util.errorDisplay(f"The case was not added: {job.error}", detailedText="\n".join(job.log))
        self.refresh(force=True)

    def selectedCase(self) -> Optional[str]:
        rows = {i.row() for i in self.ui.cohortTable.selectedIndexes()}
        if len(rows) != 1:
            return None
        item = self.ui.cohortTable.item(rows.pop(), 0)
        return item.text() if item else None

    def onRemoveCase(self) -> None:
        import slicer

        case_id = self.selectedCase()
        if case_id is None or not slicer.util.confirmOkCancelDisplay(
                f"Delete case {case_id} (its images, segmentation and case.json) from {self.cohort}?",
                "VoxMMSD: remove a cohort case"):
            return
        with slicer.util.tryWithErrorDisplay("Could not remove the case.", waitCursor=True):
            self.logic.removeCohortCase(self.cohort, case_id)
        self.refresh(force=True)

    # -- learning -----------------------------------------------------------------
    def _model(self) -> str:
        model = self.widget.selectedModel()
        if model is None:
            raise ValueError("Choose the model to start from in the model selector.")
        return model.argument

    def onStartLearning(self) -> None:
        import qt
        import slicer

        from VoxMMSDSegmentationLib import learning

        if not self.widget.ensureDependencies(training=True):
            return
        with slicer.util.tryWithErrorDisplay("Could not start the fine-tuning.", waitCursor=True):
            options = learning.CohortLearnOptions(
                cohort=str(self.cohort), out=str(learning.new_run_folder(self.cohort, "finetune")),
                model=self._model(), init=self.ui.learnInitPath.currentPath,
                iterations=int(self.ui.learnIterationsSpinBox.value), folds=int(self.ui.learnFoldsSpinBox.value),
                device=self.ui.trainDeviceSelector.currentData)
            self.logic.startCohortLearning(options)
            qt.QSettings().setValue(SETTINGS_RUN, options.out)
            self.ui.installOverrideCheckBox.checked = False
        self.widget.refreshJobs()

    def onPretrainExams(self) -> None:
        import slicer

        from VoxMMSDSegmentationLib import learning

        if not self.widget.ensureDependencies(training=True):
            return
        with slicer.util.tryWithErrorDisplay("Could not start the pre-training.", waitCursor=True):
            out = learning.new_run_folder(self.cohort, "pretrain")
            self.logic.startExamPretraining(self.ui.examsPath.currentPath, out, self._model(),
                                            int(self.ui.examsIterationsSpinBox.value),
                                            self.ui.trainDeviceSelector.currentData)
            self.ui.learnInitPath.currentPath = str(out)  # the fine-tune starts from it once it has finished
        self.widget.refreshJobs()

    def learnRun(self) -> Optional[Path]:
        """The cohort run the comparison shows: the one selected in the Jobs table, else the last started."""
        import qt

        selected = self.widget.trainingPanel.selectedRun()
        if selected is not None and (selected / "learn.json").is_file():
            return selected
        last = qt.QSettings().value(SETTINGS_RUN)
        return Path(last) if last and Path(last).is_dir() else None

    def onInstall(self) -> None:
        import slicer

        run = self.learnRun()
        if run is None:
            return
        with slicer.util.tryWithErrorDisplay("The model was not installed.", waitCursor=True):
            entry = self.logic.installCohortModel(run, force=bool(self.ui.installOverrideCheckBox.checked))
            self.widget.refreshModels()
            keys = [(m.id, m.version, m.source) for m in self.widget.models]
            if (entry.id, entry.version, "installed") in keys:
                self.ui.modelSelector.setCurrentIndex(keys.index((entry.id, entry.version, "installed")))
            self.ui.comparisonLabel.text += f"\nInstalled as {entry.id} {entry.version}: now selected above."

    # -- refresh ------------------------------------------------------------------
    def refresh(self, statuses: Any = None, force: bool = False) -> None:
        """Redraw the cohort table (when it changed), the learning run's state and its comparison."""
        import qt

        from VoxMMSDSegmentationLib import learning

        rows = learning.cohort_rows(self.cohort)
        if force or rows != self._caseRows:
            _fill(qt, self.ui.cohortTable, rows)
            self._caseRows = rows
        run = self.learnRun()
        status = next((s for s, _ in (statuses or []) if run is not None and s.run_dir == run), None)
        self.ui.learnStatusLabel.text = (f"{run.name}: {status.state}; {status.events.describe()}"
                                         if status is not None else (run.name if run is not None else ""))
        comparison = learning.read_comparison(run) if run is not None else None
        key = f"{run}:{comparison.get('date') if comparison else ''}"
        if force or key != self._comparisonShown:
            _fill(qt, self.ui.comparisonTable, learning.comparison_rows(comparison) if comparison else [])
            self.ui.comparisonLabel.text = learning.verdict(comparison) if comparison else ""
            self._comparisonShown = key
        enabled, why = learning.can_install(comparison, run, bool(self.ui.installOverrideCheckBox.checked)) \
            if run is not None else (False, "Start a fine-tune first.")
        self.ui.installButton.enabled = enabled
        self.ui.installButton.toolTip = why
        self.ui.installOverrideCheckBox.visible = bool(comparison) and \
            not (comparison.get("decision") or {}).get("not_worse")


def _fill(qt: Any, table: Any, rows: List[Any]) -> None:
    table.setRowCount(len(rows))
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            table.setItem(r, c, qt.QTableWidgetItem(str(value)))
