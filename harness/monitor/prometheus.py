"""Prometheus (the Debian package's binary) as a child process on loopback, with temp storage.

Why a child process rather than a library: the point is to query the stack with the real
PromQL engine the HPA's adapter and the dashboards use. Prometheus binds `127.0.0.1:0` and
logs the address it got (`msg="Listening on" address=127.0.0.1:PORT`), which is read back,
so no port is guessed. Its TSDB lives in a fresh temporary directory that `stop` removes;
`prometheus.yml`, the file_sd targets and the log stay in the working directory given.
Started in its own session (a terminal Ctrl-C reaches only the orchestrator), stopped by PID;
`detach=True` (a detached stack) starts it as nobody's child, so it outlives the caller.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, InfrastructureError
from harness.monitor.scrape_config import TARGETS_FILE, ScrapeTarget, render_config, write_targets

__all__ = ["MonitorState", "PrometheusProcess", "find_prometheus"]

log = logging.getLogger(__name__)

LISTENING = re.compile(r'msg="Listening on" address=([\d.]+):(\d+)')
LOOPBACK = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class MonitorState:
    """What a running Prometheus looks like from outside (kept in the stack's state file)."""

    pid: int
    url: str
    storage: str  # the TSDB directory, removed when Prometheus stops
    workdir: str


def find_prometheus() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        raise ConfigError(
            "monitor: the `prometheus` binary is not installed "
            "(scripts/install_system_deps.sh installs Debian's `prometheus` package)"
        )
    return binary


class PrometheusProcess:
    """A running Prometheus scraping the targets in its file_sd file."""

    def __init__(
        self, pid: int, url: str, workdir: Path, storage: Path, popen: subprocess.Popen | None
    ) -> None:
        self.pid = pid
        self.url = url
        self.workdir = workdir
        self.storage = storage
        self.popen = popen  # None when detached (nobody's child)

    @property
    def state(self) -> MonitorState:
        return MonitorState(self.pid, self.url, str(self.storage), str(self.workdir))

    @classmethod
    def start(
        cls,
        targets: Iterable[ScrapeTarget],
        workdir: Path,
        interval_s: float = 1.0,
        host: str = "127.0.0.1",
        timeout_s: float = 30.0,
        detach: bool = False,
    ) -> PrometheusProcess:
        if host not in LOOPBACK:
            raise ConfigError(f"monitor host {host!r}: Prometheus here only binds loopback")
        binary = find_prometheus()
        workdir.mkdir(parents=True, exist_ok=True)
        targets_file = workdir / TARGETS_FILE
        write_targets(targets_file, targets)
        config = workdir / "prometheus.yml"
        config.write_text(render_config(targets_file, interval_s), encoding="utf-8")
        storage = Path(tempfile.mkdtemp(prefix="prometheus-tsdb-", dir=workdir))
        log_path = workdir / "prometheus.log"
        cmd = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address={host}:0",
            "--storage.tsdb.retention.time=1d",
            "--web.enable-lifecycle",
        ]
        pid, popen = _launch(cmd, log_path, detach)
        try:
            url = _wait_listening(pid, log_path, timeout_s)
            proc = cls(pid, url, workdir, storage, popen)
            proc._wait_ready(timeout_s)
        except BaseException:
            _terminate(pid, popen)
            shutil.rmtree(storage, ignore_errors=True)
            raise
        log.info("prometheus pid=%d %s", pid, url)
        return proc

    def set_targets(self, targets: Iterable[ScrapeTarget]) -> None:
        """Replace the scraped targets (Prometheus re-reads the file within seconds)."""
        write_targets(self.workdir / TARGETS_FILE, targets)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(self.pid, self.popen):
                raise InfrastructureError(f"prometheus exited at start: {self._log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise InfrastructureError(f"prometheus not ready within {timeout_s:.0f}s")

    def _log_tail(self) -> str:
        path = self.workdir / "prometheus.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return " | ".join(text.strip().splitlines()[-3:]) or "(no output)"

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s), then remove the TSDB."""
        _terminate(self.pid, self.popen)
        shutil.rmtree(self.storage, ignore_errors=True)

    def __enter__(self) -> PrometheusProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _launch(cmd: list[str], log_path: Path, detach: bool) -> tuple[int, subprocess.Popen | None]:
    if detach:  # a shell starts it in the background and exits: nobody's child
        script = '"$@" </dev/null >"$0" 2>&1 & echo $!'
        shell = subprocess.run(
            ["/bin/sh", "-c", script, str(log_path), *cmd],
            capture_output=True, text=True, timeout=10, start_new_session=True, check=True,
        )  # fmt: skip
        return int(shell.stdout.strip()), None
    with open(log_path, "wb") as out:
        popen = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    return popen.pid, popen


def _alive(pid: int, popen: subprocess.Popen | None) -> bool:
    if popen is not None:
        return popen.poll() is None
    try:  # a zombie (exited, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _wait_listening(pid: int, log_path: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        match = LISTENING.search(text)
        if match:
            return f"http://{match.group(1)}:{match.group(2)}"
        if not _alive(pid, None):
            tail = " | ".join(text.strip().splitlines()[-3:]) or "(no output)"
            raise InfrastructureError(f"prometheus exited at start: {tail}")
        time.sleep(0.05)
    raise InfrastructureError(f"prometheus did not say where it listens within {timeout_s:.0f}s")


def _terminate(pid: int, popen: subprocess.Popen | None, grace_s: float = 10.0) -> None:
    """SIGTERM, SIGKILL after `grace_s`; a child is reaped."""
    if popen is not None:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _alive(pid, None):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
