"""The web dashboard: server-rendered pages over a Store and the jobs ledger.

Pages (HTML, Jinja2 with autoescape; small hand-written JavaScript, no front-end build):

| path | what |
| --- | --- |
| ``/`` | runs: filter by project, status, tag and text (query params), sort, select to compare |
| ``/runs/{id}`` | one run: params, config, charts (phases shaded), images, live logs, artifacts, git, environment |
| ``/runs/{id}/head`` | the run page's head alone: what a live page refreshes (not the whole page) |
| ``/compare?ids=a,b`` | params and config side by side (differences highlighted), overlaid metric charts |
| ``/jobs``, ``/jobs/{id}`` | batch jobs: progress, throughput, ETA, failures with their errors and item keys |
| ``/pipelines`` | pipelines, each with its latest run (``tidal run`` records one: ``tidal.pipelines.record``) |
| ``/pipelines/{run id}`` | one pipeline run: its graph drawn as SVG, each step's progress, cache hits, why it ran |
| ``/static/{name}`` | the dashboard's CSS and JavaScript (package data) |

The pages' JavaScript reads the REST API of ``tidal.tracking.server.api`` (``/api/v1/runs/{id}/logs``,
``/metrics/sampled`` and ``/artifacts/{name}``) for live updates, zooms, images and downloads. Metric
series are embedded cut to CHART_BUCKETS (min and max per bucket, by ``Store.sampled_metrics``): a
1M-point run's page stays a few hundred kB; a live page then fetches only points logged since.

Example::

    app = FastAPI()
    app.include_router(dashboard.router(open_store()))
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tidal.errors import JobNotFound, RunNotFound
from tidal.pipelines.drawing import pipeline_summaries, pipeline_view
from tidal.pipelines.record import PIPELINE_KIND, PIPELINE_TAG
from tidal.status import RunStatus
from tidal.tracking.server.auth import is_authorized
from tidal.tracking.store import Store, flatten

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml", ".png": "image/png"}
LOG_TAIL_CHUNKS = 2000  # console chunks rendered with the page; older ones are summarised as a count
LOG_PAGE = 1000  # chunks read per store call while looking for the tail
MAX_COMPARED_RUNS = 12
CHART_BUCKETS = 500  # about a chart's width in pixels; a zoom asks again with the real width
MAX_IMAGE_STEPS = 60  # the latest steps of the gallery; older images stay among the artifacts
MAX_FAILURES_SHOWN = 50
JOB_STATUSES = ("running", "completed", "failed", "interrupted")
PIPELINE_RUNS = 500  # the newest pipeline runs the pipelines list reads
EARLIER_PIPELINE_RUNS = 20


def router(store: Store) -> APIRouter:
    """The dashboard's routes over ``store`` (its runs and jobs).

    Example::

        app.include_router(router(open_store()))
    """
    pages = Dashboard(store)
    routes = APIRouter(include_in_schema=False)
    for path, endpoint in (("/", pages.runs), ("/runs/{run_id}", pages.run), ("/runs/{run_id}/head", pages.run_head),
                           ("/compare", pages.compare), ("/jobs", pages.jobs), ("/jobs/{job_id}", pages.job),
                           ("/pipelines", pages.pipelines), ("/pipelines/{run_id}", pages.pipeline)):
        routes.add_api_route(path, pages.gated(endpoint), methods=["GET"], response_class=HTMLResponse)
    # named "static": the app then mounts no StaticFiles of its own at /static
    routes.add_api_route("/static/{name}", pages.static, methods=["GET"], name="static")
    return routes


class Dashboard:
    """The page handlers; each reads the store, shapes a view and renders one template."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.templates = _template_environment()
        self.static_files = {path.name: path for path in STATIC.iterdir() if path.suffix in STATIC_TYPES}
        # a version per file in its URL: browsers may cache forever, an upgrade still reloads it
        self.static_versions = {name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
                                for name, path in self.static_files.items()}

    def gated(self, endpoint: Callable[..., HTMLResponse]) -> Callable[..., HTMLResponse]:
        """The page, or a login page when the app has a token and the request does not carry it
        (the same token as the REST API: a bearer header or the cookie ``/login`` sets)."""

        @functools.wraps(endpoint)
        def page(request: Request, **arguments: Any) -> HTMLResponse:
            if not is_authorized(request):
                return self.render(request, "login.html", status_code=401)
            return endpoint(request, **arguments)

        return page

    def runs(self, request: Request, project: str | None = None, status: str | None = None,
             tag: str | None = None, q: str | None = None) -> HTMLResponse:
        filters = {"project": project or "", "status": status or "", "tag": tag or "", "q": q or ""}
        if status and status not in {s.value for s in RunStatus}:
            return self.error(request, 400, f"unknown status {status!r}",
                              f"use one of: {', '.join(s.value for s in RunStatus)}")
        runs = self.store.list_runs(project=project or None, status=status or None, tag=tag or None,
                                    search=q or None)
        return self.render(request, "runs.html", runs=[_run_view(run) for run in runs], filters=filters,
                           projects=self.store.projects(), statuses=[s.value for s in RunStatus])

    def run(self, request: Request, run_id: str) -> HTMLResponse:
        try:
            run = self.store.get_run(run_id)
        except RunNotFound:
            return self.error(request, 404, f"no run {run_id!r}",
                              "it may have been deleted, or the link is wrong: pick one from the runs list")
        sample = self.store.sampled_metrics(run_id, buckets=CHART_BUCKETS)
        metrics = sample["metrics"]
        logs, last_log, skipped = _log_tail(self.store, run_id)
        image_keys, image_steps, older_steps = _gallery(self.store.images(run_id))
        view = _run_view(run)
        return self.render(
            request, "run.html", run=view, live=view["live"], chart_groups=_chart_groups(list(metrics)),
            metrics=_metrics_json(metrics), metrics_cursor=sample["last"], sampled_keys=sample["sampled"],
            phases=_phases(run), logs=logs, last_log=last_log, skipped_logs=skipped,
            image_keys=image_keys, image_steps=image_steps, older_image_steps=older_steps,
            artifacts=self.store.artifacts(run_id), diff=_diff_lines((run.get("git") or {}).get("diff") or ""),
            environment=_environment_rows(run.get("environment") or {}),
            packages=_packages((run.get("environment") or {}).get("packages")))

    def run_head(self, request: Request, run_id: str) -> HTMLResponse:
        try:
            run = self.store.get_run(run_id)
        except RunNotFound:
            return self.error(request, 404, f"no run {run_id!r}", "it may have been deleted")
        return self.render(request, "_run_head.html", run=_run_view(run))

    def compare(self, request: Request, ids: str = "") -> HTMLResponse:
        wanted = list(dict.fromkeys(part.strip() for part in ids.split(",") if part.strip()))
        if not wanted:
            return self.error(request, 400, "no runs to compare",
                              "select two or more runs in the runs list, then press Compare")
        if len(wanted) > MAX_COMPARED_RUNS:
            return self.error(request, 400, f"{len(wanted)} runs is too many to compare",
                              f"pick at most {MAX_COMPARED_RUNS}")
        runs, missing = self._runs(wanted)
        if missing:
            return self.error(request, 404, f"no run {', '.join(map(repr, missing))}",
                              "remove it from ids= or pick the runs again from the runs list")
        series = _compare_series(runs, {run["id"]: self.store.sampled_metrics(run["id"], CHART_BUCKETS)["metrics"]
                                        for run in runs})
        return self.render(
            request, "compare.html", runs=[_run_view(run) for run in runs],
            params=_diff_rows([run.get("params") or {} for run in runs]),
            config=_diff_rows([flatten(run.get("config") or {}) for run in runs]),
            chart_groups=_chart_groups(list(series)), series=series)

    def _runs(self, run_ids: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        found, missing = [], []
        for run_id in run_ids:
            try:
                found.append(self.store.get_run(run_id))
            except RunNotFound:
                missing.append(run_id)
        return found, missing

    def jobs(self, request: Request) -> HTMLResponse:
        jobs = [job | {"progress": _progress(job["total_items"], job["done"], job["failed"])}
                for job in self.store.list_jobs()]
        live = any(job["status"] == "running" for job in jobs)
        return self.render(request, "jobs.html", jobs=jobs, store=self.store.describe(), live=live)

    def job(self, request: Request, job_id: str) -> HTMLResponse:
        try:
            detail = _job_detail(self.store, job_id)
        except JobNotFound:
            return self.error(request, 404, f"no job {job_id!r}",
                              f"`tidal jobs ls` lists the jobs; this dashboard reads {self.store.describe()}")
        return self.render(request, "job.html", job=detail, live=detail["status"] == "running")

    def pipelines(self, request: Request) -> HTMLResponse:
        found = pipeline_summaries(self.store.list_runs(tag=PIPELINE_TAG, limit=PIPELINE_RUNS))
        live = any(row["latest"]["status"] == "running" for row in found)
        return self.render(request, "pipelines.html", pipelines=found, store=self.store.describe(), live=live)

    def pipeline(self, request: Request, run_id: str) -> HTMLResponse:
        try:
            run = self.store.get_run(run_id)
        except RunNotFound:
            return self.error(request, 404, f"no pipeline run {run_id!r}",
                              "it may have been deleted, or the link is wrong: pick one from the pipelines list")
        if run.get("kind") != PIPELINE_KIND:
            return self.error(request, 404, f"run {run_id!r} is a {run.get('kind')} run, not a pipeline's",
                              f"its page is {request.scope.get('root_path', '')}/runs/{run_id}; pipelines "
                              "(tidal run PIPELINE) are listed under Pipelines")
        view = pipeline_view(run, self._step_jobs(run))
        earlier = [found for found in self.store.list_runs(tag=f"{PIPELINE_TAG}={view.name}",
                                                           limit=EARLIER_PIPELINE_RUNS)
                   if ((found.get("config") or {}).get("pipeline") or {}).get("file") == view.file]
        return self.render(request, "pipeline.html", run=_run_view(run), pipeline=view, earlier=earlier,
                           live=run.get("status") == RunStatus.RUNNING.value)

    def _step_jobs(self, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The jobs of a pipeline run's steps that the store holds, with their progress now."""
        steps = ((run.get("config") or {}).get("pipeline") or {}).get("steps") or []
        jobs = {}
        for job_id in [step.get("job_id") for step in steps if step.get("job_id")]:
            if self.store.has_job(job_id):
                job = self.store.get_job(job_id, max_failures=0)
                # a step reading through `where` counts its input's rows, more than it keeps: once
                # its job completed, what it settled is all there was
                total = job["done"] + job["failed"] if job["status"] == "completed" else job["total_items"]
                jobs[job_id] = job | {"progress": _progress(total, job["done"], job["failed"])}
        return jobs

    def static(self, name: str) -> Response:
        path = self.static_files.get(name)
        if path is None:
            return Response(f"no static file {name!r}", status_code=404, media_type="text/plain")
        return Response(path.read_bytes(), media_type=STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=86400"})

    def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        page = self.templates.get_template(template).render(
            root=root, request_path=request.url.path, now=time.time(),
            static=lambda name: f"{root}/static/{name}?v={self.static_versions.get(name, '')}",
            artifact_url=lambda run_id, name: f"{root}/api/v1/runs/{quote(run_id, safe='')}/artifacts/"
                                              f"{quote(name, safe='/')}",
            **context)
        return HTMLResponse(page, status_code=status_code)

    def error(self, request: Request, status_code: int, message: str, hint: str) -> HTMLResponse:
        return self.render(request, "error.html", status_code=status_code, code=status_code,
                           message=message, hint=hint)


def _template_environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(iso=_iso, clock=_clock, duration=_duration, filesize=_filesize,
                               pretty=_pretty_json, value=_value, rate=_rate)
    return environment


# ---- shaping runs -------------------------------------------------------------------------------

def _run_view(run: dict[str, Any]) -> dict[str, Any]:
    """A run with its duration (so far, while running) and whether the page should stay live."""
    started, ended = run.get("started_at"), run.get("ended_at")
    live = run.get("status") == RunStatus.RUNNING.value
    end = ended if ended is not None else (time.time() if live else None)
    duration = end - started if started is not None and end is not None else None
    return run | {"duration": duration, "live": live}


def _phases(run: dict[str, Any]) -> list[Any]:
    """The run's phases, ``stats.phases`` (``tidal train`` records each cycle as one: ``{"name",
    "start_step", "end_step"}``), for the charts to shade. Passed as logged: charts.js checks each
    entry, the same way for this page's data and for a live page's refetch of the run."""
    stats = run.get("stats")
    phases = stats.get("phases") if isinstance(stats, dict) else None
    return phases if isinstance(phases, list) else []


def _log_tail(store: Store, run_id: str) -> tuple[list[dict[str, Any]], int, int]:
    """The last LOG_TAIL_CHUNKS console chunks, the id of the last one, and how many came before."""
    tail: deque[dict[str, Any]] = deque(maxlen=LOG_TAIL_CHUNKS)
    after, seen = 0, 0
    while True:
        page = store.logs(run_id, after=after, limit=LOG_PAGE)
        tail.extend(page)
        seen += len(page)
        if len(page) < LOG_PAGE:
            break
        after = page[-1]["id"]
    last = tail[-1]["id"] if tail else 0
    return list(tail), last, seen - len(tail)


def _gallery(images: list[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, dict[str, list[Any]]]], int]:
    """Image keys (columns, in the order first logged: "raw" before "inferred") and, per step (rows,
    the latest MAX_IMAGE_STEPS), the images of each key."""
    keys = list(dict.fromkeys(image["key"] for image in images))
    by_step: dict[Any, dict[str, list[Any]]] = {}
    for image in images:
        by_step.setdefault(image["step"], {}).setdefault(image["key"], []).append(image)
    steps = sorted(by_step, key=lambda step: (step is not None, step or 0))
    shown = steps[-MAX_IMAGE_STEPS:]
    return keys, [(step, by_step[step]) for step in shown], len(steps) - len(shown)


def _chart_groups(keys: list[str]) -> list[tuple[str, list[str]]]:
    """Metric keys grouped by their prefix ("train/loss" → "train"); plain keys first, system/* last."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        prefix = key.split("/", 1)[0] if "/" in key else ""
        groups.setdefault(prefix, []).append(key)
    order = sorted(groups, key=lambda prefix: (prefix == "system", prefix != "", prefix))
    titles = {"": "Metrics", "system": "System resources"}
    return [(titles.get(prefix, prefix), groups[prefix]) for prefix in order]


def _finite_or_name(value: float | None) -> float | str:
    """JSON has no NaN or infinity: they travel as the strings the REST API uses."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _metrics_json(metrics: dict[str, list[tuple[int | None, float, float]]]) -> dict[str, list[list[Any]]]:
    return {key: [[step, _finite_or_name(value), stamp] for step, value, stamp in points]
            for key, points in metrics.items()}


def _compare_series(runs: list[dict[str, Any]],
                    metrics: dict[str, dict[str, list[tuple[int | None, float, float]]]]) -> dict[str, list[Any]]:
    """Per metric key, one series per run that logged it: {run, name, points}."""
    series: dict[str, list[Any]] = {}
    for index, run in enumerate(runs):
        for key, points in _metrics_json(metrics[run["id"]]).items():
            series.setdefault(key, []).append({"run": index, "name": _run_label(run), "points": points})
    return series


def _run_label(run: dict[str, Any]) -> str:
    return f"{run.get('name') or 'run'} · {str(run['id'])[:8]}"


def _diff_rows(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of keys, one value per document (None: absent), and whether the values differ."""
    keys = sorted({key for document in documents for key in document})
    rows = []
    for key in keys:
        values = [document.get(key) if key in document else None for document in documents]
        present = [key in document for document in documents]
        encoded = {json.dumps(value, sort_keys=True, default=str) if here else "\0absent"
                   for value, here in zip(values, present, strict=True)}
        rows.append({"key": key, "values": values, "present": present, "differs": len(encoded) > 1})
    return rows


def _diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff as (css class, line): added, removed, hunk and file header lines told apart."""
    lines = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "diff --git", "index ", "new file", "deleted file")):
            kind = "meta"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        lines.append((kind, line))
    return lines


_ENVIRONMENT_LABELS = {"python": "Python", "platform": "OS", "cpu": "CPU", "cpu_count": "CPU cores",
                       "memory_bytes": "Memory", "gpus": "GPU", "hostname": "Host",
                       "executable": "Interpreter", "cwd": "Working folder"}


def _environment_rows(environment: dict[str, Any]) -> list[tuple[str, str]]:
    """Label and text per captured fact, the known ones first; packages are listed apart."""
    rows = []
    keys = [key for key in _ENVIRONMENT_LABELS if key in environment]
    keys += sorted(key for key in environment if key not in _ENVIRONMENT_LABELS and key != "packages")
    for key in keys:
        value = environment[key]
        if key == "memory_bytes" and isinstance(value, int | float):
            text = _filesize(value)
        elif key == "gpus" and isinstance(value, list):
            text = ", ".join(map(str, value)) or "none found"
        else:
            text = _value(value)
        rows.append((_ENVIRONMENT_LABELS.get(key, key), text))
    return rows


def _packages(packages: Any) -> list[str]:
    if isinstance(packages, dict):
        return [f"{name}=={version}" for name, version in sorted(packages.items(), key=lambda p: p[0].lower())]
    if isinstance(packages, list):
        return [str(package) for package in packages]
    return []


# ---- shaping jobs -------------------------------------------------------------------------------

def _job_detail(store: Store, job_id: str) -> dict[str, Any]:
    """The job with its progress and the live figures of its newest run; JobNotFound when unknown."""
    detail = store.get_job(job_id, max_failures=MAX_FAILURES_SHOWN)
    latest = detail["runs"][0] if detail["runs"] else {}
    stats = latest.get("stats") or {}
    running = detail["status"] == "running"
    return detail | {
        "progress": _progress(detail["total_items"], detail["done"], detail["failed"]),
        "items_per_second": stats.get("items_per_second"),
        "eta_seconds": stats.get("eta_seconds") if running else None,
        "latest_run": latest,
    }


def _progress(total: int | None, done: int, failed: int) -> dict[str, Any]:
    """Completed (done + failed) out of total, and the bar's done and failed widths in percent."""
    completed = done + failed
    if not total:
        return {"total": total, "completed": completed, "percent": None, "done_width": 0.0, "failed_width": 0.0}
    return {"total": total, "completed": completed, "percent": min(100.0, 100.0 * completed / total),
            "done_width": min(100.0, 100.0 * done / total), "failed_width": min(100.0, 100.0 * failed / total)}


# ---- template filters ---------------------------------------------------------------------------

def _iso(stamp: float | None) -> str:
    moment = _moment(stamp)
    return moment.isoformat() if moment is not None else ""


def _clock(stamp: float | None) -> str:
    moment = _moment(stamp)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "—"


def _moment(stamp: float | None) -> datetime | None:
    """A timestamp as a date, or None when missing or out of range (a run written by a buggy client)."""
    try:
        return datetime.fromtimestamp(stamp, UTC) if stamp is not None else None
    except (OverflowError, OSError, ValueError):
        return None


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours < 48 else f"{hours // 24}d {hours % 24}h"


def _filesize(size: float | None) -> str:
    if size is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"  # not reached


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def _value(value: Any) -> str:
    """A param or fact as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
