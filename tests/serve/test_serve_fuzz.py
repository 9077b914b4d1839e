"""Fuzzing the live repetitions service from its own OpenAPI (schemathesis): requests that fit
the published schema and requests that break it, every content type it lists, every
endpoint; then raw bytes under media content types, cut-off real videos and arbitrary JSON
(hypothesis). Not one may get a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from servehelpers import Front, serving

from tidal.serve.config import load_service

schemathesis = pytest.importorskip("schemathesis", reason="the fuzz test needs schemathesis: pip install -e '.[dev]'")
hypothesis = pytest.importorskip("hypothesis")

EXAMPLE = Path(__file__).parents[2] / "examples" / "repetitions" / "service.hjson"
EXAMPLES_PER_MODE = 60


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, carphone_mp4: Path) -> Iterator[Front]:
    folder = tmp_path_factory.mktemp("uploads")
    (folder / "clip.mp4").write_bytes(carphone_mp4.read_bytes())
    config = load_service(EXAMPLE, {"allow_urls": [folder.as_uri()], "fetch_timeout": 5, "request_timeout": 30})
    with serving(config) as live:
        yield live


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_request_from_the_openapi_schema_gets_a_5xx(front: Front, mode: str) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    schema = schemathesis.openapi.from_url(f"{front.url}/openapi.json")
    generation = schemathesis.GenerationMode.POSITIVE if mode == "positive" else schemathesis.GenerationMode.NEGATIVE
    strategies = [result.ok().as_strategy(generation_mode=generation) for result in schema.get_all_operations()]
    seen: dict[int, int] = {}

    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(strategies))
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=front.url, timeout=60)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, f"{case.method} {case.path} ({case.media_type}): {response.text}"

    check()
    assert sum(seen.values()) >= EXAMPLES_PER_MODE // 2, seen
    assert front.client.get(f"{front.url}/healthz").status_code == 200


@pytest.mark.slow
def test_no_body_gets_a_5xx(front: Front, carphone_mp4: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    video = carphone_mp4.read_bytes()
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                               lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                          max_size=4), max_leaves=12)
    bodies = st.one_of(
        st.tuples(st.sampled_from(["video/mp4", "image/png", "application/octet-stream", "text/plain", ""]),
                  st.binary(max_size=4096)),
        st.tuples(st.just("video/mp4"), st.integers(1, len(video) - 1).map(lambda end: video[:end])),
        st.tuples(st.just("application/json"), json_values.map(lambda value: json.dumps(value).encode())),
    )

    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(body=bodies)
    def check(body: tuple[str, bytes]) -> None:
        content_type, content = body
        response = front.predict(content=content, headers={"content-type": content_type} if content_type else {})
        assert response.status_code < 500, f"{content_type} {content[:40]!r}: {response.text}"

    check()
    assert front.predict(files={"video": ("clip.mp4", video, "video/mp4")}).status_code == 200
