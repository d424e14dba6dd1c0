"""LocalStack: start N reference-server replicas (and nginx for N > 1); stop all of them.

Used by `harness stack up/down`, by `harness run` for scenarios with a local stack, by game
days and by the tests. Everything binds loopback on ephemeral ports. A detached stack
(`harness stack up --detach`) writes a state file naming every PID it started, so `harness
stack down` can stop exactly those processes later, from another process.

The state file (stack.json, mode 0600: it holds the admin token) is also what an actor in
another process needs to inject faults (`harness.stack.faults`): per replica the command line
that restarts it on the same ports, the admin token, and the fault proxy's API. With
`fault_proxies=True` one fault-proxy process (`python -m chaos.faultproxy`, Toxiproxy's REST
API) sits in front of every replica (nginx -> proxy -> replica) and in front of the stack
(client -> proxy -> nginx), so a toxic on one proxy slows exactly that hop. With
`monitor=True` a Prometheus (`harness.monitor`) scrapes every replica every second, labelled
as the Kubernetes pods the adapter rules expect (namespace `local`, pod `replica-<i>`); it
stops with the stack and its storage is removed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.files import atomic_write_text
from harness.monitor import MonitorState, PrometheusProcess, replica_targets
from harness.stack.models import ensure_default_models
from harness.stack.nginx import NginxProcess, Upstream
from harness.stack.server_process import (
    FaultProxyProcess,
    ServerProcess,
    pid_alive,
    server_argv,
    terminate_pid,
)

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """One replica; `argv` (fixed ports), `env` (overrides of the environment, never the
    token) and `cwd` restart it as it was."""

    index: int
    pid: int
    http_url: str
    grpc_url: str
    metrics_url: str
    log_path: str
    argv: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""


@dataclass(frozen=True, slots=True)
class ProxyState:
    """One proxy of the fault proxy: `replica-<i>-http|grpc` or `client-http|grpc`."""

    name: str
    listen: str  # host:port
    upstream: str  # host:port


@dataclass(frozen=True, slots=True)
class FaultProxyState:
    pid: int
    api_url: str  # http://127.0.0.1:PORT, Toxiproxy's REST API
    proxies: tuple[ProxyState, ...] = ()


@dataclass(frozen=True, slots=True)
class StackState:
    """What a running stack looks like from outside: endpoints, PIDs, how to undo a fault."""

    url: str
    grpc_url: str
    replicas: tuple[ReplicaState, ...]
    nginx_pid: int | None = None
    workdir: str = ""
    model_repository: str = ""
    extra: dict = field(default_factory=dict)
    admin_token: str | None = None
    fault_proxy: FaultProxyState | None = None
    monitor: MonitorState | None = None

    @property
    def metrics_urls(self) -> list[str]:
        return [r.metrics_url for r in self.replicas]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackState:
        data = json.loads(text)
        data["replicas"] = tuple(
            ReplicaState(**{**r, "argv": tuple(r.get("argv", ()))}) for r in data["replicas"]
        )
        proxy = data.get("fault_proxy")
        if proxy is not None:
            proxies = tuple(ProxyState(**p) for p in proxy.get("proxies", ()))
            data["fault_proxy"] = FaultProxyState(**{**proxy, "proxies": proxies})
        if data.get("monitor") is not None:
            data["monitor"] = MonitorState(**data["monitor"])
        return cls(**data)


def write_state(path: Path, state: StackState) -> None:
    """Atomically (temp file + rename; readers never see half a file), mode 0600: the file
    carries the admin token."""
    atomic_write_text(path, state.to_json(), mode=0o600)


def read_state(path: Path) -> StackState:
    """The state in `path`; ConfigError naming the file when it is missing or unreadable."""
    try:
        return StackState.from_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"stack state {path}: unreadable ({exc})") from exc


class LocalStack:
    """N replicas of the reference server on loopback, nginx in front when N > 1."""

    def __init__(
        self,
        replicas: int = 1,
        model_repository: Path | None = None,
        device: str = "auto",
        admin_token: str | None = None,
        extra_server_args: Sequence[str] = (),
        workdir: Path | None = None,
        host: str = "127.0.0.1",
        ready_timeout_s: float = 90.0,
        detach: bool = False,
        fault_proxies: bool = False,
        state_file: Path | None = None,
        monitor: bool = False,
        workers: int = 1,
    ) -> None:
        """`workers`: server processes per replica (`--workers`, one port, one /metrics).
        `fault_proxies`: a fault proxy in front of every replica and of the stack.
        `monitor`: a Prometheus scraping every replica (`prometheus_url` once started).
        `state_file`: write the state there once started (and after that, trust it: `stop`
        also stops the replicas an actor restarted and recorded there)."""
        if replicas < 1:
            raise ConfigError(f"stack.replicas: must be >= 1, got {replicas}")
        if host not in LOOPBACK_HOSTS:
            raise ConfigError(f"stack host {host!r}: the local stack only binds loopback")
        self.replica_count = replicas
        if workers < 1:
            raise ConfigError(f"stack.workers: must be >= 1, got {workers}")
        self.workers = workers
        self.model_repository = model_repository
        self.device = device
        self.admin_token = admin_token
        self.extra_server_args = tuple(extra_server_args)
        self.workdir = workdir
        self.host = host
        self.ready_timeout_s = ready_timeout_s
        self.detach = detach
        self.fault_proxies = fault_proxies
        self.state_file = state_file
        self.replicas: list[ServerProcess] = []
        self.nginx: NginxProcess | None = None
        self.fault_proxy: FaultProxyProcess | None = None
        self.monitor = monitor
        self.prometheus: PrometheusProcess | None = None
        self.proxies: dict[str, ProxyState] = {}
        self._cwd = os.getcwd()
        self._own_tmp: tempfile.TemporaryDirectory | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> LocalStack:
        repo = self._ensure_models()
        workdir = self._workdir()
        self._args = ["--model-repository", str(repo), "--device", self.device]
        self._args += ["--workers", str(self.workers)] if self.workers > 1 else []
        self._args += list(self.extra_server_args)
        env = dict(os.environ)
        if self.admin_token:
            env["HARNESS_ADMIN_TOKEN"] = self.admin_token
        try:
            for i in range(self.replica_count):
                self.replicas.append(
                    ServerProcess.start(
                        workdir / f"replica-{i}.log",
                        extra_args=self._args,
                        host=self.host,
                        ready_timeout_s=self.ready_timeout_s,
                        env=env,
                        detach=self.detach,
                    )
                )
            upstreams = [Upstream(self.host, r.ports.http, r.ports.grpc) for r in self.replicas]
            if self.fault_proxies:
                self.fault_proxy = FaultProxyProcess.start(workdir / "faultproxy.log", self.host)
                upstreams = [self._proxied(f"replica-{i}", u) for i, u in enumerate(upstreams)]
            if self.replica_count > 1:
                self.nginx = NginxProcess.start(
                    workdir / "nginx", upstreams, self.host, detach=self.detach
                )
                upstreams = [Upstream(self.host, self.nginx.http_port, self.nginx.grpc_port)]
            if self.fault_proxies:
                self._proxied("client", upstreams[0])
            if self.monitor:
                self.prometheus = PrometheusProcess.start(
                    replica_targets(self.metrics_urls), workdir / "prometheus", detach=self.detach
                )
            if self.state_file is not None:
                write_state(self.state_file, self.state())
        except BaseException:
            self.stop()
            raise
        return self

    def _proxied(self, target: str, upstream: Upstream) -> Upstream:
        """Put a proxy in front of `upstream` (HTTP and gRPC); the address to use instead."""
        assert self.fault_proxy is not None
        ports = []
        for protocol, port in (("http", upstream.http_port), ("grpc", upstream.grpc_port)):
            name, address = f"{target}-{protocol}", f"{upstream.host}:{port}"
            proxy = ProxyState(name, self.fault_proxy.create(name, address), address)
            self.proxies[name] = proxy
            ports.append(int(proxy.listen.rsplit(":", 1)[1]))
        return Upstream(self.host, ports[0], ports[1])

    def stop(self) -> None:
        """Stop nginx, then every replica (SIGTERM, then SIGKILL after the grace period), then
        the fault proxy, then Prometheus (its storage removed); with a state file, also what
        it names (replicas restarted by an actor in another process have PIDs this object
        never saw)."""
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None
        for replica in self.replicas:
            try:
                replica.stop()
            except Exception:  # keep stopping the others
                log.exception("stopping replica pid=%d failed", replica.pid)
        self.replicas.clear()
        self._stop_recorded()
        if self.fault_proxy is not None:
            self.fault_proxy.stop()
            self.fault_proxy = None
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None

    def _stop_recorded(self) -> None:
        if self.state_file is None or not Path(self.state_file).exists():
            return
        try:
            stop_state(read_state(self.state_file), grace_s=5.0)
        except ConfigError:
            log.exception("stack state %s unreadable; its processes may survive", self.state_file)
        Path(self.state_file).unlink(missing_ok=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- endpoints -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The client's endpoint: the client proxy when there are fault proxies, else nginx
        (or the single replica)."""
        if "client-http" in self.proxies:
            return f"http://{self.proxies['client-http'].listen}"
        if self.nginx is not None:
            return f"http://{self.host}:{self.nginx.http_port}"
        return self.replicas[0].http_url

    @property
    def grpc_url(self) -> str:
        if "client-grpc" in self.proxies:
            return self.proxies["client-grpc"].listen
        if self.nginx is not None:
            return f"{self.host}:{self.nginx.grpc_port}"
        return self.replicas[0].grpc_url

    @property
    def metrics_urls(self) -> list[str]:
        return [r.metrics_url for r in self.replicas]

    @property
    def prometheus_url(self) -> str | None:
        return self.prometheus.url if self.prometheus else None

    def state(self) -> StackState:
        return StackState(
            url=self.url,
            grpc_url=self.grpc_url,
            replicas=tuple(self._replica_state(i, r) for i, r in enumerate(self.replicas)),
            nginx_pid=self.nginx.pid if self.nginx else None,
            workdir=str(self._workdir()),
            model_repository=str(self.model_repository or ""),
            admin_token=self.admin_token,
            fault_proxy=(
                FaultProxyState(
                    self.fault_proxy.pid, self.fault_proxy.api_url, tuple(self.proxies.values())
                )
                if self.fault_proxy
                else None
            ),
            monitor=self.prometheus.state if self.prometheus else None,
        )

    def _replica_state(self, index: int, r: ServerProcess) -> ReplicaState:
        argv = tuple(server_argv(self.host, self._args, r.ports))  # its own ports again
        return ReplicaState(
            index, r.pid, r.http_url, r.grpc_url, r.metrics_url, str(r.log_path),
            argv=argv, cwd=self._cwd,
        )  # fmt: skip

    def kill_replica(self, index: int) -> int:
        """SIGKILL one replica (the node-kill fault); returns its PID."""
        replica = self.replicas[index]
        replica.kill()
        return replica.pid

    # -- helpers -------------------------------------------------------------------------
    def _workdir(self) -> Path:
        if self.workdir is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix="harness-stack-")
            self.workdir = Path(self._own_tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir

    def _ensure_models(self) -> Path:
        # Built once here, before the replicas start, so N replicas never race to build it.
        if self.model_repository is None:  # the built-in models: build (or refresh) them
            repo = ensure_default_models()
        else:  # the user's own repository: use it as it is, never rebuild over it
            repo = Path(self.model_repository)
            if not repo.is_dir():
                raise ConfigError(f"stack.model_repository: {repo} is not a directory")
        self.model_repository = repo
        return repo


def stop_state(state: StackState, grace_s: float = 10.0) -> list[int]:
    """Stop the processes a (detached) stack's state names; returns the PIDs that were running."""
    stopped = []
    pids = ([state.nginx_pid] if state.nginx_pid else []) + [r.pid for r in state.replicas]
    pids += [state.fault_proxy.pid] if state.fault_proxy else []
    pids += [state.monitor.pid] if state.monitor else []
    for pid in pids:
        if pid_alive(pid) and is_ours(pid) and terminate_pid(pid, grace_s=grace_s):
            stopped.append(pid)
    if state.monitor is not None:  # its storage goes with it
        shutil.rmtree(state.monitor.storage, ignore_errors=True)
    return stopped


def is_ours(pid: int) -> bool:
    """Guard against PID reuse: only signal processes that look like what we started."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    names = (b"reference_server", b"nginx", b"chaos.faultproxy", b"prometheus")
    return any(name in cmdline for name in names)
