"""Run a few independent I/O-bound calls at once, in threads (zlib, SimpleITK's readers and writers and
most of numpy release the GIL while they work).

:func:`map_ordered` returns the results in the order of the inputs and raises what the first failing
input (in that order, not in time) raised, after every call has ended: the same error as a plain loop
would raise first, and no call left running behind the caller's back.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: at most this many threads per call (four sequences, or five output files)
MAX_WORKERS = 5


def map_ordered(fn: Callable[[T], R], items: Sequence[T], workers: Optional[int] = None,
                name: str = "voxmmsd-io") -> List[R]:
    """``[fn(x) for x in items]``, the calls running in up to ``workers`` threads (default: one per item,
    at most :data:`MAX_WORKERS`; 1 runs them in this thread, one after another)."""
    items = list(items)
    n = min(len(items), workers if workers is not None else MAX_WORKERS)
    if n <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix=name) as pool:
        futures = [pool.submit(fn, x) for x in items]
        for f in futures:  # every call ends before anything is raised
            f.exception()
    return [f.result() for f in futures]
