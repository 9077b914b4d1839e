"""The HTTP store: a tidal server's client, used when ``TIDAL_TRACKING_URI`` is an http(s) URL.

Every :class:`~tidal.tracking.store.Store` method is one request to the server's REST API
(``tidal.server.app``) over a persistent ``httpx.Client`` with the bearer token of
``TIDAL_TOKEN``. Connection errors and 502/503/504 answers are retried with exponential backoff
(5 tries over about 8 s by default). Retrying is safe: a batch carries its ``batch_id`` (the
server applies it once) and a run's id is chosen here, so a create whose answer was lost comes
back as 409 "already exists" on its retry, which counts as done.

Example::

    store = HTTPStore("http://tracking.lab:8765", token=os.environ["TIDAL_TOKEN"])
    store.log_batch(run_id, Batch("a1b2", metrics=[("loss", 10, 0.3, time.time())]))

The wire format: JSON, with NaN and infinities as the strings "NaN", "Infinity", "-Infinity".
"""

from __future__ import annotations

import io
import json
import math
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from tidal.errors import (
    ArtifactTooLarge,
    ConfigError,
    RequestTooLarge,
    StoreError,
    TidalError,
    TokenRefused,
    UsageError,
    error_by_name,
)
from tidal.tracking.artifacts import normalize_name, validate_run_id
from tidal.tracking.delivery import halves, retries_allowed, rows
from tidal.tracking.store import Archived, Batch, Store, check_status
from tidal.types import JobId

if TYPE_CHECKING:
    import httpx

    from tidal.jobs.ledger import Ledger

API_PREFIX = "/api/v1"
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_BATCH_BYTES = 4 * 2**20  # a batch's request body; a server's limit is 16 MiB by default
JSON_HEADERS = {"Content-Type": "application/json"}
UPLOAD_CHUNK = 1024 * 1024
RUNS_PAGE = 1000  # runs per list request; more are read page by page


def encode_non_finite(value: Any) -> Any:
    """``value`` with every NaN/±inf float replaced by "NaN", "Infinity" or "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: encode_non_finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode_non_finite(item) for item in value]
    return value


def decode_float(value: Any) -> Any:
    """A float back from the wire: "NaN", "Infinity" and "-Infinity" become floats again."""
    return NON_FINITE.get(value, value) if isinstance(value, str) else value


class HTTPStore(Store):
    """A Store that is a tidal server at ``url`` (``http(s)://host:port``).

    ``retries`` tries per call, waiting ``backoff``, then twice as long each time; ``timeout``
    seconds per request (connecting: at most 5). Nothing is contacted before the first call.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0, retries: int = 5,
                 backoff: float = 0.5) -> None:
        try:
            import httpx
        except ImportError as error:
            raise ConfigError(f"logging to {url} needs httpx: pip install httpx") from error
        self.url = url.rstrip("/")
        self.token = token
        self.retries = max(1, retries)
        self.backoff = backoff
        headers = {"User-Agent": "tidal-httpstore"} | ({"Authorization": f"Bearer {token}"} if token else {})
        self.client = httpx.Client(base_url=self.url + API_PREFIX + "/", headers=headers,
                                   timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        self._httpx = httpx

    def __repr__(self) -> str:
        return f"HTTPStore({self.url!r})"

    # -- runs --------------------------------------------------------------------------------

    def create_run(self, run: dict[str, Any]) -> None:
        if not run.get("id"):
            raise UsageError("a run needs an 'id' (chosen by the client, so a retried create is safe)")
        self._call("POST", "runs", json_body=run, creating=True)

    def update_run(self, run_id: str, fields: dict[str, Any]) -> None:
        self._call("PATCH", f"runs/{_segment(run_id)}", json_body=fields)

    def log_batch(self, run_id: str, batch: Batch) -> None:
        """Sent in parts that fit a request: over ``MAX_BATCH_BYTES`` of JSON, or answered 413 by
        a server with a smaller limit, a batch is cut in halves (ids derived from its own, so a
        part sent twice is applied once); a single row still too large raises RequestTooLarge."""
        payload = _batch_payload(batch)
        if len(payload) > MAX_BATCH_BYTES and rows(batch) > 1:
            for half in halves(batch):
                self.log_batch(run_id, half)
            return
        try:
            self._call("POST", f"runs/{_segment(run_id)}/batches", body=lambda: payload, headers=JSON_HEADERS)
        except RequestTooLarge:
            if rows(batch) <= 1:
                raise
            for half in halves(batch):
                self.log_batch(run_id, half)

    def get_run(self, run_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"runs/{_segment(run_id)}").json())

    def list_runs(self, project: str | None = None, status: str | None = None, tag: str | None = None,
                  search: str | None = None, limit: int = 500, job_id: str | None = None, *,
                  offset: int = 0, id_prefix: str | None = None, where: str | None = None,
                  sort: str | None = None, archived: Archived = "exclude") -> list[dict[str, Any]]:
        """Read page by page (the server answers at most RUNS_PAGE runs a request)."""
        query = {"project": project, "status": check_status(status), "tag": tag, "search": search,
                 "job_id": job_id, "id_prefix": id_prefix, "where": where, "sort": sort, "archived": archived}
        runs: list[dict[str, Any]] = []
        while len(runs) < limit:
            page = {"limit": min(RUNS_PAGE, limit - len(runs)), "offset": offset + len(runs)}
            found = self._call("GET", "runs", params={k: v for k, v in (query | page).items() if v is not None}).json()
            runs += found["runs"]
            if found.get("next_offset") is None:
                break
        return runs

    def projects(self) -> list[str]:
        return cast(list[str], self._call("GET", "projects").json()["projects"])

    # -- run management and sampled metrics (the dashboard's and the CLI's) --------------------

    def delete_run(self, run_id: str) -> None:
        self._call("DELETE", f"runs/{_segment(run_id)}")

    def sampled_metrics(self, run_id: str, buckets: int = 1000, keys: list[str] | None = None,
                        start: float | None = None, end: float | None = None, axis: str | None = None,
                        after: int = 0) -> dict[str, Any]:
        query = {"buckets": buckets, "keys": ",".join(keys) if keys else None, "start": start, "end": end,
                 "axis": axis, "after": after or None}
        found = self._call("GET", f"runs/{_segment(run_id)}/metrics/sampled",
                           params={k: v for k, v in query.items() if v is not None}).json()
        found["metrics"] = {key: [(step, decode_float(value), stamp) for step, value, stamp in points]
                            for key, points in found["metrics"].items()}
        return cast(dict[str, Any], found)

    # -- what runs logged --------------------------------------------------------------------

    def metrics(self, run_id: str, keys: list[str] | None = None) -> dict[str, list[tuple[int | None, float, float]]]:
        params = {"keys": ",".join(keys)} if keys else None
        found = self._call("GET", f"runs/{_segment(run_id)}/metrics", params=params).json()["metrics"]
        return {key: [(step, decode_float(value), stamp) for step, value, stamp in points]
                for key, points in found.items()}

    def logs(self, run_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        found = self._call("GET", f"runs/{_segment(run_id)}/logs", params={"after": after, "limit": limit})
        return cast(list[dict[str, Any]], found.json()["logs"])

    def images(self, run_id: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("GET", f"runs/{_segment(run_id)}/images").json()["images"])

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        found = self._call("GET", f"runs/{_segment(run_id)}/artifacts").json()["artifacts"]
        return cast(list[dict[str, Any]], found)

    # -- artifacts ---------------------------------------------------------------------------

    def put_artifact(self, run_id: str, name: str, source: Path | bytes | BinaryIO,
                     max_bytes: int | None = None) -> dict[str, Any]:
        """Upload a file, bytes or a binary stream, streamed in the request body.

        A file or seekable stream is sent again on a retry; an unseekable stream is tried once.
        """
        path = _artifact_path(run_id, name)
        size, body = _upload_body(source, max_bytes, name)
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        response = self._call("PUT", path, body=body, headers=headers, upload=True)
        return cast(dict[str, Any], response.json())

    def open_artifact(self, run_id: str, name: str) -> BinaryIO:
        """A streamed reader of the artifact (close it, or use it in a ``with`` block)."""
        response = self._call("GET", _artifact_path(run_id, name), stream=True)
        return cast(BinaryIO, io.BufferedReader(_ResponseStream(response, self), buffer_size=UPLOAD_CHUNK))

    # -- jobs --------------------------------------------------------------------------------

    def ledger(self, job_id: JobId) -> Ledger:
        from tidal.jobs.http_ledger import HTTPLedger

        return HTTPLedger(self._call, job_id)

    def list_jobs(self, prefix: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit} | ({"prefix": prefix} if prefix is not None else {})
        return cast(list[dict[str, Any]], self._call("GET", "jobs", params=params).json()["jobs"])

    def get_job(self, job_id: JobId, max_failures: int = 20) -> dict[str, Any]:
        found = self._call("GET", f"jobs/{_segment(job_id)}", params={"max_failures": max_failures})
        return cast(dict[str, Any], found.json())

    def results(self, job_id: JobId, include_failed: bool = False) -> Iterator[dict[str, Any]]:
        """Streamed as JSON lines (NaN and infinities as JSON's NaN/Infinity tokens, the way results
        are stored): millions of rows in bounded memory."""
        params = {"include_failed": "true" if include_failed else "false"}
        response = self._call("GET", f"jobs/{_segment(job_id)}/results", params=params, stream=True)
        return self._result_lines(job_id, response)

    def _result_lines(self, job_id: JobId, response: httpx.Response) -> Iterator[dict[str, Any]]:
        try:
            for line in response.iter_lines():
                if line:
                    yield cast(dict[str, Any], json.loads(line))
        except self._httpx.HTTPError as error:
            raise StoreError(f"reading job {job_id}'s results from {self.url} broke off: {error}; "
                             "run the command again") from error
        finally:
            response.close()

    # -- the queue (tidal.remote; the server's dispatcher hands its entries to Ray) -------------

    def enqueue(self, entry: dict[str, Any]) -> None:
        self._call("POST", "queue", json_body=entry, creating=True)

    def queue_entries(self, statuses: list[str] | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit} | ({"status": ",".join(statuses)} if statuses is not None else {})
        return cast(list[dict[str, Any]], self._call("GET", "queue", params=params).json()["entries"])

    def queue_entry(self, run_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"queue/{_segment(run_id)}").json())

    def update_queue_entry(self, run_id: str, fields: dict[str, Any], only_if: list[str] | None = None) -> bool:
        found = self._call("PATCH", f"queue/{_segment(run_id)}", json_body={"fields": fields, "only_if": only_if})
        return bool(found.json()["changed"])

    def describe(self) -> str:
        return f"the tidal server at {self.url}"

    def close(self) -> None:
        self.client.close()

    # -- requests ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None,
              body: Callable[[], Any] | None = None, headers: dict[str, str] | None = None,
              creating: bool = False, stream: bool = False, upload: bool = False) -> httpx.Response:
        """One API call, retried on connection errors and 502/503/504; errors become TidalErrors.

        ``body`` makes a fresh request body per try (None: it cannot be sent twice).
        """
        if json_body is not None:
            payload = json.dumps(encode_non_finite(json_body), default=str, allow_nan=False).encode()
            headers = {"Content-Type": "application/json"}
            body = lambda: payload  # noqa: E731
        repeatable = body is None or getattr(body, "repeatable", True)
        tries = self.retries if repeatable and retries_allowed() else 1  # the Run writer spools instead
        failure: str = ""
        for attempt in range(tries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                request = self.client.build_request(method, path, params=params, headers=headers,
                                                    content=body() if body else None)
                response = self.client.send(request, stream=stream)
            except self._httpx.TransportError as error:
                failure = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                continue
            if response.status_code in RETRY_STATUSES:
                response.read()
                response.close()
                failure = f"{response.status_code}: {_message(response)}"
                if attempt == tries - 1 and error_by_name(_error_type(response)):
                    self._raise_for(response, upload)  # the server said what is wrong: say it too
                continue
            if creating and attempt and response.status_code == 409:
                return response  # our own create landed; its answer was lost on the way back
            self._raise_for(response, upload)
            return response
        raise StoreError(f"cannot reach the tidal server at {self.url}: {method} {API_PREFIX}/{path} failed "
                         f"{tries} {'time' if tries == 1 else 'times'} (last: {failure}); check that "
                         "`tidal server` runs there and that TIDAL_TRACKING_URI is right")

    def _raise_for(self, response: httpx.Response, upload: bool) -> None:
        if response.is_success:
            return
        response.read()
        response.close()
        if response.status_code == 401:
            raise TokenRefused(f"the tidal server at {self.url} refused the token "
                              f"({'none was sent' if not self.token else 'it is wrong'}): set TIDAL_TOKEN to "
                              "the content of the server's --token-file")
        if upload and response.status_code == 413:
            raise ArtifactTooLarge(_message(response))
        # the server names the class of the error (tidal.errors.HTTP_ERRORS): the same class is raised here
        error_class = error_by_name(_error_type(response)) or _class_for_status(response.status_code)
        raise error_class(_message(response))


class _ResponseStream(io.RawIOBase):
    """A streamed download as a raw binary file (wrapped in a BufferedReader by the store)."""

    def __init__(self, response: httpx.Response, store: HTTPStore) -> None:
        self.response = response
        self.store = store
        self.chunks: Iterator[bytes] = response.iter_bytes()
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
            except self.store._httpx.HTTPError as error:
                raise StoreError(f"downloading {self.response.url} from {self.store.url} failed: {error}") from error
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size

    def close(self) -> None:
        self.response.close()
        super().close()


def _segment(run_id: str) -> str:
    return urllib.parse.quote(str(run_id), safe="")


def _artifact_path(run_id: str, name: str) -> str:
    """Checked here as the server would: httpx would silently resolve a '..' in the URL."""
    return f"runs/{_segment(validate_run_id(run_id))}/artifacts/{urllib.parse.quote(normalize_name(name))}"


def _upload_body(source: Path | bytes | BinaryIO, max_bytes: int | None,
                 name: str) -> tuple[int | None, Callable[[], bytes | Iterable[bytes]]]:
    """(size when known, a factory of the body's chunks); the factory has ``repeatable``."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        _check_size(len(data), max_bytes, name)
        return len(data), lambda: data
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as error:
            raise UsageError(f"cannot log {path} as an artifact: {error.strerror or error}; check the path") from error
        _check_size(size, max_bytes, name)
        return size, lambda: _file_chunks(path)
    return None, _stream_body(source, max_bytes, name)


def _stream_body(stream: BinaryIO, max_bytes: int | None, name: str) -> Callable[[], Iterable[bytes]]:
    seekable = _seekable(stream)
    start = stream.tell() if seekable else 0

    def chunks() -> Iterator[bytes]:
        if seekable:
            stream.seek(start)
        sent = 0
        while chunk := stream.read(UPLOAD_CHUNK):
            sent += len(chunk)
            _check_size(sent, max_bytes, name)
            yield chunk

    chunks.repeatable = seekable  # type: ignore[attr-defined]
    return chunks


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(UPLOAD_CHUNK):
            yield chunk


def _check_size(size: int, max_bytes: int | None, name: str) -> None:
    if max_bytes is not None and size > max_bytes:
        raise ArtifactTooLarge(f"artifact {name!r} is larger than the limit of {max_bytes} bytes; nothing was stored")


def _batch_payload(batch: Batch) -> bytes:
    """A batch as the request body: JSON, NaN and infinities as strings. Metrics (a million in a
    burst) are encoded row by row without the generic walk of ``encode_non_finite``."""
    body = encode_non_finite({"batch_id": batch.batch_id, "params": batch.params, "tags": batch.tags,
                              "logs": [list(log) for log in batch.logs], "images": batch.images,
                              "heartbeat": batch.heartbeat})
    body["metrics"] = [[key, step if type(step) is int or step is None else _integer(step),
                        value if type(value) is float and -math.inf < value < math.inf else _metric_number(value),
                        stamp] for key, step, value, stamp in batch.metrics]
    return json.dumps(body, default=str, allow_nan=False).encode()


def _metric_number(value: Any) -> Any:
    """A metric value that is not a finite float, as the wire has it."""
    return encode_non_finite(_number(value))


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value  # the server answers 422 naming the field


def _integer(step: Any) -> Any:
    try:
        return None if step is None else int(step)
    except (TypeError, ValueError):
        return step


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_type(response: httpx.Response) -> str:
    return str(_error_body(response).get("type") or "")


def _message(response: httpx.Response) -> str:
    message = _error_body(response).get("error")
    if isinstance(message, str) and message:
        return message
    return f"{response.status_code} {response.reason_phrase} from {response.request.method} {response.request.url}"


def _class_for_status(status: int) -> type[TidalError]:
    return StoreError if status >= 500 else UsageError
