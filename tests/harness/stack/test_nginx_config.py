"""nginx configuration for the stack: rendered text, and accepted by the real nginx binary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.stack.nginx import Upstream, find_nginx, render_config
from tests.ports import kernel_picked_ports

# replicas' (http, grpc) ports and nginx's own: only rendered and checked (`nginx -t` binds none)
HTTP_1, GRPC_1, HTTP_2, GRPC_2, FRONT_HTTP, FRONT_GRPC = kernel_picked_ports(6)


def _conf(tmp_path: Path) -> str:
    ups = [Upstream("127.0.0.1", HTTP_1, GRPC_1), Upstream("127.0.0.1", HTTP_2, GRPC_2)]
    return render_config(tmp_path, ups, "127.0.0.1", FRONT_HTTP, FRONT_GRPC)


def test_config_balances_least_conn_with_passive_health_checks(tmp_path: Path) -> None:
    text = _conf(tmp_path)
    http_block = text.split("upstream kserve_http {")[1].split("}")[0]
    grpc_block = text.split("upstream kserve_grpc {")[1].split("}")[0]
    assert "least_conn;" in http_block and "least_conn;" in grpc_block
    assert f"server 127.0.0.1:{HTTP_1} max_fails=1 fail_timeout=5s;" in http_block
    assert f"server 127.0.0.1:{GRPC_2} max_fails=1 fail_timeout=5s;" in grpc_block
    assert f":{GRPC_1} " not in http_block and f":{HTTP_1} " not in grpc_block
    # A killed replica's requests are retried elsewhere, POSTs (inference) included.
    assert "proxy_next_upstream error timeout http_502 http_503 non_idempotent;" in text
    assert "grpc_next_upstream error timeout http_502 http_503 non_idempotent;" in text
    assert f"listen 127.0.0.1:{FRONT_GRPC} http2" in text


def test_real_nginx_accepts_the_config(tmp_path: Path) -> None:
    try:
        nginx = find_nginx()
    except Exception as exc:  # pragma: no cover - CI installs nginx
        pytest.fail(f"nginx must be installed for the stack (make setup does it): {exc}")
    (tmp_path / "tmp").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(_conf(tmp_path))
    result = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    # And a broken config is rejected, so the check above means something.
    conf.write_text(_conf(tmp_path).replace("least_conn;", "least_conn_typo;", 1))
    bad = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0


def test_nginx_starts_from_a_relative_work_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` puts the stack under `results/<run>/stack` (relative to the checkout). nginx
    reads a relative -c / -e under its -p prefix, so that directory must reach it absolute;
    and `start` must return only once nginx itself answers (its inherited listening socket
    accepts connections even while nginx is failing)."""
    import urllib.request

    from harness.stack.nginx import STARTED_PATH, NginxProcess

    monkeypatch.chdir(tmp_path)
    ups = [Upstream("127.0.0.1", HTTP_1, GRPC_1)]
    proc = NginxProcess.start(Path("results/run/stack/nginx"), ups)
    try:
        url = f"http://127.0.0.1:{proc.http_port}{STARTED_PATH}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b"nginx\n"
        assert (tmp_path / "results/run/stack/nginx/nginx.conf").is_file()
    finally:
        proc.stop()
    assert proc.popen.poll() is not None  # stopped by its PID
