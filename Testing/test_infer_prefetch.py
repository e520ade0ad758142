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
    started = []
    taken = [0]
    ahead = []

    def load(x: int) -> int:
        started.append(x)
        ahead.append(len(started) - taken[0])  # loads begun that the consumer has not taken yet
        return x

    with Prefetch(load, list(range(8)), depth=depth) as cases:
        for item, loaded in cases:
            taken[0] += 1
            assert loaded.result() == item
            time.sleep(0.02)  # the "compute": the producer runs ahead meanwhile
    assert 1 <= max(ahead) <= depth  # memory stays flat: the current case and at most ``depth`` more


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
