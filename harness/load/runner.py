"""Run one scenario end to end: target, Locust master + workers, scrape, progress, results.

    outcome = execute(scenario, Path("results"))     # see harness.load.api.run_scenario

The orchestrator never imports Locust (it runs it as child processes, `processes`), so it is
free to use threads, grpc and the results store. Order of a run:
  1. the run directory is created (run.json, status "incomplete") before anything starts;
  2. the local stack is started when the scenario asks for one, and the target is resolved
     (`resolve`: readiness with a deadline, metadata, dataset, seed) -> run_spec.json;
  3. Locust master + workers start; the target's /metrics is scraped every second; progress
     is read from the master's stream; SIGINT/SIGTERM ask the master to stop the load;
  4. whatever happened, everything started is stopped (by PID) and the stream is turned into
     windows.parquet, events.jsonl and server_metrics.parquet, then summary.json and the
     history row (L1's `harness.results`).
Status: "complete" (every worker finished its load), "incomplete" (interrupted), "failed"
(a worker was lost, Locust died, the target never became ready). Exit code: 0 SLO met, 1 SLO
failed, 3 failed, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import Scenario
from harness.errors import HarnessError, InfrastructureError
from harness.load.processes import LocustProcesses, start_locust
from harness.load.progress import ProgressView, RunMonitor
from harness.load.remote import ExternalWorkers, missing_message
from harness.load.resolve import Target, resolve_spec
from harness.load.scrape import MetricsScraper
from harness.loadgen import stream
from harness.loadgen.arrivals import run_length_s
from harness.loadgen.spec import RunSpec
from harness.results import RunWriter, append_run, load_run, summarize
from harness.results.schema import Summary

log = logging.getLogger(__name__)

EXIT_OK, EXIT_SLO, EXIT_INFRA, EXIT_INTERRUPTED = 0, 1, 3, 130


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_dir: Path
    summary: Summary
    exit_code: int
    status: str


@dataclass(slots=True)
class _Verdict:
    status: str = "failed"
    reason: str | None = None
    error: HarnessError | None = None


@contextlib.contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM while inside (main thread only; else never set)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        log.warning("received %s: stopping the load, keeping what was measured", signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


DETACHED_STACK_STATE = Path(".harness/stack/stack.json")
"""Where `harness stack up --detach` records a running stack (relative to the working dir)."""


def metrics_urls_for(url: str, protocol: str, stack_state: Path | None) -> tuple[str, ...]:
    """What to scrape for a target given by URL: every replica when the URL is a running
    detached local stack's (behind its nginx, `{url}/metrics` would see one replica at a
    time), else `{url}/metrics` (nothing for gRPC, which has no HTTP route)."""
    if stack_state is not None and stack_state.is_file():
        from harness.stack.local import read_state

        try:
            state = read_state(stack_state)
        except HarnessError as exc:
            log.warning("ignoring %s (%s)", stack_state, exc)
        else:
            if url.rstrip("/") in (state.url.rstrip("/"), state.grpc_url):
                log.info("target is the local stack of %s: scraping its replicas", stack_state)
                return tuple(state.metrics_urls)
    return () if protocol == "kserve-grpc" else (f"{url.rstrip('/')}/metrics",)


@contextlib.contextmanager
def target_for(
    scenario: Scenario, workdir: Path, stack_state: Path | None = DETACHED_STACK_STATE
) -> Iterator[Target]:
    """The local reference stack when asked for (stopped on exit), else the scenario's URL
    (scraped through `metrics_urls_for`, which recognises a detached local stack)."""
    stack_cfg = scenario.stack
    if stack_cfg is None or not stack_cfg.local:
        url = scenario.target.url
        yield Target(url, metrics_urls_for(url, scenario.target.protocol, stack_state))
        return
    from harness.stack.local import LocalStack

    repo = Path(stack_cfg.model_repository) if stack_cfg.model_repository else None
    stack = LocalStack(
        replicas=stack_cfg.replicas,
        model_repository=repo,
        device=stack_cfg.device,
        workdir=workdir / "stack",
        monitor=stack_cfg.monitor,
        workers=stack_cfg.workers,
    )
    with stack:
        if stack.prometheus is not None:  # `stack: {monitor: true}`: tell the user where
            print(f"Prometheus for this run's stack: {stack.prometheus.url}", file=sys.stderr)
        grpc = scenario.target.protocol == "kserve-grpc"
        yield Target(
            stack.grpc_url if grpc else stack.url,
            tuple(stack.metrics_urls),
            Path(stack.model_repository) if stack.model_repository else None,
        )


def _offered(scenario: Scenario) -> Any:
    if scenario.load.mode == "open":
        return None if scenario.load.is_trace() else scenario.rate_at
    return scenario.users_at


def _master_address(procs: LocustProcesses, external: ExternalWorkers | None) -> str:
    host = "127.0.0.1" if external is None else external.bind_host
    return f"{host}:{procs.master_port}"


def _announce(procs: LocustProcesses, external: ExternalWorkers | None) -> None:
    if external is not None and external.count:
        print(
            f"Locust master at {_master_address(procs, external)} waits up to "
            f"{external.wait_s:g} s for {external.count} remote worker(s): on each machine run "
            f"`{external.join_hint(procs.master_port)}`",
            file=sys.stderr,
        )


def _watch(
    procs: LocustProcesses,
    view: ProgressView,
    stop: threading.Event,
    spec: RunSpec,
    planned: float,
    external: ExternalWorkers | None = None,
) -> _Verdict:
    control = spec.stream_dir / stream.CONTROL
    wait_s = 0.0 if external is None else external.wait_s
    started_at = time.monotonic()
    deadline = started_at + wait_s + planned + spec.drain_s + 90.0
    next_waiting_note = started_at + 10.0
    verdict, stop_sent_at = _Verdict(), None

    def request_stop(reason: str) -> None:
        nonlocal stop_sent_at
        if stop_sent_at is None:
            stream.write_json_atomic(control, {"stop": True, "reason": reason})
            stop_sent_at = time.monotonic()

    finished_at = None
    while not procs.master_exited():
        view.update()
        now = time.monotonic()
        if external is not None and now > next_waiting_note:
            next_waiting_note = now + 10.0
            if not (spec.stream_dir / stream.START).exists():
                address = _master_address(procs, external)
                note = missing_message(spec.stream_dir, address, now - started_at)
                if note:
                    print(f"waiting: {note}", file=sys.stderr)
        if finished_at is None and (spec.stream_dir / stream.FINAL).exists():
            finished_at = time.monotonic()
        if finished_at is not None and time.monotonic() - finished_at > 1.0:
            break  # everything is measured; Locust's own shutdown need not be waited for
        dead = procs.dead_workers()
        finished = (spec.stream_dir / stream.FINAL).exists()  # workers quit after the end
        if (dead or view.monitor.lost_workers) and not finished and verdict.error is None:
            who = dead or view.monitor.lost_workers
            message = f"locust worker(s) {who} exited or stopped answering during the run"
            if not (spec.stream_dir / stream.START).exists():  # e.g. the master gave up
                address = _master_address(procs, external)
                missing = missing_message(spec.stream_dir, address, time.monotonic() - started_at)
                message = f"the load never started: {missing}" if missing else message
            verdict.error = InfrastructureError(message)
            request_stop(message)
        if stop.is_set() and verdict.reason is None:
            verdict.reason = "interrupted by a signal"
            request_stop(verdict.reason)
        if time.monotonic() > deadline:
            request_stop("the run overran its planned length")
        grace = 5.0 if verdict.error else spec.drain_s + 15.0
        if stop_sent_at is not None and time.monotonic() - stop_sent_at > grace:
            break
        time.sleep(0.25)
    view.update()
    return _finish_verdict(verdict, spec, procs, external, time.monotonic() - started_at)


def _finish_verdict(
    verdict: _Verdict,
    spec: RunSpec,
    procs: LocustProcesses,
    external: ExternalWorkers | None = None,
    waited_s: float = 0.0,
) -> _Verdict:
    final = stream.read_json(spec.stream_dir / stream.FINAL) or {}
    never_started = not (spec.stream_dir / stream.START).exists()
    if verdict.error is None and verdict.reason is None and never_started:
        missing = missing_message(spec.stream_dir, _master_address(procs, external), waited_s)
        if missing is not None:
            verdict.error = InfrastructureError(f"the load never started: {missing}")
    if verdict.error is not None:
        verdict.status, verdict.reason = "failed", str(verdict.error)
    elif verdict.reason is not None:
        verdict.status = "incomplete"
    elif final.get("complete"):
        verdict.status = "complete"
    else:
        verdict.status = "failed"
        verdict.reason = final.get("reason") or "locust master exited before the load finished"
        verdict.error = InfrastructureError(f"{verdict.reason} (see {procs.logs[0]})")
    return verdict


def _drive(
    scenario: Scenario,
    spec: RunSpec,
    target: Target,
    stop: threading.Event,
    progress: bool,
    external: ExternalWorkers | None = None,
) -> tuple[_Verdict, MetricsScraper]:
    run_dir = Path(spec.run_dir)
    spec.stream_dir.mkdir(parents=True, exist_ok=True)
    spec_path = spec.write(run_dir / "run_spec.json")
    scraper = MetricsScraper(target.metrics_urls).start()
    planned = run_length_s(scenario, spec.trace_path)
    unit = "req/s" if scenario.load.mode == "open" else "users"
    monitor = RunMonitor(spec.stream_dir, planned, _offered(scenario), unit)
    procs = None
    try:
        procs = start_locust(spec_path, run_dir, scenario.workers, external=external)
        _announce(procs, external)
        with ProgressView(monitor, progress) as view:
            return _watch(procs, view, stop, spec, planned, external), scraper
    finally:
        if procs is not None:
            procs.stop(grace_s=10.0)
        scraper.stop()
        log.info("locust and the scraper stopped")


def _store(writer: RunWriter, run_dir: Path, scraper: MetricsScraper | None) -> float | None:
    stream_dir = run_dir / "stream"
    writer.write_windows(stream.merge_stream(stream_dir / stream.WINDOWS).records())
    start = stream.read_json(stream_dir / stream.START)
    epoch = float(start["epoch"]) if start else None
    events, _ = stream.read_lines(stream_dir / stream.EVENTS)
    for event in events:
        kind, ts = event.pop("type", "event"), event.pop("ts", None)
        writer.event(kind, ts=0.0 if ts is None else float(ts), **event)
    if scraper is not None:
        writer.write_server_metrics(scraper.relative_rows(epoch or time.time()))
    return epoch


def execute(
    scenario: Scenario,
    out_dir: Path,
    run_id: str | None = None,
    show_progress: bool = True,
    record_raw: bool = False,
    ready_timeout_s: float = 60.0,
    external: ExternalWorkers | None = None,
) -> RunOutcome:
    """Run `scenario`, write `<out_dir>/<run-id>/`, return the outcome (never raises for a
    failed run: the failure is recorded in the run directory and the exit code). With
    `external`, the master also waits for workers on other machines (`harness worker`)."""
    writer = RunWriter(
        out_dir, scenario.name, scenario_config=scenario.model_dump(mode="json"), run_id=run_id
    )
    run_dir = writer.start()
    verdict, scraper, spec = _Verdict(), None, None
    with stop_signals() as stop:
        try:
            with target_for(scenario, run_dir) as target:
                spec = resolve_spec(scenario, run_dir, target, ready_timeout_s, record_raw)
                if external is not None:
                    spec = dataclasses.replace(
                        spec,
                        external_workers=external.count,
                        max_clock_skew_ms=external.max_clock_skew_ms,
                    )
                log.info("target %s ready; run spec resolved", target.url)
                writer.update(target_url=target.url, seed=spec.seed)
                if stop.is_set():  # Ctrl-C while the stack was starting: start no load
                    raise KeyboardInterrupt
                verdict, scraper = _drive(scenario, spec, target, stop, show_progress, external)
        except HarnessError as exc:
            verdict = _Verdict("failed", str(exc), exc)
        except KeyboardInterrupt:
            verdict = _Verdict("incomplete", "interrupted before the load started")
    if stop.is_set() and verdict.status == "failed" and verdict.error is None:
        verdict.status = "incomplete"
    log.info("load over (%s); storing results", verdict.status)
    _store(writer, run_dir, scraper)
    writer.finish(verdict.status, verdict.reason)
    summary = summarize(load_run(run_dir))
    writer.write_summary(summary)
    append_run(Path(out_dir), summary, run_dir)
    log.info("results stored in %s", run_dir)
    return RunOutcome(run_dir, summary, _exit_code(verdict, summary), verdict.status)


def _exit_code(verdict: _Verdict, summary: Summary) -> int:
    if verdict.status == "failed":
        return verdict.error.exit_code if verdict.error is not None else EXIT_INFRA
    if verdict.status == "incomplete":
        return EXIT_INTERRUPTED
    return EXIT_OK if summary["slo"]["passed"] else EXIT_SLO
