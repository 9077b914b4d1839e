"""The dashboard at a million points, measured in headless Chromium, side by side with what it used to send.

A run with 1M metric points (4 keys of 250k; one spike) in the embedded store, served by uvicorn on
127.0.0.1, opened in Chromium (``/usr/bin/chromium`` + playwright). Prints:

- the run page: bytes over the wire (HTML, scripts and every request until the charts are drawn)
  and the time from navigation to the last chart drawn — beside the bytes and time of every point
  of the run, which the page used to embed (34.6 MB, 3.4 to 4.5 s to render in the issue);
- a hover redraw of the longest chart;
- a live tab: bytes per second received while a writer logs 4 keys at 200 points/s each and a
  console line every 0.1 s for ``--live-seconds`` — beside what the old page fetched per second
  (the whole page every 2.5 s and every metric point every 5 s), computed from measured sizes.

Targets: the page ≤ 1 s and ≤ 1 MB; a live tab ≤ 50 kB/s.

    python bench/dashboard.py [--points 1000000] [--live-seconds 20]
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tidal.tracking.server.app import create_app
from tidal.tracking.store import Batch, Store
from tidal.tracking.stores import open_store

CHROMIUM = "/usr/bin/chromium"
KEYS = ("train/loss", "train/accuracy", "val/loss", "lr")


def populate(store: Store, points: int, live: bool) -> str:
    run_id = uuid.uuid4().hex[:16]
    store.create_run({"id": run_id, "project": "bench", "name": f"{points:,} points", "kind": "script",
                      "status": "running" if live else "completed", "started_at": time.time() - 3600,
                      "host": socket.gethostname(), "pid": os.getpid(), "heartbeat_at": time.time()})
    per_key, now = points // len(KEYS), time.time()
    for key in KEYS:
        for start in range(0, per_key, 100_000):
            store.log_batch(run_id, Batch(uuid.uuid4().hex, metrics=[
                (key, step, 50.0 if step == per_key // 3 else math.exp(-step / per_key) + 0.01 * math.sin(step),
                 now - 3600 + step * 3600 / per_key) for step in range(start, min(per_key, start + 100_000))]))
    return run_id


@contextmanager
def serving(store: Store) -> Iterator[str]:
    import uvicorn

    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(store), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


class Traffic:
    """Bytes received by a page: every response's headers and body, as Chromium counts them."""

    def __init__(self, page: Any) -> None:
        self.requests: list[Any] = []
        page.on("requestfinished", lambda request: self.requests.append(request))

    def bytes(self) -> int:
        total = 0
        for request in self.requests:
            sizes = request.sizes()
            total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        return total


def page_load(browser: Any, url: str) -> tuple[int, float, float]:
    """(bytes, seconds to the last chart drawn, ms per hover redraw)."""
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    traffic = Traffic(page)
    page.goto(url)
    page.wait_for_function(f"document.querySelectorAll('figure.chart[data-rendered]').length === {len(KEYS)}")
    seconds = page.evaluate("performance.now()") / 1000
    redraw = page.evaluate("""() => { const chart = document.querySelector('figure.chart').tidalChart;
        chart.hover = {x: 200, y: 100}; const start = performance.now();
        for (let i = 0; i < 20; i++) chart.draw(); return (performance.now() - start) / 20; }""")
    page.wait_for_load_state("networkidle")
    size = traffic.bytes()
    page.close()
    return size, seconds, redraw


def live_tab(browser: Any, url: str, store: Store, run_id: str, seconds: float) -> float:
    """Bytes per second a live page receives while the run logs."""
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(url)
    page.wait_for_function(f"document.querySelectorAll('figure.chart[data-rendered]').length === {len(KEYS)}")
    traffic = Traffic(page)
    step, started = 10_000_000, time.monotonic()
    while time.monotonic() - started < seconds:
        now = time.time()
        store.log_batch(run_id, Batch(uuid.uuid4().hex, heartbeat=now, logs=[("stdout", f"step {step}\n", now)],
                                      metrics=[(key, step + i, 1.0 / (i + 1), now) for key in KEYS for i in range(20)]))
        step += 20
        page.wait_for_timeout(100)  # the sync API hears the page's events only while called
    received = traffic.bytes() / (time.monotonic() - started)
    page.close()
    return received


def everything(url: str, run_id: str) -> tuple[int, float]:
    """What the page used to embed: every point of the run (bytes, seconds to fetch)."""
    started = time.perf_counter()
    response = httpx.get(f"{url}/api/v1/runs/{run_id}/metrics", timeout=120)
    return len(response.content), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--live-seconds", type=float, default=20.0)
    arguments = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("pip install playwright (and apt-get install chromium) to run this benchmark")
    for name in ("TIDAL_TRACKING_URI", "TIDAL_ARTIFACTS", "TIDAL_TOKEN"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory() as home:
        store = open_store(None, home=Path(home))
        started = time.perf_counter()
        big = populate(store, arguments.points, live=False)
        live = populate(store, arguments.points // 10, live=True)
        elapsed = time.perf_counter() - started
        print(f"stored {arguments.points:,} + {arguments.points // 10:,} points in {elapsed:.1f} s")
        with serving(store) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            size, seconds, redraw = page_load(browser, f"{url}/runs/{big}")
            all_bytes, all_seconds = everything(url, big)
            page_bytes = len(httpx.get(f"{url}/runs/{live}").content)
            live_all = len(httpx.get(f"{url}/api/v1/runs/{live}/metrics").content)
            rate = live_tab(browser, f"{url}/runs/{live}", store, live, arguments.live_seconds)
            browser.close()
        store.close()
    old_rate = page_bytes / 2.5 + live_all / 5.0
    print(f"{'':34}{'tidal':>16}{'before (all points)':>24}{'target':>10}")
    print(f"{'run page, bytes over the wire':34}{size / 1e6:>13.2f} MB{all_bytes / 1e6:>21.1f} MB{'≤ 1 MB':>10}")
    print(f"{'run page, load to charts drawn':34}{seconds:>14.2f} s{all_seconds:>19.2f} s *{'≤ 1 s':>10}")
    print(f"{'hover redraw':34}{redraw:>13.1f} ms{'243 ms (issue)':>24}")
    print(f"{'live tab (' + format(arguments.points // 10, ',') + ' points, logging)':34}"
          f"{rate / 1e3:>11.1f} kB/s{old_rate / 1e3:>19.1f} kB/s{'≤ 50 kB/s':>10}")
    print("* before: only fetching every point as JSON, not yet drawing them")


if __name__ == "__main__":
    main()
