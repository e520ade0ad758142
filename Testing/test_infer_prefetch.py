"""voxmmsd.infer.prefetch: the next cases load in a background thread, in order, at most ``depth`` ahead."""

from __future__ import annotations

import threading
import time

import pytest
from voxmmsd.infer.prefetch import Prefetch


def test_order_errors_and_overlap() -> None:
    main = threading.current_thread().name
    threads = set()

    def load(x: int) -> int:
        threads.add(threading.current_thread().name)
        if x == 2:
            raise ValueError(f"case {x} unreadable")
        return 10 * x

    got = []
    with Prefetch(load, [0, 1, 2, 3]) as cases:
        for item, loaded in cases:
            try:
                got.append((item, loaded.result()))
            except ValueError as exc:  # the error comes out with its own case; the others go on
                got.append((item, str(exc)))
    assert got == [(0, 0), (1, 10), (2, "case 2 unreadable"), (3, 30)]
    assert main not in threads


@pytest.mark.parametrize("depth", [1, 2])
def test_at_most_depth_ahead(depth: int) -> None:
    taken = [0]  # items whose loop body began
    ahead = []

    def load(x: int) -> int:
        ahead.append(x - taken[0])  # how far ahead of the caller this load starts
        return x

    with Prefetch(load, list(range(8)), depth=depth) as cases:
        for item, loaded in cases:
            taken[0] += 1
            assert loaded.result() == item
            time.sleep(0.05)  # the "compute": the producer runs ahead meanwhile
    assert 0 < max(ahead) <= depth  # it runs ahead, and memory stays flat: at most ``depth`` cases more


def test_item_comes_before_its_load_ends() -> None:
    def load(x: int) -> int:
        time.sleep(0.3)
        return x

    with Prefetch(load, [0]) as cases:
        t0 = time.perf_counter()
        for _, loaded in cases:
            handed = time.perf_counter() - t0
            assert loaded.result() == 0
            waited = time.perf_counter() - t0
    assert handed < 0.2 <= waited  # the caller measures its wait for the read (report.json's "read")


def test_close_stops_the_producer() -> None:
    started = []

    def load(x: int) -> int:
        started.append(x)
        time.sleep(0.01)
        return x

    cases = Prefetch(load, list(range(50)), depth=2)
    for item, _ in cases:
        if item == 3:
            break
    cases.close()
    n = len(started)
    time.sleep(0.05)
    assert len(started) == n <= 3 + 1 + 2  # nothing loads after close
    with pytest.raises(ValueError):
        Prefetch(load, [1], depth=0)


def test_a_finished_case_is_not_kept() -> None:
    """Memory stays flat over a batch: once the caller moves on, the previous case's loaded value is released
    (a 20-case batch grew 1.7 -> 3.6 GB while every loaded case stayed referenced)."""
    import gc
    import weakref

    class Case:
        pass

    refs = []

    def load(i: int) -> Case:
        c = Case()
        refs.append(weakref.ref(c))
        return c

    with Prefetch(load, list(range(5)), depth=1) as reader:
        for k, (_, handle) in enumerate(reader):
            handle.result()
            gc.collect()
            if k >= 2:
                assert all(r() is None for r in refs[: k - 1]), k  # every case before the previous one is gone
    gc.collect()
    assert sum(r() is not None for r in refs) <= 1
