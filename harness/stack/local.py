"""LocalStack: start N reference-server replicas (and nginx for N > 1); stop all of them.

Used by `harness stack up/down`, by `harness run` for scenarios with a local stack, and by the
tests. Everything binds loopback on ephemeral ports. A detached stack (`harness stack up
--detach`) writes a state file naming every PID it started, so `harness stack down` can stop
exactly those processes later, from another process.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.stack.models import ensure_default_models
from harness.stack.nginx import NginxProcess, Upstream
from harness.stack.server_process import ServerProcess, pid_alive, terminate_pid

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True, slots=True)
class ReplicaState:
    index: int
    pid: int
    http_url: str
    grpc_url: str
    metrics_url: str
    log_path: str


@dataclass(frozen=True, slots=True)
class StackState:
    """What a running stack looks like from outside: endpoints and PIDs."""

    url: str
    grpc_url: str
    replicas: tuple[ReplicaState, ...]
    nginx_pid: int | None = None
    workdir: str = ""
    model_repository: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def metrics_urls(self) -> list[str]:
        return [r.metrics_url for r in self.replicas]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackState:
        data = json.loads(text)
        data["replicas"] = tuple(ReplicaState(**r) for r in data["replicas"])
        return cls(**data)


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
    ) -> None:
        if replicas < 1:
            raise ConfigError(f"stack.replicas: must be >= 1, got {replicas}")
        if host not in LOOPBACK_HOSTS:
            raise ConfigError(f"stack host {host!r}: the local stack only binds loopback")
        self.replica_count = replicas
        self.model_repository = model_repository
        self.device = device
        self.admin_token = admin_token
        self.extra_server_args = tuple(extra_server_args)
        self.workdir = workdir
        self.host = host
        self.ready_timeout_s = ready_timeout_s
        self.detach = detach
        self.replicas: list[ServerProcess] = []
        self.nginx: NginxProcess | None = None
        self._own_tmp: tempfile.TemporaryDirectory | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> LocalStack:
        repo = self._ensure_models()
        workdir = self._workdir()
        args = ["--model-repository", str(repo), "--device", self.device, *self.extra_server_args]
        env = dict(os.environ)
        if self.admin_token:
            env["HARNESS_ADMIN_TOKEN"] = self.admin_token
        try:
            for i in range(self.replica_count):
                self.replicas.append(
                    ServerProcess.start(
                        workdir / f"replica-{i}.log",
                        extra_args=args,
                        host=self.host,
                        ready_timeout_s=self.ready_timeout_s,
                        env=env,
                        detach=self.detach,
                    )
                )
            if self.replica_count > 1:
                upstreams = [Upstream(self.host, r.ports.http, r.ports.grpc) for r in self.replicas]
                self.nginx = NginxProcess.start(
                    workdir / "nginx", upstreams, self.host, detach=self.detach
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop nginx, then every replica (SIGTERM, then SIGKILL after the grace period)."""
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None
        for replica in self.replicas:
            try:
                replica.stop()
            except Exception:  # keep stopping the others
                log.exception("stopping replica pid=%d failed", replica.pid)
        self.replicas.clear()
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- endpoints -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.nginx is not None:
            return f"http://{self.host}:{self.nginx.http_port}"
        return self.replicas[0].http_url

    @property
    def grpc_url(self) -> str:
        if self.nginx is not None:
            return f"{self.host}:{self.nginx.grpc_port}"
        return self.replicas[0].grpc_url

    @property
    def metrics_urls(self) -> list[str]:
        return [r.metrics_url for r in self.replicas]

    def state(self) -> StackState:
        return StackState(
            url=self.url,
            grpc_url=self.grpc_url,
            replicas=tuple(
                ReplicaState(i, r.pid, r.http_url, r.grpc_url, r.metrics_url, str(r.log_path))
                for i, r in enumerate(self.replicas)
            ),
            nginx_pid=self.nginx.pid if self.nginx else None,
            workdir=str(self._workdir()),
            model_repository=str(self.model_repository or ""),
        )

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
    for pid in pids:
        if pid_alive(pid) and _is_ours(pid) and terminate_pid(pid, grace_s=grace_s):
            stopped.append(pid)
    return stopped


def _is_ours(pid: int) -> bool:
    """Guard against PID reuse: only signal processes that look like what we started."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"reference_server" in cmdline or b"nginx" in cmdline
