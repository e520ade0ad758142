"""``python -m voxmmsd`` is the same as the ``voxmmsd`` command."""

import sys

from voxmmsd.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
