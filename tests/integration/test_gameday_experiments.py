"""`harness gameday` with the other local experiments: network-latency, gpu-loss-unready and
gpu-loss-cpu-fallback, each on a real stack (2 replicas, nginx, fault proxies) under a small
open-loop load on 127.0.0.1 (26 s at 40 req/s; a fault of 5 s).

What each test can show on a CPU-only host:
- network-latency: the 100 +/- 20 ms toxic sits between nginx and replica 0 only, so only the
  requests nginx sends there are slowed; the p99 of the mix is then the 98th percentile of the
  slowed half: 80 + 0.98 x 40 = 119.2 ms added when half the requests cross the toxic (a third:
  118.8 ms; least_conn sends the slow replica somewhat less). So p99 rises by about the
  injected 100-120 ms inside the fault window read from events.jsonl, and returns after.
- gpu-loss-unready: replica 0 turns unready and answers 503; nginx retries on replica 1 and
  keeps replica 0 out for its fail_timeout, so replica 0's success counter stops while
  replica 1's rises; the clients see (almost) no failure.
- gpu-loss-cpu-fallback: replica 0 keeps serving and reports degraded (server metadata and
  the `reference_server_degraded` gauge); no request fails. The *latency* rise of a real
  fallback (CUDA -> CPU) cannot show here: on a CPU-only host the sessions already run on the
  CPU provider, so the hook moves nothing (`reference_server.core._move_sessions` finds no
  session to rebuild) and only the degraded state changes. That part is the GPU-only test at
  the end (skipped without a CUDA device).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.latency.sparse import merge
from harness.results import list_runs, load_run
from harness.results.windows import decode_windows, per_second
from reference_server.runtime import cuda_device_present
from tests.integration.cli_helpers import REPO, cli_env, harness_cmd, wait_for
from tests.integration.test_gameday import (
    FAST,
    _assert_all_stopped,
    _doc,
    _events,
    _scenario,
    stopped,
)

pytestmark = pytest.mark.timeout(240)

SUCCESS = re.compile(r"^nv_inference_request_success\{[^}]*\} (\S+)$", re.MULTILINE)


def _start(tmp: Path, experiment: str, run_id: str, *extra: object) -> subprocess.Popen[str]:
    """The game day as a user starts it; its temporary files under `tmp/tmp` so the test can
    find the stack's state file while it runs."""
    (tmp / "tmp").mkdir(exist_ok=True)
    cmd = harness_cmd("gameday", experiment, "--scenario", _scenario(tmp), "--out",
                      tmp / "out", "--run-id", run_id, *FAST, *extra)  # fmt: skip
    env = {**cli_env(), "TMPDIR": str(tmp / "tmp")}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _replicas(tmp: Path) -> list[dict[str, Any]]:
    """The replicas (http_url, metrics_url, ...) from the running game day's stack.json."""

    def state() -> dict[str, Any] | None:
        found = list((tmp / "tmp").glob("harness-gameday-*/stack.json"))
        return json.loads(found[0].read_text()) if found else None

    return wait_for(state, 90, "the stack's state file")["replicas"]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def _served(replica: dict[str, Any]) -> int:
    """Successful inferences of one replica (Triton's counter, every model and version)."""
    text = _get(replica["metrics_url"])
    return int(sum(float(v) for v in SUCCESS.findall(text)))


def _degraded(replica: dict[str, Any]) -> bool:
    return json.loads(_get(replica["http_url"] + "/v2"))["degraded"]


def _has_event(run_dir: Path, kind: str) -> bool:
    events = run_dir / "events.jsonl"
    return events.exists() and f'"type": "{kind}"' in events.read_text()


def _until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """`wait_for` at a gentler pace (each poll is two HTTP scrapes on a 2-core host)."""
    return wait_for(predicate, timeout_s, what, every_s=0.2)


def _finish(proc: subprocess.Popen[str]) -> str:
    output, _ = proc.communicate(timeout=200)
    return output


def _phase_p99_ms(run_dir: Path, first: float, last: float) -> float:
    """p99 (ms) of the successes in the whole windows inside [first, last), merged here from
    the run's windows (not through the impact analysis)."""
    seconds = per_second(decode_windows(load_run(run_dir).windows))
    chosen = [w.hist for w in seconds if w.second >= first and w.second + 1 <= last]
    assert chosen, f"no whole window in [{first}, {last})"
    return merge(chosen).percentile(99) / 1000


def test_network_latency_raises_p99_by_the_toxic_while_on_and_returns(tmp_path: Path) -> None:
    tolerance = ["--recovery-p99-factor", "2.5", "--recovery-p99-slack-ms", "6",
                 "--recovery-error-slack", "0.02"]  # fmt: skip
    proc = _start(tmp_path, "network-latency", "latency", *tolerance)
    with stopped(proc):
        output = _finish(proc)
    run_dir = tmp_path / "out" / "latency"
    doc = _doc(run_dir)
    impact = doc["impact"]
    print(json.dumps(impact, indent=1))
    assert proc.returncode == 0 == doc["verdict"]["exit_code"], output[-3000:]
    events = _events(run_dir)
    fault_start, fault_end = events["fault_start"], events["fault_end"]
    assert fault_end - fault_start == pytest.approx(5.0, abs=0.5)
    # measured here from the windows, against the fault window of events.jsonl
    baseline_from = doc["timeline"]["steady"]["from_second"]
    before = _phase_p99_ms(run_dir, baseline_from, fault_start)
    during = _phase_p99_ms(run_dir, fault_start, fault_end)
    after = _phase_p99_ms(run_dir, fault_end + 1, 10_000)  # the 1st window after may hold a tail
    print(f"p99 before {before:.1f} ms, during {during:.1f} ms, after {after:.1f} ms")
    assert 90 <= during - before <= 130, "p99 rises by about the injected 100 +/- 20 ms"
    assert after - before <= 30, "and comes back once the toxic is removed"
    # gameday.json says the same
    assert 90 <= impact["during"]["p99_ms"] - impact["before"]["p99_ms"] <= 130
    assert impact["after"]["p99_ms"] - impact["before"]["p99_ms"] <= 30
    assert impact["failed_requests"] == 0
    assert impact["time_to_detect_s"] is None  # 120 ms more stays within the 250 ms SLO
    assert impact["time_to_recover_s"] is not None and 0 <= impact["time_to_recover_s"] <= 5
    assert impact["slowed_requests"] == 0
    assert impact["excess_latency_s"] > 0
    assert doc["rollback"]["equal"] is True
    assert all(t == [] for t in doc["rollback"]["after"]["proxy_toxics"].values())
    assert doc["settings"]["recovery_tolerance"] == {
        "k": 3, "p99_factor": 2.5, "p99_slack_ms": 6.0, "error_rate_slack": 0.02,
    }  # fmt: skip
    _assert_the_run_is_recorded_as_a_game_day(run_dir, "pass")
    _assert_all_stopped(doc)


def _assert_the_run_is_recorded_as_a_game_day(run_dir: Path, verdict: str) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    assert run["kind"] == "gameday" and run["gameday"]["verdict"] == verdict
    assert json.loads((run_dir / "summary.json").read_text())["kind"] == "gameday"
    rows = {row.run_id: row for row in list_runs(run_dir.parent)}
    assert rows[run_dir.name].kind == "gameday"
    stack = run_dir / "stack"
    for name in ("replica-0.log", "replica-1.log", "faultproxy.log", "stack.json"):
        assert (stack / name).stat().st_size > 0, name
    assert sorted(_doc(run_dir)["stack_logs"]) == sorted(
        str(p.relative_to(run_dir)) for p in stack.rglob("*") if p.is_file()
    )


def test_gpu_loss_unready_moves_traffic_to_the_healthy_replica(tmp_path: Path) -> None:
    proc = _start(tmp_path, "gpu-loss-unready", "unready")
    run_dir = tmp_path / "out" / "unready"
    with stopped(proc):
        lost, healthy = _replicas(tmp_path)
        _until(lambda: _has_event(run_dir, "fault_start"), 120, "the fault")
        # Sampled while the fault is on: replica 1 serves ~40 req/s; once it served 40 more
        # (about a second: requests in flight at the fault are done), replica 0 must stand
        # still while replica 1 serves 80 more (about two seconds).
        start = _served(healthy)
        _until(lambda: _served(healthy) >= start + 40, 10, "replica 1 serving")
        lost_then, healthy_then = _served(lost), _served(healthy)
        _until(lambda: _served(healthy) >= healthy_then + 80, 10, "replica 1 serving on")
        lost_now = _served(lost)
        assert not _has_event(run_dir, "fault_end"), "the samples must fall inside the fault"
        print(f"during the fault: replica 0 +{lost_now - lost_then}, replica 1 +80 or more")
        assert lost_now == lost_then, "the unready replica serves nothing"
        # after the fault, nginx sends it traffic again (within its 5 s fail_timeout)
        _until(lambda: _has_event(run_dir, "fault_end"), 30, "the fault's end")
        _until(lambda: _served(lost) > lost_now, 15, "replica 0 serving again")
        output = _finish(proc)
    doc = _doc(run_dir)
    impact = doc["impact"]
    print(json.dumps(impact, indent=1))
    assert proc.returncode == 0 == doc["verdict"]["exit_code"], output[-3000:]
    assert impact["failed_requests"] <= 0.02 * impact["during"]["requests"]
    assert doc["capacity_check"]["predicted"]["carries"] is True  # one replica carries 40/s
    assert doc["capacity_check"]["observed"]["carried"] is True
    assert doc["rollback"]["after"]["server_faults"] == {"0": [], "1": []}
    _assert_all_stopped(doc)


def test_gpu_loss_cpu_fallback_keeps_serving_degraded_without_errors(tmp_path: Path) -> None:
    proc = _start(tmp_path, "gpu-loss-cpu-fallback", "fallback")
    run_dir = tmp_path / "out" / "fallback"
    with stopped(proc):
        lost, healthy = _replicas(tmp_path)
        assert _degraded(lost) is False
        _until(lambda: _has_event(run_dir, "fault_start"), 120, "the fault")
        _until(lambda: _degraded(lost), 5, "replica 0 reporting degraded")
        meta = json.loads(_get(lost["http_url"] + "/v2"))
        assert meta["provider"] == "CPUExecutionProvider"  # nothing to fall back from here
        assert "reference_server_degraded 1.0" in _get(lost["metrics_url"]).splitlines()
        lost_then, healthy_then = _served(lost), _served(healthy)
        _until(lambda: _served(healthy) >= healthy_then + 40, 10, "replica 1 serving")
        lost_now = _served(lost)
        assert not _has_event(run_dir, "fault_end"), "the samples must fall inside the fault"
        print(f"during the fault: replica 0 +{lost_now - lost_then} while replica 1 +40")
        assert lost_now - lost_then >= 10, "the degraded replica keeps serving"
        _until(lambda: _has_event(run_dir, "fault_end"), 30, "the fault's end")
        _until(lambda: not _degraded(lost), 5, "replica 0 no longer degraded")
        output = _finish(proc)
    doc = _doc(run_dir)
    impact = doc["impact"]
    print(json.dumps(impact, indent=1))
    assert proc.returncode == 0 == doc["verdict"]["exit_code"], output[-3000:]
    assert impact["failed_requests"] == 0 and impact["during"]["failures"] == 0
    assert doc["capacity_check"]["predicted"]["lost"] == 0  # it stays in service
    assert doc["rollback"]["equal"] is True
    _assert_all_stopped(doc)


@pytest.mark.skipif(not cuda_device_present(), reason="needs a CUDA device: on a CPU-only host "
                    "the fallback moves no session, so latency cannot rise")  # fmt: skip
def test_gpu_loss_cpu_fallback_raises_latency_on_a_gpu_host(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    data = json.loads(scenario.read_text())
    data["stack"]["device"] = "cuda"
    data["target"]["model"] = "mlp"  # compute-heavy enough for CPU vs GPU to show
    data["target"]["inputs"] = {"source": "random"}
    scenario.write_text(json.dumps(data))
    result = subprocess.run(
        harness_cmd("gameday", "gpu-loss-cpu-fallback", "--scenario", scenario, "--out",
                    tmp_path / "out", "--run-id", "gpu", *FAST),
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    doc = _doc(tmp_path / "out" / "gpu")
    print(json.dumps(doc["impact"], indent=1))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    impact = doc["impact"]
    assert impact["failed_requests"] == 0
    assert impact["during"]["mean_ms"] > impact["before"]["mean_ms"]
