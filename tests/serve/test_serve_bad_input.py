"""Bad input to the README's repetitions service (examples/repetitions/service.hjson), against a
real front and real workers: each gets its 4xx (or a 504 within the fetch deadline) with a
message for an HTTP client, the front stays healthy, and a good request right after gets 200."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from origin import Origin, redirect, serving_origin
from PIL import Image
from servehelpers import Front, serving

from liveserver import free_port
from tidal.errors import RequestError
from tidal.serve.allowlist import AllowList
from tidal.serve.config import load_service
from tidal.serve.fetcher import Fetcher

EXAMPLE = Path(__file__).parents[2] / "examples" / "repetitions" / "service.hjson"
FETCH_TIMEOUT = 2.0
NOISE = ("Errno", "<none>", "glob", "tidal.sources", "Traceback")


@dataclass
class Setup:
    front: Front
    origin: Origin
    folder: Path
    outside: Path
    video: bytes
    closed: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, carphone_mp4: Path) -> Iterator[Setup]:
    video = carphone_mp4.read_bytes()
    root = tmp_path_factory.mktemp("media")
    folder, outside = root / "uploads", root / "private"
    folder.mkdir()
    outside.mkdir()
    (folder / "clip.mp4").write_bytes(video)
    (folder / "videos").mkdir()
    (outside / "secret.mp4").write_bytes(video)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with serving_origin({"clip.mp4": video}) as origin:
        http = {"allow_urls": [folder.as_uri(), origin.url, closed], "fetch_timeout": FETCH_TIMEOUT}
        with serving(load_service(EXAMPLE, http)) as front:
            yield Setup(front, origin, folder, outside, video, closed)


def still_serving(setup: Setup) -> None:
    """The front is healthy and a good request gets its count."""
    front = setup.front
    assert front.client.get(f"{front.url}/healthz").status_code == 200
    good = front.predict(files={"video": ("clip.mp4", setup.video, "video/mp4")})
    assert good.status_code == 200, good.text
    assert good.json()["results"][0]["count"] >= 0


def refused(response: Any, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["error"]
    assert all(word in message for word in words), message
    assert not any(noise in message for noise in NOISE), message
    return message


def test_json_values_are_refused_before_any_worker_starts(service: Setup) -> None:
    front = service.front
    for value in [{"foo": 1}, [1, 2], None, "video", 3]:
        response = front.predict(content=json.dumps(value).encode(), headers={"content-type": "application/json"})
        refused(response, 422, "this service takes videos, not JSON values", '{"url": "<URL>"}')
    refused(front.predict({"url": 5}), 422, "url must be a string")
    refused(front.predict({"url": "s3://elsewhere/a.mp4"}), 403, "is not allowed")
    refused(front.predict({"url": f"{service.origin.url}/files/clip.mp4", "x": 1}), 422, "remove 'x'")
    assert front.status()["workers"] == []  # all refused by the front
    still_serving(service)


def test_media_that_is_not_a_video(service: Setup) -> None:
    picture = io.BytesIO()
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(picture, format="PNG")
    for name, content_type in [("frame.png", "image/png"), ("frame.mp4", "video/mp4")]:
        response = service.front.predict(files={"video": (name, picture.getvalue(), content_type)})
        refused(response, 415, "is an image; this service takes whole videos")
    text = service.front.predict(files={"video": ("notes.mp4", b"this is not a video", "video/mp4")})
    refused(text, 422, "is not a video this service can decode", "send a video file")
    truncated = service.front.predict(files={"video": ("cut.mp4", service.video[: len(service.video) // 3],
                                                       "video/mp4")})
    assert truncated.status_code == 422, truncated.text
    still_serving(service)


def test_urls_any_case_and_file_localhost_are_fetched(service: Setup) -> None:
    path = service.folder / "clip.mp4"
    host_port = service.origin.url.removeprefix("http://")
    for url in [f"HTTP://{host_port}/files/clip.mp4", f"Http://{host_port.upper()}/files/clip.mp4",
                f"FILE://{path}", f"file://localhost{path}", path.as_uri()]:
        response = service.front.predict({"url": url})
        assert response.status_code == 200, (url, response.text)
        assert len(response.json()["results"][0]["counts"]) == 120


def test_urls_that_cannot_be_fetched_are_4xx(service: Setup) -> None:
    origin, folder = service.origin.url, service.folder
    refused(service.front.predict({"url": (folder / "videos").as_uri()}), 422, "is a folder")
    refused(service.front.predict({"url": (folder / "missing.mp4").as_uri()}), 404, "does not exist")
    refused(service.front.predict({"url": f"{service.closed}/clip.mp4"}), 422, "cannot be reached")
    refused(service.front.predict({"url": f"{origin}/missing"}), 404, "answered HTTP 404")
    refused(service.front.predict({"url": f"{origin}/broken"}), 422, "answered HTTP 500")
    still_serving(service)


def test_redirects_are_followed_only_inside_the_allow_list(service: Setup) -> None:
    origin = service.origin
    with serving_origin({"clip.mp4": service.video}) as other:
        for target in [f"{other.url}/files/clip.mp4", "http://169.254.169.254/latest/meta-data/"]:
            response = service.front.predict({"url": redirect(origin.url, target)})
            refused(response, 403, "redirects to", "is not allowed")
        assert other.hits["/files/clip.mp4"] == 0  # refused before connecting
    inside = service.front.predict({"url": redirect(origin.url, "/files/clip.mp4")})
    assert inside.status_code == 200, inside.text


def test_symlinks_and_special_files_cannot_escape_the_folder(service: Setup) -> None:
    folder = service.folder
    (folder / "escape.mp4").symlink_to(service.outside / "secret.mp4")
    (folder / "escape-dir").symlink_to(service.outside)
    (folder / "alias.mp4").symlink_to(folder / "clip.mp4")
    for name in ["escape.mp4", "escape-dir/secret.mp4"]:
        refused(service.front.predict({"url": (folder / name).as_uri()}), 403, "outside the allowed folder")
    assert service.front.predict({"url": (folder / "alias.mp4").as_uri()}).status_code == 200
    os.mkfifo(folder / "pipe.mp4")  # opening it for reading would wait for a writer forever
    started = time.monotonic()
    refused(service.front.predict({"url": (folder / "pipe.mp4").as_uri()}), 422, "not a regular file")
    assert time.monotonic() - started < 5.0  # opened, it would have waited for a writer forever
    still_serving(service)


def test_an_origin_that_never_answers_costs_one_request_its_deadline(service: Setup) -> None:
    started = time.monotonic()
    stalled = service.front.predict({"url": f"{service.origin.url}/stall"})
    assert stalled.status_code == 504, stalled.text
    assert FETCH_TIMEOUT - 0.1 < time.monotonic() - started < FETCH_TIMEOUT + 5.0
    assert "took longer than 2 s" in stalled.json()["error"]
    assert service.front.client.get(f"{service.front.url}/readyz").status_code == 200
    still_serving(service)


def test_a_wildcard_entry_never_reaches_a_private_address(service: Setup) -> None:
    fetcher = Fetcher(AllowList(["http://*"]), 10**8, 5)
    hits = service.origin.hits["/files/clip.mp4"]
    with pytest.raises(RequestError, match=r"127\.0\.0\.1, a private, loopback or link-local address") as caught:
        asyncio.run(fetcher.fetch(f"{service.origin.url}/files/clip.mp4", time.monotonic() + 5))
    assert caught.value.status == 403
    assert service.origin.hits["/files/clip.mp4"] == hits  # refused before connecting
