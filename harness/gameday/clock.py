"""Fault start and end on the load's clock: a chaoslib event handler that writes events.jsonl.

Why an event handler: chaoslib tells its handlers when the method, each activity and the
rollbacks start and end, in the main thread where they happen, so the moments are taken at
the source rather than guessed from the journal afterwards. Each event carries `ts` (seconds
on the windows' clock: second 0 = the load's epoch, the same seconds windows.parquet uses)
and `epoch_s` (wall clock). The fault starts with the method's first action and ends at the
start of the first restoring action of the method (`plan.RESTORING_ACTIONS`: a restart, a
toxic removed, faults cleared), else when the rollbacks start.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaoslib.run import RunEventHandler

from harness.gameday.plan import RESTORING_ACTIONS

__all__ = ["FaultClock"]


class FaultClock(RunEventHandler):
    def __init__(self, events_path: Path, epoch: float, clock: Callable[[], float] = time.time):
        self.events_path = events_path
        self.epoch = epoch
        self.clock = clock
        self.times: dict[str, float] = {}  # event type -> ts of its first occurrence
        self.in_method = False
        self.done = False
        self.method_started = threading.Event()
        self._lock = threading.Lock()

    def write(self, kind: str, **fields: Any) -> float:
        now = self.clock()
        ts = now - self.epoch
        line = json.dumps({"ts": ts, "type": kind, "epoch_s": now, **fields}, default=str)
        with self._lock, open(self.events_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
        self.times.setdefault(kind, ts)
        return ts

    # -- chaoslib hooks ------------------------------------------------------------------
    def start_method(self, experiment: Any) -> None:
        self.in_method = True
        self.method_started.set()
        self.write("method_start")

    def method_completed(self, experiment: Any, state: Any) -> None:
        self.in_method = False
        self.write("method_end")

    def start_rollbacks(self, experiment: Any) -> None:
        self.in_method = False
        if "fault_start" in self.times and "fault_end" not in self.times:
            self.write("fault_end", by="rollbacks")
        self.write("rollback_start")

    def rollbacks_completed(self, experiment: Any, journal: Any) -> None:
        self.write("rollback_end")

    def start_activity(self, activity: Any) -> None:
        if not self.in_method:
            return
        name = str(activity.get("name", "?"))
        func = (activity.get("provider") or {}).get("func")
        is_action = activity.get("type") == "action"
        if is_action and "fault_start" not in self.times:
            self.write("fault_start", activity=name)
        elif is_action and func in RESTORING_ACTIONS and "fault_end" not in self.times:
            self.write("fault_end", activity=name, by="method")
        self.write("activity_start", activity=name)

    def activity_completed(self, activity: Any, run: Any) -> None:
        if self.in_method:
            status = (run or {}).get("status") if isinstance(run, dict) else None
            self.write("activity_end", activity=str(activity.get("name", "?")), status=status)
