"""Analysis: turn stored measurements into decisions. Pure modules, arrays in, records out.

A/B significance (`harness compare`):
    compare       compare_arms(a, b, config, design) -> Comparison: verdicts per metric + overall
    abconfig      CompareConfig, Margin
    histdata      Histogram, ArmWindows, arm_from_samples: the data model (HDR + log grid)
    runfiles      read_arms(run_dir, endpoints) -> [ArmWindows]  (the only file I/O here)
    ranktests, disttest, bootstrap, proportions, equivalence, latency_ab, metrics_ab: the
                  statistics behind it; synthetic: seeded test data.

Curves, capacity and HPA modules live beside these and are imported by their own names.
Names below are loaded lazily so `import harness.analysis` does not pull in SciPy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ArmWindows": "harness.analysis.histdata",
    "Histogram": "harness.analysis.histdata",
    "arm_from_samples": "harness.analysis.histdata",
    "CompareConfig": "harness.analysis.abconfig",
    "Margin": "harness.analysis.abconfig",
    "Comparison": "harness.analysis.compare",
    "compare_arms": "harness.analysis.compare",
    "MetricResult": "harness.analysis.metrics_ab",
    "read_arms": "harness.analysis.runfiles",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
