"""The running load, read live: its clock (start.json) and its closed windows.

Why here and not through the load engine: the load runs in another process (see
`load_process`); the Locust master appends each closed window to `<run>/stream/windows.jsonl`
and fixes second 0 in `stream/start.json`, so the game day tails those files. Windows are
merged exactly (`stream.merge_stream` adds late duplicates), then judged per second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.analysis.impact import Slo
from harness.loadgen import stream
from harness.results.windows import SecondStats, decode_windows, per_second

__all__ = ["LiveLoad", "SteadyResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SteadyResult:
    steady: bool
    from_second: int | None  # first of the k steady windows
    waited_s: float


class LiveLoad:
    def __init__(self, run_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.stream_dir = Path(run_dir) / "stream"
        self.clock = clock
        self._epoch: float | None = None

    @property
    def epoch(self) -> float | None:
        """Wall-clock second 0 of the load's windows (None until the master fixed it)."""
        if self._epoch is None:
            start = stream.read_json(self.stream_dir / stream.START)
            self._epoch = float(start["epoch"]) if start else None
        return self._epoch

    def now_s(self) -> float | None:
        """Now, on the windows' clock."""
        return None if self.epoch is None else self.clock() - self.epoch

    def seconds(self) -> list[SecondStats]:
        records = stream.merge_stream(self.stream_dir / stream.WINDOWS).records()
        return per_second(decode_windows(records))

    def wait_epoch(self, timeout_s: float, alive: Callable[[], bool]) -> float | None:
        deadline = time.monotonic() + timeout_s
        while self.epoch is None and time.monotonic() < deadline and alive():
            time.sleep(0.1)
        return self.epoch

    def wait_steady(
        self, k: int, slo: Slo, timeout_s: float, alive: Callable[[], bool], after_s: float = 0
    ) -> SteadyResult:
        """Poll until `k` consecutive closed windows (from second `after_s` on) meet the SLO."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s and alive():
            first = first_steady(self.seconds(), k, slo, after_s)
            if first is not None:
                return SteadyResult(True, first, time.monotonic() - started)
            time.sleep(0.25)
        return SteadyResult(False, None, time.monotonic() - started)


def within_slo(w: SecondStats, slo: Slo) -> bool:
    p99 = w.hist.percentile(slo.quantile * 100)
    return (
        w.requests > 0
        and w.failures <= slo.error_rate * w.requests
        and p99 is not None
        and p99 <= slo.p99_ms * 1000
    )


def first_steady(seconds: list[SecondStats], k: int, slo: Slo, after_s: float) -> int | None:
    """First second of the latest run of `k` consecutive windows within the SLO (None if the
    newest windows are not such a run: the hypothesis must hold *now*)."""
    tail = [w for w in seconds if w.second >= after_s][-k:]
    if len(tail) < k or tail[-1].second - tail[0].second != k - 1:
        return None
    return tail[0].second if all(within_slo(w, slo) for w in tail) else None
