"""The harness's LoadTestShape: Locust's master-side control loop for a scenario's load.

Open loop: one driver user per worker for the whole run (the arrival rate lives in each
worker's schedule, not in a user count); the run ends when every worker has sent its final
windows. Closed loop: the user count and spawn rate follow the scenario's stages
(`harness.loadgen.arrivals.closed_tick`, a pure function of the time since second 0); at the end
the master asks workers to finish and stops Locust once their final windows are in. Stage
changes are written as "stage" events.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

from harness.config import OpenLoad
from harness.loadgen.arrivals import closed_tick, run_length_s, stages_entered


class HarnessShape(LoadTestShape):
    """Reads `runtime` (a `scenarios.master.MasterRuntime`), set on Locust's init event."""

    runtime: Any = None
    _last: tuple[int, float] | None = None
    _stage: int | None = None

    def tick(self) -> tuple[int, float] | None:
        runtime = self.runtime
        if runtime is None or runtime.done.is_set():
            return None
        elapsed = runtime.elapsed()
        scenario = runtime.scenario
        if elapsed is not None:
            self._note_stage(runtime, elapsed)
        if isinstance(scenario.load, OpenLoad):
            length = run_length_s(scenario, runtime.spec.trace_path)
            if elapsed is not None and elapsed > length + runtime.spec.drain_s + 5.0:
                runtime.finish("schedule overran its planned length")
            workers = runtime.n_workers
            return workers, 100.0 * workers  # all drivers at once
        tick = closed_tick(scenario, elapsed if elapsed is not None else 0.0)
        if tick is None:
            runtime.finish("planned duration reached")
            return self._last or (0, 1.0)
        self._last = tick
        return tick

    def _note_stage(self, runtime: Any, elapsed: float) -> None:
        """One "stage" event per stage entered, stamped with the stage's planned start. Ticks
        come about once a second, so a short stage can begin and end between two of them;
        it is still announced (before the one running now)."""
        for index, start_s in stages_entered(runtime.scenario, self._stage, elapsed):
            runtime.event("stage", index=index, ts=start_s)
            self._stage = index
