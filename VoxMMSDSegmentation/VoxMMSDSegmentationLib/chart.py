"""A run's loss curves as Slicer plot nodes (table + plot series + plot chart), updated in place.

No picture files and no matplotlib: a ``vtkMRMLTableNode`` holds one row per logged
iteration (column ``iteration`` and one column per loss), one ``vtkMRMLPlotSeriesNode``
per loss draws it, and a ``vtkMRMLPlotChartNode`` groups them; Slicer's plot widget
redraws itself when the table changes. :meth:`LossChart.show` appends only the rows that
are new since the last call and touches nothing when there are none. Everything here
takes a ``vtkMRMLScene``; it runs inside Slicer and on the ``slicer-core`` wheel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

History = Sequence[Tuple[int, Dict[str, float]]]

#: line colours of the series (RGB 0..1), in the order of the sorted loss names
COLORS = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.4, 0.74),
          (0.55, 0.34, 0.29))
X_COLUMN = "iteration"


class LossChart:
    """The chart of the selected run's losses (one per module; :meth:`show` switches runs)."""

    def __init__(self, scene: Any, name: str = "VoxMMSD losses", max_points: int = 4000) -> None:
        self.scene = scene
        self.name = name
        self.max_points = max(2, int(max_points))
        self.table: Any = None
        self.chart: Any = None
        self.series: Dict[str, Any] = {}
        self.run: Optional[str] = None
        self.columns: Tuple[str, ...] = ()
        self.stride = 1
        self.next_index = 0  # index into the history of the next point to draw
        self.redraws = 0

    # -- nodes -----------------------------------------------------------------------
    def _present(self, node: Any) -> bool:
        return node is not None and self.scene.GetNodeByID(node.GetID()) is node

    def _node(self, cls: str, name: str) -> Any:
        node = self.scene.AddNewNodeByClass(cls, name)
        node.SetSaveWithScene(False)  # a view of the run's events.jsonl, not part of the user's data
        node.SetHideFromEditors(cls != "vtkMRMLPlotChartNode")
        return node

    def _rebuild(self, run: str, columns: Sequence[str]) -> None:
        import vtk

        for node in [self.table, self.chart] + list(self.series.values()):
            if self._present(node):
                self.scene.RemoveNode(node)
        self.series = {}
        self.table = self._node("vtkMRMLTableNode", f"{self.name} table")
        table = self.table.GetTable()
        for column in (X_COLUMN,) + tuple(columns):
            array = vtk.vtkDoubleArray()
            array.SetName(column)
            table.AddColumn(array)
        self.chart = self._node("vtkMRMLPlotChartNode", self.name)
        self.chart.SetTitle(Path(run).name)
        self.chart.SetXAxisTitle("iteration")
        self.chart.SetYAxisTitle("loss")
        for i, column in enumerate(columns):
            series = self._node("vtkMRMLPlotSeriesNode", f"{self.name}: {column}")
            series.SetAndObserveTableNodeID(self.table.GetID())
            series.SetXColumnName(X_COLUMN)
            series.SetYColumnName(column)
            series.SetPlotType(series.PlotTypeScatter)
            series.SetMarkerStyle(series.MarkerStyleNone)
            series.SetLineWidth(2)
            series.SetColor(*COLORS[i % len(COLORS)])
            self.chart.AddAndObservePlotSeriesNodeID(series.GetID())
            self.series[column] = series
        self.run, self.columns, self.next_index = run, tuple(columns), 0

    # -- updates ---------------------------------------------------------------------
    def show(self, run_dir: Path, history: History) -> bool:
        """Make the chart show ``history`` of ``run_dir``; True if anything was drawn.

        Only rows new since the previous call are appended; at most ``max_points`` rows are
        kept (every k-th logged iteration once a run is longer; k changes rarely)."""
        run = str(run_dir)
        columns = tuple(sorted({name for _, losses in history for name in losses}))
        stride = 1 + (len(history) - 1) // self.max_points if history else 1
        if (run != self.run or columns != self.columns or stride != self.stride
                or not (self._present(self.table) and self._present(self.chart))):
            self.stride = stride
            self._rebuild(run, columns)
            rebuilt = True
        else:
            rebuilt = False
        indices = list(range(self.next_index, len(history), self.stride))
        if not indices:
            return rebuilt
        table = self.table.GetTable()
        arrays = [table.GetColumnByName(c) for c in (X_COLUMN,) + self.columns]
        for index in indices:
            iteration, losses = history[index]
            arrays[0].InsertNextValue(float(iteration))
            for array, column in zip(arrays[1:], self.columns):
                array.InsertNextValue(float(losses.get(column, float("nan"))))
        self.next_index = indices[-1] + self.stride
        table.Modified()
        self.table.Modified()
        self.redraws += 1
        return True

    def rows(self) -> List[Tuple[float, ...]]:
        """The table's rows (iteration, losses...), for tests and the console."""
        if not self._present(self.table):
            return []
        table = self.table.GetTable()
        return [tuple(table.GetValue(r, c).ToDouble() for c in range(table.GetNumberOfColumns()))
                for r in range(table.GetNumberOfRows())]

    def remove(self) -> None:
        """Take the chart's nodes out of the scene (module closed)."""
        for node in [self.table, self.chart] + list(self.series.values()):
            if self._present(node):
                self.scene.RemoveNode(node)
        self.table = self.chart = None
        self.series, self.run, self.columns, self.next_index = {}, None, (), 0
