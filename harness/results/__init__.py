"""Results: the run directory format, its summary, validity and SLO verdicts, and history.

    writer = RunWriter(out_dir, scenario.name, scenario_config=scenario.model_dump(mode="json"))
    writer.start(); writer.event("stage", ts=0.0, index=0)
    writer.write_windows(window_store.records())    # repeatedly during the run
    writer.finish("complete")
    summary = finalize_run(writer.run_dir)          # summary.json + history.duckdb row

Measuring and reporting are split: the windows are the measurement, the summary is rebuilt
from them at any time (`summarize(load_run(dir))`). Pure statistics live in `validity`,
`slo` and `windows` (no I/O); `store` and `history` do the files.
"""

from harness.results.history import HistoryRow, append_run, list_runs, rebuild_history
from harness.results.slo import SloCheck, SloResult, evaluate_slo
from harness.results.store import (
    SCHEMA_VERSION,
    Run,
    RunWriter,
    atomic_write_bytes,
    atomic_write_json,
    load_run,
    new_run_id,
    read_events,
    read_json,
    records_from_table,
    windows_table,
    write_synthetic_run,
)
from harness.results.summary import finalize_run, summarize
from harness.results.validity import (
    PercentileCI,
    Validity,
    assess,
    detect_warmup,
    percentile_ci,
    requests_needed,
)
from harness.results.windows import Window, decode_windows, per_second

__all__ = [
    "SCHEMA_VERSION",
    "HistoryRow",
    "PercentileCI",
    "Run",
    "RunWriter",
    "SloCheck",
    "SloResult",
    "Validity",
    "Window",
    "append_run",
    "assess",
    "atomic_write_bytes",
    "atomic_write_json",
    "decode_windows",
    "detect_warmup",
    "evaluate_slo",
    "finalize_run",
    "list_runs",
    "load_run",
    "new_run_id",
    "per_second",
    "percentile_ci",
    "read_events",
    "read_json",
    "rebuild_history",
    "records_from_table",
    "requests_needed",
    "summarize",
    "windows_table",
    "write_synthetic_run",
]
