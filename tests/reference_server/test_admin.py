"""Admin fault API: token enforcement, and every fault observable from a real client."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.reference_server.conftest import ADMIN_TOKEN, RunningServer, running_server

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _call(
    port: int, method: str, path: str, doc: object = None, headers: dict | None = None
) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = None if doc is None else json.dumps(doc)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else {}
    finally:
        conn.close()


@pytest.fixture
def admin(server: RunningServer) -> Iterator[int]:
    """The shared server's HTTP port; every fault is cleared afterwards."""
    try:
        yield server.http
    finally:
        status, _ = _call(server.http, "DELETE", "/admin/faults", headers=AUTH)
        assert status == 200


def _pair_infer(port: int) -> tuple[int, dict]:
    doc = {
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
            {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]},
        ]
    }
    return _call(port, "POST", "/v2/models/pair/infer", doc)


def test_admin_disabled_without_token(http_model_repository: Path, tmp_path: Path) -> None:
    with running_server(
        tmp_path, "--model-repository", str(http_model_repository), "--device", "cpu"
    ) as srv:
        for headers in ({}, AUTH):
            status, doc = _call(srv.http, "GET", "/admin/faults", headers=headers)
            assert status == 404 and "error" in doc
        status, _ = _call(srv.http, "POST", "/admin/faults", {"type": "hang"}, AUTH)
        assert status == 404
        assert _pair_infer(srv.http)[0] == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": "Basic x"},
    ],
)
def test_wrong_or_missing_token_is_401(admin: int, headers: dict) -> None:
    status, doc = _call(admin, "POST", "/admin/faults", {"type": "failure", "ratio": 1}, headers)
    assert status == 401 and "token" in doc["error"]
    assert _call(admin, "GET", "/admin/faults", headers=headers)[0] == 401
    assert _pair_infer(admin)[0] == 200  # nothing was injected


def test_list_add_remove_clear(admin: int) -> None:
    status, fault = _call(admin, "POST", "/admin/faults", {"type": "latency", "fixed_ms": 1}, AUTH)
    assert status == 201 and fault["type"] == "latency"
    status, other = _call(admin, "POST", "/admin/faults", {"type": "failure", "ratio": 0}, AUTH)
    assert status == 201
    status, doc = _call(admin, "GET", "/admin/faults", headers=AUTH)
    assert {f["id"] for f in doc["faults"]} == {fault["id"], other["id"]}
    assert _call(admin, "DELETE", f"/admin/faults/{fault['id']}", headers=AUTH)[0] == 200
    assert _call(admin, "DELETE", f"/admin/faults/{fault['id']}", headers=AUTH)[0] == 404
    status, doc = _call(admin, "DELETE", "/admin/faults", headers=AUTH)
    assert status == 200 and doc["removed"] == 1
    assert _call(admin, "GET", "/admin/faults", headers=AUTH)[1]["faults"] == []


def test_invalid_fault_spec_is_400(admin: int) -> None:
    for spec in ({"type": "meteor"}, {"type": "failure", "ratio": 3}, {"type": "latency", "x": 1}):
        status, doc = _call(admin, "POST", "/admin/faults", spec, AUTH)
        assert status == 400 and doc["error"], spec


def test_latency_fault_delays_requests(admin: int) -> None:
    def timed() -> float:
        start = time.monotonic()
        assert _pair_infer(admin)[0] == 200
        return time.monotonic() - start

    baseline = min(timed() for _ in range(3))
    _call(admin, "POST", "/admin/faults", {"type": "latency", "fixed_ms": 300}, AUTH)
    delayed = timed()
    assert delayed >= 0.3 and delayed > baseline


def test_failure_fault_fails_requests(admin: int) -> None:
    _call(admin, "POST", "/admin/faults", {"type": "failure", "ratio": 1.0, "model": "pair"}, AUTH)
    status, doc = _pair_infer(admin)
    assert status == 500 and "injected" in doc["error"]
    client = httpclient.InferenceServerClient(f"127.0.0.1:{admin}")
    try:
        item = httpclient.InferInput("input", [1, 256], "FP32")
        item.set_data_from_numpy(np.zeros((1, 256), np.float32))
        assert client.infer("mlp", [item]).as_numpy("output").shape == (1, 10)  # scoped
    finally:
        client.close()


def test_failure_ratio_is_roughly_honoured(admin: int) -> None:
    _call(admin, "POST", "/admin/faults", {"type": "failure", "ratio": 0.5}, AUTH)
    failures = sum(_pair_infer(admin)[0] == 500 for _ in range(80))
    assert 20 <= failures <= 60  # binomial(80, 0.5): 4.5 sigma either side


def test_device_loss_unready_policy(admin: int) -> None:
    _call(admin, "POST", "/admin/faults", {"type": "device_loss", "policy": "unready"}, AUTH)
    status, _ = _call(admin, "GET", "/v2/health/ready")
    assert status == 503
    assert _call(admin, "GET", "/v2/health/live")[0] == 200
    assert _pair_infer(admin)[0] == 503
    _call(admin, "DELETE", "/admin/faults", headers=AUTH)
    assert _call(admin, "GET", "/v2/health/ready")[0] == 200
    assert _pair_infer(admin)[0] == 200


def test_device_loss_cpu_fallback_reports_degraded(admin: int, server: RunningServer) -> None:
    _call(admin, "POST", "/admin/faults", {"type": "device_loss", "policy": "cpu-fallback"}, AUTH)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        meta = _call(admin, "GET", "/v2")[1]
        if "degraded" in json.dumps(meta).lower():
            break
        time.sleep(0.05)
    assert "degraded" in json.dumps(meta).lower(), meta
    assert _call(admin, "GET", "/v2/health/ready")[0] == 200
    status, doc = _pair_infer(admin)
    assert status == 200 and doc["outputs"][0]["data"] == [2, 3, 4, 5]


def test_hang_fault_holds_requests_until_removed(admin: int) -> None:
    status, fault = _call(admin, "POST", "/admin/faults", {"type": "hang"}, AUTH)
    assert status == 201
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(_pair_infer(admin)[0]))
    worker.start()
    worker.join(0.5)
    assert worker.is_alive() and not results  # hung
    assert _call(admin, "GET", "/v2/health/live")[0] == 200  # the server itself is fine
    _call(admin, "DELETE", f"/admin/faults/{fault['id']}", headers=AUTH)
    worker.join(10)
    assert results == [200]


def test_fault_expires_by_itself(admin: int) -> None:
    spec = {"type": "failure", "ratio": 1.0, "duration_s": 1.0}
    _call(admin, "POST", "/admin/faults", spec, AUTH)
    assert _pair_infer(admin)[0] == 500
    deadline = time.monotonic() + 5
    while _pair_infer(admin)[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_metrics_on_both_ports(server: RunningServer) -> None:
    for port in (server.metrics, server.http):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
        assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/plain")
        assert "nv_inference_request_success" in text


def test_tritonclient_error_for_injected_failure(admin: int) -> None:
    _call(admin, "POST", "/admin/faults", {"type": "failure", "ratio": 1.0}, AUTH)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{admin}")
    try:
        item = httpclient.InferInput("input", [1, 256], "FP32")
        item.set_data_from_numpy(np.zeros((1, 256), np.float32))
        with pytest.raises(InferenceServerException, match="injected") as info:
            client.infer("mlp", [item])
        assert info.value.status() == "500"
    finally:
        client.close()
