"""Dynamic batching inside a model worker: items of several requests, one ``process()`` call.

Batches count items, not requests: an image is one item, a video decoded frame by frame is
one item per frame, so a 300-frame video alone spans several batches of ``max_items``, and
ten small JSON requests that arrive together share one.

A batch is taken as soon as the processing thread is free and either it is full or its first
item has waited ``max_wait`` seconds. With ``max_wait = 0`` nothing waits on purpose, yet
batching still happens where it pays: requests that arrive while a batch is being processed
queue up and leave together as the next batch (continuous batching), so a lone request never
pays for a timer and a burst is processed in few calls.

Thread-safe: the worker's reader thread adds requests, its processing thread takes batches.

Example::

    batcher = Batcher(max_items=32, max_wait=0.005)
    batcher.add("r1", [item_a, item_b])
    pieces = batcher.next_batch()                      # [Piece("r1", 0, item_a), Piece("r1", 1, ...)]
    [finished] = batcher.complete(pieces, results)     # Finished("r1", [result_a, result_b])
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Piece:
    """One item of one request, with its position in the request."""

    request_id: str
    index: int
    item: Any
    arrived: float = 0.0


@dataclass(slots=True)
class Finished:
    """A request whose items are all processed: its results in order, or cancelled."""

    request_id: str
    results: list[Any]
    cancelled: bool = False


@dataclass(slots=True)
class _Request:
    results: list[Any]
    queued: int
    in_flight: int = 0
    cancelled: bool = False


class Batcher:
    """Queues requests' items and hands them out in batches of at most ``max_items``."""

    def __init__(self, max_items: int, max_wait: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_items = max(1, max_items)
        self.max_wait = max(0.0, max_wait)
        self.clock = clock
        self._queue: deque[Piece] = deque()
        self._requests: dict[str, _Request] = {}
        self._ready = threading.Condition()
        self._closed = False

    def add(self, request_id: str, items: list[Any]) -> None:
        """Queue a request's items (at least one) in order."""
        if not items:
            raise ValueError(f"request {request_id} has no items; answer it without batching")
        now = self.clock()
        with self._ready:
            self._requests[request_id] = _Request([None] * len(items), len(items))
            self._queue.extend(Piece(request_id, index, item, now) for index, item in enumerate(items))
            self._ready.notify()

    def next_batch(self) -> list[Piece] | None:
        """Block until a batch is due and return it; None once closed and drained."""
        with self._ready:
            while True:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return None
                if self._wait_for_more():
                    return self._take()

    def _wait_for_more(self) -> bool:
        """Wait (lock held) while the batch may still grow; False if its items were cancelled."""
        if self.max_wait > 0:
            deadline = self._queue[0].arrived + self.max_wait
            while self._queue and len(self._queue) < self.max_items and not self._closed:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    break
                self._ready.wait(remaining)
        return bool(self._queue)

    def _take(self) -> list[Piece]:
        count = min(self.max_items, len(self._queue))
        pieces = [self._queue.popleft() for _ in range(count)]
        for piece in pieces:
            request = self._requests[piece.request_id]
            request.queued -= 1
            request.in_flight += 1
        return pieces

    def complete(self, pieces: list[Piece], results: list[Any]) -> list[Finished]:
        """Record a batch's results; return the requests this batch finished."""
        finished = []
        with self._ready:
            for piece, result in zip(pieces, results, strict=True):
                request = self._requests.get(piece.request_id)
                if request is None:  # failed meanwhile
                    continue
                request.in_flight -= 1
                request.results[piece.index] = result
                if request.queued == 0 and request.in_flight == 0:
                    del self._requests[piece.request_id]
                    finished.append(Finished(piece.request_id, request.results, request.cancelled))
        return finished

    def fail(self, request_id: str) -> None:
        """Forget a request whose processing failed: its queued items are dropped."""
        with self._ready:
            if self._requests.pop(request_id, None) is not None:
                self._drop(request_id)

    def cancel(self, request_id: str) -> bool:
        """Drop a request's queued items. True when it is gone now; False when items of it are
        being processed (it finishes, cancelled, with that batch) or it is unknown."""
        with self._ready:
            request = self._requests.get(request_id)
            if request is None:
                return False
            self._drop(request_id)
            request.queued = 0
            request.cancelled = True
            if request.in_flight == 0:
                del self._requests[request_id]
                return True
            return False

    def _drop(self, request_id: str) -> None:
        self._queue = deque(piece for piece in self._queue if piece.request_id != request_id)
        self._ready.notify()

    def close(self, drop: bool = False) -> None:
        """No more requests: ``next_batch`` returns what is queued (nothing with ``drop``), then None."""
        with self._ready:
            self._closed = True
            if drop:
                self._queue.clear()
            self._ready.notify_all()

    def queued_items(self) -> int:
        with self._ready:
            return len(self._queue)
