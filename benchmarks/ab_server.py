"""A/B of the reference server between two source trees, interleaved in one run.

Why: this machine is shared, so two benchmark runs minutes apart differ by +-20 % from the
neighbours alone. A change is kept only if it wins against the old code measured in the
same minutes: this script exports a git revision (default HEAD) as tree A, uses the
working tree as B, and alternates A, B, A, B... servers (each pinned to core 0, loads on
core 1, as in bench_server.py), printing each row and then per row the median and the
spread (min-max) of both sides and the median ratio B/A.

    .venv/bin/python benchmarks/ab_server.py [--rev HEAD | --a-dir DIR] [--b-dir DIR]
        [--rounds 3] [--seconds 3]
        [--rows mlp_grpc,mlp_http,c1_grpc,c1_http,cnn_http]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_server import QUICK, Plan, _http_load, default_repository
from server_loadgen import ROOT, Load, Pinned, pinned_server, run_grpc

MLP, CNN, CNN8 = (1, 256), (1, 3, 64, 64), (8, 3, 64, 64)
Row = Callable[[Pinned, Path, Plan], Load]
ROWS: dict[str, Row] = {
    "mlp_grpc": lambda s, d, p: run_grpc(
        "mlp gRPC", s, f"127.0.0.1:{s.ports[1]}", "mlp", 64, p.seconds, p.warmup
    ),
    "mlp_stream": lambda s, d, p: run_grpc(
        "mlp stream", s, f"127.0.0.1:{s.ports[1]}", "mlp", 64, p.seconds, p.warmup, stream=True
    ),
    "mlp_http": lambda s, d, p: _http_load("mlp HTTP", s, d, "mlp", MLP, 64, p),
    "c1_grpc": lambda s, d, p: run_grpc(
        "mlp gRPC c1", s, f"127.0.0.1:{s.ports[1]}", "mlp", 1, p.seconds, p.warmup
    ),
    "c1_http": lambda s, d, p: _http_load("mlp HTTP c1", s, d, "mlp", MLP, 1, p),
    "cnn_http": lambda s, d, p: _http_load("cnn HTTP", s, d, "cnn", CNN, 32, p),
    "cnn_http_b8": lambda s, d, p: _http_load("cnn HTTP b8", s, d, "cnn", CNN8, 8, p),
    "cnn_grpc": lambda s, d, p: run_grpc(
        "cnn gRPC", s, f"127.0.0.1:{s.ports[1]}", "cnn", 32, p.seconds, p.warmup
    ),
}


def export_tree(rev: str, into: Path) -> Path:
    """`git archive rev reference_server` unpacked under `into`."""
    archive = subprocess.run(
        ["git", "archive", rev, "reference_server"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def server_cmd(tree: Path, repository: Path) -> list[str]:
    boot = (
        f"import sys, runpy; sys.path.insert(0, {str(tree)!r}); "
        "runpy.run_module('reference_server', run_name='__main__')"
    )
    cmd = [sys.executable, "-c", boot, "--model-repository", str(repository)]
    cmd += ["--device", "cpu", "--intra-op-threads", "1", "--log-level", "WARNING"]
    return [*cmd, "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]


def one_round(tree: Path, repository: Path, rows: list[str], plan: Plan) -> dict[str, Load]:
    out = {}
    with pinned_server(server_cmd(tree, repository)) as srv, tempfile.TemporaryDirectory() as d:
        for name in rows:
            out[name] = ROWS[name](srv, Path(d), plan)
    return out


def _metric(name: str, load: Load) -> float:
    """Throughput per server CPU-second for saturated rows, p50 (ms) for concurrency 1."""
    return load.p50_ms if name.startswith("c1_") else load.per_server_cpu_s


def summary(rows: list[str], results: dict[str, list[dict[str, Load]]]) -> list[str]:
    lines = ["row          metric       A median [min-max]        B median [min-max]     B/A"]
    for name in rows:
        a = [_metric(name, r[name]) for r in results["A"]]
        b = [_metric(name, r[name]) for r in results["B"]]
        unit = "p50 ms" if name.startswith("c1_") else "per CPU-s"
        ma, mb = statistics.median(a), statistics.median(b)
        lines.append(
            f"{name:<12} {unit:<10} {ma:9.3f} [{min(a):.3f}-{max(a):.3f}]  "
            f"{mb:9.3f} [{min(b):.3f}-{max(b):.3f}]  {mb / ma:5.2f}  p99 ms A "
            f"{statistics.median(r[name].p99_ms for r in results['A']):.2f} B "
            f"{statistics.median(r[name].p99_ms for r in results['B']):.2f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="git revision for side A")
    parser.add_argument("--a-dir", type=Path, default=None, help="side A from this tree instead")
    parser.add_argument("--b-dir", type=Path, default=ROOT, help="side B (default: working tree)")
    parser.add_argument("--a-repo", type=Path, default=None, help="model repository for A")
    parser.add_argument("--b-repo", type=Path, default=None, help="model repository for B")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rows", default="mlp_grpc,mlp_http,c1_grpc,c1_http,cnn_http")
    args = parser.parse_args(argv)
    rows = args.rows.split(",")
    plan = Plan(args.seconds, QUICK.warmup, QUICK.ort_seconds, QUICK.cnn_sweep, False)
    repos = {"A": args.a_repo or default_repository(), "B": args.b_repo or default_repository()}
    results: dict[str, list[dict[str, Load]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        side_a = args.a_dir or export_tree(args.rev, Path(tmp))
        trees = {"A": side_a, "B": args.b_dir}
        for i in range(args.rounds):
            for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
                res = one_round(trees[side], repos[side], rows, plan)
                results[side].append(res)
                for name in rows:
                    load = res[name]
                    sys.stdout.write(
                        f"round {i} {side} {name:<10} {load.per_server_cpu_s:8.0f}/CPU-s "
                        f"p50 {load.p50_ms:6.3f} p99 {load.p99_ms:6.2f} "
                        f"cpu {load.server_cpu_pct:3.0f}% gen {load.generator_cpu_pct:3.0f}%\n"
                    )
                sys.stdout.flush()
    sys.stdout.write("\n".join(summary(rows, results)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
