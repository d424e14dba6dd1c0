"""Start a Locust worker: beside its master (port from a file) or on another machine (`--remote`).

    python -m scenarios.launch STREAM_DIR/master.json DEADLINE_EPOCH_S -- <locust worker args>
    python -m scenarios.launch --remote HOST:PORT WORKDIR DEADLINE_EPOCH_S -- <locust args>

Local (started by `harness run`): importing Locust (gevent, zmq, geventhttpclient) takes
seconds and the master binds an ephemeral port that workers can only learn once it is up, so
each worker imports Locust first, then waits for the master's `master.json` and hands over to
Locust's own `main()` with `--master-port` filled in.

Remote (`harness worker --master HOST:PORT`): no shared file system. Before it becomes a Locust
worker, the process asks the master for the run over Locust's own messaging (a short-lived
client, as Locust's `-f -` does to fetch a locustfile): the resolved run spec and the files it
names, the master's harness version and clock. Several request/response exchanges measure the
clock skew (the one with the shortest round trip bounds it within rtt/2). Another version or a
skew above the spec's `max_clock_skew_ms` refuses to join (exit 3, both values named); either
way the verdict is sent to the master, which keeps it for the summary and for saying who is
missing. The spec is written under WORKDIR (its `run_dir` pointed there) for the locustfile.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
CLOCK_EXCHANGES = 8
EXIT_REFUSED = 3


def _port(path: Path, deadline: float) -> int:
    while time.time() < deadline:
        try:
            port = json.loads(path.read_text(encoding="utf-8")).get("port")
        except (OSError, ValueError):
            port = None
        if port:
            return int(port)
        time.sleep(0.02)
    raise SystemExit(f"no Locust master port in {path} before the deadline")


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SystemExit(f"--master {address!r}: expected HOST:PORT, e.g. 10.0.0.5:5557")
    return host.strip("[]"), int(port)


class _Joiner:
    """The short-lived Locust RPC client that asks the master for the run."""

    def __init__(self, host: str, port: int) -> None:
        from locust.rpc import rpc

        self.master = f"{host}:{port}"
        self.node_id = f"{socket.gethostname()}_harness_join_{uuid.uuid4().hex}"
        self.client = rpc.Client(host, port, self.node_id)
        self.seq = 0

    def send(self, msg_type: str, data: dict[str, Any]) -> None:
        from locust.rpc import Message

        self.client.send(Message(msg_type, data, self.node_id))

    def exchange(self, want_spec: bool, timeout_s: float) -> tuple[float, dict[str, Any], float]:
        """(worker clock at send, the master's answer, worker clock at receipt); raises
        gevent.Timeout when no answer to this request came within `timeout_s`."""
        import gevent

        from harness import __version__
        from harness.loadgen.spec import JOIN_HELLO

        self.seq += 1
        hello = {"version": __version__, "host": socket.gethostname(), "seq": self.seq}
        sent = time.time()
        self.send(JOIN_HELLO, {**hello, "want_spec": want_spec})
        with gevent.Timeout(timeout_s):
            while True:
                msg = self.client.recv()
                received = time.time()
                if msg.type == JOIN_HELLO and msg.data.get("seq") == self.seq:
                    return sent, msg.data, received

    def close(self) -> None:
        self.client.close(linger=2000)  # the verdict reaches the master before we go


def _first_answer(joiner: _Joiner, deadline: float) -> dict[str, Any]:
    import gevent

    while time.time() < deadline:
        try:
            return joiner.exchange(want_spec=True, timeout_s=2.0)[1]
        except gevent.Timeout:
            print(f"waiting for the Locust master at {joiner.master} ...", file=sys.stderr)
    raise SystemExit(
        f"no answer from a harness master at {joiner.master} before the deadline: is "
        "`harness run SCENARIO --workers-external N` running there, and the port reachable?"
    )


def _local_spec(answer: dict[str, Any], workdir: Path) -> Path:
    """Write the master's spec (and the files it names) under `workdir`; return its path."""
    from harness.files import atomic_write_bytes
    from harness.loadgen.spec import RunSpec

    spec = RunSpec.from_json(answer["spec"])
    (workdir / "stream").mkdir(parents=True, exist_ok=True)
    moved = {"run_dir": str(workdir)}
    for key, blob in answer.get("files", {}).items():
        path = workdir / Path(str(getattr(spec, key))).name
        atomic_write_bytes(path, base64.b64decode(blob))
        moved[key] = str(path)
    return dataclasses.replace(spec, **moved).write(workdir / "run_spec.json")


def join(address: str, workdir: Path, deadline: float) -> Path:
    """Ask the master at `address` for the run; refuse (SystemExit 3) on another version or
    a clock too far off; return the local spec path."""
    import gevent

    from harness import __version__
    from harness.loadgen.spec import (
        JOIN_REPORT,
        ClockSample,
        JoinReport,
        RunSpec,
        best_sample,
        join_refusal,
    )

    host, port = split_address(address)
    joiner = _Joiner(host, port)
    try:
        answer = _first_answer(joiner, deadline)
        samples = []
        for _ in range(CLOCK_EXCHANGES):
            try:
                sent, reply, received = joiner.exchange(want_spec=False, timeout_s=2.0)
            except gevent.Timeout:
                continue
            samples.append(ClockSample(sent, float(reply["master_time"]), received))
        if not samples:
            raise SystemExit(f"the master at {address} stopped answering while joining")
        best = best_sample(samples)
        limit = RunSpec.from_json(answer["spec"]).max_clock_skew_ms
        skew_ms, master_version = best.skew * 1000.0, str(answer["version"])
        refused = join_refusal(__version__, master_version, skew_ms, limit, address)
        report = JoinReport(
            socket.gethostname(), __version__, master_version, round(skew_ms, 3),
            round(best.rtt * 1000.0, 3), limit, refused,
        )  # fmt: skip
        joiner.send(JOIN_REPORT, report.to_dict())
    finally:
        joiner.close()
    if refused:
        print(f"refusing to join: {refused}", file=sys.stderr)
        raise SystemExit(EXIT_REFUSED)
    print(
        f"joined the run at {address}: clock skew {skew_ms:+.3f} ms "
        f"(round trip {report.rtt_ms:.3f} ms), harness {__version__}",
        file=sys.stderr,
    )
    return _local_spec(answer, workdir)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--remote"]:
        _, address, workdir, deadline, separator, *locust_args = argv
        if separator != "--":
            raise SystemExit("usage: python -m scenarios.launch --remote HOST:PORT DIR DEADLINE --")
        import locust.main  # first: gevent must patch the process before anything else

        from harness.loadgen.spec import ENV_VAR

        os.environ[ENV_VAR] = str(join(address, Path(workdir), float(deadline)))
        host, port = split_address(address)
        sys.argv = ["locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", host]
        sys.argv += ["--master-port", str(port), *locust_args]
        locust.main.main()
        return
    port_file, deadline, separator, *locust_args = argv
    if separator != "--":
        raise SystemExit("usage: python -m scenarios.launch MASTER_JSON DEADLINE -- ARGS...")
    import locust.main  # the slow part, overlapped with the master's start-up

    port = _port(Path(port_file), float(deadline))
    sys.argv = ["locust", *locust_args, "--master-port", str(port)]
    locust.main.main()


if __name__ == "__main__":
    main(sys.argv[1:])
