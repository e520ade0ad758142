"""The training panel's light refresh: events.jsonl followed by byte offset (only appended bytes
are read), and the loss curves as real Slicer plot nodes (slicer-core MRML) that are redrawn
only when new points arrived. No PNGs, no matplotlib."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from voxmmsd.jobs.events import EventWriter  # noqa: E402
from VoxMMSDSegmentationLib import jobs  # noqa: E402
from VoxMMSDSegmentationLib.events import EventTail  # noqa: E402


def emit_progress(writer, start, stop, names=("distill", "recon")):
    for it in range(start, stop):
        writer.emit("pretrain", "progress", iteration=it, total=1000, losses={n: 1.0 / (it + k) for k, n in
                                                                              enumerate(names, 1)})


def test_tail_reads_only_what_was_appended(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.update() == 0  # no file yet
    with EventWriter(path) as w:
        w.emit("pretrain", "start", total=1000)
        emit_progress(w, 1, 11)
    assert tail.update() == 11 and len(tail.state.history) == 10
    offset = tail.offset
    assert offset == path.stat().st_size
    assert tail.update() == 0 and tail.offset == offset  # nothing new: nothing read
    with open(path, "a", encoding="utf-8") as f:  # a line being written: waits for its end
        f.write('{"time": 1, "stage": "pretrain", "event": "progress", "iteration": 11, "total": 1000, "los')
    assert tail.update() == 0 and len(tail.state.history) == 10
    with open(path, "a", encoding="utf-8") as f:
        f.write('ses": {"distill": 0.5}}\n')
    assert tail.update() == 1 and tail.state.history[-1] == (11, {"distill": 0.5})
    path.write_text('{"stage": "pretrain", "event": "start", "total": 5}\n')  # replaced by a new run
    assert tail.update() == 1 and tail.state.history == [] and tail.state.total == 5


def test_tail_folds_diagnostics_and_collapse_warnings(tmp_path):
    path = tmp_path / "events.jsonl"
    diag = {"teacher_entropy": 0.01, "student_entropy": 0.02, "kl": 1e-4, "voxel_cosine": 0.999, "center_norm": 3.0}
    with EventWriter(path) as w:
        w.emit("pretrain", "progress", iteration=1, total=10, losses={"loss": 1.0}, diagnostics=diag)
        w.emit("pretrain", "warning", kind="collapse", message="teacher entropy 0.01: the features collapsed")
    tail = EventTail(path)
    tail.update()
    assert tail.state.diagnostics == diag
    assert tail.state.alerts_of("collapse") == ["teacher entropy 0.01: the features collapsed"]
    assert "voxel_cosine 0.999" in tail.state.describe()


def test_monitor_refresh_reads_each_file_incrementally(tmp_path):
    known = jobs.KnownRuns(tmp_path / "runs.json")
    run = tmp_path / "run"
    known.add(run)
    run.mkdir()
    monitor = jobs.JobMonitor(known)
    with EventWriter(run / "events.jsonl") as w:
        w.emit("pretrain", "start", total=1000)
        emit_progress(w, 1, 6)
        [(st, new)] = monitor.refresh()
        assert new == 6 and st.kind == "pretrain" and st.events.iteration == 5 and st.state == jobs.DIED
        [(st, new)] = monitor.refresh()
        assert new == 0
        emit_progress(w, 6, 8)
        w.emit("pretrain", "done", iteration=7, total=1000)
    [(st, new)] = monitor.refresh()
    assert new == 3 and st.state == jobs.FINISHED and len(st.events.history) == 7
    known.remove(run)
    assert monitor.refresh() == [] and not monitor.tails


slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (Python >= 3.10)")

from VoxMMSDSegmentationLib.chart import LossChart  # noqa: E402


def test_loss_chart_is_made_of_plot_nodes_and_appends_only_new_points(tmp_path):
    scene = slicer.vtkMRMLScene()
    chart = LossChart(scene)
    history = [(i, {"distill": 3.0 / i, "recon": 1.0 / i}) for i in range(1, 11)]
    assert chart.show(tmp_path / "runA", history)
    assert chart.chart.IsA("vtkMRMLPlotChartNode") and chart.table.IsA("vtkMRMLTableNode")
    assert chart.chart.GetNumberOfPlotSeriesNodes() == 2
    assert sorted(s.GetYColumnName() for s in chart.series.values()) == ["distill", "recon"]
    for series in chart.series.values():
        assert series.IsA("vtkMRMLPlotSeriesNode") and series.GetXColumnName() == "iteration"
        assert series.GetTableNode() is chart.table
    assert chart.chart.GetTitle() == "runA"
    rows = chart.rows()
    assert len(rows) == 10 and rows[0] == pytest.approx((1.0, 3.0, 1.0))
    table_time = chart.table.GetMTime()
    nodes = scene.GetNumberOfNodes()
    assert not chart.show(tmp_path / "runA", history)  # nothing new: nothing touched
    assert chart.table.GetMTime() == table_time and chart.redraws == 1

    history += [(i, {"distill": 3.0 / i, "recon": 1.0 / i}) for i in range(11, 16)]
    assert chart.show(tmp_path / "runA", history)
    assert len(chart.rows()) == 15 and chart.rows()[-1][0] == 15.0
    assert scene.GetNumberOfNodes() == nodes  # appended in place, no new nodes

    other = [(i, {"loss": 0.5}) for i in range(1, 4)]  # another run selected: its own curves
    assert chart.show(tmp_path / "runB", other)
    assert [s.GetYColumnName() for s in chart.series.values()] == ["loss"] and len(chart.rows()) == 3
    assert scene.GetNumberOfNodes() == nodes - 1  # the old run's nodes were replaced, not kept
    assert all(not n.GetSaveWithScene() for n in [chart.table, chart.chart] + list(chart.series.values()))

    scene.Clear(0)  # scene closed: the chart comes back on the next refresh
    assert chart.show(tmp_path / "runB", other) and len(chart.rows()) == 3
    chart.remove()
    assert chart.rows() == [] and scene.GetNodesByClass("vtkMRMLPlotChartNode").GetNumberOfItems() == 0


def test_long_runs_are_thinned_out(tmp_path):
    scene = slicer.vtkMRMLScene()
    chart = LossChart(scene, max_points=100)
    history = [(i, {"loss": 1.0 / i}) for i in range(1, 251)]
    assert chart.show(tmp_path / "run", history)
    rows = chart.rows()
    assert len(rows) <= 100 and rows[0][0] == 1.0 and chart.stride == 3
    history.append((251, {"loss": math.nan}))
    chart.show(tmp_path / "run", history)
    assert len(chart.rows()) <= 101
