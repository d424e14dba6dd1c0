"""Run one game day: stack, load, steady state, capacity check, experiment, recovery, report.

    outcome = run_gameday(scenario, Path("chaos/experiments/node-kill.json"), Path("results"),
                          GamedaySettings(k=3))
    outcome.exit_code, outcome.run_dir / "gameday.json"

Order, and who does what:
  1. the plan is checked (`plan.make_plan`; ConfigError -> exit 2, nothing started);
  2. the local stack starts with fault proxies and an admin token, its state in stack.json
     (or a running stack's state file is used);
  3. the load runs in a child process (`load_process`: the load engine, unchanged);
  4. the game day waits until k consecutive closed windows meet the SLO, then predicts from
     those windows whether the replicas left after the fault carry the load (refused, exit 2,
     when not and the gate is on: no fault is injected into a stack known to be too small);
  5. chaoslib runs the experiment HERE, in the main thread (it installs signal handlers),
     rollbacks forced to "always"; `clock.FaultClock` writes the fault's moments into
     events.jsonl on the windows' clock; a watchdog aborts a method that outlives
     --max-fault-s (chaoslib's own SIGUSR1 exit: the rollbacks still run);
  6. the load runs to its planned end (recovery is measured on it), the stack is compared
     with its state before, forcibly rolled back if anything is left, then stopped;
  7. journal.json and gameday.json are written into the load's run directory, the stack's
     logs are copied into `<run>/stack/`, and run.json, summary.json and the history row
     are marked kind "gameday" (`record`: one run directory, the load's, holds it all).
Ctrl-C / SIGTERM at any point: the experiment's rollbacks (chaoslib) and then a forced
rollback run, the load is stopped with SIGINT (its run dir keeps every window, status
"incomplete"), the stack is stopped, gameday.json says "interrupted", exit 130.
Exit codes: 0 pass, 1 fail, 2 configuration or refused, 3 infrastructure, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.impact import (
    CapacityPrediction,
    Slo,
    activity_failures,
    compare_states,
    judge,
    judge_hypothesis,
    phase_stats,
    predict_survivors,
)
from harness.config import Scenario
from harness.errors import HarnessError, InfrastructureError
from harness.files import atomic_write_json
from harness.gameday import record, report
from harness.gameday.live import LiveLoad, SteadyResult
from harness.gameday.load_process import LoadProcess
from harness.gameday.plan import GamedayPlan, GamedaySettings, make_plan
from harness.gameday.signals import deferred_interrupts, interrupts
from harness.gameday.stack import force_rollback, load_scenario_for, snapshot, started_stack
from harness.results import load_run, new_run_id, read_events
from harness.stack.local import read_state

__all__ = ["GamedayOutcome", "run_gameday"]

log = logging.getLogger(__name__)

EXIT_PASS, EXIT_FAIL, EXIT_CONFIG, EXIT_INFRA, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
LOAD_EPOCH_TIMEOUT_S = 90.0
LOAD_END_GRACE_S = 60.0


@dataclass(frozen=True, slots=True)
class GamedayOutcome:
    run_dir: Path
    exit_code: int
    gameday: dict[str, Any]


@dataclass(slots=True)
class _Record:
    """What happened, gathered as the game day goes (then turned into gameday.json)."""

    status: str = "complete"  # complete | interrupted | refused | failed
    steady: SteadyResult | None = None
    prediction: CapacityPrediction | None = None
    journal: dict[str, Any] | None = None
    overran_s: float | None = None
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    forced_rollback: str | None = None  # None: not needed; "ok" or the error
    errors: list[str] = field(default_factory=list)
    load_exit: int | None = None
    pids: set[int] = field(default_factory=set)  # every process the game day started
    stack_logs: list[str] | None = None  # files copied into <run>/stack/ (None: not ours)
    stack_state: str | None = None  # stack.json as it was before the stack stopped


def run_gameday(
    scenario: Scenario,
    experiment: Path,
    out_dir: Path,
    settings: GamedaySettings,
    run_id: str | None = None,
) -> GamedayOutcome:
    """Run the game day (see the module doc); never raises for a failed or interrupted one."""
    plan = make_plan(scenario, Path(experiment), settings)
    run_id = run_id or new_run_id(scenario.name)
    with tempfile.TemporaryDirectory(prefix="harness-gameday-") as tmp:
        day = _Gameday(plan, Path(out_dir), run_id, Path(tmp))
        with interrupts():
            day.run()
        return day.finish()


def dry_run(scenario: Scenario, experiment: Path, settings: GamedaySettings) -> GamedayPlan:
    """The plan only: checked, nothing started, nothing written."""
    return make_plan(scenario, Path(experiment), settings)


class _Gameday:
    def __init__(self, plan: GamedayPlan, out_dir: Path, run_id: str, workdir: Path) -> None:
        self.plan = plan
        self.out_dir = out_dir
        self.run_id = run_id
        self.workdir = workdir
        self.run_dir = out_dir / run_id
        self.state_file = workdir / "stack.json"
        self.slo = Slo(plan.slo_p99_ms, plan.slo_error_rate)
        self.rec = _Record()
        self.load: LoadProcess | None = None
        self.exit_hint = EXIT_INFRA  # for a failed game day: the error's own exit code

    # -- the whole day ---------------------------------------------------------------------
    def run(self) -> None:
        try:
            with self._stack():
                self._note_pids()
                self.rec.before = snapshot(self.state_file)
                try:
                    self._with_load()
                except KeyboardInterrupt:
                    self.rec.status = "interrupted"
                    log.warning("interrupted: rolling back, stopping the load, keeping the data")
                except HarnessError:
                    raise
                except Exception as exc:  # a crash mid-experiment: roll back, keep the data
                    log.exception("the game day crashed")
                    self.rec.status = "failed"
                    self.rec.errors.append(f"crashed: {type(exc).__name__}: {exc}")
                finally:
                    with deferred_interrupts():
                        self._wind_down()
        except KeyboardInterrupt:
            self.rec.status = "interrupted"
        except HarnessError as exc:
            self.rec.status = "failed"
            self.rec.errors.append(str(exc))
            self.exit_hint = exc.exit_code

    @contextlib.contextmanager
    def _stack(self) -> Iterator[None]:
        scenario = self.plan.scenario
        if scenario.stack is not None and scenario.stack.local:
            try:
                with started_stack(scenario, self.workdir / "stack", self.state_file):
                    yield
            finally:
                self._keep_stack_files()
            return
        assert self.plan.settings.stack_state is not None
        self.state_file = Path(self.plan.settings.stack_state)
        yield

    def _with_load(self) -> None:
        scenario = load_scenario_for(self.plan.scenario, read_state(self.state_file))
        self.load = LoadProcess(scenario, self.out_dir, self.run_id, self.workdir).start()
        self.rec.pids.add(self.load.pid)
        live = LiveLoad(self.run_dir)
        if live.wait_epoch(LOAD_EPOCH_TIMEOUT_S, self.load.alive) is None:
            raise InfrastructureError(f"the load never started (see {self.load.log_path})")
        k = self.plan.settings.k
        self.rec.steady = live.wait_steady(
            k, self.slo, self.plan.steady_timeout_s, self.load.alive, self.plan.warmup_s
        )
        log.info("steady: %s", self.rec.steady)
        self._collect_baseline(live)
        if self._refused_by_capacity(live):
            return
        self._experiment(live.epoch or 0.0)
        if "fault_start" not in self._fault_events():
            return  # nothing was injected (the hypothesis failed before): no recovery to watch
        self._wait_load_end()

    def _fault_events(self) -> set[str]:
        return {str(e.get("type")) for e in read_events(self.run_dir / "events.jsonl")}

    def _collect_baseline(self, live: LiveLoad) -> None:
        """Keep the load steady until the baseline holds `baseline_s` seconds (a k-window
        baseline's p99 is little more than its maximum)."""
        steady = self.rec.steady
        if steady is None or steady.from_second is None or self.load is None:
            return
        until = steady.from_second + max(self.plan.settings.k, self.plan.settings.baseline_s)
        while self.load.alive() and (live.now_s() or 0.0) < until:
            time.sleep(0.1)

    def _refused_by_capacity(self, live: LiveLoad) -> bool:
        steady = self.rec.steady
        start = steady.from_second if steady and steady.from_second is not None else 0
        baseline = [w for w in live.seconds() if w.second >= start]
        self.rec.prediction = predict_survivors(
            phase_stats(baseline), self.plan.scenario.stack.replicas if self.plan.scenario.stack
            else 1, self.slo, lost=self.plan.replicas_lost,
            concurrency_per_replica=self.plan.settings.concurrency_per_replica,
        )  # fmt: skip
        log.info("capacity check: %s", self.rec.prediction.reason)
        steady_now = bool(steady and steady.steady)  # not steady: chaoslib's gate refuses
        if self.plan.settings.capacity_gate and steady_now and self.rec.prediction.carries is False:
            self.rec.status = "refused"
            return True
        return False

    def _experiment(self, epoch: float) -> None:
        from harness.gameday.chaos_run import run_in_main_thread

        self.rec.journal, self.rec.overran_s = run_in_main_thread(
            self.plan, epoch, self.run_dir / "events.jsonl", self._config_vars()
        )
        atomic_write_json(
            self.run_dir / "journal.json", self.rec.journal, default=str, allow_nan=True
        )
        if self.rec.journal.get("status") == "interrupted" and self.rec.overran_s is None:
            raise KeyboardInterrupt("interrupted during the experiment")

    def _config_vars(self) -> dict[str, Any]:
        return {
            **self.plan.configuration,
            "stack_state": str(self.state_file),
            "run_dir": str(self.run_dir),
        }

    def _wait_load_end(self) -> None:
        assert self.load is not None
        epoch = LiveLoad(self.run_dir).epoch or time.time()
        remaining = epoch + self.plan.load_s - time.time()
        self.rec.load_exit = self.load.wait(remaining + LOAD_END_GRACE_S)

    def _wind_down(self) -> None:
        """Whatever happened: rollback check (forced rollback if needed), load stopped."""
        after = self._safe_snapshot()
        if self.rec.status in ("interrupted", "failed") or after != self.rec.before:
            error = force_rollback(self.state_file)
            self.rec.forced_rollback = error or "ok"
            after = self._safe_snapshot()
        self.rec.after = after
        self._note_pids()
        with contextlib.suppress(OSError):  # the stack removes it when it stops
            self.rec.stack_state = self.state_file.read_text(encoding="utf-8")
        if self.load is not None:
            code = self.load.stop()
            self.rec.load_exit = code if self.rec.load_exit is None else self.rec.load_exit

    def _note_pids(self) -> None:
        scenario_stack = self.plan.scenario.stack
        if scenario_stack is None or not scenario_stack.local:
            return  # a running stack the user started is not ours to list
        with contextlib.suppress(HarnessError):
            state = read_state(self.state_file)
            self.rec.pids.update(r.pid for r in state.replicas)
            self.rec.pids.update(p for p in (state.nginx_pid,) if p)
            self.rec.pids.update([state.fault_proxy.pid] if state.fault_proxy else [])

    def _keep_stack_files(self) -> None:
        """The stopped stack's logs and state, and the load's log, into the run directory
        (the temporary directory that holds them goes when the game day ends)."""
        if not self.run_dir.is_dir():
            return  # the load never started: there is no run to attach them to
        try:
            self.rec.stack_logs = record.copy_stack_logs(self.workdir / "stack", self.run_dir)
            if self.rec.stack_state is not None:
                record.keep_stack_state(self.rec.stack_state, self.run_dir)
                self.rec.stack_logs.append(f"{record.STACK_DIR}/{record.STACK_STATE}")
            if self.load is not None and self.load.log_path.exists():
                shutil.copyfile(self.load.log_path, self.run_dir / "load.log")
        except OSError as exc:  # keep stopping; say what is missing
            log.exception("copying the stack's logs failed")
            self.rec.errors.append(f"stack logs not kept: {exc}")

    def _safe_snapshot(self) -> dict[str, Any]:
        try:
            return snapshot(self.state_file)
        except Exception as exc:  # the stack is unreachable: that is a difference too
            return {"error": f"{type(exc).__name__}: {exc}"}

    # -- the record ------------------------------------------------------------------------
    def finish(self) -> GamedayOutcome:
        if not (self.run_dir / "run.json").exists():  # nothing measured: no run directory
            code = EXIT_INTERRUPTED if self.rec.status == "interrupted" else self.exit_hint
            return GamedayOutcome(self.run_dir, code, {"errors": self.rec.errors})
        doc = self._document()
        self._mark_run(doc)
        atomic_write_json(self.run_dir / "gameday.json", doc, indent=2, allow_nan=False)
        return GamedayOutcome(self.run_dir, doc["verdict"]["exit_code"], doc)

    def _mark_run(self, doc: dict[str, Any]) -> None:
        """run.json kind "gameday" (+ what ran and the verdict); summary and history row."""
        section = {
            "experiment": doc["experiment"]["path"],
            "title": doc["experiment"]["title"],
            "status": doc["status"],
            "verdict": doc["verdict"]["result"],
            "exit_code": doc["verdict"]["exit_code"],
        }
        try:
            record.mark_gameday(self.run_dir, section)
        except (HarnessError, OSError, ValueError) as exc:
            log.exception("marking the run as a game day failed")
            doc["record_error"] = f"run.json / history not marked: {exc}"

    def _document(self) -> dict[str, Any]:
        run = load_run(self.run_dir)
        moments = report.timeline_of(run)
        steady = self.rec.steady
        baseline_from = steady.from_second if steady and steady.from_second is not None else 0
        timeline = report.fault_timeline(moments, baseline_from)
        settings = self.plan.settings
        impact = None if timeline is None else report.impact_of(run, timeline, self.slo,
                                                                settings.tolerance)  # fmt: skip
        hypothesis = judge_hypothesis(self.rec.journal or {})
        rollback = compare_states(self.rec.before, self.rec.after)
        verdict = judge(
            hypothesis, impact, rollback,
            activity_failures(self.rec.journal or {}), self.rec.overran_s,
        )  # fmt: skip
        reasons = [*self.rec.errors, *verdict.reasons]
        code = self._exit_code(verdict.passed)
        if self.rec.status == "interrupted":
            reasons.insert(0, "interrupted (Ctrl-C / SIGTERM): rolled back and stopped")
        if self.rec.status == "refused":
            reasons.insert(0, f"refused by the capacity check: {self.rec.prediction.reason}")
        return {
            "schema_version": report.SCHEMA_VERSION,
            "run_id": self.run_id,
            "status": self.rec.status,
            "experiment": {
                "title": self.plan.experiment.get("title"),
                "path": str(self.plan.experiment_path),
                "configuration": self.plan.configuration,
            },
            "slo": {"p99_ms": self.slo.p99_ms, "error_rate": self.slo.error_rate},
            "settings": {
                "k": settings.k,
                "baseline_s": settings.baseline_s,
                "max_fault_s": settings.max_fault_s,
                "capacity_gate": settings.capacity_gate,
                "recovery_tolerance": report.tolerance_dict(settings.tolerance),
            },
            "timeline": {
                **moments,
                "steady": None if steady is None else asdict(steady),
                "load_s": self.plan.load_s,
                "load_status": run.status,
                "load_exit": self.rec.load_exit,
            },
            "processes": sorted(self.rec.pids),
            "stack_logs": self.rec.stack_logs,
            "hypothesis": hypothesis.to_dict(),
            "impact": report.impact_dict(impact),
            "capacity_check": report.capacity_section(
                self.rec.prediction, impact, self.slo, self.plan.settings.capacity_gate
            ),
            "rollback": {**rollback.to_dict(), "forced": self.rec.forced_rollback},
            "verdict": {
                "result": "pass" if code == EXIT_PASS else "fail",
                "reasons": reasons if code != EXIT_PASS else [],
                "exit_code": code,
            },
        }

    def _exit_code(self, passed: bool) -> int:
        status = self.rec.status
        if status == "interrupted":
            return EXIT_INTERRUPTED
        if status == "refused":
            return EXIT_CONFIG
        if status == "failed":
            return self.exit_hint
        return EXIT_PASS if passed and not self.rec.errors else EXIT_FAIL
