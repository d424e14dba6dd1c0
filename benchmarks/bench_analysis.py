"""Analysis benchmark: a one-hour A/B run at 2,000 req/s, analysed in seconds.

What it does: synthesises a run directory per the results contract — 3,600 seconds, two
arms (endpoints digits/1 and digits/2, 1,000 req/s each, 7.2 M requests in all), one HDR
window per (second, endpoint, outcome) in windows.parquet — then times, and measures the
peak memory of, each analysis step:

    load         read_arms: parquet read + decode every HDR window into the per-second
                 log-grid matrix and the exact merged histogram (the baseline)
    percentiles  p50..p99.9 of each arm from the merged histogram, plus the per-second p99
                 timeline of each arm
    compare      compare_arms with the moving-block bootstrap (1,000 replicates), the
                 autocorrelation-robust rank test, Anderson-Darling, exact tests
    usl_fit      harness.analysis.capacity.curves.USLModel on a 16-step synthetic sweep
                 (A1's module; a SciPy least_squares fit inline if it is missing)

and prints each as a ratio to `load`. It then repeats at 200 req/s: the analysis memory
depends on windows x latency-grid bins, not on the request count, and the table shows it.

Peak memory is tracemalloc's peak (Python and NumPy allocations) during the step, measured
in a second pass so timing is not slowed by tracing; Arrow's own pool peak is shown for
`load`. BLAS runs on one thread by default (`--blas-threads`): on a shared two-core machine
a threaded BLAS spends more time handing work over than computing.

    .venv/bin/python benchmarks/bench_analysis.py [--seconds 3600] [--rates 2000,200]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.analysis.ab.abconfig import CompareConfig
from harness.analysis.ab.bootstrap import quantile_rows
from harness.analysis.ab.compare import compare_arms
from harness.analysis.ab.histdata import bin_values
from harness.analysis.ab.synthetic import encode_window, load_factor
from harness.compare import read_arms
from harness.latency.windows import WindowRecord
from harness.results import write_synthetic_run

ARMS = (("digits/1", 1.0), ("digits/2", 1.03))  # B 3 % slower


def _window(second: int, endpoint: str, outcome: str, lat: np.ndarray, correct: int) -> dict:
    blob, rejected = encode_window(lat)
    return {
        "second": second,
        "endpoint": endpoint,
        "outcome": outcome,
        "count": int(lat.size),
        "hdr": blob,
        "hdr_uncorrected": blob,
        "checked": int(lat.size) if correct >= 0 else 0,
        "correct": max(correct, 0),
        "rejected": rejected,
        "healthy": True,
    }


def synthesise(run_dir: Path, rate: float, seconds: int, seed: int = 0) -> int:
    """Write a split run: lognormal latency (median 5 ms) under an AR(1) load factor."""
    rng = np.random.default_rng(seed)
    load = load_factor(seconds, 0.15, 0.7, rng)
    rows, total = [], 0
    for t in range(seconds):
        for endpoint, scale in ARMS:
            n = int(rng.poisson(rate / len(ARMS)))
            lat = np.exp(np.log(5_000) + load[t] + 0.5 * rng.standard_normal(n)) * scale
            failed = rng.random(n) < 0.001
            ok = lat[~failed]
            rows.append(_window(t, endpoint, "success", ok, int(rng.binomial(ok.size, 0.97))))
            if failed.any():
                rows.append(_window(t, endpoint, "failure", lat[failed], -1))
            total += n
    records = [WindowRecord.from_dict(row) for row in rows]
    write_synthetic_run(run_dir, records, scenario="bench-analysis")
    return total


def _usl_fit() -> object:
    n = np.array([1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256], dtype=float)
    x = 900 * n / (1 + 0.03 * (n - 1) + 2e-4 * n * (n - 1))
    x *= np.random.default_rng(1).normal(1, 0.02, n.size)
    try:
        from harness.analysis.capacity.curves import USLModel
    except ImportError:  # A1's module missing: the same fit inline
        from scipy.optimize import least_squares

        def resid(p: np.ndarray) -> np.ndarray:
            return p[0] * n / (1 + p[1] * (n - 1) + p[2] * n * (n - 1)) - x

        return least_squares(resid, [x[0], 0.05, 1e-4], bounds=([0, 0, 0], [np.inf, 1, 1]))
    return USLModel().fit(n, x)


def _percentiles(arms: list) -> dict:
    out = {}
    for arm in arms:
        out[arm.name] = [arm.merged.percentile(p) for p in (50, 90, 95, 99, 99.9)]
        quantile_rows(arm.counts, bin_values(arm.bin_ids, arm.resolution), np.array([99.0]))
    return out


def _measure(step: Callable[[], object]) -> tuple[float, float, object]:
    t0 = time.perf_counter()
    result = step()
    elapsed = time.perf_counter() - t0
    tracemalloc.start()
    tracemalloc.reset_peak()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak / 2**20, result


def bench(rate: float, seconds: int, n_boot: int, workdir: Path) -> dict:
    run_dir = workdir / f"bench-{int(rate)}rps"
    t0 = time.perf_counter()
    requests = synthesise(run_dir, rate, seconds)
    synth_s = time.perf_counter() - t0
    endpoints = [a for a, _ in ARMS]
    results: dict[str, dict] = {}
    load_s, load_mb, arms = _measure(lambda: read_arms(run_dir, endpoints))
    results["load"] = {
        "s": load_s,
        "peak_mib": load_mb,
        "arrow_peak_mib": pa.default_memory_pool().max_memory() / 2**20,
    }
    steps = {
        "percentiles": lambda: _percentiles(arms),
        "compare": lambda: compare_arms(arms[0], arms[1], CompareConfig(n_boot=n_boot)),
        "usl_fit": _usl_fit,
    }
    outputs = {}
    for name, step in steps.items():
        s, mb, outputs[name] = _measure(step)
        results[name] = {"s": s, "peak_mib": mb}
    for r in results.values():
        r["ratio_to_load"] = r["s"] / load_s
    cmp = outputs["compare"]
    return {
        "rate": rate,
        "seconds": seconds,
        "requests": requests,
        "synthesise_s": synth_s,
        "parquet_mib": (run_dir / "windows.parquet").stat().st_size / 2**20,
        "grid_bins": int(max(a.bin_ids.size for a in arms)),
        "steps": results,
        "verdict": cmp.verdict,
        "p99_rel": cmp.metric("p99").relative,
        "p99_rel_ci": cmp.metric("p99").relative_ci,
    }


def _report(res: dict) -> None:
    print(
        f"\n{res['requests']:,} requests in {res['seconds']} s at {res['rate']:g} req/s "
        f"(windows.parquet {res['parquet_mib']:.1f} MiB, {res['grid_bins']} grid bins, "
        f"synthesised in {res['synthesise_s']:.1f} s)"
    )
    print(f"{'step':<12} {'seconds':>8} {'x load':>8} {'peak MiB':>9}")
    for name, r in res["steps"].items():
        print(f"{name:<12} {r['s']:>8.3f} {r['ratio_to_load']:>8.3f} {r['peak_mib']:>9.1f}")
    lo, hi = res["p99_rel_ci"]
    print(
        f"verdict: {res['verdict']}; B/A - 1 at p99 {res['p99_rel']:+.2%} "
        f"[{lo:+.2%}, {hi:+.2%}]  (true: +3.00%)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=3600)
    p.add_argument("--rates", default="2000,200", help="total req/s over both arms")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--blas-threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    out = []
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=args.blas_threads):
        for rate in rates:
            res = bench(rate, args.seconds, args.n_boot, Path(tmp))
            _report(res)
            out.append(res)
    if len(out) > 1:
        a, b = out[0]["steps"]["compare"], out[-1]["steps"]["compare"]
        print(
            f"\ncompare peak memory at {out[0]['rate']:g} vs {out[-1]['rate']:g} req/s: "
            f"{a['peak_mib']:.1f} vs {b['peak_mib']:.1f} MiB "
            f"(requests x{out[0]['requests'] / out[-1]['requests']:.1f}, "
            f"memory x{a['peak_mib'] / b['peak_mib']:.2f})"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                out,
                indent=2,
                default=lambda x: None if isinstance(x, float) and math.isnan(x) else str(x),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
