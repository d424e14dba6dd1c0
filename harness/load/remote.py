"""Load from many machines: the master side's settings, its roster, and the remote worker.

    harness run SCENARIO --workers-external 2 --master-bind 0.0.0.0:5557   # machine A
    harness worker --master A:5557                                          # machines B, C

Locust's own master/worker protocol does the distribution: the master (started by `harness
run`, `processes.start_locust`) binds `--master-bind` and waits, bounded by `wait_s`, for its
local workers plus `count` remote ones. A remote worker (`run_worker`, which becomes
`python -m scenarios.launch --remote`) asks the master for the run spec over Locust's messaging,
checks its harness version and clock against the master's and joins or refuses; the master
keeps every verdict in `stream/workers.json`, from which `missing_message` says who is missing.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.load.locust_side import REPO_ROOT, locust_side_env
from harness.loadgen import stream

DEFAULT_PORT = 5557  # Locust's own default master port


@dataclass(frozen=True, slots=True)
class ExternalWorkers:
    """`harness run --workers-external N [--master-bind HOST:PORT]`: who the master waits for."""

    count: int
    bind_host: str = "0.0.0.0"
    bind_port: int = DEFAULT_PORT
    wait_s: float = 120.0
    max_clock_skew_ms: float = 50.0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ConfigError(f"--workers-external {self.count}: must be 0 or more")
        if self.wait_s <= 0:
            raise ConfigError(f"--workers-wait {self.wait_s:g}: must be more than 0 seconds")
        if self.max_clock_skew_ms < 0:
            raise ConfigError(f"--max-clock-skew-ms {self.max_clock_skew_ms:g}: must be >= 0")

    @property
    def local_master_host(self) -> str:
        """Where the local workers reach the master."""
        return "127.0.0.1" if self.bind_host in ("0.0.0.0", "*", "") else self.bind_host

    def join_hint(self, port: int) -> str:
        host = "THIS_HOST" if self.bind_host in ("0.0.0.0", "*", "") else self.bind_host
        return f"harness worker --master {host}:{port}"


def parse_address(text: str, option: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """HOST:PORT (or HOST alone, with the default port); usage errors name the option."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{option} {text!r}: expected HOST:PORT, e.g. 10.0.0.5:{DEFAULT_PORT}")
    return host.strip("[]"), int(port)


def missing_message(stream_dir: Path, address: str, waited_s: float) -> str | None:
    """Who the master is still waiting for, in words (None when nobody is missing)."""
    roster = stream.read_json(stream_dir / stream.ROSTER)
    if not roster:
        return None
    connected, expected = len(roster.get("connected", [])), int(roster.get("expected", 0))
    if connected >= expected:
        return None
    remote = list(roster.get("remote", []))
    refused = [r for r in remote if r.get("refused")]
    joined_remote = len(remote) - len(refused)
    local = int(roster.get("local", 0))
    local_in = min(max(connected - joined_remote, 0), local)
    parts = [
        f"{connected} of {expected} Locust workers joined the master at {address} "
        f"within {waited_s:.0f} s: local {local_in} of {local}, "
        f"remote {joined_remote} of {roster.get('external', 0)}"
    ]
    missing_remote = int(roster.get("external", 0)) - joined_remote
    if missing_remote > 0:
        parts.append(
            f"missing {missing_remote} remote worker(s) (start each with "
            f"`harness worker --master HOST:PORT` pointing at this master)"
        )
    if local_in < local:
        parts.append(f"missing {local - local_in} local worker(s) (see locust-worker-*.log)")
    for r in refused:
        parts.append(f"refused on {r.get('host')}: {r.get('refused')}")
    return "; ".join(parts)


def worker_command(master: str, workdir: Path, wait_s: float) -> list[str]:
    """The process `harness worker --master HOST:PORT` becomes."""
    parse_address(master, "--master")
    deadline = time.time() + wait_s
    loglevel = os.environ.get("HARNESS_LOCUST_LOGLEVEL", "INFO")
    return [
        sys.executable, "-m", "scenarios.launch", "--remote", master, str(workdir),
        f"{deadline:.3f}", "--", "--loglevel", loglevel,
    ]  # fmt: skip


def run_worker(master: str, workdir: Path, wait_s: float = 120.0) -> None:
    """Replace this process with a remote Locust worker of the master at `master` (its exit
    code is the worker's: 0 when the run ended, 3 when it refused to join)."""
    command = worker_command(master, workdir, wait_s)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(REPO_ROOT)
    os.execve(command[0], command, locust_side_env())
