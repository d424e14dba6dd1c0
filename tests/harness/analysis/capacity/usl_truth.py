"""The Universal Scalability Law written out once more, independently of harness.analysis.

Why: test data generated with the module's own `usl_throughput` and fitted with it too pass
whatever that function computes (kappa N^2 instead of kappa N (N - 1) included). Tests build
their data here; test_curves.py pins both this and the module against hand-computed values.

    X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))         (Gunther)
    N*   = sqrt((1 - sigma) / kappa)                                  (dX/dN = 0)
    X(N*) = lambda N* / (2 (1 - sigma) + (sigma - kappa) N*)         (kappa N*^2 = 1 - sigma)
"""

from __future__ import annotations

import math

import numpy as np


def usl_x(n, lam: float, sigma: float, kappa: float):
    n = np.asarray(n, dtype=np.float64)
    contention = sigma * (n - 1.0)
    coherency = kappa * n * (n - 1.0)
    return lam * n / (1.0 + contention + coherency)


def usl_peak(lam: float, sigma: float, kappa: float) -> tuple[float, float]:
    """(N*, X(N*)) in closed form."""
    n_star = math.sqrt((1.0 - sigma) / kappa)
    return n_star, lam * n_star / (2.0 * (1.0 - sigma) + (sigma - kappa) * n_star)
