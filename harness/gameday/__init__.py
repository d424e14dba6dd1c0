"""Chaos game days: a fault injected while load runs, its impact and recovery measured on the
load's own windows, the hypothesis judged, every fault provably gone afterwards.

    plan          the plan, checked before anything starts (`--dry-run` prints it)
    runner        run_gameday: stack -> load -> steady -> capacity check -> experiment ->
                  recovery -> rollback check -> gameday.json (exit 0/1/2/3/130)
    chaos_run     chaoslib's run_experiment in the main thread, rollbacks forced, watchdog
    clock         FaultClock: the fault's moments into events.jsonl, on the windows' clock
    live          the running load's clock and closed windows; waiting for k steady windows
    load_process  the load engine in a child process (stopped by PID with SIGINT)
    stack         the stack with fault proxies; snapshots before/after; forced rollback
    report        gameday.json from the run directory (through harness.analysis.impact)
    record        run.json / summary / history marked kind "gameday"; stack logs kept
    signals       SIGTERM as Ctrl-C; a second interrupt waits for the cleanup

The analysis itself is pure and lives in `harness.analysis.impact`.
"""

from harness.gameday.plan import GamedayPlan, GamedaySettings, make_plan
from harness.gameday.runner import GamedayOutcome, dry_run, run_gameday

__all__ = [
    "GamedayOutcome",
    "GamedayPlan",
    "GamedaySettings",
    "dry_run",
    "make_plan",
    "run_gameday",
]
