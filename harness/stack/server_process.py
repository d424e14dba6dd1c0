"""The stack's child processes: a reference-server replica, the fault proxy; and the small
JSON helper the stack's control calls (admin API, Toxiproxy REST) share.

The server binds port 0 and prints `listening http=P grpc=P metrics=P` once it is ready; we
redirect its output to a log file and poll that file for the line, so the same code works for
a foreground stack and for a detached one whose parent has exited. Stopping is by PID: SIGTERM
(the server drains in-flight requests), then SIGKILL after a deadline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InfrastructureError, TargetUnavailable

log = logging.getLogger(__name__)

LISTENING_RE = re.compile(r"listening http=(\d+) grpc=(\d+) metrics=(\d+)")


@dataclass(frozen=True, slots=True)
class Ports:
    http: int
    grpc: int
    metrics: int


class ServerProcess:
    """A started `python -m reference_server` process with the ports it bound."""

    def __init__(self, popen: subprocess.Popen, ports: Ports, log_path: Path, host: str) -> None:
        self.popen = popen
        self.ports = ports
        self.log_path = log_path
        self.host = host

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.ports.metrics}/metrics"

    @classmethod
    def start(
        cls,
        log_path: Path,
        extra_args: Sequence[str] = (),
        host: str = "127.0.0.1",
        ready_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
        detach: bool = False,
        ports: Ports | None = None,
    ) -> ServerProcess:
        """Start a replica and wait until it is ready to serve.

        On ephemeral ports unless `ports` is given: a restarted replica takes back the ports
        it had, so nginx's upstream (or the fault proxy's) stays valid. `detach` changes
        nothing here any more (every replica gets its own session); it is kept so callers
        need not change."""
        cmd = server_argv(host, extra_args, ports)
        return cls.launch(cmd, log_path, host, ready_timeout_s, env)

    @classmethod
    def launch(
        cls,
        cmd: Sequence[str],
        log_path: Path,
        host: str = "127.0.0.1",
        ready_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> ServerProcess:
        """Run a complete replica command line (see `server_argv`); wait until it is ready."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log_file:
            popen = subprocess.Popen(
                list(cmd),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd or None,
                # Always its own session: a terminal Ctrl-C (SIGINT to the foreground group)
                # must reach only the orchestrator, which stops the load first and the stack
                # after; otherwise the replicas drain mid-load and the run records failures.
                start_new_session=True,
            )
        try:
            ports = wait_for_listening_line(popen, log_path, ready_timeout_s)
            server = cls(popen, ports, log_path, host)
            wait_until_ready(server.http_url, ready_timeout_s)
        except BaseException:
            terminate_pid(popen.pid, grace_s=2.0)
            popen.wait(timeout=5)
            raise
        log.info("replica pid=%d ready on %s", popen.pid, server.http_url)
        return server

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, wait up to grace_s, then SIGKILL. Returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("replica pid=%d ignored SIGTERM for %.0fs; killing", self.pid, grace_s)
                self.popen.kill()
        return self.popen.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL with no grace: the node-kill fault."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


def server_argv(host: str, extra_args: Sequence[str] = (), ports: Ports | None = None) -> list[str]:
    """The command line of one replica (port 0 = the kernel picks; the server reports it)."""
    http, grpc, metrics = (ports.http, ports.grpc, ports.metrics) if ports else (0, 0, 0)
    cmd = [sys.executable, "-m", "reference_server", "--host", host]
    cmd += ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    return cmd + list(extra_args)


def wait_for_listening_line(
    popen: subprocess.Popen | int, log_path: Path, timeout_s: float
) -> Ports:
    """The ports the server reports in its log; `popen` may be a bare PID (an orphan)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        match = LISTENING_RE.search(text)
        if match:
            return Ports(*(int(g) for g in match.groups()))
        exited = not pid_alive(popen) if isinstance(popen, int) else popen.poll() is not None
        if exited:
            code = "?" if isinstance(popen, int) else popen.returncode
            raise TargetUnavailable(
                f"reference server exited with code {code} before listening: {_tail(text)}"
            )
        time.sleep(0.05)
    raise TargetUnavailable(
        f"reference server did not report its ports within {timeout_s:.0f}s (log: {log_path})"
    )


def launch_orphan(
    cmd: Sequence[str],
    log_path: Path,
    host: str = "127.0.0.1",
    ready_timeout_s: float = 60.0,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[int, Ports]:
    """Start a replica that is nobody's child (a shell starts it in the background and exits
    at once), wait until it is ready; (pid, ports).

    Why: a replica restarted by a chaos actor must outlive the actor (the `chaos` CLI exits
    after the experiment) and must not sit as an unreaped `Popen` in a long-lived caller. It
    is stopped later by PID, from the state file, like every process of a detached stack."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    script = '"$@" </dev/null >"$0" 2>&1 & echo $!'
    shell = subprocess.run(
        ["/bin/sh", "-c", script, str(log_path), *cmd], env=env, cwd=cwd or None,
        capture_output=True, text=True, timeout=10, start_new_session=True, check=True,
    )  # fmt: skip
    pid = int(shell.stdout.strip())
    try:
        ports = wait_for_listening_line(pid, log_path, ready_timeout_s)
        wait_until_ready(f"http://{host}:{ports.http}", ready_timeout_s)
    except BaseException:
        terminate_pid(pid, grace_s=2.0)
        raise
    return pid, ports


def wait_until_ready(base_url: str, timeout_s: float, path: str = "/v2/health/ready") -> None:
    """Poll a health route until it answers 200, or raise TargetUnavailable at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base_url + path, timeout=2) as resp:
                if resp.status == 200:
                    return
                last_error = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise TargetUnavailable(f"{base_url}{path} not ready within {timeout_s:.0f}s ({last_error})")


def terminate_pid(pid: int, grace_s: float = 10.0) -> bool:
    """SIGTERM a PID we started, SIGKILL after grace_s. True if it was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def pid_alive(pid: int) -> bool:
    try:
        # A zombie (exited, not yet reaped by its parent) counts as gone.
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def rest_request(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    expect: Sequence[int] = (200,),
    timeout_s: float = 5.0,
) -> tuple[int, Any]:
    """One JSON call to a control API (the server's /admin, the fault proxy's Toxiproxy REST):
    (status, parsed body or None). A status outside `expect` raises InfrastructureError with
    the API's own message; no answer at all raises TargetUnavailable."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError as exc:
        raise TargetUnavailable(f"{method} {url}: no answer ({exc})") from exc
    if status not in expect:
        message = raw.decode(errors="replace").strip()[:300]
        raise InfrastructureError(f"{method} {url}: HTTP {status} {message}")
    return status, (json.loads(raw) if raw.strip() else None)


def rest_call(method: str, url: str, body: Any = None, **kwargs: Any) -> Any:
    """`rest_request`'s parsed body only."""
    return rest_request(method, url, body, **kwargs)[1]


class FaultProxyProcess:
    """The fault proxy (`python -m chaos.faultproxy`) as a child process, driven over its
    Toxiproxy-compatible REST API. Its own session, like the replicas (see ServerProcess)."""

    def __init__(self, popen: subprocess.Popen, api_url: str) -> None:
        self.popen = popen
        self.api_url = api_url

    @property
    def pid(self) -> int:
        return self.popen.pid

    @classmethod
    def start(cls, log_path: Path, host: str, timeout_s: float = 30.0) -> FaultProxyProcess:
        """Start it on an ephemeral API port; it writes the bound address to a port file
        (atomically) once listening, which we poll."""
        port_file = log_path.with_suffix(".port")
        port_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "chaos.faultproxy", "--api", f"{host}:0"]
        cmd += ["--port-file", str(port_file)]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as out:
            popen = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        try:
            api_url = _wait_for_port_file(popen, port_file, log_path, timeout_s)
        except BaseException:
            terminate_pid(popen.pid, grace_s=2.0)
            popen.wait(timeout=5)
            raise
        log.info("fault proxy pid=%d api %s", popen.pid, api_url)
        return cls(popen, api_url)

    def create(self, name: str, upstream: str) -> str:
        """A proxy on an ephemeral loopback port in front of `upstream` (host:port); the
        address it listens on."""
        host = upstream.rsplit(":", 1)[0]
        body = {"name": name, "listen": f"{host}:0", "upstream": upstream, "enabled": True}
        made = rest_call("POST", f"{self.api_url}/proxies", body, expect=(201,))
        return str(made["listen"])

    def stop(self, grace_s: float = 5.0) -> None:
        terminate_pid(self.popen.pid, grace_s=grace_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)


def _wait_for_port_file(
    popen: subprocess.Popen, port_file: Path, log_path: Path, timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        address = port_file.read_text().strip() if port_file.exists() else ""
        if address:
            return f"http://{address}"
        if popen.poll() is not None:
            text = log_path.read_text(errors="replace") if log_path.exists() else ""
            code = popen.returncode
            raise TargetUnavailable(f"fault proxy exited with code {code}: {_tail(text)}")
        time.sleep(0.05)
    raise TargetUnavailable(f"fault proxy did not report its API within {timeout_s:.0f}s")
