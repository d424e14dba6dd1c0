"""Load-generator benchmark: what does honest open-loop measurement cost? (ratios, one run)

1. baseline: plain Locust FastHttpUser, closed loop, one process, as many users as it takes
   -> its maximum requests/s against a trivial endpoint (nginx answering a fixed body);
2. ours: the harness's open-loop driver in ONE worker process at increasing constant rates
   against the same endpoint -> the highest rate sustained with schedule-lag p99 < 1 ms, no
   drops and the achieved rate within 2 % of the asked one (also reported: lag p99 < 10 ms,
   the self-health threshold);
   ratio = (2) / (1)   (goal >= 0.9);
3. memory: the worker's and master's RSS sampled every second during a soak at a moderate
   rate; growth per recorded second (goal: flat, independent of request count) and
   windows.parquet bytes per recorded second.

    .venv/bin/python benchmarks/bench_loadgen.py [--quick] [--soak-s 120]

With two or more cores, each generator (the baseline Locust process, and our Locust worker)
runs alone on core 1; nginx, the orchestrator and the Locust master share core 0.
Everything binds 127.0.0.1; every process started is stopped by PID. Numbers depend on the
machine and on what else runs on it: compare the ratio, not the absolute rates.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.config import validate_scenario  # noqa: E402
from harness.load.api import run_scenario  # noqa: E402
from harness.stack.nginx import bind_listener, find_nginx  # noqa: E402

GENERATOR_CORE, OTHERS_CORE = 1, 0  # the generator gets a core of its own (when there are 2)


# decided once, before this process pins itself to one core
CAN_PIN = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2

ANSWER = '{"outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[0]}]}'
METADATA = (
    '{"name":"m","versions":["1"],"inputs":[{"name":"input","datatype":"FP32","shape":[-1,4]}]}'
)
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        location = /v2/models/m/infer {{ return 200 '{answer}'; }}
        location = /v2/models/m {{ return 200 '{metadata}'; }}
        location / {{ return 200 ''; }}
    }}
}}
"""
BASELINE_LOCUSTFILE = """
import os, psutil
from locust import FastHttpUser, events, task
CPU = {}
@events.test_start.add_listener
def _start(**kw):
    CPU["start"] = sum(psutil.Process().cpu_times()[:2])
@events.test_stop.add_listener
def _stop(**kw):
    with open(os.environ["BENCH_CPU_FILE"], "w") as f:
        f.write(str(sum(psutil.Process().cpu_times()[:2]) - CPU["start"]))
BODY = b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
class Plain(FastHttpUser):
    @task
    def infer(self):
        self.client.post("/v2/models/m/infer", data=BODY,
                         headers={"Content-Type": "application/json"})
"""


class StaticNginx:
    def __init__(self, work: Path) -> None:
        (work / "tmp").mkdir(parents=True, exist_ok=True)
        sock = bind_listener("127.0.0.1")
        self.port = sock.getsockname()[1]
        conf = work / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(work=work, port=self.port, answer=ANSWER, metadata=METADATA)
        )
        env = dict(os.environ, NGINX=f"{sock.fileno()};")
        cmd = [find_nginx(), "-c", str(conf), "-p", str(work), "-e", str(work / "error.log")]
        self.popen = subprocess.Popen(cmd, env=env, pass_fds=(sock.fileno(),))
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.popen.terminate()
        self.popen.wait(timeout=10)


def baseline_rps(url: str, work: Path, users: int, seconds: int) -> tuple[float, float]:
    """Plain Locust FastHttpUser, closed loop, one process: (requests/s, CPU us/request)."""
    locustfile = work / "plain_locustfile.py"
    locustfile.write_text(BASELINE_LOCUSTFILE)
    prefix = work / "plain"
    cmd = ["taskset", "-c", str(GENERATOR_CORE)] if CAN_PIN else []
    cmd += [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", url]
    cmd += ["-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--csv", str(prefix)]
    cmd += ["--only-summary", "--loglevel", "ERROR", "--exit-code-on-error", "0"]
    env = dict(os.environ, BENCH_CPU_FILE=str(work / "plain_cpu"))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=seconds + 60, env=env)
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = float(rows["Aggregated"]["Request Count"])
    cpu_s = float((work / "plain_cpu").read_text())
    return float(rows["Aggregated"]["Requests/s"]), 1e6 * cpu_s / total


class PinWorkers:
    """While active, moves every Locust worker started under `out` onto GENERATOR_CORE
    (the orchestrator, master and nginx stay on OTHERS_CORE), as the baseline is pinned."""

    def __init__(self, out: Path) -> None:
        self.out, self.stop, self.pinned = str(out), threading.Event(), set()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PinWorkers:
        if CAN_PIN:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _loop(self) -> None:
        while not self.stop.wait(0.02):
            for proc in psutil.process_iter(["pid", "cmdline"]):
                cmd = " ".join(proc.info["cmdline"] or ())
                if proc.info["pid"] in self.pinned or "--worker" not in cmd or self.out not in cmd:
                    continue
                try:
                    proc.cpu_affinity([GENERATOR_CORE])
                    self.pinned.add(proc.info["pid"])
                except psutil.Error:
                    pass


def open_loop(url: str, out: Path, rate: float, seconds: float, **load: object) -> dict:
    scenario = validate_scenario(
        {
            "name": f"bench-{int(rate)}",
            "target": {"url": url, "protocol": "kserve-http", "model": "m"},
            "load": {"mode": "open", "arrival": "constant", "rate": rate, "duration": seconds}
            | load,
            "validity": {"min_duration_s": 0, "min_requests": 0},
        },
        "bench",
    )
    with PinWorkers(out):
        return run_scenario(scenario, out, show_progress=False).summary


def sustained(summary: dict, rate: float, seconds: float, max_lag_ms: float) -> tuple[bool, float]:
    loadgen = summary["loadgen"]
    lag_p99 = loadgen["schedule_lag_ms"]["p99"] or 0.0
    achieved = summary["requests"] / seconds
    ok = lag_p99 < max_lag_ms and loadgen["dropped"] == 0 and summary["failures"] == 0
    return ok and abs(achieved - rate) / rate < 0.02, lag_p99


def highest_open_rate(
    url: str, out: Path, base: float, seconds: float, fractions: tuple[float, ...]
) -> dict[str, float]:
    """Highest rate (from `fractions` of the baseline, descending, then one bisection step)
    whose run meets each lag bound; every run's numbers are printed."""
    lags: dict[float, float] = {}
    cpu_us: list[float] = []

    def lag_at(rate: float) -> float:
        if rate not in lags:
            summary = open_loop(url, out, rate, seconds)
            ok, lag = sustained(summary, rate, seconds, float("inf"))
            lags[rate] = lag if ok else float("inf")
            loadgen = summary["loadgen"]
            busy = loadgen["worker_cpu_s"]
            cpu_us.append(1e6 * busy / max(summary["requests"], 1))
            print(f"  open loop {rate:8.0f}/s: lag p99 {lag:8.3f} ms, dropped "
                  f"{summary['loadgen']['dropped']}, achieved {summary['requests'] / seconds:8.1f}"
                  f"/s, cpu max {summary['loadgen']['max_cpu_percent']}%")  # fmt: skip
        return lags[rate]

    best: dict[str, float] = {}
    for bound in (1.0, 10.0):
        failed = None
        for fraction in fractions:
            rate = round(fraction * base)
            if lag_at(rate) < bound:
                middle = round((rate + failed) / 2) if failed else None
                best[f"lag_p99_below_{bound:g}ms"] = (
                    middle if middle and lag_at(middle) < bound else rate
                )
                break
            failed = rate
        else:
            best[f"lag_p99_below_{bound:g}ms"] = 0.0
    best["cpu_us_per_request"] = round(min(cpu_us), 1)  # the busiest runs amortise best
    return best


TIMER_FLOOR_CODE = """
import json, time
import numpy as np
from scenarios.waketimer import make_wake_timer
timer, lags, period = make_wake_timer(), [], 250e-6
start = time.monotonic() + 0.05
for i in range(8000):  # 2 s of wake-ups every 250 us, nothing else running
    due = start + i * period
    timer.sleep_until(due)
    lags.append(time.monotonic() - due)
ms = np.array(lags) * 1e3
print(json.dumps({"p50": round(float(np.percentile(ms, 50)), 3),
                  "p99": round(float(np.percentile(ms, 99)), 3), "max": round(float(ms.max()), 3)}))
"""


def timer_floor() -> dict[str, float]:
    """Wake-up lateness of a bare timer loop on the generator's core (ms): the host's own
    share of any schedule lag. On a shared VM it swings from ~0.1 to several ms p99; when
    its p99 nears 1 ms no generator that sleeps can meet the lag criterion in that run."""
    cmd = ["taskset", "-c", str(GENERATOR_CORE)] if CAN_PIN else []
    cmd += [sys.executable, "-c", TIMER_FLOOR_CODE]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, timeout=60)
    return json.loads(out.stdout)


def soak_memory(url: str, out: Path, rate: float, seconds: float) -> dict:
    samples: dict[str, list[tuple[float, int]]] = {"worker": [], "master": []}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            for proc in psutil.process_iter(["cmdline", "memory_info"]):
                cmd = " ".join(proc.info["cmdline"] or ())
                if str(out) in cmd and "locust" in cmd:
                    role = "worker" if "--worker" in cmd else "master"
                    samples[role].append((time.time(), proc.info["memory_info"].rss))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    summary = open_loop(url, out, rate, seconds)
    stop.set()
    thread.join()
    result: dict = {"rate": rate, "requests": summary["requests"], "seconds": seconds}
    for role, points in samples.items():
        if len(points) < 10:
            continue
        t = np.array([p[0] for p in points])
        rss = np.array([p[1] for p in points], dtype=float)
        keep = t > t[0] + 0.3 * (t[-1] - t[0])  # after start-up
        slope = float(np.polyfit(t[keep] - t[0], rss[keep], 1)[0])
        marks = (0.1, 0.25, 0.5, 0.75, 1.0)  # RSS at these fractions of the run
        result[role] = {
            "rss_mib_at": {
                f"{f:.0%}": round(rss[min(int(f * (len(rss) - 1)), len(rss) - 1)] / 2**20, 1)
                for f in marks
            },
            "rss_mib_start": round(rss[keep][0] / 2**20, 1),
            "rss_mib_end": round(rss[-1] / 2**20, 1),
            "growth_kib_per_s": round(slope / 1024, 2),
            "growth_mib_per_hour_extrapolated": round(slope * 3600 / 2**20, 1),
        }
    run_dir = next(out.glob(f"*bench-{int(rate)}*"))
    size = (run_dir / "windows.parquet").stat().st_size
    result["windows_parquet_bytes_per_second"] = round(size / seconds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--soak-s", type=float, default=120.0)
    parser.add_argument("--soak-rate", type=float, default=1000.0)
    parser.add_argument("--soak-only", action="store_true", help="only the memory soak")
    args = parser.parse_args()
    if args.soak_only:
        if CAN_PIN:
            os.sched_setaffinity(0, {OTHERS_CORE})
        with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
            nginx = StaticNginx(Path(tmp) / "nginx")
            try:
                soak = soak_memory(nginx.url, Path(tmp) / "soak", args.soak_rate, args.soak_s)
            finally:
                nginx.stop()
        print(json.dumps({"soak": soak}, indent=2))
        return
    seconds = 4.0 if args.quick else 10.0
    if CAN_PIN:  # this process (orchestrator), nginx and the Locust master
        os.sched_setaffinity(0, {OTHERS_CORE})
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp:
        work = Path(tmp)
        nginx = StaticNginx(work / "nginx")
        try:
            base, base_cpu_us = baseline_rps(nginx.url, work, users=50, seconds=int(seconds))
            print(f"baseline: plain Locust FastHttpUser closed loop, 1 process: {base:.0f} req/s,"
                  f" {base_cpu_us:.1f} CPU us/request")  # fmt: skip
            fractions = (1.6, 1.35, 1.15, 1.0, 0.9, 0.75, 0.6, 0.4, 0.25, 0.15, 0.08, 0.04)
            floor_before = timer_floor()
            best = highest_open_rate(nginx.url, work / "runs", base, seconds, fractions)
            floor_after = timer_floor()
            print(f"host timer wake-up lag p99 (bare loop, generator core): "
                  f"{floor_before['p99']} ms before, {floor_after['p99']} ms after")  # fmt: skip
            soak = soak_memory(
                nginx.url, work / "soak", args.soak_rate, 20.0 if args.quick else args.soak_s
            )
        finally:
            nginx.stop()
    report = {
        "baseline_fasthttp_closed_rps": round(base, 1),
        "open_loop_max_rps": best,
        "ratio_lag_below_1ms": round(best["lag_p99_below_1ms"] / base, 3) if base else None,
        "ratio_lag_below_10ms": round(best["lag_p99_below_10ms"] / base, 3) if base else None,
        "goal": "ratio_lag_below_1ms >= 0.9",
        "host_timer_lag_ms": {"before": floor_before, "after": floor_after},
        "host_too_noisy_for_1ms_criterion": max(floor_before["p99"], floor_after["p99"]) > 0.5,
        "baseline_cpu_us_per_request": round(base_cpu_us, 1),
        # robust to other load on the machine: capacity ratio from CPU cost per request
        "ratio_from_cpu_cost": round(base_cpu_us / best["cpu_us_per_request"], 3),
        "soak": soak,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
