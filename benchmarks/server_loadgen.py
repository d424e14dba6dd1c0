"""Pinned processes and load generators for the server benchmark: wrk, gRPC load, baselines.

Why a module of its own: bench_server.py says *what* is measured and prints the ratios;
this module knows *how* — starting a server under `taskset` and reading its `listening`
line, running Debian's `wrk` (with benchmarks/wrk_kserve.lua for KServe bodies) or
benchmarks/grpc_load.py on the other core, and measuring, over the same window, the
server's CPU and the generator's own CPU, so every number shows whether the server was
saturated and the generator was not.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER_CPU = "0"
GENERATOR_CPU = "1"
LISTENING = re.compile(rb"listening http=(\d+)(?: grpc=(\d+) metrics=(\d+))?")


@dataclass(frozen=True, slots=True)
class Load:
    """One closed-loop measurement: throughput, latency, and who was busy."""

    label: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    generator_cpu_pct: float  # of one core
    server_cpu_pct: float  # of one core (the server is pinned to one)

    @property
    def per_server_cpu_s(self) -> float:
        """Requests per CPU second the server got: its per-core rate on a shared machine."""
        return self.rps * 100 / self.server_cpu_pct if self.server_cpu_pct > 0 else float("nan")


@dataclass
class Pinned:
    proc: subprocess.Popen
    ports: tuple[int, ...]

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system


@contextlib.contextmanager
def pinned_server(
    cmd: list[str], cpu: str = SERVER_CPU, timeout: float = 120.0
) -> Iterator[Pinned]:
    """Start `cmd` under `taskset -c cpu`, wait for its `listening` line, stop it by PID."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(["taskset", "-c", cpu, *cmd], cwd=ROOT, stdout=subprocess.PIPE, env=env)
    try:
        ports = _read_listening(proc, time.monotonic() + timeout)
        yield Pinned(proc, ports)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def _read_listening(proc: subprocess.Popen, deadline: float) -> tuple[int, ...]:
    assert proc.stdout is not None
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            if m := LISTENING.search(buf):
                return tuple(int(g) for g in m.groups() if g is not None)
        elif proc.poll() is not None:
            break
    raise RuntimeError(f"{proc.args} did not announce its ports (exit {proc.poll()})")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk_latency_ms(text: str, percentile: str) -> float:
    m = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(m[1]) * _UNITS[m[2]] if m else float("nan")


def parse_wrk(text: str) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, errors) from wrk --latency output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    if non2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors += int(non2xx[1])
    p50, p99 = _wrk_latency_ms(text, "50"), _wrk_latency_ms(text, "99")
    return (float(rps[1]) if rps else 0.0), p50, p99, errors


def run_wrk(
    label: str,
    server: Pinned,
    url: str,
    connections: int,
    seconds: int,
    script_args: list[str] | None = None,
) -> Load:
    """wrk (one thread, pinned to the generator core) against `url` for `seconds`."""
    cmd = ["taskset", "-c", GENERATOR_CPU, "wrk", "-t1", f"-c{connections}"]
    cmd += [f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script_args is not None:
        cmd += ["-s", str(HERE / "wrk_kserve.lua"), url, "--", *script_args]
    else:
        cmd.append(url)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30)
    wall = time.perf_counter() - wall0
    server_cpu = server.cpu_seconds() - server_cpu0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    gen_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rps, p50, p99, errors = parse_wrk(out.stdout)
    return Load(
        label, connections, rps, p50, p99, errors, 100 * gen_cpu / wall, 100 * server_cpu / wall
    )


def run_grpc(
    label: str,
    server: Pinned,
    target: str,
    model: str,
    concurrency: int,
    seconds: float,
    warmup: float,
    stream: bool = False,
) -> Load:
    """benchmarks/grpc_load.py on the generator core; server CPU over its measured window."""
    cmd = ["taskset", "-c", GENERATOR_CPU, sys.executable, str(HERE / "grpc_load.py")]
    cmd += ["--target", target, "--model", model, "--concurrency", str(concurrency)]
    cmd += ["--duration", str(seconds), "--warmup", str(warmup)]
    cmd += ["--channels", str(min(4, concurrency)), *(["--stream"] if stream else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    try:
        marker = proc.stdout.readline()  # "measuring" once the warm-up is over
        if marker.strip() != "measuring":
            raise RuntimeError(f"grpc_load failed before measuring: {marker!r}")
        server_cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
        result = json.loads(proc.stdout.readline())
        wall = time.perf_counter() - wall0
        server_cpu = server.cpu_seconds() - server_cpu0
    finally:
        if proc.wait(30) != 0:
            raise RuntimeError(f"grpc_load exited {proc.returncode}")
        proc.stdout.close()
    errors = sum(result["errors"].values())
    return Load(
        label,
        concurrency,
        result["rps"],
        result["p50_ms"],
        result["p99_ms"],
        errors,
        result["cpu_percent"],
        100 * server_cpu / wall,
    )


def ort_baseline(model_path: Path, threads: int, sweep: str, seconds: float) -> dict:
    """benchmarks/ort_baseline.py pinned to the server core, with the server's thread budget."""
    cmd = ["taskset", "-c", SERVER_CPU, sys.executable, str(HERE / "ort_baseline.py")]
    cmd += [str(model_path), "--threads", str(threads), "--sweep", sweep]
    cmd += ["--seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])
