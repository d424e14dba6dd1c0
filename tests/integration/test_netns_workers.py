"""Load from two "machines": master and a remote worker in separate network namespaces.

The test makes two namespaces joined by a veth pair (10.200.0.1 and 10.200.0.2 exist only
inside them). Namespace A holds the target (the delay server, counting requests per client
address) and `harness run --workers-external 1` (its master and one local worker); namespace
B holds `harness worker --master 10.200.0.1:PORT`, which gets the run spec over Locust's
messaging only. Checked: the merged histograms count exactly the requests the server saw
from each address; the clock skew is measured and reported; a refused clock and a worker
killed mid-run give exit 3 with a message that says why (and, killed, the windows so far).
Where `ip netns` is not permitted the module is skipped with that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import harness
from harness.results import load_run
from tests.integration.cli_helpers import REPO, harness_cmd, wait_for
from tests.integration.run_helpers import merged_histogram

A_ADDR, B_ADDR = "10.200.0.1", "10.200.0.2"


def _netns_refusal() -> str | None:
    """Why `ip netns` cannot be used here (None: it can), found by trying it."""
    name = f"hsprobe{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return f"ip netns is not permitted here: {exc} {detail.decode(errors='replace')}".strip()
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    return None


NETNS_REFUSAL = _netns_refusal()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(NETNS_REFUSAL is not None, reason=NETNS_REFUSAL or ""),
]

SERVER = r"""
import asyncio, collections, contextvars, json, signal, sys
from tests.integration.delay_server import DelayServer
peer = contextvars.ContextVar("peer")
counts = collections.Counter()
class Counting(DelayServer):
    async def route(self, method, path, *rest):
        if path.endswith("/infer"):
            counts[peer.get()] += 1
        return await super().route(method, path, *rest)
async def main():
    app = Counting(2.0, 0.0, 1, 0, 0)
    async def handle(reader, writer):
        peer.set(writer.get_extra_info("peername")[0])
        await app.handle(reader, writer)
    server = await asyncio.start_server(handle, sys.argv[1], 0, backlog=1024)
    print("listening http=%d" % server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    print(json.dumps(counts), flush=True)
asyncio.run(main())
"""


@dataclass
class Hosts:
    a: str
    b: str
    procs: list[subprocess.Popen]

    def start(
        self, ns: str, cmd: list[str], *, path: tuple[Path, ...] = (), **kw: object
    ) -> subprocess.Popen:
        """`cmd` inside namespace `ns`; `path`: directories put before the repository on
        PYTHONPATH (a `sitecustomize.py` there runs first in every Python process)."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (*path, REPO)))}
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], cwd=REPO, env=env, **kw)
        self.procs.append(proc)
        return proc


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _kill_namespace_processes(ns: str) -> list[int]:
    """Kill whatever still runs in `ns` (only processes this test started live there)."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10)
    pids = [int(p) for p in out.stdout.split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    tag = f"hs{os.getpid() % 100000}"
    a, b = f"{tag}a", f"{tag}b"
    made: list[str] = []
    h = Hosts(a, b, [])
    try:
        for ns in (a, b):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", f"{tag}va", "netns", a, "type", "veth", "peer", f"{tag}vb", "netns", b)
        for ns, dev, addr in ((a, f"{tag}va", A_ADDR), (b, f"{tag}vb", B_ADDR)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        yield h
    finally:
        for proc in h.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        leftovers = {ns: _kill_namespace_processes(ns) for ns in made}
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert not any(ns in listed for ns in made), listed
        assert not any(leftovers.values()), f"processes left in the namespaces: {leftovers}"


def _server(h: Hosts) -> tuple[subprocess.Popen, str]:
    proc = h.start(h.a, [sys.executable, "-c", SERVER, A_ADDR], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    assert line.startswith("listening http="), line
    return proc, f"http://{A_ADDR}:{line.split('=')[1].strip()}"


def _stop_server(proc: subprocess.Popen) -> dict[str, int]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    return json.loads(out.strip().splitlines()[-1])


def _scenario(tmp: Path, url: str, rate: float, duration: float) -> Path:
    data = {
        "name": "netns",
        "target": {
            "url": url,
            "protocol": "kserve-http",
            "model": "m",
            "version": "1",
            "allow_hosts": [A_ADDR],  # inside the test's own namespaces only
        },
        "load": {"mode": "open", "arrival": "constant", "rate": rate, "duration": duration},
        "slo": {"p99_ms": 60000},
        "validity": {"min_duration_s": 0, "min_requests": 0},
        "workers": 1,
    }
    path = tmp / "netns.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(h: Hosts, tmp: Path, scenario: Path, *extra: str) -> subprocess.Popen:
    args = ["run", scenario, "--out", tmp / "results", "--run-id", "r", "--no-progress"]
    args += ["--workers-external", "1", "--master-bind", f"{A_ADDR}:0", *extra]
    return h.start(h.a, harness_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _master_port(tmp: Path) -> int:
    path = tmp / "results" / "r" / "stream" / "master.json"

    def port() -> int | None:
        try:
            return json.loads(path.read_text()).get("port")
        except (OSError, ValueError):
            return None

    return int(wait_for(port, 30, "the Locust master's port"))


def _worker(h: Hosts, tmp: Path, port: int, path: tuple[Path, ...] = ()) -> subprocess.Popen:
    master = f"{A_ADDR}:{port}"
    cmd = harness_cmd("worker", "--master", master, "--workdir", tmp / "w", "--wait", 30)
    return h.start(h.b, cmd, path=path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_remote_worker_joins_and_the_merge_counts_every_request(
    hosts: Hosts, tmp_path: Path
) -> None:
    rate, duration = 40.0, 4.0
    server, url = _server(hosts)
    run = _run(hosts, tmp_path, _scenario(tmp_path, url, rate, duration))
    port = _master_port(tmp_path)
    roster = tmp_path / "results" / "r" / "stream" / "workers.json"
    # the local worker first: the remote one's join exchange must not take a worker index
    wait_for(lambda: roster.exists() and json.loads(roster.read_text())["connected"], 30, "local")
    worker = _worker(hosts, tmp_path, port)
    _, run_err = run.communicate(timeout=50)
    _, worker_err = worker.communicate(timeout=20)
    per_address = _stop_server(server)
    assert run.returncode == 0, run_err.decode()[-2000:]
    assert worker.returncode == 0, worker_err[-2000:]

    # requests really came from both "machines", about half each (constant split)
    planned = rate * duration  # 160 requests
    assert set(per_address) == {A_ADDR, B_ADDR}, per_address
    assert sum(per_address.values()) == planned
    assert per_address[B_ADDR] == planned / 2

    run_dir = tmp_path / "results" / "r"
    merged = merged_histogram(run_dir)
    assert merged.get_total_count() == sum(per_address.values())
    summary = load_run(run_dir).summary
    loadgen = summary["loadgen"]
    assert loadgen["workers_expected"] == 2 and loadgen["workers_finished"] == 2
    assert [w["worker"] for w in loadgen["per_worker"]] == [0, 1]
    assert sum(w["sent"] for w in loadgen["per_worker"]) == planned
    (remote,) = loadgen["remote_workers"]
    assert remote["refused"] is None and remote["max_clock_skew_ms"] == 50.0
    assert abs(remote["clock_skew_ms"]) <= remote["rtt_ms"] / 2 + 1.0  # one kernel clock
    assert "joined the run at 10.200.0.1:" in worker_err
    assert (
        f"Locust master at {A_ADDR}:{port} waits up to 120 s for 1 remote worker(s): on each "
        f"machine run `harness worker --master {A_ADDR}:{port}`"
    ) in run_err.decode()


def test_a_worker_whose_clock_is_off_refuses_and_the_master_names_it(
    hosts: Hosts, tmp_path: Path
) -> None:
    server, url = _server(hosts)
    limit = ["--max-clock-skew-ms", "0.000001", "--workers-wait", "8"]  # 1 ns: nobody passes
    run = _run(hosts, tmp_path, _scenario(tmp_path, url, 10.0, 2.0), *limit)
    worker = _worker(hosts, tmp_path, _master_port(tmp_path))
    _, worker_err = worker.communicate(timeout=30)
    run.communicate(timeout=40)
    _stop_server(server)
    assert worker.returncode == 3
    assert "refusing to join: this worker's clock is " in worker_err
    assert "ms from the master's at 10.200.0.1:" in worker_err
    assert run.returncode == 3
    reason = json.loads((tmp_path / "results" / "r" / "run.json").read_text())["status_reason"]
    assert reason.startswith(
        f"the load never started: 1 of 2 Locust workers joined the master at {A_ADDR}:"
    ), reason
    assert "local 1 of 1, remote 0 of 1; missing 1 remote worker(s)" in reason
    assert "; refused on " in reason and "(limit 1e-06 ms;" in reason


def test_a_worker_of_another_version_refuses_and_the_master_names_it(
    hosts: Hosts, tmp_path: Path
) -> None:
    """The other machine has another harness installed: there, a `sitecustomize.py` ahead of
    the repository on PYTHONPATH gives every Python process of the worker another version
    (the code is the same: only the version it reports and compares differs)."""
    other = tmp_path / "other-version"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import harness\nharness.__version__ = '0.0.0+other'\n")
    server, url = _server(hosts)
    run = _run(hosts, tmp_path, _scenario(tmp_path, url, 10.0, 2.0), "--workers-wait", "8")
    worker = _worker(hosts, tmp_path, _master_port(tmp_path), path=(other,))
    _, worker_err = worker.communicate(timeout=30)
    run.communicate(timeout=40)
    _stop_server(server)
    assert worker.returncode == 3, worker_err[-2000:]
    assert (
        f"refusing to join: this worker runs harness 0.0.0+other but the master at {A_ADDR}:"
    ) in worker_err
    assert f"runs harness {harness.__version__}: install the same version" in worker_err
    assert run.returncode == 3
    reason = json.loads((tmp_path / "results" / "r" / "run.json").read_text())["status_reason"]
    assert reason.startswith(
        f"the load never started: 1 of 2 Locust workers joined the master at {A_ADDR}:"
    ), reason
    assert "; refused on " in reason and "runs harness 0.0.0+other" in reason, reason


def test_a_remote_worker_killed_mid_run_is_exit_3_with_its_windows_kept(
    hosts: Hosts, tmp_path: Path
) -> None:
    server, url = _server(hosts)
    run = _run(hosts, tmp_path, _scenario(tmp_path, url, 40.0, 12.0))
    worker = _worker(hosts, tmp_path, _master_port(tmp_path))
    start = tmp_path / "results" / "r" / "stream" / "start.json"
    windows = tmp_path / "results" / "r" / "stream" / "windows.jsonl"
    wait_for(start.exists, 40, "the run to start")
    wait_for(lambda: windows.exists() and windows.read_text().count("\n") >= 3, 20, "windows")
    worker.kill()  # SIGKILL: no goodbye to the master, only missing heartbeats
    worker.wait(timeout=10)
    _, run_err = run.communicate(timeout=50)
    _stop_server(server)
    assert run.returncode == 3, run_err.decode()[-2000:]
    run_data = load_run(tmp_path / "results" / "r")
    assert run_data.summary["status"] == "failed"
    assert run_data.summary["loadgen"]["workers_lost"], run_data.summary["loadgen"]
    assert len({w.second for w in run_data.windows}) >= 2  # the seconds before the kill
    assert "stopped answering during the run" in run_data.meta["status_reason"]
