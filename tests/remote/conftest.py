"""A real Ray head with its dashboard (Ray Jobs lives there) on 127.0.0.1, for this package's tests
(``raynodes.py`` starts it: its own process group, ports and temp folder)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("ray.job_submission", reason="remote runs need Ray's job client: pip install -e '.[ray]'")

from raynodes import ray_nodes


@pytest.fixture(scope="package")
def ray_head() -> Iterator[str]:
    """The dashboard address (http://127.0.0.1:PORT) of a 2-CPU, 0-GPU Ray head."""
    with ray_nodes(head_cpus=2) as cluster:
        yield cluster.address
