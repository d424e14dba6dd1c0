"""Python API of the load engine: run a scenario the way `harness run` does.

    from harness.config import load_scenario
    from harness.load.api import run_scenario

    outcome = run_scenario(load_scenario("scenarios/quickstart.yaml"), Path("results"))
    outcome.exit_code, outcome.summary["latency_ms"]["p99"], outcome.run_dir

Notebooks, the sweep and chaos drivers call this; the CLI is a thin layer over it. Importing
this module does not import Locust (the load runs in child processes).
"""

from __future__ import annotations

from pathlib import Path

from harness.config import Scenario
from harness.load.remote import ExternalWorkers
from harness.load.runner import RunOutcome, execute

__all__ = ["ExternalWorkers", "RunOutcome", "run_scenario"]


def run_scenario(
    scenario: Scenario,
    out_dir: Path,
    run_id: str | None = None,
    show_progress: bool = True,
    record_raw: bool = False,
    ready_timeout_s: float = 60.0,
    external: ExternalWorkers | None = None,
) -> RunOutcome:
    """Run `scenario` and write `<out_dir>/<run-id>/`; returns run_dir, summary, exit code.

    Exit codes: 0 SLO met, 1 SLO failed, 3 infrastructure (target never ready, worker lost,
    Locust failed), 130 interrupted (status "incomplete", what was measured is kept).
    Raises ConfigError (exit 2) only for problems found before anything started.
    `record_raw` (for tests) also logs every request to `stream/raw-<worker>.jsonl`;
    `ready_timeout_s` bounds the wait for the target (and its models) to become ready;
    `external` adds workers from other machines (`harness worker --master HOST:PORT`).
    """
    return execute(
        scenario,
        Path(out_dir),
        run_id=run_id,
        show_progress=show_progress,
        record_raw=record_raw,
        ready_timeout_s=ready_timeout_s,
        external=external,
    )
