"""Service configs: the same object specs as jobs, checked without importing the processor."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tidal.errors import ConfigError
from tidal.serve.config import load_service, parse_service, service_from_target, url_allowed
from tidal.serve.metrics import DrainRate, ServeMetrics, percentile


def test_a_service_file_with_settings(tmp_path: Path) -> None:
    path = tmp_path / "service.hjson"
    path.write_text("""{
      # a comment
      processor: {"tidal.processors.noop.NoOp": {batch_size: 4}}
      name: noop
      http: {idle_timeout: 30, max_workers: 2, allow_urls: ["s3://uploads"]}
      media: {video: "clip", width: 64}
    }""")
    config = load_service(path, {"max_workers": 3})
    assert config.processor.target == "tidal.processors.noop.NoOp" and config.processor.kwargs == {"batch_size": 4}
    assert (config.name, config.project) == ("noop", "services")
    assert (config.http.idle_timeout, config.http.max_workers, config.http.min_workers) == (30, 3, 0)
    assert config.media.video == "clip" and config.media.width == 64


def test_a_module_and_class_target() -> None:
    config = service_from_target("mypackage.models:Detector", {"max_workers": 2}, {"video": "clip"})
    assert config.processor.target == "mypackage.models.Detector"
    assert config.http.max_workers == 2 and config.media.video == "clip"
    assert config.imports == ["mypackage.models"] and config.name == "Detector"
    assert "mypackage" not in sys.modules  # checked by name: nothing imported


def test_the_processor_spec_carries_imports_and_folder_and_parsing_leaves_sys_path(tmp_path: Path) -> None:
    path = tmp_path / "service.hjson"
    path.write_text('{processor: {"mymodels.Detector": {threshold: 0.3}}, imports: ["mymodels"]}')
    before = list(sys.path)
    spec = load_service(path).processor_spec
    assert sys.path == before and "mymodels" not in sys.modules
    assert (spec.target, spec.kwargs, spec.allowed[0]) == ("mymodels.Detector", {"threshold": 0.3}, "mymodels")
    assert str(tmp_path.resolve()) in spec.paths


@pytest.mark.parametrize(("data", "message"), [
    ({"processor": {"os.system": {}}}, "'os.system' is outside the allowed modules"),
    ({"processor": {"tidal.processors.NoOp": {}}, "source": {}}, "a service has no source or engine"),
    ({"processor": {"tidal.processors.NoOp": {}}, "htp": {}}, "'htp' (did you mean 'http'"),
    ({"processor": {"tidal.processors.NoOp": {"inner": {"os.system": {}}}}}, "'os.system' is outside"),
    ({"processor": {"tidal.processors.NoOp": {}}, "http": {"idle_timout": 3}}, "did you mean 'idle_timeout'"),
    ({"processor": {"tidal.processors.NoOp": {}}, "http": {"max_workers": "2"}}, "http.max_workers: expected int"),
    ({"processor": {"tidal.processors.NoOp": {}}, "http": {"allow_urls": ["uploads"]}}, "is not a URL prefix"),
    ({"processor": {"tidal.processors.NoOp": {}}, "http": {"allow_urls": ["s3://"]}}, "names no bucket"),
    ({"processor": {"tidal.processors.NoOp": {}}, "media": {"video": "gif"}}, "media.video: expected 'frames'"),
    ({"http": {}}, "missing top-level key 'processor'"),
])
def test_mistakes_name_the_setting(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_service(data, "service.hjson")


def test_the_url_allow_list() -> None:
    allowed = ["s3://uploads/videos", "file:///srv/media", "https://cdn.example.com/public/", "gs://*"]
    assert url_allowed("s3://uploads/videos/a.mp4", allowed)
    assert url_allowed("file:///srv/media/a/b.mp4", allowed)
    assert url_allowed("https://cdn.example.com/public/x.jpg", allowed)
    assert url_allowed("gs://any-bucket/x.mp4", allowed)
    for url in ["s3://uploads/other/a.mp4", "s3://uploads/videos-evil/a.mp4", "s3://evil/videos/a.mp4",
                "file:///srv/media/../etc/passwd", "file:///srv/media/%2e%2e/etc/passwd", "file:///etc/passwd",
                "http://cdn.example.com/public/x.jpg", "https://cdn.example.com/public/x.jpg?sig=1",
                "file://otherhost/srv/media/a.mp4", "/srv/media/a.mp4", "s3://uploads/videos/../../x"]:
        assert not url_allowed(url, allowed), url
    assert not url_allowed("s3://uploads/videos/a.mp4", [])


def test_metrics_text_and_percentiles() -> None:
    metrics = ServeMetrics()
    for status, seconds in [(200, 0.002), (200, 0.004), (503, 0.0005)]:
        metrics.observe_request(status, seconds)
    metrics.observe_batch(300, 1)
    metrics.cold_starts.inc()
    metrics.workers.set(1, "ready")
    text = metrics.render()
    assert 'tidal_serve_requests_total{code="200"} 2\n' in text
    assert 'tidal_serve_request_seconds_bucket{le="0.0025"} 2\n' in text
    assert 'tidal_serve_request_seconds_bucket{le="+Inf"} 3\n' in text
    assert 'tidal_serve_batch_items_bucket{le="256"} 0\ntidal_serve_batch_items_bucket{le="512"} 1\n' in text
    assert "# TYPE tidal_serve_cold_starts_total counter\ntidal_serve_cold_starts_total 1\n" in text
    assert 'tidal_serve_workers{state="ready"} 1\n' in text
    window = metrics.window.take()
    assert window == {"requests": 3.0, "latency_p50_ms": 2.0, "latency_p95_ms": 4.0, "latency_p99_ms": 4.0}
    assert metrics.window.take() is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0


def test_the_drain_rate_counts_answers_in_its_window() -> None:
    now = [100.0]
    rate = DrainRate(window=10, clock=lambda: now[0])
    assert rate.per_second() is None
    for _ in range(5):
        rate.record()
        now[0] += 0.5
    assert rate.per_second() == pytest.approx(5 / 2.5)
    now[0] += 20  # nothing answered lately: the queue is not draining
    assert rate.per_second() is None
