"""In-process ONNX Runtime baselines for the server benchmark (run pinned, as its own process).

Why a separate process: the baseline must get the same budget as the server (one core,
the same intra-op thread count), so the benchmark starts it under `taskset -c 0`, exactly
like the server, between server runs. It measures, for one model file:
  * batch-1 latency (p50 of back-to-back `session.run` calls) and batch-1 rate, and
  * samples/s at each batch size of a sweep, per wall second and per CPU second of the
    process (the machine is shared: CPU seconds are what the process actually got), and
    the best batch size by samples per CPU second.
It prints one JSON line.

    python benchmarks/ort_baseline.py MODEL.onnx --threads 1 --sweep 1,8,32 --seconds 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def make_session(path: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _feed(session: ort.InferenceSession, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in session.get_inputs():
        dims = [batch if not isinstance(d, int) or d < 0 else d for d in inp.shape]
        dims[0] = batch
        feeds[inp.name] = rng.standard_normal(dims, dtype=np.float32)
    return feeds


def batch1_latency(session: ort.InferenceSession, seconds: float) -> dict[str, float]:
    """p50/p99 of back-to-back batch-1 runs, and the batch-1 rate (wall and CPU)."""
    feeds = _feed(session, 1)
    for _ in range(20):
        session.run(None, feeds)
    samples: list[int] = []
    cpu0 = time.process_time()
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t0 = time.perf_counter_ns()
        session.run(None, feeds)
        samples.append(time.perf_counter_ns() - t0)
    cpu = time.process_time() - cpu0
    lat = np.array(samples, dtype=np.float64) / 1e6
    return {
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "rate": len(samples) / (lat.sum() / 1e3),
        "rate_per_cpu_s": len(samples) / cpu if cpu > 0 else float("nan"),
    }


def samples_per_second(
    session: ort.InferenceSession, batch: int, seconds: float
) -> tuple[float, float]:
    """(samples per wall second, samples per CPU second of this process) at `batch`."""
    feeds = _feed(session, batch)
    session.run(None, feeds)
    runs = 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - t0) < seconds or runs < 3:
        session.run(None, feeds)
        runs += 1
    cpu = time.process_time() - cpu0
    return runs * batch / elapsed, runs * batch / cpu if cpu > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="path of a model.onnx")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--sweep", default="", help="batch sizes, e.g. 1,8,32 (empty: none)")
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = parser.parse_args(argv)
    session = make_session(args.model, args.threads)
    result: dict[str, object] = {"batch1": batch1_latency(session, args.seconds)}
    batches = [int(b) for b in args.sweep.split(",") if b]
    measured = {b: samples_per_second(session, b, args.seconds) for b in batches}
    if measured:
        # best by CPU-second: on a shared machine wall-clock rates move with the neighbours
        best = max(measured, key=lambda b: measured[b][1])
        result.update(
            sweep={b: wall for b, (wall, _) in measured.items()},
            sweep_per_cpu_s={b: cpu for b, (_, cpu) in measured.items()},
            best_batch=best,
            best_samples_per_s=measured[best][0],
            best_samples_per_cpu_s=measured[best][1],
        )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
