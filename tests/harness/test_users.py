"""Protocol users (scenarios.users) against the real reference server, in a Locust process.

Locust monkey-patches the process with gevent on import, so the users run in a child Python
process (this test process must stay unpatched); it prints what it saw as JSON. Checked: each
protocol's answers are correct for the digits test set, concurrent requests from one user work
(the open-loop driver shares one user), every request fires Locust's `request` event, and a
missing model version is a failure (not an exception, not a success).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.stack.local import LocalStack

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
import gevent
from locust.env import Environment
from scenarios.users import KServeGrpcUser, KServeHttpUser, TFServingUser
from harness.load.payloads import dataset_samples

http_url, grpc_url, npz = sys.argv[1:4]
samples = dataset_samples(npz, "input")[:40]
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
    random_answer = user.infer_random() if label != "tfserving" else None
    out[label] = {
        "ok": sum(a.ok for a in answers), "checked": sum(a.checked for a in answers),
        "correct": sum(a.correct for a in answers), "missing_ok": missing.ok,
        "random_ok": None if random_answer is None else random_answer.ok,
        "events": seen,
    }
    if label != "grpc":  # the open-loop driver's lean HTTP path, same checks
        del events[:]
        warmed = user.warm_open_loop(4)
        lean = [g.get() for g in [gevent.spawn(user.send_open_loop, r) for r in good]]
        lean_missing = user.send_open_loop(user.prepare("digits/9", "digits", "9", samples[0]))
        secure = type("S", (base,), {"host": "https://127.0.0.1:1", "model": "m"})(env)
        out[label + "-open-loop"] = {
            "ok": sum(a.ok for a in lean), "checked": sum(a.checked for a in lean),
            "correct": sum(a.correct for a in lean), "missing_ok": lean_missing.ok,
            "events": list(events), "warmed": warmed,
            "opened": user._open_loop_pool().opened,
            "https_pool": secure._open_loop_pool() is not None,
        }
print(json.dumps(out))
"""


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
    for protocol in ("http", "grpc", "tfserving"):
        stats = seen[protocol]
        assert stats["ok"] == stats["checked"] == 40, (protocol, stats)
        assert stats["correct"] >= 36, (protocol, stats)  # v2 is ~98 % accurate
        assert stats["missing_ok"] is False, protocol
        names = [name for name, _ in stats["events"]]
        assert names.count("digits/2") == 40 and names.count("digits/9") == 1, protocol
        assert [ok for name, ok in stats["events"] if name == "digits/9"] == [False]
    assert seen["http"]["random_ok"] is True and seen["grpc"]["random_ok"] is True
    for protocol in ("http-open-loop", "tfserving-open-loop"):
        stats = seen[protocol]
        assert stats["ok"] == stats["checked"] == 40, (protocol, stats)
        assert stats["correct"] >= 36, (protocol, stats)
        assert stats["missing_ok"] is False, protocol
        names = [name for name, _ in stats["events"]]  # Locust's stats see every request
        assert names.count("digits/2") == 40 and names.count("digits/9") == 1, protocol
        assert [ok for name, ok in stats["events"] if name == "digits/9"] == [False]
        # 40 concurrent requests: the 4 warmed connections plus what the burst needed, at
        # most one per request in flight; keep-alive reused them (not 41 connections)
        assert stats["warmed"] == 4 and 4 <= stats["opened"] <= 40, (protocol, stats)
        assert stats["https_pool"] is False  # https targets stay on FastHttpSession
