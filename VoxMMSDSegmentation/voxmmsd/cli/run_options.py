"""The options every training command shares: resume, length, device, settings and the resume rule."""

from __future__ import annotations

import argparse
from pathlib import Path

#: the sentence every training command's description ends with
STOP_RESUME = ("Ctrl-C, SIGTERM or creating RUN/stop.requested writes a checkpoint and stops; --resume RUN "
               "continues exactly where it stopped, with the run's own settings.")


def add_run_options(p: argparse.ArgumentParser, set_example: str, config_help: str) -> None:
    """Add ``--out``, ``--resume``, ``--max-iters``, ``--device``, ``--config``, ``--set`` (into ``args.overrides``)
    and ``--allow-changed-settings`` to the parser ``p`` of a training command."""
    p.add_argument("--out", type=Path, metavar="RUN", help="run folder to create (leave out with --resume)")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in RUN from its last checkpoint, "
                                                              "exactly where it stopped")
    p.add_argument("--max-iters", type=int, metavar="N", help="total iterations of the run (the schedules span "
                                                              "them); may change on --resume")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--config", type=Path, metavar="FILE.yaml", help=config_help)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help=f"override one setting by its dotted path (value read as YAML), e.g. {set_example}")
    p.add_argument("--allow-changed-settings", action="store_true",
                   help="with --resume: accept --config/--set/option values that differ from the run's own "
                        "(otherwise refused: the continued run would differ from an uninterrupted one)")
