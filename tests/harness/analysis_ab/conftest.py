"""Fixtures for the A/B statistics tests.

Why: the bootstrap is a series of small float32 matrix products. On a loaded 2-core CI
machine a multi-threaded BLAS spends more time handing work between threads than doing it
(measured here: 46 ms vs 1.9 ms for one product), so these tests run BLAS on one thread.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="blas"):
        yield
