"""Locust master and workers as child processes: start, watch, stop — by PID, never by name.

Why subprocesses: importing Locust monkey-patches the whole process with gevent (and breaks if
`kubernetes`/ssl was imported first), so the orchestrator never imports it; it runs
`python -m locust -f scenarios/locustfile.py --headless --master` and N `--worker`s, exactly
as one would on many machines. The master binds an ephemeral port (Locust's `port 0`) and
writes it to `stream/master.json`; workers are started once it is known. Children get their own
session, so a terminal Ctrl-C reaches only the orchestrator, which stops the load in order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import InfrastructureError
from harness.load.locust_side import LOCUSTFILE, REPO_ROOT, locust_side_env
from harness.load.remote import ExternalWorkers
from harness.loadgen import stream
from harness.loadgen.spec import ENV_VAR

log = logging.getLogger(__name__)

MASTER_FILE = "master.json"


def locust_env(spec_path: Path) -> dict[str, str]:
    return locust_side_env(**{ENV_VAR: str(spec_path)})


@dataclass
class LocustProcesses:
    """A running master and its workers; `stop()` ends every one of them."""

    master: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    master_port: int = 0

    @property
    def pids(self) -> list[int]:
        return [self.master.pid, *(w.pid for w in self.workers)]

    def dead_workers(self) -> list[int]:
        """Indexes of workers that exited while the master still runs."""
        return [i for i, w in enumerate(self.workers) if w.poll() is not None]

    def master_exited(self) -> bool:
        return self.master.poll() is not None

    def wait_master(self, timeout_s: float) -> bool:
        try:
            self.master.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every child still running, then SIGKILL after `grace_s`."""
        procs = [p for p in (self.master, *self.workers) if p.poll() is None]
        for proc in procs:
            _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("locust pid %d ignored SIGTERM; killing it", proc.pid)
                _signal(proc, signal.SIGKILL)
                proc.wait(timeout=5)


def _signal(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)


def _spawn(
    args: list[str], env: dict[str, str], log_path: Path, launcher: list[str] | None = None
) -> subprocess.Popen:
    prefix = launcher or ["-m", "locust"]
    cmd = [sys.executable, *prefix, "-f", str(LOCUSTFILE), *args]
    cmd += [
        "--loglevel",
        os.environ.get("HARNESS_LOCUST_LOGLEVEL", "INFO"),
        "--logfile",
        str(log_path),
    ]
    with open(log_path.with_suffix(".out"), "ab") as out:
        return subprocess.Popen(
            cmd,
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_locust(
    spec_path: Path,
    run_dir: Path,
    n_workers: int,
    start_timeout_s: float = 60.0,
    external: ExternalWorkers | None = None,
) -> LocustProcesses:
    """Start the master (ephemeral loopback port, or `external`'s bind address) and `n_workers`
    local workers; the workers import Locust while the master starts and connect once its
    port is known (`scenarios.launch`). With `external`, the master also waits (at most
    `external.wait_s`) for `external.count` workers from other machines."""
    env = locust_env(spec_path)
    stream_dir = run_dir / "stream"
    stream_dir.mkdir(parents=True, exist_ok=True)
    (stream_dir / MASTER_FILE).unlink(missing_ok=True)
    bind_host, bind_port, master_host = "127.0.0.1", 0, "127.0.0.1"
    expected, max_wait = n_workers, start_timeout_s
    if external is not None:
        bind_host, bind_port = external.bind_host, external.bind_port
        master_host = external.local_master_host
        expected, max_wait = n_workers + external.count, external.wait_s
    master_args = ["--headless", "--master", "--master-bind-host", bind_host]
    master_args += ["--master-bind-port", str(bind_port), "--expect-workers", str(expected)]
    master_args += ["--expect-workers-max-wait", str(max(1, round(max_wait)))]
    master_args += ["--csv", str(run_dir / "locust"), "--exit-code-on-error", "0"]
    master_log = run_dir / "locust-master.log"
    procs = LocustProcesses(_spawn(master_args, env, master_log), logs=[master_log])
    port_file = stream_dir / MASTER_FILE
    launcher = ["-m", "scenarios.launch", str(port_file), str(time.time() + start_timeout_s), "--"]
    try:
        for i in range(n_workers):
            log_path = run_dir / f"locust-worker-{i}.log"
            args = ["--worker", "--master-host", master_host]
            procs.workers.append(_spawn(args, env, log_path, launcher))
            procs.logs.append(log_path)
        procs.master_port = _wait_master_port(procs, port_file, start_timeout_s)
    except BaseException:
        procs.stop(grace_s=5.0)
        raise
    log.info("locust master pid %d, workers %s", procs.master.pid, [w.pid for w in procs.workers])
    return procs


def _wait_master_port(procs: LocustProcesses, path: Path, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = stream.read_json(path)
        if data and data.get("port"):
            return int(data["port"])
        if procs.master_exited():
            raise InfrastructureError(
                f"locust master exited with {procs.master.returncode} before listening "
                f"(see {procs.logs[0]} and {procs.logs[0].with_suffix('.out')})"
            )
        time.sleep(0.05)
    raise InfrastructureError(f"locust master did not listen within {timeout_s:g}s")
