"""A bounded producer: load the next cases in a background thread while the current one computes.

``for item, loaded in Prefetch(load, items, depth=1):`` yields the items in order with a handle whose
``result()`` returns ``load(item)`` or raises what it raised (so a case that cannot be read fails where
the caller handles that case's errors, and the batch goes on). At most ``depth`` cases are loaded or
being loaded ahead of the one the caller took last, so memory stays flat: with ``depth=1`` the current
case and the next one. :meth:`Prefetch.close` (also on leaving a ``with`` block, e.g. on Ctrl-C) stops
the producer after the load in progress, and waits for it.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Generic, Iterator, List, Optional, Sequence, Tuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Loaded(Generic[R]):
    """The outcome of one load: :meth:`result` waits for it, then returns its value or raises its error."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Optional[R] = None
        self._error: Optional[BaseException] = None

    def _set(self, value: Optional[R] = None, error: Optional[BaseException] = None) -> None:
        self._value, self._error = value, error
        self._done.set()

    def _forget(self) -> None:
        """Drop the loaded value (a whole case's images): the batch keeps nothing of a finished case."""
        self._value, self._error = None, None

    def result(self) -> R:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Prefetch(Generic[T, R]):
    """Iterate over ``(item, Loaded)`` with ``load(item)`` run up to ``depth`` items ahead in one thread.

    Each item is handed out as soon as the caller asks for it, its load perhaps still running: the
    caller's ``result()`` waits for it, so the caller measures the time it waited for the read.
    """

    def __init__(self, load: Callable[[T], R], items: Sequence[T], depth: int = 1,
                 name: str = "voxmmsd-prefetch") -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be at least 1, got {depth}")
        self._load = load
        self._items = list(items)
        self._handles: List[Loaded[R]] = [Loaded() for _ in self._items]
        self._room = threading.Semaphore(depth + 1)  # the item the caller holds and ``depth`` ahead of it
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._name = name

    def _produce(self) -> None:
        for item, handle in zip(self._items, self._handles):
            self._room.acquire()
            if self._stop.is_set():
                return
            try:
                handle._set(self._load(item))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer with its case
                handle._set(error=exc)

    def __iter__(self) -> Iterator[Tuple[T, "Loaded[R]"]]:
        if self._thread is None and self._items:
            self._thread = threading.Thread(target=self._produce, name=self._name, daemon=True)
            self._thread.start()
        for k, (item, handle) in enumerate(zip(self._items, self._handles)):
            if k:
                self._handles[k - 1]._forget()  # the caller is done with it: memory stays flat
                self._room.release()  # the caller moved on to this item: one more may be loaded ahead
            yield item, handle

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
