"""The ``voxmmsd`` command line: one module per sub-command, each with ``add_parser``.

A sub-command module registers its arguments in ``add_parser(subparsers)`` and sets
``func`` to a ``run(args) -> int``. Heavy imports (torch, ...) happen inside ``run``.
"""
