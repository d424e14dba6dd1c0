"""scenarios.worker's sender: the recorder gets the driver's intended start and send time as given.

Why: latency is measured from the *intended* start (no coordinated omission). A sender that
recorded its actual send time in that place would pass every test where the generator keeps
up -- during a server stall an open loop still sends on time, so both clocks agree -- and
hide every second in which the generator itself fell behind. So `make_sender`'s `send(arm,
intended, sent)` is driven with distinct intended and sent times, for an answer, a raising
request and one abandoned at the end of the drain (GreenletExit), and the recorder must
receive both times unchanged, in their places.

Importing `scenarios.worker` imports Locust, which monkey-patches the process with gevent, so
`probe()` runs in a child Python process (this test process must stay unpatched) and prints
what the fake recorder received as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# (arm, intended, sent, done): the sender is late by 0.5 s each time, the answer takes 0.1 s
CALLS = [(0, 10.25, 10.75, 10.85), (0, 11.0, 11.5, 11.6), (1, 12.0, 12.5, 12.6)]


class FakeUser:
    """A user without the lean HTTP pool (like the gRPC user): `send` is the open-loop post.
    It answers `ok`, raises for `boom`, and gets GreenletExit for `hang` (what the drain
    raises in a request it abandons)."""

    def __init__(self) -> None:
        self.posted: list[str] = []

    def send(self, request: Any) -> Any:
        from gevent import GreenletExit

        from scenarios.users import Answer

        self.posted.append(request.target)
        if request.target == "boom":
            raise ConnectionResetError("peer reset")
        if request.target == "hang":
            raise GreenletExit
        return Answer(True, checked=1, correct=1)


def probe() -> None:
    """Child process: one sender, three requests; prints what the recorder received."""
    from gevent import GreenletExit

    from scenarios.users import Prepared
    from scenarios.worker import WorkerRuntime

    # make_sender reads only the prepared requests (built from the run spec in a real
    # worker), the recorder and the clock: no Locust environment, no run spec needed
    runtime = object.__new__(WorkerRuntime)
    arm_0, arm_1 = [Prepared("m/1", "ok"), Prepared("m/1", "boom")], [Prepared("m/2", "hang")]
    runtime._prepared = [arm_0, arm_1]
    recorded: list[list[Any]] = []
    runtime.record = lambda *args: recorded.append(list(args))
    runtime.clock = iter(done for *_, done in CALLS).__next__
    user = FakeUser()
    send = runtime.make_sender(user)
    reraised = []
    for arm, intended, sent, _ in CALLS:
        try:
            send(arm, intended, sent)
        except GreenletExit:
            reraised.append(arm)
    print(json.dumps({"recorded": recorded, "posted": user.posted, "reraised": reraised}))


def test_the_recorder_gets_intended_and_sent_unchanged_success_or_not() -> None:
    code = "from tests.scenarios.test_worker_sender import probe; probe()"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["posted"] == ["ok", "boom", "hang"]  # round-robin within arm 0, then arm 1
    assert seen["recorded"] == [
        ["m/1", True, 10.25, 10.75, 10.85, 1, 1],  # answered: outcome and label check too
        ["m/1", False, 11.0, 11.5, 11.6],  # raised: a failure, same two clocks
        ["m/2", False, 12.0, 12.5, 12.6],  # abandoned in the drain: recorded, then re-raised
    ]
    assert seen["reraised"] == [1], "GreenletExit must end the sender greenlet"
    assert "peer reset" in proc.stderr  # the failure is logged, not swallowed
