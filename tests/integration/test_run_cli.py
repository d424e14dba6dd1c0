"""`harness run` as users meet it: exit codes, bad scenarios, Ctrl-C/SIGTERM, a lost worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
import yaml

from harness.cli.main import main
from harness.load.api import run_scenario
from tests.integration.cli_helpers import reaped, wait_for
from tests.integration.delay_server import DelayServerProcess
from tests.integration.run_helpers import epoch_of, scenario

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, url: str, **load: object) -> Path:
    data = {
        "name": "cli-test",
        "target": {"url": url, "protocol": "kserve-http", "model": "m"},
        "load": {"mode": "open", "arrival": "constant", "rate": 50, "duration": "3s", **load},
        "slo": {"p99_ms": 5000, "error_rate": 0.01},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def _processes_of(run_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(run_dir) in part for part in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def test_invalid_scenario_exits_2_naming_file_and_field(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ntarget: {url: 'http://127.0.0.1:1', protocol: kserve-http, model: m}\n"
        "load: {mode: open, arrival: poisson, rate: -5, duration: 10s}\n"
    )
    code = main(["run", str(bad), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "bad.yaml" in err and "load.rate" in err
    assert not (tmp_path / "out").exists(), "nothing may start for an invalid scenario"


def test_slo_sets_the_exit_code_and_set_overrides(tmp_path: Path) -> None:
    with DelayServerProcess(median_ms=20.0, sigma=0.1, fail_every=10) as server:
        path = _write(tmp_path / "s.yaml", server.url)
        out = tmp_path / "out"
        failed = main(["run", str(path), "--out", str(out), "--no-progress",
                       "--set", "slo.p99_ms=1", "--run-id", "slo-fail"])  # fmt: skip
    assert failed == 1
    summary = json.loads((out / "slo-fail" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["slo"]["passed"] is False
    assert summary["requests"] == 150 and summary["failures"] == 15  # every 10th is a 500
    failed_checks = {c["name"] for c in summary["slo"]["checks"] if not c["passed"]}
    assert {"p99_ms", "error_rate"} <= failed_checks
    config = json.loads((out / "slo-fail" / "run.json").read_text())["scenario_config"]
    assert config["slo"]["p99_ms"] == 1  # the override is what ran, and it is recorded
    assert (out / "history.duckdb").exists()


def test_never_ready_target_exits_3(tmp_path: Path) -> None:
    with DelayServerProcess() as server:
        url = server.url
    sc = scenario(url, {"mode": "open", "rate": 10, "duration": 2})
    outcome = run_scenario(sc, tmp_path, show_progress=False, ready_timeout_s=2.0)
    assert outcome.exit_code == 3 and outcome.status == "failed"
    assert "not ready" in json.loads((outcome.run_dir / "run.json").read_text())["status_reason"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_mid_run_keeps_windows_and_says_incomplete(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGINT (Ctrl-C) and SIGTERM (a service manager, a CI runner's cancel) alike: exit 130,
    the run kept as "incomplete", every Locust process stopped."""
    with DelayServerProcess(median_ms=5.0, sigma=0.2) as server:
        path = _write(tmp_path / "s.yaml", server.url, duration="60s")
        out, run_dir = tmp_path / "out", tmp_path / "out" / "interrupted"
        cmd = [sys.executable, "-m", "harness.cli.main", "run", str(path), "--out", str(out),
               "--run-id", "interrupted", "--no-progress"]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with reaped(proc):
            windows = run_dir / "stream" / "windows.jsonl"
            wait_for(
                lambda: windows.exists() and windows.read_text().count("\n") >= 2, 90, "windows"
            )
            proc.send_signal(sig)
            output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output.decode()[-2000:]
    run = json.loads((run_dir / "run.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run["status"] == summary["status"] == "incomplete"
    assert "interrupted by a signal" in run["status_reason"]
    assert 0 < summary["requests"] < 50 * 60
    assert (run_dir / "windows.parquet").exists()
    assert not _processes_of(run_dir), "every Locust process must be stopped"


def test_a_lost_worker_fails_the_run_with_exit_3(tmp_path: Path) -> None:
    with DelayServerProcess(median_ms=5.0, sigma=0.2) as server:
        sc = scenario(server.url, {"mode": "open", "rate": 40, "duration": 30}, workers=2)
        run_dir = tmp_path / "lost"

        def kill_one_worker() -> None:
            epoch_of(run_dir)
            victim = wait_for(
                lambda: [p for p in _processes_of(run_dir) if "worker-1" in " ".join(p.cmdline())],
                30,
                "worker process",
            )[0]
            wait_for(lambda: (run_dir / "stream" / "windows.jsonl").exists(), 30, "windows")
            os.kill(victim.pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_one_worker, daemon=True)
        killer.start()
        outcome = run_scenario(sc, tmp_path, run_id="lost", show_progress=False)
        killer.join(timeout=5)
    assert outcome.exit_code == 3 and outcome.status == "failed"
    assert "worker" in json.loads((run_dir / "run.json").read_text())["status_reason"]
    assert outcome.summary["requests"] > 0  # what was measured before the loss is kept
    assert not _processes_of(run_dir)
