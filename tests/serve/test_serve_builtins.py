"""The built-in frame processors served as they ship: media in, never a 5xx for JSON."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from servehelpers import serving

from tidal.serve.config import service_from_target


def png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("body", ['{"foo": 1}', "[1, 2]", "null", '"text"', '{"url": 5}'])
def test_dominant_colors_refuses_json_values_with_a_422_and_stays_healthy(body: str,
                                                                          bikes_frames: list[np.ndarray]) -> None:
    with serving(service_from_target("tidal.processors:DominantColors")) as front:
        refused = front.client.post(f"{front.url}/v1/predict", content=body,
                                    headers={"content-type": "application/json"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] and front.worker_pids() == []  # refused by the front alone
        assert front.client.get(f"{front.url}/healthz").status_code == 200
        answer = front.predict(files={"image": ("frame.png", png(bikes_frames[0]), "image/png")})
        assert answer.status_code == 200, answer.text
        [result] = answer.json()["results"]
        assert len(result["colors"]) == 5 and abs(sum(result["shares"]) - 1.0) < 1e-6
