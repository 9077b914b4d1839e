"""The dashboard's pipeline pages: real pipelines run into a SQLite store, served by uvicorn on
127.0.0.1, read in headless Chromium (the browser and page fixtures of test_dashboard: the browser
tests skip only where Chromium or playwright is absent, and fail on a console error or a dialog).
Set ``TIDAL_SCREENSHOTS=1`` to write the page to ``docs/screenshots/pipeline.png``."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_dashboard

from liveserver import serving
from tidal.engines.inline import InlineEngine
from tidal.pipelines import load_pipeline, run_pipeline
from tidal.tracking.server.app import create_app
from tidal.tracking.store import Store

SCREENSHOTS = Path(__file__).parents[3] / "docs" / "screenshots"
XSS_NAME = "<script>alert(1)</script>"

PACKAGE = """
import hashlib
import time
from pathlib import Path
from tidal import Processor
from tidal.sources.base import Item, Partition, Source

class Numbers(Source):
    # one partition per *.txt file of folder, named by its content; an item per number

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def partitions(self):
        found = []
        for path in sorted(Path(self.folder).glob("*.txt")):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
            found.append(Partition(f"{path.name}@{digest}", len(path.read_text().split()), str(path)))
        return found

    def read(self, partition):
        path = Path(partition.payload)
        for index, word in enumerate(path.read_text().split()):
            yield Item(f"{partition.id}#{index}", int(word), {"path": path.name, "index": index})

class Square(Processor):
    fields = {"square": int, "odd": bool, "parity": str}

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def process(self, batch):
        time.sleep(self.delay)
        return [{"square": item.data ** 2, "odd": item.data % 2 == 1, "parity": "odd" if item.data % 2 else "even"}
                for item in batch]

class Half(Processor):
    fields = {"half": float}

    def process(self, batch):
        return [{"half": item.data["square"] / 2} for item in batch]
"""


def pipeline_text(name: str, folder: Path, delay: float = 0.0, first: str = "numbers") -> str:
    """Numbers → square → (odd squares halved, totals per parity): a branch and a reduce."""
    return textwrap.dedent(f"""
        {{
          name: "{name}"
          steps: {{
            "{first}": {{source: {{"dashcount.Numbers": {{folder: "{folder}"}}}}}}
            square: {{from: "{first}", processor: {{"dashcount.Square": {{delay: {delay}}}}}}}
            odd: {{from: "square", where: "odd", processor: {{"dashcount.Half": {{}}}}}}
            totals: {{from: "square", group_by: "parity",
                      reduce: {{"tidal.reducers.Describe": {{fields: ["square"]}}}}}}
          }}
          imports: ["dashcount"]
        }}
    """)


@dataclass
class Pipelines:
    cold: str
    cached: str
    grown: str  # after a fifth file came: one new partition
    square_job: str
    nasty: str


def numbers(folder: Path, files: int, per_file: int = 10) -> Path:
    """``files`` files of ``per_file`` consecutive numbers."""
    folder.mkdir(exist_ok=True)
    for number in range(files):
        (folder / f"{number}.txt").write_text(" ".join(str(number * per_file + i) for i in range(per_file)))
    return folder


def run(path: Path, store: Store, home: Path) -> Any:
    return run_pipeline(load_pipeline(path), store=store, state_home=home, engine=InlineEngine())


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pipelines")
    (folder / "dashcount.py").write_text(PACKAGE)
    return folder


@pytest.fixture(scope="module")
def pipelines(store: Store, home: Path) -> Pipelines:
    path = home / "numbers.hjson"
    path.write_text(pipeline_text("numbers", numbers(home / "data", 4)))
    cold, cached = run(path, store, home), run(path, store, home)
    numbers(home / "data", 5)
    grown = run(path, store, home)
    nasty = home / "nasty.hjson"
    nasty.write_text(pipeline_text(XSS_NAME, numbers(home / "few", 1), first="<img src=x onerror=alert(2)>"))
    return Pipelines(cold.run_id, cached.run_id, grown.run_id, grown.steps[0].job_id, run(nasty, store, home).run_id)


@pytest.fixture(scope="module")
def server(store: Store, pipelines: Pipelines) -> Iterator[str]:
    with serving(create_app(store)) as live:
        yield live.url


# test_dashboard's fixtures: the SQLite store of `home` (TIDAL_* variables ignored), headless
# Chromium, and a page that fails the test on a console error or a dialog
store, browser, page = test_dashboard.store, test_dashboard.browser, test_dashboard.page


def get(server: str, path: str) -> httpx.Response:
    return httpx.get(server + path, timeout=10)


# ---- server-side ------------------------------------------------------------------------------

def test_the_list_shows_each_pipeline_once_with_its_latest_run(server: str, pipelines: Pipelines) -> None:
    page = get(server, "/pipelines")
    assert page.status_code == 200
    assert page.text.count(f'href="/pipelines/{pipelines.grown}"') == 1
    assert f'/pipelines/{pipelines.cold}"' not in page.text  # an earlier run of the same pipeline
    assert "3 ran" in page.text  # the latest run: a new partition in every step


def test_unknown_and_non_pipeline_runs_get_a_clear_404(server: str, store: Store, pipelines: Pipelines) -> None:
    missing = get(server, "/pipelines/nope")
    assert missing.status_code == 404 and "no pipeline run &#39;nope&#39;" in missing.text
    job_run = store.list_runs(job_id=pipelines.square_job, limit=1)[0]["id"]
    other = get(server, f"/pipelines/{job_run}")
    assert other.status_code == 404 and "is a job run, not a pipeline&#39;s" in other.text
    assert f"/runs/{job_run}" in other.text


def test_names_from_the_pipeline_file_are_escaped(server: str, pipelines: Pipelines) -> None:
    for path in ("/pipelines", f"/pipelines/{pipelines.nasty}"):
        text = get(server, path).text
        assert XSS_NAME not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


# ---- in the browser ---------------------------------------------------------------------------

def box(page: Any, step: str) -> dict[str, float]:
    return page.locator(f"svg.pipeline-graph g.step[data-step='{step}'] rect.box").bounding_box()  # type: ignore[no-any-return]


def test_the_graph_draws_each_step_right_of_the_step_it_reads(page: Any, pipelines: Pipelines) -> None:
    page.goto("/pipelines")
    page.click(f"a[href='/pipelines/{pipelines.grown}']")
    assert page.locator("svg.pipeline-graph g.step").count() == 4
    assert page.locator("svg.pipeline-graph path.edge").count() == 3
    numbers, square, odd, totals = (box(page, step) for step in ("numbers", "square", "odd", "totals"))
    assert numbers["x"] + numbers["width"] < square["x"] < odd["x"] == totals["x"]
    assert square["y"] == odd["y"] == numbers["y"] < totals["y"]  # the branch goes below
    statuses = page.locator("svg.pipeline-graph text.step-status").all_text_contents()
    assert statuses == ["listed", "ran", "ran", "ran"]
    if os.environ.get("TIDAL_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "pipeline.png"), full_page=True)


def test_each_step_shows_its_progress_cache_hits_and_why_it_ran(page: Any, pipelines: Pipelines) -> None:
    page.goto(f"/pipelines/{pipelines.grown}")
    square = page.locator("table.pipeline-steps tr[data-step='square']")
    assert square.locator("td.reasons").inner_text() == "1 of 5 partitions are new (new or changed inputs)"
    assert square.locator("td.hits").inner_text() == "4/5 partitions · 40/50 items"
    assert square.locator(".progress-percent").inner_text() == "100.0%"
    assert "10 processed · 0 failed" in square.inner_text()
    odd = page.locator("table.pipeline-steps tr[data-step='odd']")  # through `where`: 25 of the 50 rows
    assert odd.locator(".progress-percent").inner_text() == "100.0%" and "25 / 25 items" in odd.inner_text()
    assert page.locator("#pipeline-runs tbody tr").count() == 3
    page.click("svg.pipeline-graph g.step[data-step='square'] a")
    page.wait_for_url(f"**/jobs/{pipelines.square_job}")


def test_the_first_run_says_every_step_never_ran(page: Any, pipelines: Pipelines) -> None:
    page.goto(f"/pipelines/{pipelines.cold}")
    reasons = page.locator("table.pipeline-steps td.reasons").all_inner_texts()
    assert reasons[1:3] == ["never ran", "never ran"]
    page.goto(f"/pipelines/{pipelines.cached}")
    assert page.locator("svg.pipeline-graph text.step-status").all_text_contents() == [
        "listed", "cached", "cached", "cached"]
    square = page.locator("table.pipeline-steps tr[data-step='square']")
    assert square.locator("td.hits").inner_text() == "4/4 partitions · 40/40 items"
    assert square.locator("td.reasons").inner_text() == "unchanged: config, code, environment and inputs"


@pytest.mark.slow
def test_a_running_pipeline_page_follows_it_until_it_ends(page: Any, store: Store, home: Path) -> None:
    path = home / "slow.hjson"
    path.write_text(pipeline_text("slow", numbers(home / "slow", 6), delay=0.1))
    worker = threading.Thread(target=run, args=(path, store, home))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while not store.list_runs(tag="pipeline=slow"):
            assert time.monotonic() < deadline, "the pipeline did not start"
            time.sleep(0.05)
        run_id = store.list_runs(tag="pipeline=slow")[0]["id"]
        page.goto(f"/pipelines/{run_id}")
        assert page.locator(".live-dot").count() == 1
        page.wait_for_selector(".page-head .badge-completed", timeout=30_000)
        statuses = page.locator("svg.pipeline-graph text.step-status").all_text_contents()
        assert statuses == ["listed", "ran", "ran", "ran"]
        assert page.locator("table.pipeline-steps tr[data-step='square'] .progress-percent").inner_text() == "100.0%"
    finally:
        worker.join()
