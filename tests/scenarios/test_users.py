"""Protocol users (scenarios.users) against the real reference server, in a Locust process.

Locust monkey-patches the process with gevent on import, so the users run in a child Python
process (this test process must stay unpatched); it prints what it saw as JSON. Checked: each
protocol counts exactly the correct answers that the model gives on the digits test set (the
truth comes from ONNX Runtime in this process, not from the harness), a weaker model version
scores exactly its own lower count and labels shifted by one score exactly what the model
gets right against them (none), concurrent requests from one user work
(the open-loop driver shares one user), every request fires Locust's `request` event, and a
missing model version is a failure (not an exception, not a success).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.stack.local import LocalStack

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
import gevent
from locust.env import Environment
from scenarios.users import KServeGrpcUser, KServeHttpUser, TFServingUser
from harness.loadgen.payloads import Sample, dataset_samples

http_url, grpc_url, npz = sys.argv[1:4]
samples = dataset_samples(npz, "input")[:40]
shifted = [Sample(s.inputs, (s.labels + 1) % 10) for s in samples]  # every label wrong
out = {}
for label, base, host in (("http", KServeHttpUser, http_url), ("grpc", KServeGrpcUser, grpc_url),
                          ("tfserving", TFServingUser, http_url)):
    env = Environment()
    events = []
    env.events.request.add_listener(
        lambda name, exception, **kw: events.append((name, exception is None)))
    user = type("U", (base,), {"host": host, "model": "digits", "version": "2"})(env)
    good = [user.prepare("digits/2", "digits", "2", s) for s in samples]
    answers = [g.get() for g in [gevent.spawn(user.send, r) for r in good]]
    missing = user.send(user.prepare("digits/9", "digits", "9", samples[0]))
    seen = list(events)
    wrong = [user.send(user.prepare("digits/2", "digits", "2", s)) for s in shifted]
    weak = [user.send(user.prepare("digits/1", "digits", "1", s)) for s in samples]
    random_answer = user.infer_random() if label != "tfserving" else None
    out[label] = {
        "ok": sum(a.ok for a in answers), "checked": sum(a.checked for a in answers),
        "correct": sum(a.correct for a in answers), "missing_ok": missing.ok,
        "shifted": [sum(a.checked for a in wrong), sum(a.correct for a in wrong)],
        "v1": [sum(a.checked for a in weak), sum(a.correct for a in weak)],
        "random_ok": None if random_answer is None else random_answer.ok,
        "events": seen,
    }
    if label != "grpc":  # the open-loop driver's lean HTTP path, same checks
        del events[:]
        warmed = user.warm_open_loop(4)
        lean = [g.get() for g in [gevent.spawn(user.send_open_loop, r) for r in good]]
        lean_missing = user.send_open_loop(user.prepare("digits/9", "digits", "9", samples[0]))
        lean_seen, opened = list(events), user._open_loop_pool().opened
        lean_wrong = [user.send_open_loop(user.prepare("digits/2", "digits", "2", s))
                      for s in shifted]
        secure = type("S", (base,), {"host": "https://127.0.0.1:1", "model": "m"})(env)
        out[label + "-open-loop"] = {
            "ok": sum(a.ok for a in lean), "checked": sum(a.checked for a in lean),
            "correct": sum(a.correct for a in lean), "missing_ok": lean_missing.ok,
            "shifted": [sum(a.checked for a in lean_wrong), sum(a.correct for a in lean_wrong)],
            "events": lean_seen, "warmed": warmed, "opened": opened,
            "https_pool": secure._open_loop_pool() is not None,
        }
print(json.dumps(out))
"""


def model_truth(npz: Path, version: str) -> tuple[int, int]:
    """(right, right against labels + 1 mod 10) of the model's own answers on the first 40
    test samples, from ONNX Runtime here: what the harness's checks must count."""
    import onnxruntime

    with np.load(npz) as data:
        x, y = data["X"][:40].astype(np.float32), data["y"][:40].astype(np.int64)
    model = npz.parent / version / "model.onnx"
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    predicted = session.run(["label"], {"input": x})[0].ravel()
    return int(np.sum(predicted == y)), int(np.sum(predicted == (y + 1) % 10))


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(replicas=1) as running:
        yield running


def test_protocol_users_answer_correctly_and_fire_locust_events(stack: LocalStack) -> None:
    npz = Path(stack.model_repository) / "digits" / "test_set.npz"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, stack.url, stack.grpc_url, str(npz)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    v2_right, v2_right_shifted = model_truth(npz, "2")
    v1_right, _ = model_truth(npz, "1")
    # the truth as measured when this test was written: v2 40/40, v1 36/40 on these samples
    # (so the two versions can be told apart), shifted labels 0/40; no answer is near a tie
    assert (v2_right, v1_right, v2_right_shifted) == (40, 36, 0)
    for protocol in ("http", "grpc", "tfserving"):
        stats = seen[protocol]
        assert stats["ok"] == stats["checked"] == 40, (protocol, stats)
        assert stats["correct"] == v2_right, (protocol, stats)
        assert stats["shifted"] == [40, v2_right_shifted], (protocol, stats)
        assert stats["v1"] == [40, v1_right], (protocol, stats)  # the version asked answers
        assert stats["missing_ok"] is False, protocol
        names = [name for name, _ in stats["events"]]
        assert names.count("digits/2") == 40 and names.count("digits/9") == 1, protocol
        assert [ok for name, ok in stats["events"] if name == "digits/9"] == [False]
    assert seen["http"]["random_ok"] is True and seen["grpc"]["random_ok"] is True
    for protocol in ("http-open-loop", "tfserving-open-loop"):
        stats = seen[protocol]
        assert stats["ok"] == stats["checked"] == 40, (protocol, stats)
        assert stats["correct"] == v2_right, (protocol, stats)
        assert stats["shifted"] == [40, v2_right_shifted], (protocol, stats)
        assert stats["missing_ok"] is False, protocol
        names = [name for name, _ in stats["events"]]  # Locust's stats see every request
        assert names.count("digits/2") == 40 and names.count("digits/9") == 1, protocol
        assert [ok for name, ok in stats["events"] if name == "digits/9"] == [False]
        # 40 concurrent requests: the 4 warmed connections plus what the burst needed, at
        # most one per request in flight; keep-alive reused them (not 41 connections)
        assert stats["warmed"] == 4 and 4 <= stats["opened"] <= 40, (protocol, stats)
        assert stats["https_pool"] is False  # https targets stay on FastHttpSession
