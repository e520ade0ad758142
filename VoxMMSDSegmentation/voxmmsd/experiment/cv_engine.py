"""The product's own commands, run in this process, for a cross-validation: train, segment, evaluate.

Each is the command a user runs (``voxmmsd finetune``, ``voxmmsd segment --batch``, ``voxmmsd
evaluate``), built from the same argument parser and run by the same function, so the numbers a
cross-validation reports are those of the shipped path. :func:`segment_cases` is the one place a
cross-validation segments. What a command prints goes to the experiment's ``log.txt``, after a
``$ voxmmsd ...`` line, with its log records (the console keeps the warnings).
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import time
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, TextIO

from voxmmsd.errors import VoxMMSDError

log = logging.getLogger(__name__)


def run_command(argv: Sequence[str], log_path: Path) -> float:
    """Run ``voxmmsd ARGV`` in this process, its output appended to ``log_path``; the seconds it took.

    Raises :class:`VoxMMSDError` naming the command and the log when it ends with a non-zero status.
    """
    from voxmmsd.cli.main import bare_options, build_parser

    line = "voxmmsd " + " ".join(shlex.quote(str(a)) for a in argv)
    log.info("$ %s", line)
    try:
        args = build_parser().parse_args(bare_options([str(a) for a in argv]))
    except SystemExit:  # argparse said why on stderr
        raise VoxMMSDError(f"`{line}`: the options were refused (see above).") from None
    t0 = time.perf_counter()
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as fh:
        fh.write(f"$ {line}\n")
        fh.flush()
        with _into(fh):
            status = int(args.func(args) or 0)
    if status:
        raise VoxMMSDError(f"`{line}` ended with status {status}; see {log_path}.")
    return time.perf_counter() - t0


@contextlib.contextmanager
def _into(fh: TextIO) -> Iterator[None]:
    """The command's printed output and its log records go to ``fh``; only warnings still reach the console."""
    root = logging.getLogger()
    handler = logging.StreamHandler(fh)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    console = [(h, h.level) for h in root.handlers]
    for h, level in console:
        h.setLevel(max(level, logging.WARNING))
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(fh):
            yield
    finally:
        root.removeHandler(handler)
        for h, level in console:
            h.setLevel(level)


def segment_cases(cases: Path, out: Path, model: Path, device: str, log_path: Path,
                  extra: Sequence[str] = ()) -> float:
    """Segment every case folder of ``cases`` into ``out/<case>/`` with ``model`` (the shipped batch path,
    no QC picture); ``extra``: more ``voxmmsd segment`` options (e.g. ``--tta``). The seconds it took."""
    argv: List[str] = ["segment", "--batch", str(cases), "--out", str(out), "--model", str(model),
                       "--device", device, "--progress", "none", "--no-qc", *extra]
    return run_command(argv, log_path)


def finetune_fold(data: Path, run: Path, train_ids: Sequence[str], device: str, log_path: Path,
                  config: Optional[Path] = None, settings: Sequence[str] = ()) -> float:
    """Train one fold's model on ``train_ids`` into ``run/model`` (no validation cases: the last weights,
    so no model selection touches the held-out fold). The seconds it took."""
    argv = ["finetune", "--data", str(data), "--out", str(run), "--device", device,
            "--train", ",".join(train_ids), "--val", "0"]
    if config:
        argv += ["--config", str(config)]
    for s in settings:
        argv += ["--set", s]
    return run_command(argv, log_path)


def evaluate_predictions(pred: Path, ref: Path, out: Path, log_path: Path) -> Path:
    """``voxmmsd evaluate`` of ``pred`` against ``ref`` into ``out`` (WT, TC, ET; a missing prediction scores
    as an empty one); the path of ``per_case.csv``."""
    run_command(["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(out),
                 "--missing", "worst", "--no-subregions"], log_path)
    return Path(out) / "per_case.csv"
