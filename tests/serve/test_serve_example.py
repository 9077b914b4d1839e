"""examples/repetitions/service.hjson end to end: upload real footage looped a known number of
times, get the count back."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
from servehelpers import serving

from tidal.serve.config import load_service

EXAMPLE = Path(__file__).parents[2] / "examples" / "repetitions" / "service.hjson"


def looped_video(source: Path, steps: list[int], frames: int = 30) -> bytes:
    """The first ``frames`` frames of a real video played forward then backward, once per
    entry of ``steps`` (2: at double speed): one repetition each."""
    with av.open(str(source)) as container:
        pictures = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(frames), container.decode(video=0),
                                                                       strict=False)]
    sequence: list[np.ndarray] = []
    for step in steps:
        part = pictures[::step]
        sequence += part + part[::-1]
    output = io.BytesIO()
    with av.open(output, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.height, stream.width = pictures[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for picture in sequence:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    return output.getvalue()


def test_the_repetitions_service_counts_uploaded_videos(carphone_mp4: Path) -> None:
    config = load_service(EXAMPLE)
    assert config.processor.target == "tidal.processors.RepetitionCounter"
    with serving(config) as front:
        for steps, count in [([1, 1, 1, 1], 4), ([2, 2, 1, 1, 1, 1], 6)]:  # 6: the first two twice as fast
            video = looped_video(carphone_mp4, steps)
            response = front.predict(files={"video": ("pressups.mp4", video, "video/mp4")})
            assert response.status_code == 200, response.text
            [result] = response.json()["results"]
            assert result["count"] == count, steps
            assert len(result["counts"]) == sum(2 * len(range(0, 30, step)) for step in steps)
        assert front.predict({"url": "s3://elsewhere/pressups.mp4"}).status_code == 403
