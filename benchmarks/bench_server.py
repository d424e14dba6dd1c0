"""Server benchmark: the reference server against baselines measured in the same run.

Why ratios: this machine is shared and noisy, so an absolute number means little; each
result is printed next to a baseline taken minutes apart on the same cores. The server is
pinned to core 0 (`taskset -c 0`, one intra-op thread), every load generator to core 1,
and each row shows the generator's own CPU so it is visibly not the limit.

  (a) `mlp` batch-1 requests, dynamic batching on, saturated: requests/s per server core
      over HTTP (KServe binary extension, Debian's `wrk` + wrk_kserve.lua) and gRPC (raw
      contents, many concurrent grpc.aio calls), with p99 — against the Python peers
      (MLServer / KServe ModelServer, ~1.5 k/s, stated in issue 2) and against a bare
      asyncio HTTP "hello" server measured in this run.
  (b) `cnn` batch-1 requests, saturated: samples/s over in-process ONNX Runtime at its best
      batch size with the same budget (one core, one thread).
  (c) per-request overhead: p50 at concurrency 1 minus in-process batch-1 latency.

Issue 12's two goals (unary gRPC vs grpcio's null server, 8-sample cnn requests vs ORT) are
judged last, on pairs measured seconds apart and alternated (`measure_pairs`): the median of
three pairs' ratios, since the host drifts by more than the goals' margins within a run.

Not a test: it prints; nothing asserts. `--quick` takes ~50 s, a full run ~5 min.

    .venv/bin/python benchmarks/bench_server.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server_loadgen import Load, Pinned, ort_baseline, pinned_server, run_grpc, run_wrk

PEERS_RPS = 1500.0  # MLServer / KServe ModelServer on a trivial model, one core (issue 2)
GOAL_PEERS_RATIO = 3.0
CNN_CLIENT_BATCH = 8
GOAL_CNN_RATIO = 0.9
GOAL_CNN_B8_RATIO = 0.85  # issue 12: 8-sample requests per CPU-second vs in-process ORT
GOAL_GRPC_VS_NULL = 0.9  # issue 12: unary gRPC per CPU-second vs grpcio's null server
GOAL_OVERHEAD_MS = 1.0
REMEASURE = 3  # measurements of ORT at the chosen best batch size (their median is the baseline)
# A generator this busy may be the limit: its row's rate is then a lower bound (the per
# CPU-second rate extrapolates the server's share, which keeps the ratio meaningful).
GENERATOR_BOUND_PCT = 90.0


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    seconds: int  # per saturated measurement
    warmup: float
    ort_seconds: float
    cnn_sweep: str
    grpc_cnn: bool
    pairs: int  # rounds of the alternated goal measurements (see measure_pairs)


FULL = Plan(
    seconds=10, warmup=1.0, ort_seconds=1.5, cnn_sweep="1,2,4,8,16,32", grpc_cnn=True, pairs=3
)
QUICK = Plan(seconds=2, warmup=0.5, ort_seconds=0.3, cnn_sweep="1,4,16", grpc_cnn=False, pairs=1)


def kserve_binary_body(model: str, http_port: int, shape: tuple[int, ...]) -> tuple[bytes, int]:
    """A KServe v2 binary-extension body for `model` (names from its metadata), checked once."""
    base = f"http://127.0.0.1:{http_port}/v2/models/{model}"
    with urllib.request.urlopen(base, timeout=10) as resp:
        meta = json.loads(resp.read())
    data = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    header = {
        "inputs": [
            {
                "name": meta["inputs"][0]["name"],
                "shape": list(shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": data.nbytes},
            }
        ],
        "outputs": [{"name": meta["outputs"][0]["name"], "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    body = head + data.tobytes()
    request = urllib.request.Request(
        f"{base}/infer",
        data=body,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{model}: the prepared body was refused ({resp.status})")
    return body, len(head)


def measure_hello(plan: Plan) -> Load:
    cmd = [sys.executable, str(Path(__file__).parent / "hello_server.py")]
    with pinned_server(cmd) as hello:
        url = f"http://127.0.0.1:{hello.ports[0]}/"
        run_wrk("warm-up", hello, url, 64, 1)
        return run_wrk("bare asyncio hello (HTTP)", hello, url, 64, plan.seconds)


def measure_null_grpc(plan: Plan) -> dict[str, Load]:
    """grpcio's own ceiling and floor on one core: a server that answers without work."""
    cmd = [sys.executable, str(Path(__file__).parent / "null_grpc_server.py")]
    with pinned_server(cmd) as null:
        target = f"127.0.0.1:{null.ports[1]}"
        return {
            "sat": run_grpc(
                "null grpc.aio server", null, target, "mlp", 64, plan.seconds, plan.warmup
            ),
            "c1": run_grpc(
                "null grpc.aio, 1 call", null, target, "mlp", 1, plan.seconds, plan.warmup
            ),
            "stream": run_grpc(
                "null grpc.aio stream",
                null,
                target,
                "mlp",
                64,
                plan.seconds,
                plan.warmup,
                stream=True,
            ),
        }


def _http_load(
    label: str,
    server: Pinned,
    body_dir: Path,
    model: str,
    shape: tuple[int, ...],
    connections: int,
    plan: Plan,
) -> Load:
    body, head_len = kserve_binary_body(model, server.ports[0], shape)
    path = body_dir / f"{model}-{shape[0]}.bin"
    path.write_bytes(body)
    url = f"http://127.0.0.1:{server.ports[0]}/v2/models/{model}/infer"
    args = [str(path), str(head_len)]
    if connections > 1:
        run_wrk("warm-up", server, url, connections, max(1, round(plan.warmup)), args)
    return run_wrk(label, server, url, connections, plan.seconds, args)


def _transport_floor(server: Pinned, body_dir: Path, shape: tuple[int, ...], plan: Plan) -> Load:
    """The same `cnn` request body sent to benchmarks/null_refuser.py --status 200 (reads the
    request, answers 200, nothing else) on the server's core: what HTTP and reading the body
    cost a Python front end before any decoding or model work."""
    body, head_len = kserve_binary_body("cnn", server.ports[0], shape)
    path = body_dir / f"floor-{shape[0]}.bin"
    path.write_bytes(body)
    cmd = [sys.executable, str(Path(__file__).parent / "null_refuser.py"), "--status", "200"]
    with pinned_server(cmd) as null:
        url = f"http://127.0.0.1:{null.ports[0]}/"
        args = [str(path), str(head_len)]
        run_wrk("warm-up", null, url, CNN_CLIENT_BATCH, max(1, round(plan.warmup)), args)
        label = f"null HTTP, {shape[0]}-sample body"
        return run_wrk(label, null, url, CNN_CLIENT_BATCH, plan.seconds, args)


def server_command(repository: Path) -> list[str]:
    cmd = [sys.executable, "-m", "reference_server", "--model-repository", str(repository)]
    cmd += ["--device", "cpu", "--intra-op-threads", "1", "--log-level", "WARNING"]
    cmd += ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    return cmd


def measure_pairs(plan: Plan, repository: Path, cnn_batch: int) -> dict[str, list[float]]:
    """Issue 12's two goal ratios from alternated pairs, each measured seconds apart instead of
    minutes: unary gRPC against grpcio's null server, and 8-sample cnn requests against
    in-process ORT at its best batch (both servers stay up; only one is loaded at a time).

    Why: the host drifts by more than the goals' margins within a run (the same ORT batch
    measured twice has differed by 22 %; the gRPC ratio read 0.54-0.99 over eight runs of
    one build), so each pair's ratio is taken and the verdict is their median."""
    null_cmd = [sys.executable, str(Path(__file__).parent / "null_grpc_server.py")]
    model = repository / "cnn" / "1" / "model.onnx"
    ratios: dict[str, list[float]] = {"grpc": [], "cnn_b8": []}
    with (
        pinned_server(null_cmd) as null,
        pinned_server(server_command(repository)) as srv,
        tempfile.TemporaryDirectory() as tmp,
    ):
        body_dir = Path(tmp)
        for i in range(plan.pairs):
            bare = run_grpc(
                f"null grpc.aio #{i + 1}", null, f"127.0.0.1:{null.ports[1]}", "mlp", 64,
                plan.seconds, plan.warmup,
            )  # fmt: skip
            ours = run_grpc(
                f"mlp gRPC raw #{i + 1}", srv, f"127.0.0.1:{srv.ports[1]}", "mlp", 64,
                plan.seconds, plan.warmup,
            )  # fmt: skip
            ratios["grpc"].append(ours.per_server_cpu_s / bare.per_server_cpu_s)
            ort = ort_baseline(model, 1, str(cnn_batch), plan.ort_seconds)
            b8 = _http_load(
                f"cnn 8 samples/req #{i + 1}", srv, body_dir, "cnn",
                (CNN_CLIENT_BATCH, 3, 64, 64), 8, plan,
            )  # fmt: skip
            samples = CNN_CLIENT_BATCH * b8.per_server_cpu_s
            ratios["cnn_b8"].append(samples / ort["best_samples_per_cpu_s"])
    return ratios


def measure_server(plan: Plan, repository: Path) -> dict[str, Load]:
    results: dict[str, Load] = {}
    with pinned_server(server_command(repository)) as srv, tempfile.TemporaryDirectory() as tmp:
        body_dir, target = Path(tmp), f"127.0.0.1:{srv.ports[1]}"
        mlp, cnn = (1, 256), (1, 3, 64, 64)
        results["mlp_http"] = _http_load("mlp HTTP binary", srv, body_dir, "mlp", mlp, 64, plan)
        results["mlp_grpc"] = run_grpc(
            "mlp gRPC raw", srv, target, "mlp", 64, plan.seconds, plan.warmup
        )
        results["mlp_grpc_stream"] = run_grpc(
            "mlp gRPC stream", srv, target, "mlp", 64, plan.seconds, plan.warmup, stream=True
        )
        results["cnn_http"] = _http_load("cnn HTTP binary", srv, body_dir, "cnn", cnn, 32, plan)
        # for reference, not the goal's measure: requests carrying 8 samples each (like
        # perf_analyzer -b 8), which spreads the per-request front-end cost over 8 samples
        before = _model_costs(srv.ports[0], "cnn")
        results["cnn_http_b8"] = _http_load(
            "cnn HTTP, 8 samples/req", srv, body_dir, "cnn", (CNN_CLIENT_BATCH, 3, 64, 64), 8, plan
        )
        after = _model_costs(srv.ports[0], "cnn")
        results["cnn_b8_costs"] = {k: after[k] - before[k] for k in after}  # type: ignore[assignment]
        results["cnn_b8_floor"] = _transport_floor(
            srv, body_dir, (CNN_CLIENT_BATCH, 3, 64, 64), plan
        )
        if plan.grpc_cnn:
            results["cnn_grpc"] = run_grpc(
                "cnn gRPC raw", srv, target, "cnn", 32, plan.seconds, plan.warmup
            )
        results["c1_http"] = _http_load("mlp HTTP, 1 conn", srv, body_dir, "mlp", mlp, 1, plan)
        results["c1_grpc"] = run_grpc(
            "mlp gRPC, 1 call", srv, target, "mlp", 1, plan.seconds, plan.warmup
        )
        results["stats"] = _batching_stats(srv.ports[0])  # type: ignore[assignment]
    return results


def _model_stats(http_port: int, model: str) -> dict:
    url = f"http://127.0.0.1:{http_port}/v2/models/{model}/stats"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())["model_stats"][0]


def _batching_stats(http_port: int) -> dict[str, float]:
    """Average executed batch size per model, from the server's own statistics."""
    out = {}
    for model in ("mlp", "cnn"):
        stats = _model_stats(http_port, model)
        out[model] = int(stats["inference_count"]) / max(1, int(stats["execution_count"]))
    return out


def _model_costs(http_port: int, model: str) -> dict[str, int]:
    """Rows run so far and the ns the server's batches spent merging the requests' inputs
    (compute_input), in ONNX Runtime (compute_infer) and splitting outputs (compute_output),
    from its own per-batch statistics (Triton's statistics extension)."""
    stats = _model_stats(http_port, model)
    out = {"rows": int(stats["inference_count"]), "batches": int(stats["execution_count"])}
    for part in ("compute_input", "compute_infer", "compute_output"):
        out[part] = sum(int(b[part]["ns"]) for b in stats["batch_stats"])
    return out


def _row(load: Load) -> str:
    flag = " GENERATOR-BOUND" if load.generator_cpu_pct >= GENERATOR_BOUND_PCT else ""
    return (
        f"  {load.label:<26} {load.rps:>7.0f}/s ({load.per_server_cpu_s:>6.0f}/CPU-s) "
        f"p50 {load.p50_ms:6.2f} ms  "
        f"p99 {load.p99_ms:6.2f} ms  c={load.concurrency:<2} err={load.errors} "
        f"server CPU {load.server_cpu_pct:3.0f}%, generator CPU {load.generator_cpu_pct:3.0f}%"
        f"{flag}"
    )


def _verdict(ok: bool) -> str:
    return "meets goal" if ok else "MISSES goal"


def ratios(
    base: dict, res: dict, hello: Load, null: dict[str, Load], pairs: dict[str, list[float]]
) -> dict[str, Any]:
    """Every reported ratio, from the measurements of one run.

    Throughputs are compared per CPU second the process got (wall-clock rates in brackets
    in the report): on a shared machine the neighbours take a varying share of core 0.
    """
    out: dict[str, Any] = {}
    ort_cnn = base["cnn"]
    for proto in ("http", "grpc", "grpc_stream"):
        load = res[f"mlp_{proto}"]
        out[f"mlp_{proto}_vs_peers"] = load.per_server_cpu_s / PEERS_RPS
        out[f"mlp_{proto}_vs_hello"] = load.per_server_cpu_s / hello.per_server_cpu_s
    for proto in ("http", "grpc"):
        out[f"overhead_{proto}_ms"] = res[f"c1_{proto}"].p50_ms - base["mlp"]["batch1"]["p50_ms"]
        if f"cnn_{proto}" in res:
            cnn = res[f"cnn_{proto}"]
            out[f"cnn_{proto}_vs_ort"] = cnn.per_server_cpu_s / ort_cnn["best_samples_per_cpu_s"]
            out[f"cnn_{proto}_vs_ort_wall"] = cnn.rps / ort_cnn["best_samples_per_s"]
    b8 = res["cnn_http_b8"]
    out["cnn_http_b8_vs_ort"] = (
        CNN_CLIENT_BATCH * b8.per_server_cpu_s / ort_cnn["best_samples_per_cpu_s"]
    )
    # Ceilings: a server adding NOTHING to the transport floor but the model's own compute at
    # its cheapest batching (seconds per request: floor + model) against the same baseline.
    # The goal's ratio cannot exceed them; "reached" is how much of the reachable we keep.
    ort_cnn_s = CNN_CLIENT_BATCH / ort_cnn["best_samples_per_cpu_s"]
    floor_s = 1.0 / res["cnn_b8_floor"].per_server_cpu_s
    out["cnn_http_b8_ceiling"] = ort_cnn_s / (ort_cnn_s + floor_s)
    out["cnn_http_b8_reached"] = out["cnn_http_b8_vs_ort"] / out["cnn_http_b8_ceiling"]
    # Where the server's CPU per sample went (its own statistics over the same window), and
    # the ceiling of a server that merges requests into batches, as a dynamic batcher does:
    # the floor, the copy that merges the inputs, and ORT at its best.
    costs = res["cnn_b8_costs"]
    rows = max(1, costs["rows"])
    out["cnn_b8_us_per_sample"] = 1e6 / (CNN_CLIENT_BATCH * b8.per_server_cpu_s)
    out["cnn_b8_ort_us"] = costs["compute_infer"] / rows / 1e3
    out["cnn_b8_merge_us"] = (costs["compute_input"] + costs["compute_output"]) / rows / 1e3
    out["cnn_b8_floor_us"] = 1e6 * floor_s / CNN_CLIENT_BATCH
    out["cnn_b8_ort_best_us"] = 1e6 * ort_cnn_s / CNN_CLIENT_BATCH
    out["cnn_b8_rows_per_batch"] = costs["rows"] / max(1, costs["batches"])
    merge_s = out["cnn_b8_merge_us"] * 1e-6 * CNN_CLIENT_BATCH
    out["cnn_http_b8_ceiling_batching"] = ort_cnn_s / (ort_cnn_s + floor_s + merge_s)
    null_rate = null["sat"].per_server_cpu_s
    out["mlp_grpc_vs_null_grpc"] = res["mlp_grpc"].per_server_cpu_s / null_rate
    null_s, mlp_s = 1.0 / null_rate, 1.0 / base["mlp"]["best_samples_per_cpu_s"]
    out["mlp_grpc_ceiling_vs_null"] = null_s / (null_s + mlp_s)
    out["mlp_grpc_reached"] = out["mlp_grpc_vs_null_grpc"] / out["mlp_grpc_ceiling_vs_null"]
    out["mlp_grpc_stream_vs_null_stream"] = (
        res["mlp_grpc_stream"].per_server_cpu_s / null["stream"].per_server_cpu_s
    )
    out["overhead_grpc_over_null_ms"] = res["c1_grpc"].p50_ms - null["c1"].p50_ms
    for goal, values in pairs.items():
        out[f"pairs_{goal}"] = values
        out[f"pairs_{goal}_median"] = float(np.median(values)) if values else float("nan")
    return out


def report(
    base: dict, hello: Load, null: dict[str, Load], res: dict, r: dict[str, Any]
) -> list[str]:
    mlp1, cnn = base["mlp"]["batch1"], base["cnn"]
    sweep = ", ".join(f"b{b}: {v:.0f}" for b, v in cnn["sweep_per_cpu_s"].items())
    lines = [
        "== baselines, same run (core 0, 1 intra-op thread) ==",
        f"  ORT mlp batch-1: p50 {mlp1['p50_ms']:.3f} ms, {mlp1['rate_per_cpu_s']:.0f} "
        f"inferences/CPU-s ({mlp1['rate']:.0f}/s wall)",
        f"  ORT cnn samples/CPU-s: {sweep}; best batch {cnn['best_batch']}: "
        f"{cnn['best_samples_per_cpu_s']:.0f}, the median of "
        f"{[round(r) for r in cnn['remeasured_per_cpu_s']]} measured again "
        f"({cnn['best_samples_per_s']:.0f}/s wall; {cnn['sweep_best_samples_per_cpu_s']:.0f} in "
        f"the sweep)",
        _row(hello),
        _row(null["sat"]),
        _row(null["c1"]),
        _row(null["stream"]),
        "== reference server (core 0; generators on core 1) ==",
        *(_row(load) for load in res.values() if isinstance(load, Load)),
        "  average executed batch: " + ", ".join(f"{m} {b:.1f}" for m, b in res["stats"].items()),
        "== ratios (throughput per CPU-second of the process; wall rates above) ==",
    ]
    for proto in ("http", "grpc", "grpc_stream"):
        load, ratio = res[f"mlp_{proto}"], r[f"mlp_{proto}_vs_peers"]
        lines.append(
            f"  (a) mlp {proto.upper().replace('_', ' '):<11}: {load.per_server_cpu_s:.0f} "
            f"req/s/core = {ratio:.2f}x the Python peers' {PEERS_RPS:.0f}/s "
            f"({_verdict(ratio >= GOAL_PEERS_RATIO)} >= "
            f"{GOAL_PEERS_RATIO:.0f}x); {r[f'mlp_{proto}_vs_hello']:.3f}x bare asyncio hello; "
            f"p99 {load.p99_ms:.2f} ms"
        )
    lines.append(
        f"      unary gRPC keeps {r['mlp_grpc_vs_null_grpc']:.2f} of grpcio's own unary ceiling on "
        f"one core (null grpc.aio server: {null['sat'].per_server_cpu_s:.0f} calls/s/core); "
        f"streaming keeps {r['mlp_grpc_stream_vs_null_stream']:.2f} of grpcio's streaming "
        f"ceiling ({null['stream'].per_server_cpu_s:.0f} messages/s/core)"
    )
    lines.append(
        f"      ceiling of that ratio: grpcio's bare call plus mlp's own ORT time at its best "
        f"batch ({base['mlp']['best_batch']}) = {r['mlp_grpc_ceiling_vs_null']:.2f}; the "
        f"server keeps {r['mlp_grpc_reached']:.2f} of the reachable"
    )
    for proto in ("http", "grpc"):
        if (key := f"cnn_{proto}_vs_ort") in r:
            lines.append(
                f"  (b) cnn {proto.upper():<4}: {res[f'cnn_{proto}'].per_server_cpu_s:.0f} "
                f"samples/s/core = {r[key]:.2f}x in-process ORT at batch {cnn['best_batch']} "
                f"({_verdict(r[key] >= GOAL_CNN_RATIO)} >= {GOAL_CNN_RATIO}; wall-clock "
                f"ratio {r[key + '_wall']:.2f})"
            )
    lines.append(
        f"      for reference, requests of {CNN_CLIENT_BATCH} samples (perf_analyzer -b "
        f"{CNN_CLIENT_BATCH}): {CNN_CLIENT_BATCH * res['cnn_http_b8'].per_server_cpu_s:.0f} "
        f"samples/s/core = {r['cnn_http_b8_vs_ort']:.2f}x in-process ORT "
        f"({_verdict(r['cnn_http_b8_vs_ort'] >= GOAL_CNN_B8_RATIO)} >= {GOAL_CNN_B8_RATIO} of "
        f"issue 12)"
    )
    lines.append(
        f"      ceiling of that ratio: the HTTP transport floor for the same {CNN_CLIENT_BATCH}"
        f"-sample body (null server: {res['cnn_b8_floor'].per_server_cpu_s:.0f} req/s/core) "
        f"plus ORT = {r['cnn_http_b8_ceiling']:.2f}; the server keeps "
        f"{r['cnn_http_b8_reached']:.2f} of the reachable"
    )
    lines.append(
        f"      per sample the server spent {r['cnn_b8_us_per_sample']:.0f} us of CPU: ORT "
        f"{r['cnn_b8_ort_us']:.0f} (in-process best {r['cnn_b8_ort_best_us']:.0f}) at "
        f"{r['cnn_b8_rows_per_batch']:.1f} rows per batch, merging inputs and splitting "
        f"outputs {r['cnn_b8_merge_us']:.0f}, HTTP and the rest "
        f"{r['cnn_b8_us_per_sample'] - r['cnn_b8_ort_us'] - r['cnn_b8_merge_us']:.0f} (null "
        f"server floor {r['cnn_b8_floor_us']:.0f}); ceiling of a server that merges requests "
        f"into batches (floor + merge + ORT at its best) = {r['cnn_http_b8_ceiling_batching']:.2f}"
    )
    for proto in ("http", "grpc"):
        over = r[f"overhead_{proto}_ms"]
        lines.append(
            f"  (c) overhead {proto.upper():<4}: p50 {res[f'c1_{proto}'].p50_ms:.3f} ms - ORT "
            f"{mlp1['p50_ms']:.3f} ms = {over:.3f} ms = {over / GOAL_OVERHEAD_MS:.2f}x the "
            f"{GOAL_OVERHEAD_MS:.0f} ms budget ({_verdict(over <= GOAL_OVERHEAD_MS)})"
        )
    lines.append(
        f"      gRPC floor, null grpc.aio server at 1 call (Python client included): "
        f"{null['c1'].p50_ms:.3f} ms; the reference server adds "
        f"{r['overhead_grpc_over_null_ms']:.3f} ms to it"
    )
    lines.append(f"== issue 12's goals, from {len(r['pairs_grpc'])} alternated pair(s) ==")
    for goal, what, target in (
        ("grpc", "unary gRPC / grpcio's null server", GOAL_GRPC_VS_NULL),
        ("cnn_b8", f"cnn {CNN_CLIENT_BATCH}-sample requests / in-process ORT", GOAL_CNN_B8_RATIO),
    ):
        median = r[f"pairs_{goal}_median"]
        lines.append(
            f"  {what}: median {median:.2f} of {[round(v, 2) for v in r[f'pairs_{goal}']]} "
            f"({_verdict(median >= target)} >= {target})"
        )
    return lines


def ort_best_batch(model_path: Path, plan: Plan) -> dict:
    """In-process ORT over the batch sweep, the best batch size chosen by it -- and that
    batch size measured AGAIN (`REMEASURE` times, the median) for the baseline value: the
    best of six noisy measurements overstates its own rate (cnn's samples per CPU-second are
    flat in the batch size within +-8 % run to run, and two 1.5 s measurements of the same
    batch size have differed by 22 % here), so the choice and the estimate are made apart."""
    swept = ort_baseline(model_path, 1, plan.cnn_sweep, plan.ort_seconds)
    again = [
        ort_baseline(model_path, 1, str(swept["best_batch"]), plan.ort_seconds)
        for _ in range(REMEASURE)
    ]
    rates = sorted(a["best_samples_per_cpu_s"] for a in again)
    swept["sweep_best_samples_per_cpu_s"] = swept["best_samples_per_cpu_s"]
    swept["remeasured_per_cpu_s"] = rates
    swept["best_samples_per_cpu_s"] = float(np.median(rates))
    swept["best_samples_per_s"] = float(np.median([a["best_samples_per_s"] for a in again]))
    return swept


def default_repository() -> Path:
    from reference_server.config import default_model_repository
    from reference_server.models.build import ensure_repository

    return ensure_repository(Path(default_model_repository()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (~40 s in all)")
    parser.add_argument("--model-repository", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing or (os.cpu_count() or 1) < 2:
        sys.stderr.write(
            f"bench_server needs wrk and taskset and two cores (missing: {missing or 'a core'})\n"
        )
        return 2
    plan = QUICK if args.quick else FULL
    repository = args.model_repository or default_repository()
    base = {
        name: ort_best_batch(repository / name / "1" / "model.onnx", plan)
        for name in ("mlp", "cnn")
    }
    hello = measure_hello(plan)
    null = measure_null_grpc(plan)
    res = measure_server(plan, repository)
    pairs = measure_pairs(plan, repository, int(base["cnn"]["best_batch"]))
    r = ratios(base, res, hello, null, pairs)
    sys.stdout.write("\n".join(report(base, hello, null, res, r)) + "\n")
    if args.json:
        loads = {k: dataclasses.asdict(v) for k, v in res.items() if isinstance(v, Load)}
        doc = {
            "baselines": base,
            "hello": dataclasses.asdict(hello),
            "null_grpc": {k: dataclasses.asdict(v) for k, v in null.items()},
            "server": loads,
            "batching": res["stats"],
            "cnn_b8_costs": res["cnn_b8_costs"],
            "ratios": r,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
