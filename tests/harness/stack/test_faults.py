"""`harness.stack.faults` on a real stack: two reference-server replicas, the fault proxy in
front of each and of the stack, nginx; driven only through the state file, as the `chaos`
CLI in another process drives it.

Expected values come from outside the code under test: HTTP answers of the real servers and
nginx, PIDs in /proc, latencies measured with a clock around real requests. Every test
leaves the shared stack rolled back (the fixture checks it is clean and at full strength).
"""

from __future__ import annotations

import stat
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.stack import faults
from harness.stack.local import LocalStack, StackState, read_state, write_state
from harness.stack.server_process import pid_alive

pytestmark = pytest.mark.integration
TOKEN = "game-day-token"


@pytest.fixture(scope="module")
def running(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("faults-stack")
    stack = LocalStack(
        replicas=2, model_repository=model_repository, device="cpu", admin_token=TOKEN,
        workdir=workdir, fault_proxies=True, state_file=workdir / "stack.json",
    )  # fmt: skip
    with stack:
        yield workdir / "stack.json"


@pytest.fixture
def state_file(running: Path) -> Iterator[Path]:
    """The shared stack's state file; after each test: rolled back, clean, full strength."""
    yield running
    state = faults.rollback_all(read_state(running))
    write_state(running, state)
    health = faults.stack_health(state)
    assert health.full_strength and health.clean, health.to_dict()


def get(url: str, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def median_ms(url: str, n: int = 7) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        assert get(url) == 200
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def proxy_url(state: StackState, name: str) -> str:
    assert state.fault_proxy is not None
    listen = next(p.listen for p in state.fault_proxy.proxies if p.name == name)
    return f"http://{listen}/v2/health/ready"


def test_state_file_is_private_and_says_how_to_restart(state_file: Path):
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600  # it holds the admin token
    state = read_state(state_file)
    assert state.admin_token == TOKEN and StackState.from_json(state.to_json()) == state
    for replica in state.replicas:
        port = replica.http_url.rsplit(":", 1)[1]
        assert replica.argv[replica.argv.index("--http-port") + 1] == port
        assert "--admin-token" not in replica.argv and TOKEN not in " ".join(replica.argv)
    names = sorted(p.name for p in state.fault_proxy.proxies)  # type: ignore[union-attr]
    assert names == sorted(
        f"{t}-{proto}" for t in ("client", "replica-0", "replica-1") for proto in ("http", "grpc")
    )
    # the client-facing URL is the client proxy, which reaches nginx
    listen = {p.name: p.listen for p in state.fault_proxy.proxies}  # type: ignore[union-attr]
    assert state.url == f"http://{listen['client-http']}"
    assert get(state.url + "/v2/health/ready") == 200


def test_kill_then_restart_on_the_same_ports_while_nginx_serves(state_file: Path):
    state = read_state(state_file)
    victim = state.replicas[1]
    assert faults.kill_replica(state, 1) == victim.pid and not pid_alive(victim.pid)
    health = faults.stack_health(state)
    assert [(r.alive, r.ready) for r in health.replicas] == [(True, True), (False, False)]
    assert not health.full_strength
    # nginx retries the dead upstream on the live one: every request still answers 200
    assert [get(state.url + "/v2/health/ready") for _ in range(10)] == [200] * 10
    restarted = faults.restart_replica(state, 1, ready_timeout_s=60)
    write_state(state_file, restarted)
    new = restarted.replicas[1]
    assert new.pid != victim.pid and pid_alive(new.pid)
    assert (new.http_url, new.grpc_url, new.metrics_url) == (
        victim.http_url, victim.grpc_url, victim.metrics_url,
    )  # fmt: skip
    assert get(new.http_url + "/v2/health/ready") == 200
    assert faults.stack_health(restarted).full_strength
    # a running replica is left alone
    assert faults.restart_replica(restarted, 1) == restarted


def test_latency_toxic_slows_exactly_the_hop_it_is_on(state_file: Path):
    state = read_state(state_file)
    toxic = {"name": "slow", "type": "latency", "stream": "downstream", "toxicity": 1.0,
             "attributes": {"latency": 100, "jitter": 0}}  # fmt: skip
    made = faults.add_toxic(state, "replica-0", toxic)
    assert [t["name"] for t in made] == ["slow", "slow"]  # its HTTP and gRPC proxies
    listed = faults.list_toxics(state)
    assert [t["name"] for t in listed["replica-0-http"]] == ["slow"] and not listed["client-http"]
    slow = median_ms(proxy_url(state, "replica-0-http"))
    fast = median_ms(proxy_url(state, "replica-1-http"))
    assert 80 <= slow - fast <= 130, (slow, fast)
    assert not faults.stack_health(state).clean
    assert faults.remove_toxic(state, "replica-0", "slow") == 2
    assert faults.remove_toxic(state, "replica-0", "slow") == 0  # gone: nothing to do
    assert median_ms(proxy_url(state, "replica-0-http")) < 50


def test_device_loss_unready_shows_in_health_and_rollback_clears_it(state_file: Path):
    state = read_state(state_file)
    fault = faults.add_server_fault(state, 0, {"type": "device_loss", "policy": "unready",
                                                "duration_s": 60})  # fmt: skip
    assert fault["type"] == "device_loss" and 0 < fault["remaining_s"] <= 60
    health = faults.stack_health(state)
    assert health.replicas[0].alive and not health.replicas[0].ready
    assert [f["id"] for f in health.replicas[0].faults or ()] == [fault["id"]]
    assert get(state.replicas[0].http_url + "/v2/health/ready") == 503
    faults.add_toxic(state, "client", {"name": "t", "type": "latency", "attributes": {}})
    rolled = faults.rollback_all(state)
    after = faults.stack_health(rolled)
    assert after.full_strength and after.clean, after.to_dict()


def test_rollback_restarts_every_dead_replica(state_file: Path):
    state = read_state(state_file)
    for index in (0, 1):
        faults.kill_replica(state, index)
    rolled = faults.rollback_all(state)
    write_state(state_file, rolled)
    assert all(pid_alive(r.pid) for r in rolled.replicas)
    assert faults.stack_health(rolled).full_strength


def test_unknown_replica_and_proxy_are_refused_by_name(state_file: Path):
    state = read_state(state_file)
    with pytest.raises(faults.ConfigError) as error:
        faults.kill_replica(state, 2)
    assert str(error.value) == "replica index 2: the stack has 2 replica(s)"
    with pytest.raises(faults.ConfigError) as error:
        faults.add_toxic(state, "replica-9", {"name": "x", "type": "latency"})
    assert str(error.value).startswith("no fault proxy for 'replica-9'; the stack has: ")


def test_stop_also_stops_a_replica_restarted_from_outside(model_repository: Path, tmp_path: Path):
    state_path = tmp_path / "stack.json"
    stack = LocalStack(
        replicas=1, model_repository=model_repository, device="cpu", workdir=tmp_path / "w",
        fault_proxies=True, state_file=state_path,
    )  # fmt: skip
    with stack:
        state = read_state(state_path)
        faults.kill_replica(state, 0)
        restarted = faults.restart_replica(state, 0)
        write_state(state_path, restarted)  # what the chaos action does
        new_pid, proxy_pid = restarted.replicas[0].pid, state.fault_proxy.pid  # type: ignore[union-attr]
        assert pid_alive(new_pid) and pid_alive(proxy_pid)
    assert not pid_alive(new_pid) and not pid_alive(proxy_pid) and not state_path.exists()
