"""`--workers 2` against `--workers 1`, one run, ratios against the same run's single worker.

(a) Throughput per server CPU-second: `mlp` and `cnn`, batch-1 KServe binary requests over
    HTTP, a closed loop of 64 connections (benchmarks/openloop_http.py, on this host) for
    `--seconds`. Server CPU = the supervisor and every worker (psutil, user + system). Printed:
    requests/s, server cores used, requests per server CPU-second, and the 2-worker / 1-worker
    ratios of both throughput and efficiency.
(b) Goodput past capacity (issue 16's question, re-asked): the ONE-worker capacity measured
    as bench_overload.py does (closed loop, then an open loop at 1.25x it), then, for each
    worker count, open loops at 0.8x and 4x that same capacity (the same offered load for
    both); goodput = answers within the SLO (250 ms from the intended send) per second;
    printed goodput at 4x over goodput at 0.8x, and 2 workers' goodput at 4x over 1 worker's.

The host is shared and noisy: 1 and 2 workers are measured in interleaved rounds (1, 2, 1,
2, ...) and every ratio is printed per round with the median. Everything shares the host's
cores: the client is one Python process on uvloop, so on a 2-core machine two workers
compete with it (see the CPU columns).

    python benchmarks/bench_workers.py [--seconds 5] [--rounds 2] [--slo-ms 250]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from openloop_http import kserve_binary_request, run_closed_loop, run_open_loop  # noqa: E402

LISTENING = re.compile(rb"listening http=(\d+)")
SHAPES = {"mlp": (1, 256), "cnn": (1, 3, 64, 64)}


@dataclass(frozen=True, slots=True)
class Row:
    what: str
    workers: int
    rps: float
    server_cores: float
    client_cores: float

    @property
    def per_cpu_s(self) -> float:
        return self.rps / self.server_cores


def start_server(repository: Path, workers: int) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "reference_server", "--host", "127.0.0.1"]
    cmd += ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    cmd += ["--model-repository", str(repository), "--device", "cpu", "--intra-op-threads", "1"]
    cmd += ["--workers", str(workers), "--log-level", "WARNING"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    match = LISTENING.search(proc.stdout.readline())
    if match is None:
        proc.kill()
        raise SystemExit("the server did not start")
    return proc, int(match[1])


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the server and all its (living) worker processes."""
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def timed(pid: int, load):
    s0, c0, t0 = server_cpu_s(pid), time.process_time(), time.monotonic()
    result = load()
    wall = time.monotonic() - t0
    return result, (server_cpu_s(pid) - s0) / wall, (time.process_time() - c0) / wall


def measure_workers(
    repository: Path, workers: int, seconds: float, slo_s: float, capacity: float | None
) -> dict:
    """(a) for both models and (b) at 0.8x and 4x `capacity` (None: measure it here)."""
    proc, port = start_server(repository, workers)
    out: dict = {}
    try:
        big = kserve_binary_request("cnn", (32, 3, 64, 64))
        run_open_loop("127.0.0.1", port, big, 20, 1.0)  # warm every worker's sessions
        for model, shape in SHAPES.items():
            request = kserve_binary_request(model, shape)
            run_closed_loop("127.0.0.1", port, request, 64, 1.0)
            result, srv, cli = timed(
                proc.pid, lambda r=request: run_closed_loop("127.0.0.1", port, r, 64, seconds)
            )
            out[model] = Row(f"{model} closed c64", workers, result.throughput_rps(), srv, cli)
        one = kserve_binary_request("cnn", SHAPES["cnn"])
        if capacity is None:
            closed = run_closed_loop("127.0.0.1", port, one, 64, 2.0).throughput_rps()
            capacity = run_open_loop("127.0.0.1", port, one, 1.25 * closed, 2.0).throughput_rps()
        out["capacity"] = capacity
        for factor in (0.8, 4.0):
            result, srv, cli = timed(
                proc.pid,
                lambda f=factor: run_open_loop(
                    "127.0.0.1", port, one, f * capacity, seconds, timeout_s=5.0
                ),
            )
            goodput = result.goodput_rps(slo_s)
            out[factor] = Row(f"cnn open {factor:g}x", workers, goodput, srv, cli)
            time.sleep(1.0)  # let the server drain between levels
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


def report(rounds: list[tuple[dict, dict]]) -> None:
    for i, (one, two) in enumerate(rounds, 1):
        print(f"== round {i}")
        report_round(one, two)
    print("== medians over the rounds (2 workers / 1 worker)")
    for model in SHAPES:
        rps = median(t[model].rps / o[model].rps for o, t in rounds)
        eff = median(t[model].per_cpu_s / o[model].per_cpu_s for o, t in rounds)
        print(f"  {model}: throughput {rps:.2f}, per server CPU-second {eff:.2f}")
    good = median(t[4.0].rps / o[4.0].rps for o, t in rounds)
    r1 = median(o[4.0].rps / o[0.8].rps for o, _ in rounds)
    r2 = median(t[4.0].rps / t[0.8].rps for _, t in rounds)
    print(
        f"  cnn goodput at 4x: {good:.2f}; goodput 4x/0.8x: 1 worker {r1:.2f}, 2 workers {r2:.2f}"
    )
    print(f"host: {psutil.cpu_count()} logical CPUs, no GPU used (--device cpu)")


def report_round(one: dict, two: dict) -> None:
    print("(a) closed loop, batch-1 HTTP binary, 64 connections")
    print("what             workers   req/s  srv cores  cli cores  req/srv-CPU-s")
    for model in SHAPES:
        for row in (one[model], two[model]):
            print(
                f"{row.what:16} {row.workers:7d} {row.rps:7.0f} {row.server_cores:10.2f} "
                f"{row.client_cores:10.2f} {row.per_cpu_s:14.0f}"
            )
        a, b = one[model], two[model]
        print(
            f"  {model}: 2 workers / 1: throughput {b.rps / a.rps:.2f}, "
            f"per server CPU-second {b.per_cpu_s / a.per_cpu_s:.2f}"
        )
    print(f"(b) cnn open loop at 0.8x and 4x of one worker's capacity ({one['capacity']:.0f}/s)")
    print("workers  goodput 0.8x  goodput 4x  srv cores 4x  cli cores 4x  4x/0.8x")
    for res in (one, two):
        low, high = res[0.8], res[4.0]
        print(
            f"{high.workers:7d} {low.rps:13.0f} {high.rps:11.0f} "
            f"{high.server_cores:13.2f} {high.client_cores:13.2f} {high.rps / low.rps:8.2f}"
        )
    print(f"  goodput at 4x, 2 workers / 1: {two[4.0].rps / one[4.0].rps:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--slo-ms", type=float, default=250.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    from reference_server.config import default_model_repository
    from reference_server.models.build import ensure_repository

    repository = ensure_repository(default_model_repository())
    slo_s, rounds = args.slo_ms / 1e3, []
    for _ in range(args.rounds):
        one = measure_workers(repository, 1, args.seconds, slo_s, None)
        two = measure_workers(repository, 2, args.seconds, slo_s, one["capacity"])
        rounds.append((one, two))
    report(rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
