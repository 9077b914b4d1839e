"""The worker's batcher: items of several requests in batches of max_items, in order."""

from __future__ import annotations

import threading
import time

from tidal.serve.batching import Batcher


def test_batches_count_items_and_split_a_long_request() -> None:
    batcher = Batcher(max_items=4)
    batcher.add("video", [f"frame{i}" for i in range(6)])
    batcher.add("image", ["picture"])
    first = batcher.next_batch()
    assert first is not None and [p.item for p in first] == ["frame0", "frame1", "frame2", "frame3"]
    assert batcher.complete(first, [0, 1, 2, 3]) == []  # the video is not finished yet
    second = batcher.next_batch()
    assert second is not None and [(p.request_id, p.index) for p in second] == [("video", 4), ("video", 5),
                                                                                 ("image", 0)]
    finished = batcher.complete(second, [4, 5, "p"])
    assert [(f.request_id, f.results) for f in finished] == [("video", [0, 1, 2, 3, 4, 5]), ("image", ["p"])]


def test_without_max_wait_a_batch_leaves_at_once() -> None:
    batcher = Batcher(max_items=8, max_wait=0)
    batcher.add("a", [1])
    started = time.monotonic()
    batch = batcher.next_batch()
    assert batch is not None and len(batch) == 1 and time.monotonic() - started < 0.15


def test_max_wait_holds_the_batch_until_full_or_due() -> None:
    batcher = Batcher(max_items=3, max_wait=1.0)  # long enough that a loaded machine runs the timer within it
    batcher.add("a", [1])
    threading.Timer(0.05, batcher.add, ("b", [2, 3])).start()
    started = time.monotonic()
    batch = batcher.next_batch()
    assert batch is not None and [p.item for p in batch] == [1, 2, 3]  # full before the deadline
    assert time.monotonic() - started < 0.9
    batcher.add("c", [4])
    started = time.monotonic()
    alone = batcher.next_batch()
    assert alone is not None and [p.item for p in alone] == [4] and time.monotonic() - started >= 0.99


def test_cancel_and_fail_drop_a_requests_items() -> None:
    batcher = Batcher(max_items=2)
    batcher.add("a", [1, 2, 3])
    batcher.add("b", [4])
    batch = batcher.next_batch()
    assert batch is not None and [p.item for p in batch] == [1, 2]
    assert batcher.cancel("a") is False  # two of its items are being processed
    [finished] = batcher.complete(batch, ["x", "y"])
    assert finished.request_id == "a" and finished.cancelled
    batcher.add("c", [5])
    assert batcher.cancel("c") is True
    batcher.fail("b")
    assert batcher.queued_items() == 0


def test_close_lets_the_queue_drain_then_ends() -> None:
    batcher = Batcher(max_items=8)
    batcher.add("a", [1])
    batcher.close()
    assert batcher.next_batch() is not None
    assert batcher.next_batch() is None
    waiting = Batcher(max_items=8)
    threading.Timer(0.05, waiting.close).start()
    assert waiting.next_batch() is None
