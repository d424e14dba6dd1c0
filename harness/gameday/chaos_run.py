"""The experiment, run in-process by chaoslib, with the fault clock and a watchdog.

Why these settings: chaoslib's default rollback strategy skips the rollbacks of an
interrupted run; a game day must never leave a fault behind, so rollbacks are forced to
"always" whatever the user's ~/.chaostoolkit settings say. The hypothesis strategy and
frequency are the experiment's own (`runtime.hypothesis`). The watchdog ends a method that
outlives --max-fault-s with chaoslib's own graceful exit (SIGUSR1 -> SystemExit(20), which
chaoslib turns into status "interrupted" and then plays the rollbacks).

SIGTERM: chaoslib 1.44 installs its own handler, which raises `InterruptExecution` wherever
the main thread is; inside a Python activity the provider catches it as an ordinary failure
and the experiment goes on (seen here: SIGTERM during `kill_replica` -> "activity failed",
the method carried on, the game day ended "complete", exit 1 instead of 130). So once
chaoslib's handlers are in place, SIGTERM is made to raise KeyboardInterrupt, as Ctrl-C does,
which no activity swallows; chaoslib puts the previous handler back when the run ends.
"""

from __future__ import annotations

import copy
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from chaoslib.exit import exit_gracefully
from chaoslib.experiment import run_experiment
from chaoslib.run import RunEventHandler
from chaoslib.types import Schedule, Strategy

from harness.gameday.clock import FaultClock
from harness.gameday.plan import GamedayPlan
from harness.gameday.signals import as_interrupt

__all__ = ["run_in_main_thread"]

log = logging.getLogger(__name__)


def run_in_main_thread(
    plan: GamedayPlan, epoch: float, events_path: Path, config_vars: dict[str, Any]
) -> tuple[dict[str, Any], float | None]:
    """(the journal, the max fault duration when the watchdog had to end the method)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("chaoslib's run_experiment must run in the main thread")
    clock = FaultClock(events_path, epoch)
    overran = threading.Event()
    watchdog = threading.Thread(
        target=_watch, args=(clock, plan.settings.max_fault_s, overran), daemon=True
    )
    hypothesis = (plan.experiment.get("runtime") or {}).get("hypothesis") or {}
    strategy = Strategy.from_string(hypothesis.get("strategy", "default"))
    schedule = Schedule(continuous_hypothesis_frequency=float(hypothesis.get("freq", 1.0)))
    settings = {"runtime": {"rollbacks": {"strategy": "always"}}}
    watchdog.start()
    try:
        journal = run_experiment(
            copy.deepcopy(plan.experiment),  # chaoslib writes into the experiment it is given
            settings=settings,
            experiment_vars=(dict(config_vars), {}),
            strategy=strategy,
            schedule=schedule,
            event_handlers=[clock, _SigtermAsCtrlC()],
        )
    finally:
        clock.in_method = False
        clock.done = True
    return journal, plan.settings.max_fault_s if overran.is_set() else None


class _SigtermAsCtrlC(RunEventHandler):
    """SIGTERM raises KeyboardInterrupt while chaoslib runs (see the module doc)."""

    def started(self, experiment: Any, journal: Any) -> None:
        signal.signal(signal.SIGTERM, as_interrupt)


def _watch(clock: FaultClock, max_fault_s: float, overran: threading.Event) -> None:
    while not clock.done:
        if clock.method_started.wait(0.2):
            break
    deadline = time.monotonic() + max_fault_s
    while not clock.done:
        if clock.in_method and time.monotonic() > deadline:
            log.error("the method outlived --max-fault-s %gs: aborting it", max_fault_s)
            overran.set()
            exit_gracefully()
            return
        time.sleep(0.1)
