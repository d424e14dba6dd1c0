"""Goodput past capacity: does the reference server collapse when offered 2x and 4x its capacity?

One run, ratios against a baseline measured in the same run. The shipped `cnn` configuration
(bounded queue: 200 requests, 100 ms) on one intra-op thread, batch-1 KServe binary requests
over HTTP from benchmarks/openloop_http.py (open loop, on the same host). Capacity is measured
first: a closed loop of 64 connections saturates the server, then an open loop at 1.25x that
rate gives the answers per second the server keeps while an open-loop client shares the host.
Then 0.8x, 1x, 2x, 4x that capacity and 0.8x again (host drift), 5 s each. Goodput = answers
within the SLO (250 ms from the intended send) per second. Printed: goodput at each level over
goodput at 0.8x; goal >= 0.9 at 2x and 4x (no congestive collapse). Last, the front-end
ceiling: benchmarks/null_refuser.py (reads each request and answers 503, nothing else) offered
the same 2x and 4x loads -- a share of those it cannot answer within the SLO is load that no
server reading its sockets in order on this host could have served in time. Beside it, two
bounds on the 4x ratio: any server (refusals at the null refuser's cost, answers at in-process
ORT's), and this server (answers at its own CPU per answer at 0.8x). Last, the same server
with overload shedding off (`--max-loop-lag-ms 0`) at 0.8x, 2x and 4x: what shedding on event-
loop lag buys. About 80 s.

    python benchmarks/bench_overload.py [--seconds 5] [--slo-ms 250]
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

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from openloop_http import (  # noqa: E402
    LoadResult,
    kserve_binary_request,
    run_closed_loop,
    run_open_loop,
)

LISTENING = re.compile(rb"listening http=(\d+)")
CEILING_LEVELS = (2.0, 4.0)
LEVELS = (0.8, 1.0, 2.0, 4.0, 0.8)
UNSHED_LEVELS = (0.8, 2.0, 4.0)


@dataclass(frozen=True, slots=True)
class Level:
    factor: float
    offered_rps: float
    result: LoadResult
    goodput_rps: float
    server_cpu: float  # cores
    client_cpu: float  # cores


def start_server(repository: Path | None, *extra: str) -> tuple[subprocess.Popen, int]:
    """The reference server on `repository`; None: the null refuser (the front-end ceiling)."""
    if repository is None:
        cmd = [sys.executable, str(HERE / "null_refuser.py")]
    else:
        cmd = [sys.executable, "-m", "reference_server", "--host", "127.0.0.1"]
        cmd += ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
        cmd += ["--model-repository", str(repository), "--device", "cpu"]
        cmd += ["--intra-op-threads", "1", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    match = LISTENING.search(proc.stdout.readline())
    if match is None:
        proc.kill()
        raise SystemExit("the server did not start")
    return proc, int(match[1])


def measure(port: int, request: bytes, rate: float, seconds: float, slo_s: float, pid: int):
    server = psutil.Process(pid)
    s0, c0, t0 = sum(server.cpu_times()[:2]), time.process_time(), time.monotonic()
    result = run_open_loop("127.0.0.1", port, request, rate, seconds, timeout_s=5.0)
    wall = time.monotonic() - t0
    server_cpu = (sum(server.cpu_times()[:2]) - s0) / wall
    client_cpu = (time.process_time() - c0) / wall
    return result, result.goodput_rps(slo_s), server_cpu, client_cpu


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.0f}"


def in_slo(result: LoadResult, slo_s: float) -> float:
    """Share of the offered requests answered (200 or 503) within `slo_s` of their intended
    send: the load a server read and dealt with in time."""
    offered = result.offered_rps * result.duration_s
    done = np.count_nonzero(np.asarray(result.answered + result.refused) <= slo_s)
    return float(done / offered) if offered else 0.0


def bound_ratio(
    null: Level, client_cpu: float, per_answer_s: float, base: Level, capacity: float
) -> float:
    """An upper bound on the goodput ratio a server could keep at `null`'s offered load on
    this host: refusing costs it only what the null refuser spent per request, answering
    `per_answer_s` of CPU; it may use the cores the client leaves free and answers at most
    `capacity`/s. Answers a: a * per_answer + (offered - a) * per_refusal <= budget."""
    budget = (os.cpu_count() or 1) - client_cpu
    per_refusal = null.server_cpu / null.offered_rps
    answers = (budget - null.offered_rps * per_refusal) / max(per_answer_s - per_refusal, 1e-9)
    return max(0.0, min(capacity, answers)) / base.goodput_rps


def ideal_ratio(null: Level, base: Level, capacity: float, ort_per_answer_s: float) -> float:
    """Any server: answers at in-process ONNX Runtime's CPU per sample at its best batch."""
    return bound_ratio(null, null.client_cpu, ort_per_answer_s, base, capacity)


def own_cost_ratio(null: Level, mine: Level, base: Level) -> float:
    """This server: answers at its own CPU per answer at 0.8x (where it answers everything),
    the client's CPU at this level -- what perfect shedding could reach without making an
    answer cheaper."""
    per_answer = base.server_cpu / max(base.result.throughput_rps(), 1e-9)
    return bound_ratio(null, mine.client_cpu, per_answer, base, float("inf"))


def report_ceiling(
    levels: list[Level], ceiling: list[Level], slo_s: float, capacity: float, ort_s: float
) -> None:
    """The front-end ceiling beside the reference server at the same offered loads."""
    cores = os.cpu_count() or 1
    print("front-end ceiling (null refuser: read each request, answer 503) at the same loads:")
    print(
        "level  offered  in SLO: null refuser  reference server  null srv cpu  cli cpu  "
        "ideal goodput/0.8x  at own cost  measured"
    )
    ours = {lv.factor: lv for lv in levels[1:4]}
    for lv in ceiling:
        mine = ours[lv.factor]
        print(
            f"{lv.factor:4.1f}x  {lv.offered_rps:7.0f}  {in_slo(lv.result, slo_s):20.2f}  "
            f"{in_slo(mine.result, slo_s):16.2f}  {lv.server_cpu:12.2f}  {lv.client_cpu:7.2f}  "
            f"{ideal_ratio(lv, levels[0], capacity, ort_s):18.2f}  "
            f"{own_cost_ratio(lv, mine, levels[0]):11.2f}  "
            f"{mine.goodput_rps / levels[0].goodput_rps:8.2f}"
        )
    print(
        f"(in SLO: share of the offered requests answered, 200 or 503, within the SLO. ideal: "
        f"an upper bound -- refusals at the null refuser's CPU cost, answers at in-process "
        f"ORT's {ort_s * 1e6:.0f} us of CPU per sample, on what the client leaves of {cores} "
        f"cores, at most capacity -- below 0.9 the goal is out of reach on this host for any "
        f"server; above it, the gap to 'measured' is the server's own cost. at own cost: the "
        f"same with answers at this server's CPU per answer at 0.8x -- below 0.9, shedding "
        f"alone cannot reach the goal here: answers must get cheaper)"
    )


def report_unshed(levels: list[Level], unshed: list[Level], slo_s: float) -> None:
    """The shipped server beside the same server with overload shedding off."""
    print("overload shedding on (shipped) vs off (--max-loop-lag-ms 0), same run:")
    print("level  goodput/0.8x on  off   in SLO on  off")
    on = {lv.factor: lv for lv in levels[1:4]}
    for lv in unshed[1:]:
        mine = on[lv.factor]
        print(
            f"{lv.factor:4.1f}x  {mine.goodput_rps / levels[0].goodput_rps:15.2f}  "
            f"{lv.goodput_rps / unshed[0].goodput_rps:4.2f}  {in_slo(mine.result, slo_s):9.2f}  "
            f"{in_slo(lv.result, slo_s):4.2f}"
        )


def report(capacity: float, closed: float, levels: list[Level]) -> None:
    base = levels[0].goodput_rps
    print(f"capacity {capacity:.0f} req/s (open loop at 1.25x the closed loop's {closed:.0f})")
    head = "level  offered  answered  goodput  refused/s  p99 ok ms  p99 503 ms  srv cpu  cli cpu"
    print(head + "  goodput/0.8x")
    for lv in levels:
        r = lv.result
        print(
            f"{lv.factor:4.1f}x  {lv.offered_rps:7.0f}  {r.throughput_rps():8.0f}  "
            f"{lv.goodput_rps:7.0f}  {len(r.refused) / r.duration_s:9.0f}  "
            f"{_ms(r.p(r.answered, 99)):>9}  {_ms(r.p(r.refused, 99)):>10}  "
            f"{lv.server_cpu:7.2f}  {lv.client_cpu:7.2f}  {lv.goodput_rps / base:12.2f}"
        )
    ratios = {lv.factor: lv.goodput_rps / base for lv in levels[1:4]}
    verdict = all(ratios[f] >= 0.9 for f in (2.0, 4.0))
    print(
        "goodput / goodput at 0.8x: "
        + ", ".join(f"{f:g}x {r:.2f}" for f, r in ratios.items())
        + f"  (goal >= 0.9 at 2x and 4x: {'met' if verdict else 'NOT met'})"
    )
    drift = levels[-1].goodput_rps / base
    print(f"0.8x again at the end / at the start: {drift:.2f} (host drift; 1.00 = steady host)")


def run_levels(
    port: int, pid: int, request: bytes, capacity: float, factors: tuple[float, ...], args
) -> list[Level]:
    """One open loop per factor of `capacity`, a second apart (the server drains between)."""
    levels = []
    for factor in factors:
        rate = factor * capacity
        result, goodput, srv, cli = measure(
            port, request, rate, args.seconds, args.slo_ms / 1e3, pid
        )
        levels.append(Level(factor, rate, result, goodput, srv, cli))
        time.sleep(1.0)
    return levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--slo-ms", type=float, default=250.0)
    args = parser.parse_args(argv)
    from reference_server.config import default_model_repository
    from reference_server.models.build import ensure_repository

    repository = ensure_repository(default_model_repository())
    proc, port = start_server(repository)
    try:
        one_row = kserve_binary_request("cnn", (1, 3, 64, 64))
        run_open_loop("127.0.0.1", port, kserve_binary_request("cnn", (32, 3, 64, 64)), 20, 1.0)
        closed = run_closed_loop("127.0.0.1", port, one_row, 64, 2.0).throughput_rps()
        capacity = run_open_loop("127.0.0.1", port, one_row, 1.25 * closed, 2.0).throughput_rps()
        levels = run_levels(port, proc.pid, one_row, capacity, LEVELS, args)
        report(capacity, closed, levels)
    finally:
        stop(proc)
    refuser, port = start_server(None)
    try:
        ceiling = run_levels(port, refuser.pid, one_row, capacity, CEILING_LEVELS, args)
    finally:
        stop(refuser)
    from server_loadgen import ort_baseline

    ort = ort_baseline(repository / "cnn" / "1" / "model.onnx", 1, "1,2,4,8,16,32", 1.0)
    report_ceiling(levels, ceiling, args.slo_ms / 1e3, capacity, 1 / ort["best_samples_per_cpu_s"])
    proc, port = start_server(repository, "--max-loop-lag-ms", "0")
    try:
        run_open_loop("127.0.0.1", port, kserve_binary_request("cnn", (32, 3, 64, 64)), 20, 1.0)
        unshed = run_levels(port, proc.pid, one_row, capacity, UNSHED_LEVELS, args)
    finally:
        stop(proc)
    report_unshed(levels, unshed, args.slo_ms / 1e3)
    return 0


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
