"""Admin fault API: token enforcement, and every fault observable from a real client."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families
from scipy.stats import binom
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
    assert status == 401 and doc["error"] == "admin API: missing or wrong bearer token"
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


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "meteor"}, "fault field 'type': Input tag 'meteor' found using 'type'"),
        (
            {"type": "failure", "ratio": 3},
            "fault field 'ratio': Input should be less than or equal to 1",
        ),
        ({"type": "latency", "x": 1}, "fault field 'x': Extra inputs are not permitted"),
    ],
)
def test_invalid_fault_spec_is_400(admin: int, spec: dict, message: str) -> None:
    status, doc = _call(admin, "POST", "/admin/faults", spec, AUTH)
    assert status == 400 and doc["error"].startswith(message), doc
    assert _call(admin, "GET", "/admin/faults", headers=AUTH)[1]["faults"] == []


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
    spec = {"type": "failure", "ratio": 1.0, "model": "pair"}
    fault_id = _call(admin, "POST", "/admin/faults", spec, AUTH)[1]["id"]
    status, doc = _pair_infer(admin)
    assert status == 500 and doc["error"] == f"injected failure (fault {fault_id}, ratio 1.0)"
    client = httpclient.InferenceServerClient(f"127.0.0.1:{admin}")
    try:
        item = httpclient.InferInput("input", [1, 256], "FP32")
        item.set_data_from_numpy(np.zeros((1, 256), np.float32))
        assert client.infer("mlp", [item]).as_numpy("output").shape == (1, 10)  # scoped
    finally:
        client.close()


RATIO_REQUESTS = 400


def test_failure_ratio_is_honoured(admin: int) -> None:
    # Failures ~ binomial(400, 0.5). The acceptance band [153, 247] is the exact 1e-6 and
    # 1 - 1e-6 quantiles: a correct server fails this test with probability < 2e-6, while a
    # server failing 25 % or 75 % of requests passes it with probability 3.4e-9 (40 %: 0.78).
    n, ratio = RATIO_REQUESTS, 0.5
    low, high = int(binom.ppf(1e-6, n, ratio)), int(binom.isf(1e-6, n, ratio))
    assert (low, high) == (153, 247)
    _call(admin, "POST", "/admin/faults", {"type": "failure", "ratio": ratio}, AUTH)
    statuses = [_pair_infer(admin)[0] for _ in range(n)]
    assert set(statuses) <= {200, 500}
    failures = statuses.count(500)
    assert low <= failures <= high, f"{failures} of {n} failed at ratio {ratio}"


def test_device_loss_unready_policy(admin: int) -> None:
    _call(admin, "POST", "/admin/faults", {"type": "device_loss", "policy": "unready"}, AUTH)
    status, _ = _call(admin, "GET", "/v2/health/ready")
    assert status == 503
    assert _call(admin, "GET", "/v2/health/live")[0] == 200
    assert _pair_infer(admin)[0] == 503
    _call(admin, "DELETE", "/admin/faults", headers=AUTH)
    assert _call(admin, "GET", "/v2/health/ready")[0] == 200
    assert _pair_infer(admin)[0] == 200


def _degraded(server: RunningServer) -> tuple[object, float, str]:
    """`degraded` in the server metadata, the reference_server_degraded gauge, and the
    `degraded` label of reference_server_device_info, as the server reports them now."""
    meta = _call(server.http, "GET", "/v2")[1]
    conn = http.client.HTTPConnection("127.0.0.1", server.metrics, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    gauge = samples["reference_server_degraded"].value
    label = samples["reference_server_device_info"].labels["degraded"]
    return meta["degraded"], gauge, label


def test_device_loss_cpu_fallback_reports_degraded(admin: int, server: RunningServer) -> None:
    assert _degraded(server) == (False, 0.0, "false")  # not before the fault
    _call(admin, "POST", "/admin/faults", {"type": "device_loss", "policy": "cpu-fallback"}, AUTH)
    assert _degraded(server) == (True, 1.0, "true")  # set as the fault is added
    assert _call(admin, "GET", "/v2/health/ready")[0] == 200
    status, doc = _pair_infer(admin)
    assert status == 200 and doc["outputs"][0]["data"] == [2, 3, 4, 5]
    _call(admin, "DELETE", "/admin/faults", headers=AUTH)
    assert _degraded(server) == (False, 0.0, "false")  # and not after it


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
    spec = {"type": "failure", "ratio": 1.0}
    fault_id = _call(admin, "POST", "/admin/faults", spec, AUTH)[1]["id"]
    client = httpclient.InferenceServerClient(f"127.0.0.1:{admin}")
    try:
        item = httpclient.InferInput("input", [1, 256], "FP32")
        item.set_data_from_numpy(np.zeros((1, 256), np.float32))
        message = re.escape(f"injected failure (fault {fault_id}, ratio 1.0)")
        with pytest.raises(InferenceServerException, match=message) as info:
            client.infer("mlp", [item])
        assert info.value.status() == "500"
    finally:
        client.close()
