"""`harness faultproxy` and `python -m chaos.faultproxy` as real child processes: they start
on an ephemeral API port, say where (one stdout line and the port file), serve, and stop on
SIGTERM / SIGINT with nothing left running."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from chaos.faultproxy import FaultProxyClient
from tests.chaos.faultproxy.conftest import (
    REPO,
    connect,
    listen_port,
    round_trip_ms,
    start_proxy_process,
    stop_process,
)

HARNESS = str(Path(sys.executable).parent / "harness")  # this interpreter's console script


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_harness_faultproxy_serves_then_stops_on_signal(tmp_path, echo_port, sig):
    proc, address = start_proxy_process(tmp_path, command=(HARNESS, "faultproxy"))
    try:
        client = FaultProxyClient(address)
        assert client.version() == "2.12.0-serving-harness"
        port = listen_port(client.create_proxy("echo", f"127.0.0.1:{echo_port}"))
        sock = connect(port)
        assert round_trip_ms(sock) < 100
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(sig)
        assert proc.wait(10) == 0
        assert proc.stdout.read() == f"listening api={address}\n"
        assert sock.recv(10) == b""  # its connections were closed
        sock.close()
        assert not [c for c in children if c.is_running()]
        with pytest.raises(ConnectionRefusedError):
            connect(port)
    finally:
        stop_process(proc)


def test_a_non_loopback_api_address_exits_2_naming_it():
    result = subprocess.run(
        [sys.executable, "-m", "chaos.faultproxy", "--api", "0.0.0.0:0"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: api address 0.0.0.0:0 is not loopback; the fault proxy only uses loopback "
        "unless started with --allow-host 0.0.0.0\n"
    )
