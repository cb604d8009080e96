"""Every optional compiled core is built where the suite requires it.

``make test`` sets ``DRIFTLINE_REQUIRE_NATIVE=1``: there a core that failed to build (the
extensions are optional, so ``pip install`` still succeeds without a compiler) must fail the
suite, not skip its comparisons with the Python code."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from driftline.collectors import columns_native
from driftline.detectors import change_native
from driftline.engine import window_native

CORES: dict[str, tuple[str, Callable[[], bool]]] = {
    "ChangeDetector's core": ("native/changecore.c", change_native.native_available),
    "the window statistics' kernel": ("native/windowcore.c", window_native.native_available),
    "the record paths' column builder": ("native/rowcore.c", columns_native.native_available),
    "the arrival-side rank kernel": ("native/windowcore.c's rank_update", lambda: (
        window_native.native_available() and hasattr(window_native._module(), "rank_update"))),
}


@pytest.mark.parametrize("name", list(CORES))
def test_the_core_is_built_where_the_suite_requires_it(name: str) -> None:
    if os.environ.get("DRIFTLINE_REQUIRE_NATIVE") != "1":
        pytest.skip("DRIFTLINE_REQUIRE_NATIVE is not set")
    source, available = CORES[name]
    assert available(), (f"{name} ({source}) is not built: install a C compiler "
                         "(scripts/install-system-deps.sh) and reinstall (pip install -e .)")
