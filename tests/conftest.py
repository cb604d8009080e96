"""Shared pytest configuration.

Tests that need real Prometheus or Alertmanager start them through :mod:`driftline_demo.stack`.
Hypothesis runs without per-example deadlines: the suite runs on 2 shared cores, and speed is
measured by the benchmarks, never by timing assertions in tests. ``HYPOTHESIS_PROFILE=thorough``
runs more examples.
"""

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from tls_support import issue, make_ca

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A CA and the ``server`` (for 127.0.0.1) and ``client`` certificates it signed."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path / "pki"
    d.mkdir()
    make_ca(d)
    for name in ("server", "client"):
        issue(d, name)
    return d
