"""Fault proxy benchmark: what does relaying through `chaos.faultproxy` cost, and how exact is an
injected latency? (ratios against a direct baseline measured in the same run)

1. throughput, `wrk -t1 -c32`, directly and through the proxy with no toxic:
   a. against the reference server (`mlp`, batch 1, KServe v2 JSON; one process, CPU):
      the target the proxy fronts in a game day; ratio = proxied / direct (goal >= 0.8);
   b. against a bare uvloop HTTP server (`hello_server.py`, ~40-60 k req/s here), alternated
      twice (best of each kept): the proxy's own ceiling, a Python relay that does twice
      the socket work of the server it fronts (no goal: stated to show the limit);
2. added latency: `wrk -c1` p50 through the proxy minus direct p50   (goal <= 0.2 ms);
3. toxic accuracy: a 100 ms downstream latency toxic, `wrk -c8`: p50 and p99 through the
   proxy minus the no-toxic proxied p50 (goal: 100 ms, within 2 ms at p50).

    .venv/bin/python benchmarks/bench_faultproxy.py [--seconds 4] [--json out.json]

The server, the proxy and wrk share the machine's cores (unpinned: on two cores the proxied
arm runs three busy processes where the direct arm runs two, which is the cost being
measured). Everything binds 127.0.0.1 on ports the kernel picks; every process started is
stopped by PID. About 45 s with the default 4 s windows (the model repository is built first
if missing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chaos.faultproxy import FaultProxyClient  # noqa: E402

WRK_REPORT = """
init = function(args)
  if args[1] ~= nil then  -- a KServe v2 JSON body to POST
    local f = assert(io.open(args[1], "rb"))
    wrk.method, wrk.body = "POST", f:read("*a")
    f:close()
    wrk.headers["Content-Type"] = "application/json"
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def start(cmd: list[str], marker: str, work: Path) -> tuple[subprocess.Popen[str], str]:
    """Start a child that prints `<marker>=<value>` once ready; (process, value)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # blocks until the child is bound (or exits: "")
    if marker not in line:
        stop(proc)
        raise SystemExit(f"{cmd[1:]} did not start: {line!r}")
    return proc, line.strip().split(f"{marker}=", 1)[1]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def wrk(
    port: int, connections: int, seconds: int, script: Path, path: str = "/",
    body: Path | None = None,
) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(int(seconds), 1)}s", "-s", str(script),
           f"http://127.0.0.1:{port}{path}"]
    if body is not None:
        cmd += ["--", str(body)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "rps": report["requests"] / (report["duration_us"] / 1e6),
        "p50_ms": report["p50_us"] / 1000.0,
        "p99_ms": report["p99_us"] / 1000.0,
        "errors": report["errors"],
    }


MLP_BODY = {"inputs": [{"name": "input", "shape": [1, 256], "datatype": "FP32",
                        "data": [0.5] * 256}]}


def reference_arm(seconds: int, work: Path, script: Path, client: FaultProxyClient) -> dict:
    """Throughput through the proxy vs direct to the reference server (`mlp`, batch 1, JSON):
    the target the proxy fronts in a game day."""
    from reference_server.config import default_model_repository
    from reference_server.models.build import ensure_repository

    repository = ensure_repository(Path(default_model_repository()))
    cmd = [sys.executable, "-m", "reference_server", "--model-repository", str(repository),
           "--device", "cpu", "--intra-op-threads", "1", "--log-level", "WARNING",
           "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    server, ports = start(cmd, "listening http", work)
    try:
        http_port = int(ports.split()[0])
        listen = client.create_proxy("reference", f"127.0.0.1:{http_port}")["listen"]
        proxied = int(listen.rsplit(":", 1)[1])
        body = work / "mlp.json"
        body.write_text(json.dumps(MLP_BODY))
        path = "/v2/models/mlp/infer"
        wrk(http_port, 8, 1, script, path, body)  # warm-up
        direct = wrk(http_port, 32, seconds, script, path, body)
        through = wrk(proxied, 32, seconds, script, path, body)
    finally:
        stop(server)
    return {"direct_rps": round(direct["rps"]), "proxied_rps": round(through["rps"]),
            "ratio": round(through["rps"] / direct["rps"], 3), "goal": ">= 0.8",
            "errors": direct["errors"] + through["errors"]}


def run(seconds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-faultproxy-") as tmp:
        work = Path(tmp)
        script = work / "report.lua"
        script.write_text(WRK_REPORT)
        server, server_port = start(
            [sys.executable, "benchmarks/hello_server.py"], "listening http", work
        )
        proxy, api_address = start(
            [sys.executable, "-m", "chaos.faultproxy", "--api", "127.0.0.1:0", "--seed", "1"],
            "listening api", work,
        )
        try:
            client = FaultProxyClient(api_address)
            created = client.create_proxy("hello", f"127.0.0.1:{server_port}")
            direct, proxied = int(server_port), int(created["listen"].rsplit(":", 1)[1])
            wrk(direct, 4, 1, script)  # warm both paths
            wrk(proxied, 4, 1, script)
            rounds = [(wrk(direct, 32, seconds, script), wrk(proxied, 32, seconds, script))
                      for _ in range(2)]
            direct_rps = max(d["rps"] for d, _ in rounds)
            proxied_rps = max(p["rps"] for _, p in rounds)
            direct_c1 = wrk(direct, 1, max(seconds // 2, 1), script)
            proxied_c1 = wrk(proxied, 1, max(seconds // 2, 1), script)
            client.add_toxic("hello", "latency", {"latency": 100})
            toxic = wrk(proxied, 8, seconds + 1, script)
            client.reset()
            after_reset = wrk(proxied, 1, max(seconds // 2, 1), script)
            reference = reference_arm(seconds, work, script, client)
        finally:
            stop(proxy)
            stop(server)
    return {
        "throughput_reference_server_mlp": reference,
        "throughput_hello_server": {
            "direct_rps": round(direct_rps), "proxied_rps": round(proxied_rps),
            "ratio": round(proxied_rps / direct_rps, 3), "goal": "none (the relay's ceiling)",
        },
        "added_p50_ms": {
            "direct_p50_ms": direct_c1["p50_ms"], "proxied_p50_ms": proxied_c1["p50_ms"],
            "added": round(proxied_c1["p50_ms"] - direct_c1["p50_ms"], 3), "goal": "<= 0.2",
        },
        "latency_toxic_100ms": {
            "requests": toxic["rps"] * (seconds + 1),
            "added_p50_ms": round(toxic["p50_ms"] - proxied_c1["p50_ms"], 3),
            "added_p99_ms": round(toxic["p99_ms"] - proxied_c1["p50_ms"], 3),
            "goal": "100 +/- 2 at p50",
        },
        "after_reset_p50_ms": after_reset["p50_ms"],
        "errors": sum(r["errors"] for pair in rounds for r in pair) + toxic["errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=4, help="length of each wrk window")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_faultproxy needs wrk (scripts/install_system_deps.sh)")
    started = time.monotonic()
    report = run(args.seconds)
    report["wall_s"] = round(time.monotonic() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
