"""The game day's load, run by the load engine in a child process.

Why a child process and not a thread: chaoslib's `run_experiment` must run in the main
thread (it installs signal handlers), and so does the load engine's own Ctrl-C handling
(`harness.load.runner.stop_signals` is a no-op off the main thread, which would leave an
interrupted load marked "complete"). In its own process the load engine keeps all of it:
SIGINT makes it stop the load, keep every window, mark the run "incomplete" and exit 130,
exactly as `harness run` does. The child gets its own session (a terminal's Ctrl-C reaches
the game day only, which stops things in order) and is stopped by PID.

    python -m harness.gameday.load_process SCENARIO.json OUT_DIR RUN_ID
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.config import Scenario

__all__ = ["LoadProcess"]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


class LoadProcess:
    """`harness run`'s engine on `scenario` in a child; run dir `<out_dir>/<run_id>`."""

    def __init__(self, scenario: Scenario, out_dir: Path, run_id: str, workdir: Path) -> None:
        self.run_dir = Path(out_dir) / run_id
        self.log_path = workdir / "load.out"
        spec = workdir / "load-scenario.json"
        spec.write_text(json.dumps(scenario.model_dump(mode="json")), encoding="utf-8")
        self.argv = [sys.executable, "-m", "harness.gameday.load_process", str(spec),
                     str(out_dir), run_id]  # fmt: skip
        self.proc: subprocess.Popen | None = None

    def start(self) -> LoadProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        log.info("load pid %d -> %s", self.proc.pid, self.run_dir)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout_s: float) -> int | None:
        """The child's exit code, or None if it still runs after `timeout_s`."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=max(0.0, timeout_s))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 60.0) -> int | None:
        """SIGINT (keep what was measured, status incomplete), then SIGKILL after `grace_s`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            _signal(self.proc.pid, signal.SIGINT)
            code = self.wait(grace_s)
            if code is None:
                log.error("load pid %d ignored SIGINT for %gs; killing it", self.proc.pid, grace_s)
                _signal(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def main(argv: list[str]) -> int:
    """The child: validate the scenario file and run it; the exit code is the run's."""
    from harness.config import validate_scenario
    from harness.load.api import run_scenario

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spec, out_dir, run_id = argv
    scenario = validate_scenario(json.loads(Path(spec).read_text(encoding="utf-8")), spec)
    started = time.monotonic()
    outcome = run_scenario(scenario, Path(out_dir), run_id=run_id, show_progress=False)
    log.info("load over in %.1fs: %s, exit %d", time.monotonic() - started, outcome.status,
             outcome.exit_code)  # fmt: skip
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
