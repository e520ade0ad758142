"""A bounded producer: load the next cases in a background thread while the current one computes.

``for item, loaded in Prefetch(load, items, depth=1):`` yields the items in order with a handle whose
``result()`` returns ``load(item)`` or raises what it raised (so a case that cannot be read fails where
the caller handles that case's errors, and the batch goes on). At most ``depth`` cases are loaded or
being loaded ahead of the one the caller took last, so memory stays flat: with ``depth=1`` the current
case and the next one. :meth:`Prefetch.close` (also on leaving a ``with`` block, e.g. on Ctrl-C) stops
the producer after the load in progress, and waits for it.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Generic, Iterator, Optional, Sequence, Tuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Loaded(Generic[R]):
    """The outcome of one load: its value, or the exception it raised."""

    def __init__(self, value: Optional[R] = None, error: Optional[BaseException] = None) -> None:
        self._value, self._error = value, error

    def result(self) -> R:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Prefetch(Generic[T, R]):
    """Iterate over ``(item, Loaded)`` with ``load(item)`` run up to ``depth`` items ahead in one thread."""

    def __init__(self, load: Callable[[T], R], items: Sequence[T], depth: int = 1,
                 name: str = "voxmmsd-prefetch") -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be at least 1, got {depth}")
        self._load = load
        self._items = list(items)
        self._ready: "queue.Queue[Tuple[T, Loaded[R]]]" = queue.Queue()
        self._room = threading.Semaphore(depth)  # loads allowed ahead of the consumer
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._name = name

    def _produce(self) -> None:
        for item in self._items:
            self._room.acquire()
            if self._stop.is_set():
                return
            try:
                loaded: Loaded[R] = Loaded(self._load(item))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer with its case
                loaded = Loaded(error=exc)
            self._ready.put((item, loaded))

    def __iter__(self) -> Iterator[Tuple[T, "Loaded[R]"]]:
        if self._thread is None and self._items:
            self._thread = threading.Thread(target=self._produce, name=self._name, daemon=True)
            self._thread.start()
        for _ in self._items:
            item, loaded = self._ready.get()
            self._room.release()  # the consumer holds this one now: the next may be loaded
            yield item, loaded

    def close(self) -> None:
        """Stop loading further items; wait for the load in progress (if any) to end."""
        self._stop.set()
        self._room.release()  # wake a producer waiting for room
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "Prefetch[T, R]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
