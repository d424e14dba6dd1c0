"""A/B significance (`harness compare`): is version B better, worse or equivalent to A?

    compare       compare_arms(a, b, config, design) -> Comparison: verdicts per metric + overall
    abconfig      CompareConfig, Margin
    histdata      ArmWindows, arm_from_samples: the data model (the one histogram type,
                  harness.latency.sparse.SparseHist, plus a per-second log grid)
    arms          arms_from_table(windows table, endpoints) -> [ArmWindows]
    ranktests, disttest, bootstrap, proportions, equivalence, latency_ab, metrics_ab: the
                  statistics behind it; synthetic: seeded test data.

Names below are loaded lazily so that importing the package does not pull in SciPy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ArmWindows": "harness.analysis.ab.histdata",
    "arm_from_samples": "harness.analysis.ab.histdata",
    "CompareConfig": "harness.analysis.ab.abconfig",
    "Margin": "harness.analysis.ab.abconfig",
    "Comparison": "harness.analysis.ab.compare",
    "compare_arms": "harness.analysis.ab.compare",
    "MetricResult": "harness.analysis.ab.metrics_ab",
    "arms_from_table": "harness.analysis.ab.arms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.analysis.ab' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
