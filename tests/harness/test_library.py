"""The documented library entry points (`harness.__init__`) and what importing them costs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import harness
from harness.analysis.ab.synthetic import ArmSpec, load_factor, simulate_arm, window_rows
from harness.latency.windows import WindowRecord
from harness.results import write_synthetic_run


@pytest.mark.parametrize("name", harness.__all__)
def test_every_documented_entry_point_resolves(name):
    assert callable(getattr(harness, name))
    assert name in (harness.__doc__ or "")


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        _ = harness.nonsense


def _run(path: Path, scale_b: float, seed: int) -> Path:
    load = load_factor(60, 0.15, 0.7, np.random.default_rng(seed))
    rows = []
    for i, (endpoint, scale) in enumerate((("m/1", 1.0), ("m/2", scale_b))):
        s = simulate_arm(ArmSpec(rate=80, scale=scale), load, np.random.default_rng(seed + i + 1))
        rows += window_rows(endpoint, s.seconds, s.latency_us, s.failed)
    return write_synthetic_run(path, [WindowRecord.from_dict(r) for r in rows])


def test_compare_runs_judges_a_split_run_from_its_directory(tmp_path: Path):
    worse = harness.compare_runs(_run(tmp_path / "worse", 1.3, 0))
    assert (worse.arm_a, worse.arm_b, worse.design) == ("m/1", "m/2", "split")
    assert worse.regression and worse.verdict == "worse"
    same = harness.compare_runs(_run(tmp_path / "same", 1.0, 10))
    assert not same.regression
    two = harness.compare_runs(tmp_path / "worse", tmp_path / "same", arms=["m/2", "m/1"])
    assert two.design == "two-runs" and two.arm_a == "m/2" and two.arm_b == "m/1"


def test_the_locust_side_imports_stay_light():
    """What a Locust worker imports of the harness pulls in neither SciPy nor the server."""
    code = (
        "import sys\n"
        "import harness.loadgen.recorder, harness.loadgen.spec, harness.loadgen.arrivals\n"
        "import harness.loadgen.payloads, harness.loadgen.stream, harness.kserve\n"
        "heavy = ('scipy', 'reference_server', 'locust', 'pyarrow', 'duckdb', 'onnxruntime')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
