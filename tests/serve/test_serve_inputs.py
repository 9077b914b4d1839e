"""What a service accepts: JSON validated by the input model, uploads of real media, allowed
URLs; and what it refuses, with a clear status and message."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from servehelpers import Front, echo, running_front

FRAMES: dict[str, Any] = {"serveprocessors.FrameShape": {}}


@pytest.fixture(scope="module")
def frames_front() -> Iterator[Front]:
    with running_front(FRAMES, max_upload_bytes=2_000_000, idle_timeout=60) as front:
        yield front


def test_json_is_validated_by_the_input_model() -> None:
    with running_front({"serveprocessors.Adder": {}}) as front:
        assert front.predict({"a": 2, "b": 3}).json() == {"results": [{"sum": 5}]}
        wrong = front.predict({"a": "two"})
        assert wrong.status_code == 422
        assert wrong.json()["error"] == "the request does not match Sum: a: 'two' is not of type 'integer'"
        assert wrong.json()["detail"][0]["loc"] == ["a"]
        missing = front.predict({"b": 1})
        assert missing.status_code == 422 and "body: 'a' is a required property" in missing.json()["error"]
        assert front.status()["workers"][0]["requests"] == 0  # refused by the front's schema check
        assert front.predict(content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
        assert front.predict(content=b"a=1", headers={"content-type": "text/plain"}).status_code == 415
        schema = front.client.get(f"{front.url}/openapi.json").json()
        body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
        assert body["application/json"]["schema"]["properties"]["a"]["type"] == "integer"  # no URL form: none allowed
        assert "multipart/form-data" in body
        docs = front.client.get(f"{front.url}/docs")
        assert docs.status_code == 200 and "cdn" not in docs.text  # Swagger UI works offline
        for asset in re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', docs.text):
            assert front.client.get(f"{front.url}{asset}").status_code == 200, asset


def test_preprocess_and_postprocess_hooks() -> None:
    with running_front({"serveprocessors.WordLengths": {}}) as front:
        response = front.predict({"text": "press ups counted"})
        assert response.json() == {"lengths": [5, 3, 7], "total": 15}
        blank = front.predict({"text": "  "})
        assert blank.status_code == 422 and blank.json() == {"error": "text is blank; send at least one word"}
        assert front.predict({"words": 3}).status_code == 422


def test_an_uploaded_video_is_one_item_per_frame_in_batches_of_items(frames_front: Front, carphone_mp4: Path) -> None:
    with carphone_mp4.open("rb") as file:
        response = frames_front.predict(files={"video": ("carphone.mp4", file, "video/mp4")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["results"]) == len(body["times"]) == 120
    assert {tuple(r["shape"]) for r in body["results"]} == {(144, 176, 3)}
    assert sorted({r["batch"] for r in body["results"]}) == [56, 64]  # batch_size 64 counts frames
    assert body["times"][1] == pytest.approx(1 / 29.97, abs=1e-3)


def test_raw_video_bytes_and_images(frames_front: Front, carphone_mp4: Path, bikes_frames: list[np.ndarray]) -> None:
    raw = frames_front.predict(content=carphone_mp4.read_bytes(), headers={"content-type": "video/mp4"})
    assert raw.status_code == 200 and len(raw.json()["results"]) == 120
    picture = io.BytesIO()
    Image.fromarray(bikes_frames[0]).save(picture, format="JPEG")
    image = frames_front.predict(files={"image": ("frame.jpg", picture.getvalue(), "image/jpeg")})
    assert image.status_code == 200
    assert image.json()["results"][0]["shape"] == [272, 640, 3]


def test_a_clip_processor_gets_whole_videos(bikes_mp4: Path) -> None:
    with running_front({"serveprocessors.ClipLength": {}}, ) as front:
        response = front.predict(files={"video": ("bikes.mp4", bikes_mp4.read_bytes(), "video/mp4")})
        assert response.status_code == 200, response.text
        [clip] = response.json()["results"]
        assert clip["frames"] == 250 and clip["fps"] == 25.0
        assert clip["shape"][1:] == [48, 112, 3]  # decoded 112 px wide by default


def test_bad_uploads_get_clear_errors(frames_front: Front, truncated_mp4: Path) -> None:
    truncated = frames_front.predict(files={"video": ("truncated.mp4", truncated_mp4.read_bytes(), "video/mp4")})
    assert truncated.status_code == 422 and "truncated" in truncated.json()["error"]
    text = frames_front.predict(files={"video": ("notes.mp4", b"this is not a video", "video/mp4")})
    assert text.status_code == 422 and "not a video" in text.json()["error"]
    empty = frames_front.predict(files={"video": ("empty.mp4", b"", "video/mp4")})
    assert empty.status_code == 400 and "empty (0 bytes)" in empty.json()["error"]
    no_file = frames_front.predict(data={"note": "hello"}, files={"other": ("", b"")})
    assert no_file.status_code == 400
    not_json = frames_front.predict("still serving")  # FrameShape says json_input = False
    assert not_json.status_code == 422 and "takes images or videos, not JSON values" in not_json.json()["error"]


def test_uploads_over_the_limit_get_413_while_streaming(frames_front: Front, bikes_mp4: Path) -> None:
    big = bikes_mp4.read_bytes() * 5  # 2.5 MB, over the 2 MB limit
    declared = frames_front.predict(content=big, headers={"content-type": "video/mp4"})
    assert declared.status_code == 413 and "limit of 2000000 bytes" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no content-length: the limit is enforced as the body streams
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = frames_front.predict(content=chunks(), headers={"content-type": "video/mp4"})
    assert streamed.status_code == 413
    form = frames_front.predict(files={"video": ("big.mp4", big, "video/mp4")})
    assert form.status_code == 413
    assert frames_front.metric('tidal_serve_requests_total{code="413"}') == 3


def test_urls_are_fetched_only_from_the_allow_list(tmp_path: Path, carphone_mp4: Path) -> None:
    allowed = tmp_path / "uploads"
    allowed.mkdir()
    (allowed / "clip.mp4").write_bytes(carphone_mp4.read_bytes())
    (tmp_path / "secret.mp4").write_bytes(carphone_mp4.read_bytes())
    with running_front(FRAMES, allow_urls=[allowed.as_uri()]) as front:
        fetched = front.predict({"url": (allowed / "clip.mp4").as_uri()})
        assert fetched.status_code == 200, fetched.text
        assert len(fetched.json()["results"]) == 120
        for url in [(tmp_path / "secret.mp4").as_uri(), f"{allowed.as_uri()}/../secret.mp4",
                    "s3://uploads/clip.mp4", f"{allowed.as_uri()}-other/clip.mp4"]:
            refused = front.predict({"url": url})
            assert refused.status_code == 403, url
            assert "is not allowed" in refused.json()["error"]
        missing = front.predict({"url": (allowed / "missing.mp4").as_uri()})
        assert missing.status_code == 404


def test_no_url_is_fetched_without_an_allow_list() -> None:
    with running_front(echo()) as front:
        refused = front.predict({"url": "https://example.com/video.mp4"})
        assert refused.status_code == 403 and "allow_urls list is empty" in refused.json()["error"]
        assert front.status()["workers"] == []  # refused by the front: no worker was started


def test_an_s3_url_in_an_allowed_bucket_is_fetched(s3_server: str, aws_environment: None, carphone_mp4: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Against tests/conftest.py's moto server; the workers inherit $TIDAL_S3_ENDPOINT_URL."""
    import boto3

    monkeypatch.setenv("TIDAL_S3_ENDPOINT_URL", s3_server)
    client = boto3.client("s3", endpoint_url=s3_server)
    for bucket in ("uploads", "private"):
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="videos/clip.mp4", Body=carphone_mp4.read_bytes())
    with running_front(FRAMES, allow_urls=["s3://uploads/videos"]) as front:
        fetched = front.predict({"url": "s3://uploads/videos/clip.mp4"})
        assert fetched.status_code == 200, fetched.text
        assert len(fetched.json()["results"]) == 120
        assert front.predict({"url": "s3://private/videos/clip.mp4"}).status_code == 403
        assert front.predict({"url": "s3://uploads/videos/missing.mp4"}).status_code == 404
