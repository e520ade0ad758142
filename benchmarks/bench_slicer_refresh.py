"""Cost of one refresh of the Slicer module's Jobs panel: the former way vs the current one.

A run folder with a long ``events.jsonl`` (``--events`` progress events, four losses each,
like a long pre-training run) keeps growing by ``--per-tick`` events between refreshes.

* baseline (what the review measured at ~200 ms per tick): every tick parses the whole
  ``events.jsonl`` twice (the table's status and the loss plot each read it) and renders the
  loss curves with matplotlib into a PNG inside a new temporary folder;
* ours: ``JobMonitor.refresh`` (only the appended bytes are read) and ``LossChart.show``
  (only the new points are appended to the plot's table node, on a real MRML scene from
  slicer-core; Slicer's plot widget redraws itself from it).

Usage::

    .venv/bin/python benchmarks/bench_slicer_refresh.py [--events 20000] [--per-tick 10] [--ticks 20]

Prints one JSON line per method (median milliseconds per tick) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))


def grow(writer, start: int, count: int) -> int:
    for it in range(start, start + count):
        writer.emit("pretrain", "progress", iteration=it, total=10 ** 6, lr=1e-3, eta_s=100.0,
                    losses={"loss": 3.0 / it, "distill": 2.0 / it, "recon": 1.0 / it, "mse": 0.5 / it})
    return start + count


def baseline_tick(run: Path, tmp_root: Path) -> None:
    """Two whole reads of the events and a matplotlib PNG in a new temporary folder."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from VoxMMSDSegmentationLib.events import read_state

    lines = (run / "events.jsonl").read_text(encoding="utf-8").splitlines()
    read_state(lines)  # the table's status
    history = read_state((run / "events.jsonl").read_text(encoding="utf-8").splitlines()).history  # the plot's
    folder = Path(tempfile.mkdtemp(dir=str(tmp_root)))
    fig = Figure(figsize=(4.8, 2.6), dpi=100)
    ax = fig.add_subplot(111)
    for name in sorted({n for _, losses in history for n in losses}):
        points = [(i, losses[name]) for i, losses in history if name in losses]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name)
    ax.legend()
    fig.savefig(str(folder / "loss.png"), format="png")


def measure(method: str, events: int, per_tick: int, ticks: int) -> dict:
    from voxmmsd.jobs.events import EventWriter
    from VoxMMSDSegmentationLib import jobs

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        run = tmp_path / "run"
        run.mkdir()
        known = jobs.KnownRuns(tmp_path / "runs.json")
        known.add(run)
        times = []
        with open(run / "events.jsonl", "w", encoding="utf-8") as f:  # the history so far, written at once
            for it in range(1, events + 1):
                f.write(json.dumps({"time": 0, "stage": "pretrain", "event": "progress", "iteration": it,
                                    "total": 10 ** 6, "losses": {"loss": 3.0 / it, "distill": 2.0 / it,
                                                                 "recon": 1.0 / it, "mse": 0.5 / it}}) + "\n")
        with EventWriter(run / "events.jsonl") as writer:  # then the run goes on, one event at a time
            nxt = events + 1
            if method == "ours":
                import slicer
                from VoxMMSDSegmentationLib.chart import LossChart

                monitor = jobs.JobMonitor(known)
                chart = LossChart(slicer.vtkMRMLScene())
                [(st, _)] = monitor.refresh()  # the first look at the run (module shown)
                chart.show(st.run_dir, st.events.history)
            for _ in range(ticks):
                nxt = grow(writer, nxt, per_tick)
                t0 = time.perf_counter()
                if method == "ours":
                    [(st, new)] = monitor.refresh()
                    if new:
                        chart.show(st.run_dir, st.events.history)
                else:
                    baseline_tick(run, tmp_path)
                times.append(time.perf_counter() - t0)
    return {"method": method, "events": events, "per_tick": per_tick, "ticks": ticks,
            "median_ms": round(1000 * statistics.median(times), 2), "max_ms": round(1000 * max(times), 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20000, help="progress events already in the run")
    p.add_argument("--per-tick", type=int, default=10, help="events appended between two refreshes")
    p.add_argument("--ticks", type=int, default=20)
    args = p.parse_args(argv)
    results = {m: measure(m, args.events, args.per_tick, args.ticks) for m in ("baseline", "ours")}
    for r in results.values():
        print(json.dumps(r))
    print(json.dumps({"ratio_baseline_over_ours": round(results["baseline"]["median_ms"]
                                                        / max(results["ours"]["median_ms"], 1e-6), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
