"""Entry point of the ``voxmmsd`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from voxmmsd import __version__
from voxmmsd.errors import VoxMMSDError

#: sub-command modules, in the order ``--help`` lists them
COMMANDS = ("segment", "pretrain", "finetune", "evaluate", "experiment", "export", "models", "inspect", "cohort")

log = logging.getLogger("voxmmsd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxmmsd",
        description="Vox-MMSD brain tumour segmentation from T1n, T1c, T2w and FLAIR MRI: "
                    "self-supervised pre-training, fine-tuning, inference and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"voxmmsd {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"voxmmsd.cli.{name}").add_parser(sub)
    return parser


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


#: options whose value is optional: a bare one means the value given here
BARE_OPTIONS = {"--register": ("on", ("auto", "on", "off"))}


def bare_options(argv: List[str]) -> List[str]:
    """``--register CASE`` means ``--register=on CASE``: a bare option never swallows the next argument."""
    out: List[str] = []
    for i, token in enumerate(argv):
        if token in BARE_OPTIONS:
            bare, values = BARE_OPTIONS[token]
            following = argv[i + 1] if i + 1 < len(argv) else None
            if following is None or following.lower() not in values:
                out.append(f"{token}={bare}")
                continue
        out.append(token)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(bare_options(list(sys.argv[1:] if argv is None else argv)))
    setup_logging(args.verbose, args.quiet)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from voxmmsd.jobs import signals

    try:
        with signals.handled():  # SIGTERM/SIGHUP unwind like Ctrl-C: locks, staging folders, summaries taken care of
            return int(args.func(args) or 0)
    except VoxMMSDError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt as exc:
        log.error("interrupted (%s)", str(exc) or "Ctrl-C")
        return signals.exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
