"""Fixtures for the harness tests (the A/B statistics, the compare CLI).

Why: the bootstrap is a series of small float32 matrix products. On a loaded 2-core CI
machine a multi-threaded BLAS spends more time handing work between threads than doing it
(measured here: 46 ms vs 1.9 ms for one product), so these tests run BLAS on one thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the calibration tests after the unit tests (a stable sort: nothing else moves).

    Why: their module fixtures simulate hundreds of comparisons (~20 s on 2 cores). With
    `-x`, as mutation testing runs, a mutant that a by-hand unit test catches then stops in
    a fraction of a second instead of paying for the calibration first.
    """
    calibration = Path(__file__).parent / "analysis" / "ab" / "test_calibration.py"
    items.sort(key=lambda item: item.path == calibration)
