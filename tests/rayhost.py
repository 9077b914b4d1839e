"""A local Ray for the tests (engines, serving, training): reachable only from this machine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# no token (Ray 2.60 would write one to ~/.ray), no usage report
RAY_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                   "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@contextmanager
def local_ray(cpus: int = 2, **options: object) -> Iterator[str]:
    """A new Ray on 127.0.0.1 of ``cpus`` CPUs for the block (address "local": never another Ray
    running on this machine); its GCS address, for drivers in other processes."""
    ray = pytest.importorskip("ray", reason="these tests need Ray: pip install -e '.[ray]'")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in RAY_ENVIRONMENT.items():
            patch.setenv(name, value)
        context = ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=cpus, include_dashboard=False,
                           logging_level="ERROR", configure_logging=False, **options)
        try:
            yield context.address_info["gcs_address"]
        finally:
            ray.shutdown()
