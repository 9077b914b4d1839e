"""The dashboard in a real browser: uvicorn on 127.0.0.1 over a SQLite store, headless Chromium.

One server and one browser serve the whole module (starting Chromium costs about a second). The
server-side tests need no browser; the browser tests skip only where Chromium or playwright is
absent. The dashboard itself is imported plainly: if it cannot be imported, these tests fail.
Set ``TIDAL_SCREENSHOTS=1`` to write the main pages to ``docs/screenshots/*.png``.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from liveserver import serving
from tidal.config.job import JobConfig, parse_job
from tidal.engines.inline import InlineEngine
from tidal.jobs.progress import ProgressReporter, Snapshot
from tidal.jobs.runner import run_job
from tidal.tracking.capture import environment
from tidal.tracking.server.app import create_app
from tidal.tracking.store import Batch, Store
from tidal.tracking.stores import open_store

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parents[3] / "docs" / "screenshots"
ENGINE_HELPERS = Path(__file__).parents[2] / "engines"  # the Square processor of the engine suite
XSS_NAME = "<script>alert(1)</script>"
LONG_TOKEN = "s3cret-s3cret-s3cret"


# ---- data: realistic runs logged through the Store API, and real jobs -------------------------

@dataclass
class Runs:
    baseline: str
    tuned: str
    failed: str
    live: str
    lost: str
    xss: str
    job_completed: str
    job_interrupted: str
    job_run: str


def scene(step: int, inferred: bool) -> bytes:
    """A small street scene (sky, road, two people walking); ``inferred`` draws detection boxes."""
    height, width = 180, 320
    sky = np.linspace([120, 170, 230], [200, 225, 245], height // 2).astype(np.uint8)
    picture = np.zeros((height, width, 3), np.uint8)
    picture[: height // 2] = sky[:, None, :]
    picture[height // 2 :] = (96, 104, 96)
    image = Image.fromarray(picture)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 128, width, 140), fill=(230, 230, 210))
    for number, color in enumerate([(200, 60, 60), (60, 80, 200)]):
        x = 40 + number * 150 + step // 10
        draw.ellipse((x, 70, x + 16, 86), fill=(235, 200, 170))
        draw.rectangle((x - 2, 86, x + 18, 126), fill=color)
        if inferred:
            draw.rectangle((x - 8, 64, x + 24, 132), outline=(40, 255, 80), width=2)
            draw.text((x - 8, 52), f"person {0.97 - number * 0.05:.2f}", fill=(40, 255, 80))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


GIT_DIFF = """diff --git a/configs/train.yaml b/configs/train.yaml
index 3f2a1c4..8b9d0e2 100644
--- a/configs/train.yaml
+++ b/configs/train.yaml
@@ -3,7 +3,7 @@ MODEL:
   BACKBONE: R50-FPN
 SOLVER:
-  BASE_LR: 0.02
+  BASE_LR: 0.01
   MAX_ITER: 300
   IMS_PER_BATCH: 16
"""


def training_run(store: Store, name: str, lr: float, optimizer: str, started: float, env: dict[str, Any]) -> str:
    run_id = uuid.uuid4().hex[:16]
    config = {"model": {"backbone": "R50-FPN", "roi_heads": {"score_thresh": 0.5}},
              "solver": {"base_lr": lr, "max_iter": 300, "optimizer": optimizer}}
    store.create_run({"id": run_id, "project": "detectron2", "name": name, "kind": "script",
                      "status": "completed", "started_at": started, "ended_at": started + 754.0,
                      "host": "gpu-box-3", "pid": 4242, "config": config, "environment": env,
                      "argv": ["train.py", "--config", "configs/train.yaml"],
                      "git": {"commit": "9f3c2e1a7b5d4c3e2f1a0b9c8d7e6f5a4b3c2d1e", "branch": "main",
                              "remote": "git@github.com:example/detector.git", "dirty": True,
                              "untracked": ["notes.md"], "diff": GIT_DIFF}})
    metrics: list[tuple[str, int | None, float, float]] = []
    for step in range(0, 301, 10):
        loss = 2.4 * math.exp(-step / (90 if optimizer == "sgd" else 60)) + 0.15
        metrics += [("loss", step, math.nan if (optimizer == "sgd" and step == 150) else loss, started + step),
                    ("accuracy", step, 1.0 - loss / 3, started + step),
                    ("train/lr", step, lr * (0.1 if step > 200 else 1.0), started + step)]
    if optimizer != "sgd":
        metrics.append(("loss", 305, math.inf, started + 305))
    for second in range(0, 750, 30):
        metrics += [("system/cpu_percent", None, 180 + 40 * math.sin(second / 60), started + second),
                    ("system/rss_mb", None, 2100 + second * 0.8, started + second)]
    logs = [("stdout", f"[iter {step:>4}] loss={2.4 * math.exp(-step / 90) + 0.15:.4f} lr={lr}\n", started + step)
            for step in range(0, 301, 20)]
    logs.insert(3, ("stderr", "UserWarning: torch.meshgrid: pass the indexing argument\n", started + 45))
    images = []
    for step in (100, 200, 300):
        for key, inferred in (("raw", False), ("inferred", True)):
            artifact = f"images/{key}/{step}.png"
            store.put_artifact(run_id, artifact, scene(step, inferred))
            images.append({"key": key, "step": step, "artifact": artifact, "width": 320, "height": 180,
                           "timestamp": started + step})
    store.log_batch(run_id, Batch(
        batch_id=uuid.uuid4().hex, params={"lr": lr, "batch_size": 16, "optimizer": optimizer, "backbone": "R50-FPN"},
        tags={"team": "vision", "baseline": ""} if optimizer == "sgd" else {"team": "vision"},
        metrics=metrics, logs=logs, images=images))
    store.put_artifact(run_id, "model_final.pkl", b"\x80\x04weights" * 4000)
    store.put_artifact(run_id, "metrics.json", b'{"AP": 38.2, "AP50": 59.1}')
    return run_id


def plain_run(store: Store, name: str, project: str, status: str, started: float, **fields: Any) -> str:
    run_id = uuid.uuid4().hex[:16]
    store.create_run({"id": run_id, "project": project, "name": name, "kind": "script", "status": status,
                      "started_at": started, **fields})
    return run_id


def squares_job(name: str, n: int, per_partition: int, **processor: Any) -> JobConfig:
    if str(ENGINE_HELPERS) not in sys.path:
        sys.path.insert(0, str(ENGINE_HELPERS))
    return parse_job({"name": name, "source": {"tidal.sources.Range": {"n": n, "per_partition": per_partition}},
                      "processor": {"enginehelpers.Square": processor}, "imports": ["enginehelpers"]}, "test")


class StopAfter(ProgressReporter):
    """Presses Ctrl-C (raises KeyboardInterrupt) after ``batches`` batches: an interrupted job."""

    def __init__(self, batches: int) -> None:
        self.left = batches

    def update(self, snapshot: Snapshot) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def populate(store: Store, home: Path) -> Runs:
    now = time.time()
    env = environment()
    baseline = training_run(store, "faster-rcnn-baseline", 0.02, "sgd", now - 7200, env)
    tuned = training_run(store, "faster-rcnn-tuned", 0.01, "adamw", now - 5400, env)
    failed = plain_run(store, "pose-eval", "pose", "failed", now - 3600, ended_at=now - 3550, host="laptop",
                       error="Traceback (most recent call last):\n  File \"eval.py\", line 12\n"
                             "RuntimeError: CUDA out of memory")
    live = plain_run(store, "live-inference", "detectron2", "running", now - 60, host=socket.gethostname(),
                     pid=os.getpid(), heartbeat_at=now)
    store.log_batch(live, Batch(batch_id=uuid.uuid4().hex, logs=[
        ("stdout", "loading model_final.pkl\n", now - 59), ("stderr", "warning: slow disk\n", now - 58)]))
    lost = plain_run(store, "nightly-export", "detectron2", "running", now - 86400, host="gpu-box-7",
                     pid=1234, heartbeat_at=now - 80000)
    xss = plain_run(store, XSS_NAME, "pose", "completed", now - 1800, ended_at=now - 1790)
    store.log_batch(xss, Batch(batch_id=uuid.uuid4().hex, params={"note": "<b>not bold</b>"},
                               tags={"<i>tag</i>": "x"}))
    completed_job = squares_job("squares", 120, 20, fail_on=[7, 55])
    run_job(completed_job, store=store, state_home=home, engine=InlineEngine())
    interrupted_job = squares_job("squares-large", 400, 25)
    with pytest.raises(KeyboardInterrupt):
        run_job(interrupted_job, store=store, state_home=home, engine=InlineEngine(), progress=StopAfter(20))
    job_run = next(run["id"] for run in store.list_runs() if run["kind"] == "job" and run["name"] == "squares")
    return Runs(baseline, tuned, failed, live, lost, xss, completed_job.job_id, interrupted_job.job_id, job_run)


# ---- fixtures: store, server, browser -------------------------------------------------------

@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard")


@pytest.fixture(scope="module")
def store(home: Path) -> Iterator[Store]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("TIDAL_TRACKING_URI", "TIDAL_ARTIFACTS", "TIDAL_TOKEN"):
            patch.delenv(name, raising=False)
        opened = open_store(None, home=home)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def runs(store: Store, home: Path) -> Runs:
    return populate(store, home)


@pytest.fixture(scope="module")
def server(store: Store, home: Path, runs: Runs) -> Iterator[str]:
    """The REST API and the dashboard, as ``tidal ui`` serves them."""
    with serving(create_app(store)) as live:
        yield live.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright to test the dashboard")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}; apt-get install chromium to run the browser tests")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh page; the test fails if the page logs a console error or throws."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=server)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    opened.on("pageerror", lambda error: problems.append(str(error)))

    def refuse(dialog: Any) -> None:  # an alert() would mean injected script ran
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    opened.on("dialog", refuse)
    yield opened
    context.close()
    assert problems == []


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("TIDAL_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def get(server: str, path: str) -> httpx.Response:
    return httpx.get(server + path, timeout=10)


# ---- server-side behaviour ------------------------------------------------------------------

def test_runs_list_filters_on_the_server(server: str, runs: Runs) -> None:
    everything = get(server, "/").text
    for status in ("running", "completed", "failed", "interrupted", "lost"):
        assert f'badge-{status}"' in everything
    by_project = get(server, "/?project=pose").text
    assert "pose-eval" in by_project and "faster-rcnn-baseline" not in by_project
    assert "faster-rcnn" not in get(server, "/?status=failed").text
    tagged = get(server, "/?tag=baseline").text
    assert "faster-rcnn-baseline" in tagged and "faster-rcnn-tuned" not in tagged
    found = get(server, "/?q=tuned").text
    assert "faster-rcnn-tuned" in found and "faster-rcnn-baseline" not in found
    assert get(server, "/?status=bogus").status_code == 400


def test_bad_input_gets_a_clear_page_not_a_500(server: str, runs: Runs) -> None:
    missing = get(server, "/runs/no-such-run")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "no run &#39;no-such-run&#39;" in missing.text
    assert get(server, "/jobs/no-such-job").status_code == 404
    assert get(server, f"/compare?ids={runs.baseline},nope").status_code == 404
    assert get(server, "/compare").status_code == 400
    assert get(server, "/static/../dashboard.py").status_code == 404


def test_names_and_values_are_escaped(server: str, runs: Runs) -> None:
    for path in ("/", f"/runs/{runs.xss}", f"/compare?ids={runs.xss},{runs.baseline}"):
        html = get(server, path).text
        assert XSS_NAME not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>not bold</b>" not in get(server, f"/runs/{runs.xss}").text


# ---- in the browser -------------------------------------------------------------------------

def test_runs_list_sorts_filters_and_shows_escaped_names(page: Any, runs: Runs) -> None:
    page.goto("/")
    assert page.locator(f"tr[data-run-id='{runs.xss}'] td a").inner_text() == XSS_NAME
    names = page.locator("#runs-table tbody tr td:nth-child(2) a")
    page.click("#runs-table th:has-text('Name')")
    ascending = names.all_inner_texts()
    assert ascending == sorted(ascending, key=str.lower)
    page.click("#runs-table th:has-text('Name')")
    assert names.all_inner_texts() == ascending[::-1]
    page.fill("input[name=q]", "faster")
    assert page.locator("#runs-table tbody tr:visible").count() == 2


def test_run_page_charts_images_git_and_environment(page: Any, runs: Runs, store: Store) -> None:
    page.goto(f"/runs/{runs.baseline}")
    page.wait_for_selector("figure.chart[data-rendered='1']")
    charts = page.locator("figure.chart")
    assert charts.count() == 5  # loss, accuracy, train/lr, system/cpu_percent, system/rss_mb
    assert page.locator("section#metrics h2").all_inner_texts() == ["Metrics", "train", "System resources"]
    inked = page.evaluate("""() => Array.from(document.querySelectorAll('figure.chart canvas')).map(canvas => {
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0; for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
        return inked; })""")
    assert all(count > 500 for count in inked), inked
    loss = page.locator("figure.chart[data-key='loss']")
    assert "1 NaN" in loss.locator(".chart-note").inner_text()
    box = loss.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    tooltip = loss.locator(".chart-tooltip")
    assert tooltip.is_visible() and re.match(r"step \d+", tooltip.inner_text())
    assert "loss: " in tooltip.inner_text()
    loss.locator("input[data-log-scale]").check()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    assert re.match(r"step 2\d\d", tooltip.inner_text())

    images = page.locator("table.gallery img")
    assert images.count() == 6
    assert page.locator("table.gallery thead th").all_inner_texts() == ["step", "raw", "inferred"]
    page.wait_for_function("() => Array.from(document.querySelectorAll('table.gallery img'))"
                           ".every(img => img.complete && img.naturalWidth === 320)")
    assert page.locator("pre.diff span.add").inner_text() == "+  BASE_LR: 0.01"
    assert page.locator("pre.diff span.del").inner_text() == "-  BASE_LR: 0.02"
    page.click("details.packages summary")
    assert page.locator("#package-list li:has-text('pytest==')").count() == 1
    assert "UserWarning" in page.locator("#log-tail .stderr").first.inner_text()

    link = page.locator("table.artifacts a:has-text('model_final.pkl')")
    download = page.request.get(link.get_attribute("href"))
    expected = next(a for a in store.artifacts(runs.baseline) if a["name"] == "model_final.pkl")
    assert hashlib.sha256(download.body()).hexdigest() == expected["sha256"]
    assert expected["sha256"][:16] in page.locator("table.artifacts").inner_text()
    screenshot(page, "run")


def test_select_two_runs_and_compare_them(page: Any, runs: Runs) -> None:
    page.goto("/")
    assert page.locator("#compare-button").is_disabled()
    page.check(f"tr[data-run-id='{runs.baseline}'] input[name=run]")
    page.check(f"tr[data-run-id='{runs.tuned}'] input[name=run]")
    assert page.locator("#selection-count").inner_text() == "2 selected"
    screenshot(page, "runs")
    page.click("#compare-button")
    page.wait_for_url(re.compile(r"/compare\?ids="))
    assert page.locator("#params-diff tr[data-key='lr']").get_attribute("class") == "differs"
    assert page.locator("#params-diff tr[data-key='batch_size']").get_attribute("class") == "same"
    assert page.locator("#config-diff tr[data-key='solver.optimizer']").get_attribute("class") == "differs"
    page.wait_for_selector("figure.chart[data-rendered='1']")
    screenshot(page, "compare")
    legend = page.locator("figure.chart[data-key='loss'] .chart-legend button")
    assert legend.count() == 2
    legend.first.click()
    assert legend.first.get_attribute("class") == "off"
    box = page.locator("figure.chart[data-key='accuracy'] canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    tooltip = page.locator("figure.chart[data-key='accuracy'] .chart-tooltip")
    assert tooltip.locator(".row").count() == 2


def test_log_tail_shows_lines_logged_after_the_page_loaded(page: Any, runs: Runs, store: Store) -> None:
    page.goto("/")
    page.click(f"tr[data-run-id='{runs.live}'] td a")
    page.wait_for_selector("#log-tail[data-live='1']")
    assert "loading model_final.pkl" in page.locator("#log-tail").inner_text()
    store.log_batch(runs.live, Batch(batch_id=uuid.uuid4().hex, heartbeat=time.time(), logs=[
        ("stdout", "frame 1000/5000 done\n", time.time()), ("stderr", "late warning\n", time.time())]))
    page.wait_for_function("() => document.getElementById('log-tail').textContent.includes('late warning')",
                           timeout=10_000)
    assert page.locator("#log-tail .stderr").last.inner_text() == "late warning\n"


def test_job_page_shows_progress_failures_and_its_runs(page: Any, runs: Runs, store: Store) -> None:
    jobs = {job["id"]: job for job in store.list_jobs()}
    interrupted = jobs[runs.job_interrupted]
    percent = 100 * (interrupted["done"] + interrupted["failed"]) / interrupted["total_items"]
    assert 0 < percent < 100
    page.goto("/jobs")
    page.click(f"a[href='/jobs/{runs.job_interrupted}']")
    assert page.locator(".progress-percent").inner_text() == f"{percent:.1f}%"
    width = page.evaluate("() => document.querySelector('.progress-done').style.width")
    assert width == f"{percent:.2f}%"
    assert page.locator(".badge").first.inner_text() == "interrupted"

    page.goto(f"/jobs/{runs.job_completed}")
    assert page.locator(".progress-percent").inner_text() == "100.0%"
    assert page.locator(".count-failed").inner_text() == "2"
    failures = page.locator("table.failures")
    assert failures.locator("code.item-key").count() == 2
    assert "refusing item 7" in failures.inner_text()
    screenshot(page, "job")
    page.click(f"a[href='/runs/{runs.job_run}']")
    assert page.locator(f"a[href='/jobs/{runs.job_completed}']").count() == 1


@pytest.mark.slow
def test_run_page_follows_a_run_until_it_ends(page: Any, store: Store) -> None:
    run_id = plain_run(store, "finishing", "detectron2", "running", time.time(), host=socket.gethostname(),
                       pid=os.getpid(), heartbeat_at=time.time())
    page.goto(f"/runs/{run_id}")
    assert page.locator(".live-dot").count() == 1
    store.log_batch(run_id, Batch(batch_id=uuid.uuid4().hex, logs=[("stdout", "all frames done\n", time.time())]))
    store.update_run(run_id, {"status": "completed", "ended_at": time.time()})
    page.wait_for_selector("#run-head .badge-completed", timeout=10_000)
    page.wait_for_function("() => document.getElementById('log-tail').textContent.includes('all frames done')")
    assert page.locator(".live-dot").count() == 0


@pytest.mark.slow
def test_job_page_refreshes_itself_while_the_job_runs(page: Any, home: Path, store: Store) -> None:
    job = squares_job("squares-slow", 120, 20, delay=0.15)
    worker = threading.Thread(target=run_job, args=(job,),
                              kwargs={"store": store, "state_home": home, "engine": InlineEngine()})
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while job_status(store, job.job_id) != "running":
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
        page.goto(f"/jobs/{job.job_id}")
        first = page.locator(".progress-percent").inner_text()
        page.wait_for_selector(".page-head .badge-completed", timeout=20_000)
        assert page.locator(".progress-percent").inner_text() == "100.0%" != first
    finally:
        worker.join()


def job_status(store: Store, job_id: str) -> str | None:
    return next((job["status"] for job in store.list_jobs() if job["id"] == job_id), None)


def test_a_server_with_a_token_asks_for_it(store: Store, home: Path, runs: Runs) -> None:
    with serving(create_app(store, token=LONG_TOKEN)) as live:
        url = live.url
        for path in ("/", f"/runs/{runs.baseline}", "/jobs"):
            refused = httpx.get(url + path)
            assert refused.status_code == 401 and 'name="token"' in refused.text
            assert runs.baseline not in refused.text
        assert httpx.get(url + "/static/tidal.css").status_code == 200  # the login page's style
        signed_in = httpx.get(url + "/", cookies={"tidal_token": LONG_TOKEN})
        assert signed_in.status_code == 200 and runs.baseline in signed_in.text
        assert httpx.get(url + "/", headers={"Authorization": f"Bearer {LONG_TOKEN}"}).status_code == 200


# ---- a dashboard that scales: sampled series, zoom, live deltas ---------------------------------

def long_run(store: Store, points: int, live: bool = False) -> str:
    """A run with ``points`` loss points (one spike of 50 at step 1234) and a short lr series."""
    run_id = plain_run(store, "long", "scale", "running" if live else "completed", time.time() - 600,
                       **({"host": socket.gethostname(), "pid": os.getpid(), "heartbeat_at": time.time()} if live
                          else {"ended_at": time.time()}))
    now = time.time()
    loss = [("loss", step, 50.0 if step == 1234 else 1.0 / (step + 1), now) for step in range(points)]
    store.log_batch(run_id, Batch(uuid.uuid4().hex, metrics=[*loss, ("lr", 0, 0.1, now)]))
    return run_id


def test_a_long_series_is_sent_sampled_with_its_spike_and_zooms_to_full_resolution(page: Any, store: Store) -> None:
    run_id = long_run(store, 20_000)
    page.goto(f"/runs/{run_id}")
    page.wait_for_selector("figure.chart[data-key='loss'][data-rendered='1']")
    shown = page.evaluate("() => document.querySelector(\"figure.chart[data-key='loss']\").tidalChart.series[0].points")
    assert len(shown) <= 3 * 500 and max(point["y"] for point in shown) == 50.0
    loss = page.locator("figure.chart[data-key='loss']")
    assert "drag to zoom" in loss.locator(".chart-note").inner_text()
    box = loss.locator("canvas").bounding_box()
    plot_left, plot_width = box["x"] + 56, box["width"] - 56 - 14  # the chart's padding (charts.js PAD)
    y = box["y"] + box["height"] / 2
    page.mouse.move(plot_left + plot_width * 0.05, y)
    page.mouse.down()
    page.mouse.move(plot_left + plot_width * 0.07, y, steps=4)
    page.mouse.up()
    page.wait_for_selector("figure.chart[data-key='loss'][data-zoomed='full']")
    steps = page.evaluate("() => document.querySelector(\"figure.chart[data-key='loss']\")"
                          ".tidalChart.visibleSeries()[0].points.map(point => point.step)")
    assert len(steps) > 100 and steps == list(range(steps[0], steps[0] + len(steps)))  # every point in the range
    loss.locator("canvas").dblclick()
    assert loss.get_attribute("data-zoomed") is None


@pytest.mark.slow
def test_a_live_page_fetches_new_points_and_new_keys_only(page: Any, store: Store) -> None:
    run_id = long_run(store, 5_000, live=True)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"/runs/{run_id}")
    page.wait_for_selector("figure.chart[data-key='loss'][data-rendered='1']")
    now = time.time()
    store.log_batch(run_id, Batch(uuid.uuid4().hex, heartbeat=now, metrics=[
        ("loss", 5000, 0.001, now), ("val/accuracy", 1, 0.9, now)]))
    page.wait_for_selector("figure.chart[data-key='val/accuracy'][data-rendered='1']", timeout=15_000)
    assert page.locator(".charts[data-group='val'] figure.chart").count() == 1
    polls = [url for url in requests if "/metrics/sampled?" in url]
    assert polls and all("after=" in url for url in polls)
    assert not any(url.rstrip("/").endswith(f"/runs/{run_id}") for url in requests[1:])  # never the whole page again
    steps = page.evaluate("() => document.querySelector(\"figure.chart[data-key='loss']\")"
                          ".tidalChart.series[0].points.map(point => point.step)")
    assert steps[-1] == 5000
    store.update_run(run_id, {"status": "completed", "ended_at": time.time()})
