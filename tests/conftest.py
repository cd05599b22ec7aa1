"""Shared test fixtures: an explicit local Ray for the tests that need one (not autouse)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("PROMEDICAL_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "promedical"))


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray started the way `promedical train` starts it; shut down after the module."""
    import ray
    from promedical.deploy.build import start_ray

    start_ray("")
    yield ray
    ray.shutdown()
