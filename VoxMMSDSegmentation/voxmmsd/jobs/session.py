"""What every training run does around its loop, the same for pre-training and fine-tuning.

:func:`training_session` (a context manager) on the main process: creates the run folder,
locks it for the whole run with :class:`~voxmmsd.io.lock.FolderLock` (a second trainer on
the same folder fails with a message naming the holder), removes temporary files of an
interrupted write and a stale ``stop.requested``; on every process it installs the stop
request (signals + the stop file) and yields it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

from voxmmsd.io.atomic import ensure_writable_dir
from voxmmsd.io.lock import FolderLock
from voxmmsd.jobs.distributed import DistInfo, barrier
from voxmmsd.jobs.run_folder import RunFolder
from voxmmsd.jobs.stop import StopFlag


@contextlib.contextmanager
def training_session(run: RunFolder, purpose: str, dist: DistInfo,
                     stop: Optional[StopFlag] = None) -> Iterator[StopFlag]:
    """Lock ``run`` (main process), clean it up, and yield the run's :class:`StopFlag`."""
    lock = None
    if dist.is_main:
        ensure_writable_dir(run.root)
        lock = FolderLock(run.root, purpose).acquire()
    try:
        if dist.is_main:
            run.clear_stop_request()
            run.clean_temp_files()
        barrier(dist)  # no rank looks for the stop file before rank 0 removed a stale one
        flag = stop if stop is not None else StopFlag()
        if flag.stop_file is None:
            flag.stop_file = run.stop_file
        with flag:
            yield flag
    finally:
        if lock is not None:
            lock.release()


def stop_agreed(flag: StopFlag, dist: DistInfo, device: Optional[Any] = None) -> bool:
    """True on every rank when any rank was asked to stop (checked between iterations)."""
    if not dist.enabled:
        return flag.requested
    import torch

    t = torch.tensor([1.0 if flag.requested else 0.0], device=device)
    torch.distributed.all_reduce(t)
    return bool(t.item() > 0)
