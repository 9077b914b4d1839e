"""A real Ray head with its dashboard (Ray Jobs lives there) on 127.0.0.1, for this package's tests
(``tests/rayhost.py`` starts it: its own session, ports and temp folder)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("ray.job_submission", reason="remote runs need Ray's job client: pip install -e '.[ray]'")

from rayhost import ray_cluster


@pytest.fixture(scope="package")
def ray_head() -> Iterator[str]:
    """The dashboard address (http://127.0.0.1:PORT) of a 2-CPU, 0-GPU Ray head."""
    # Ray retries a runtime env that failed to install 3 times (a new virtualenv and pip each time);
    # once says the same here, in a third of the time
    with ray_cluster(head_cpus=2, dashboard=True, environment={"RUNTIME_ENV_RETRY_TIMES": "1"}) as cluster:
        yield cluster.dashboard
