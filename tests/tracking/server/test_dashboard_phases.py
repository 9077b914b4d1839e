"""A run's phases (``tidal train`` records each cycle as one, in ``stats.phases``) drawn on its
charts: runs logged through the Run API into a SQLite store, served by uvicorn on 127.0.0.1 and
read in headless Chromium (test_dashboard's browser and page fixtures: the browser tests skip only
where Chromium or playwright is absent, and fail on a console error or a dialog). Where a phase
starts is checked through the chart itself: the tooltip at a band's left edge names that step."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_dashboard

from liveserver import serving
from tidal.tracking.run import Run
from tidal.tracking.server.app import create_app
from tidal.tracking.store import Store

XSS_NAME = "<script>alert(1)</script>"
LAST_STEP = 345
CYCLES = [{"cycle": 0, "name": "cycle 0", "start_step": 0, "end_step": 230},
          {"cycle": 1, "name": "cycle 1", "start_step": 230, "end_step": LAST_STEP}]


@dataclass
class Runs:
    phased: str
    plain: str
    odd: str


def training(store: Store, name: str, phases: list[Any] | None, last_step: int = LAST_STEP,
             finish: bool = True) -> Run:
    """A training as ``tidal train`` logs it: loss every 5 steps, the cycle at each cycle's start,
    validation accuracy per epoch, a system chart over time (no steps), the phases in its stats."""
    run = Run(store, project="phases", name=name, kind="train", capture=False)
    for step in range(0, last_step + 1, 5):
        run.log_metrics({"train/loss": 2.0 / (1 + step / 20), "lr": 1e-3 if step < 230 else 2e-4}, step=step)
    for step in range(23, last_step + 1, 23):
        run.log_metric("val/accuracy", 0.9 + step / 5000, step=step)
    for phase in phases or []:
        if isinstance(phase, dict) and "cycle" in phase:
            run.log_metric("cycle", phase["cycle"], step=phase["start_step"])
    run.log_metric("system/cpu_percent", 150.0)
    if phases is not None:
        run.set_stats({"phases": phases})
    run.flush()
    if finish:
        run.finish(stats={"phases": phases} if phases is not None else None)
    return run


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("phases")


@pytest.fixture(scope="module")
def runs(store: Store) -> Runs:
    odd = [{"name": XSS_NAME, "start_step": 100}, {"name": "no start"}, "junk", {"start_step": "7"}]
    return Runs(training(store, "two-cycles", CYCLES).id, training(store, "no-phases", None).id,
                training(store, "odd-phases", odd).id)


@pytest.fixture(scope="module")
def server(store: Store, runs: Runs) -> Iterator[str]:
    with serving(create_app(store)) as live:
        yield live.url


# test_dashboard's fixtures: the SQLite store of `home` (TIDAL_* variables ignored), headless
# Chromium, and a page that fails the test on a console error or a dialog
store, browser, page = test_dashboard.store, test_dashboard.browser, test_dashboard.page


def open_run(page: Any, run_id: str) -> None:
    page.goto(f"/runs/{run_id}")
    page.wait_for_selector("figure.chart[data-key='system/cpu_percent'][data-rendered='1']")


def bands(page: Any, key: str) -> Any:
    return page.locator(f"figure.chart[data-key='{key}'] .chart-phase")


def tooltip_at(page: Any, key: str, x: float) -> str:
    """The tooltip's title with the mouse at page pixel ``x`` in the middle of chart ``key``."""
    chart = page.locator(f"figure.chart[data-key='{key}']")
    box = chart.locator("canvas").bounding_box()
    page.mouse.move(x, box["y"] + box["height"] / 2)
    return str(chart.locator(".chart-tooltip > div").first.inner_text())


def before_230(title: str) -> bool:
    """A tooltip a few pixels left of cycle 1's start: an earlier step, in cycle 0."""
    found = re.fullmatch(r"step (\d+) · cycle 0", title)
    return found is not None and 200 <= int(found.group(1)) < 230


def plot_edges(page: Any, key: str) -> tuple[float, float]:
    box = page.locator(f"figure.chart[data-key='{key}'] canvas").bounding_box()
    return box["x"] + 56, box["x"] + box["width"] - 14  # the chart's padding (charts.js PAD)


# ---- server-side ------------------------------------------------------------------------------

def test_the_page_embeds_the_phases_only_of_a_run_that_has_them(server: str, runs: Runs) -> None:
    phased = httpx.get(f"{server}/runs/{runs.phased}", timeout=10).text
    assert 'id="phases-data"' in phased and '"start_step": 230' in phased
    assert 'id="phases-data"' not in httpx.get(f"{server}/runs/{runs.plain}", timeout=10).text
    odd = httpx.get(f"{server}/runs/{runs.odd}", timeout=10).text
    assert XSS_NAME not in odd and "\\u003cscript\\u003e" in odd


# ---- in the browser -------------------------------------------------------------------------

def test_every_step_chart_shows_each_cycle_from_its_first_step(page: Any, runs: Runs) -> None:
    open_run(page, runs.phased)
    for key in ("train/loss", "lr", "val/accuracy", "cycle"):
        assert bands(page, key).all_inner_texts() == ["cycle 0", "cycle 1"], key
        assert bands(page, key).evaluate_all("found => found.map(band => band.dataset.phaseStart)") == ["0", "230"]
    assert bands(page, "system/cpu_percent").count() == 0  # its x axis is time: steps cannot be placed
    first, second = (bands(page, "train/loss").nth(index).bounding_box() for index in (0, 1))
    left, right = plot_edges(page, "train/loss")
    assert first["x"] == pytest.approx(left, abs=1) and second["x"] + second["width"] == pytest.approx(right, abs=1)
    assert first["x"] + first["width"] == pytest.approx(second["x"], abs=1)
    assert tooltip_at(page, "train/loss", second["x"]) == "step 230 · cycle 1"
    assert before_230(tooltip_at(page, "train/loss", second["x"] - 12))


def test_the_bands_follow_a_zoom_and_its_reset(page: Any, runs: Runs) -> None:
    open_run(page, runs.phased)
    left, right = plot_edges(page, "train/loss")
    box = page.locator("figure.chart[data-key='train/loss'] canvas").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(left + (right - left) * 150 / LAST_STEP, y)  # drag from step 150 to step 300
    page.mouse.down()
    page.mouse.move(left + (right - left) * 300 / LAST_STEP, y, steps=4)
    page.mouse.up()
    first, second = (bands(page, "train/loss").nth(index) for index in (0, 1))
    assert "cut" in str(first.get_attribute("class"))  # begins before the zoomed range: no start line
    assert first.bounding_box()["x"] == pytest.approx(left, abs=1)
    zoomed = second.bounding_box()
    assert zoomed["x"] + zoomed["width"] == pytest.approx(right, abs=1)
    assert zoomed["x"] < left + (right - left) * 0.6  # 230 lies about half way between 150 and 300
    assert tooltip_at(page, "train/loss", zoomed["x"]) == "step 230 · cycle 1"
    assert before_230(tooltip_at(page, "train/loss", zoomed["x"] - 8))
    page.locator("figure.chart[data-key='train/loss'] canvas").dblclick()
    assert "cut" not in str(first.get_attribute("class"))
    assert second.bounding_box()["x"] == pytest.approx(left + (right - left) * 230 / LAST_STEP, abs=1.5)


def test_a_run_without_phases_shows_none(page: Any, runs: Runs) -> None:
    open_run(page, runs.plain)
    assert page.locator(".chart-phase").count() == 0
    left, right = plot_edges(page, "train/loss")
    assert tooltip_at(page, "train/loss", (left + right) / 2).startswith("step ")
    assert "·" not in tooltip_at(page, "train/loss", (left + right) / 2)


def test_odd_phases_are_skipped_and_names_are_text(page: Any, runs: Runs) -> None:
    open_run(page, runs.odd)  # the page fixture fails the test if the name ran as script
    assert bands(page, "train/loss").all_inner_texts() == [XSS_NAME]
    left, right = plot_edges(page, "train/loss")
    band = bands(page, "train/loss").first.bounding_box()
    assert band["x"] == pytest.approx(left + (right - left) * 100 / LAST_STEP, abs=1)
    assert band["x"] + band["width"] == pytest.approx(right, abs=1)  # no end: open to the last point


@pytest.mark.slow
def test_a_live_page_draws_a_cycle_that_begins_after_it_loaded(page: Any, store: Store) -> None:
    run = training(store, "live", [{"cycle": 0, "name": "cycle 0", "start_step": 0}], last_step=100, finish=False)
    try:
        open_run(page, run.id)
        assert bands(page, "train/loss").all_inner_texts() == ["cycle 0"]
        run.log_metrics({"train/loss": 0.1, "cycle": 1}, step=100)
        run.log_metric("train/loss", 0.05, step=200)
        run.set_stats({"phases": [{"cycle": 0, "name": "cycle 0", "start_step": 0, "end_step": 100},
                                  {"cycle": 1, "name": "cycle 1", "start_step": 100}]})
        run.flush()
        page.wait_for_selector("figure.chart[data-key='train/loss'] .chart-phase[data-phase-start='100']",
                               timeout=15_000)
        assert bands(page, "train/loss").all_inner_texts() == ["cycle 0", "cycle 1"]
        assert bands(page, "train/loss").first.get_attribute("data-phase-end") == "100"
    finally:
        run.finish()
