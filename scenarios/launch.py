"""Start a Locust worker the moment its master's port is known, importing Locust meanwhile.

    python -m scenarios.launch STREAM_DIR/master.json DEADLINE_EPOCH_S -- <locust worker args>

Why: importing Locust (gevent, zmq, geventhttpclient) takes seconds; the master binds an
ephemeral port that workers can only learn once it is up. Starting the workers only then
would serialise two imports, so each worker process imports Locust first, then waits for the
master's `master.json` and hands over to Locust's own `main()` with `--master-port` filled in.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


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


def main(argv: list[str]) -> None:
    port_file, deadline, separator, *locust_args = argv
    if separator != "--":
        raise SystemExit("usage: python -m scenarios.launch MASTER_JSON DEADLINE -- ARGS...")
    import locust.main  # the slow part, overlapped with the master's start-up

    port = _port(Path(port_file), float(deadline))
    sys.argv = ["locust", *locust_args, "--master-port", str(port)]
    locust.main.main()


if __name__ == "__main__":
    main(sys.argv[1:])
