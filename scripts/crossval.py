#!/usr/bin/env python
"""Deprecated: the cross-validation is the product command ``voxmmsd experiment crossval STEP ...``.

This shim forwards its arguments there unchanged (``scripts/crossval.py score --data ...`` runs
``voxmmsd experiment crossval score --data ...``); see ``voxmmsd experiment crossval --help`` and
docs/finetuning.md. It will be removed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List


def main(argv: List[str]) -> int:
    from voxmmsd.cli.main import main as voxmmsd_main

    sys.stderr.write("scripts/crossval.py is deprecated; running: voxmmsd experiment crossval "
                     + " ".join(argv) + "\n")
    return voxmmsd_main(["experiment", "crossval", *argv])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "VoxMMSDSegmentation"))
    sys.exit(main(sys.argv[1:]))
