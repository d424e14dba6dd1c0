"""`<out>/history.duckdb`: one row per run, and one per comparison, for trends and gates.

Tables:
    runs         a projection of summary.json (the run directory stays the source of truth; a
                 lost table can be rebuilt with `rebuild_history`). Appending the same run id
                 again replaces its row, so re-summarising a run never duplicates it.
    comparisons  what `harness compare` (kind "compare") and `harness run --baseline` (kind
                 "gate") concluded: the two runs/arms, the verdict, the per-metric numbers as
                 JSON. Recording the same comparison again replaces its row.
    meta         the schema version, checked on every open.

Versions, migrated step by step on the first write (asv's way): 1 (runs only) -> 2 (adds the
comparisons table; the runs table is unchanged). A version-1 file stays readable read-only
(it has no comparisons); a version this code does not know is refused, never guessed at.
DuckDB allows one writer process at a time: a locked database is retried for a few seconds,
then reported as a StoreError.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from harness.errors import SchemaVersionError, StoreError
from harness.results.schema import Summary

logger = logging.getLogger(__name__)

HISTORY_FILE = "history.duckdb"
HISTORY_SCHEMA_VERSION = 2
READABLE_VERSIONS = ("1", "2")
COLUMNS = (
    ("run_id", "VARCHAR PRIMARY KEY"),
    ("scenario", "VARCHAR"),
    ("started_at", "TIMESTAMP"),
    ("status", "VARCHAR"),
    ("requests", "BIGINT"),
    ("failures", "BIGINT"),
    ("throughput_rps", "DOUBLE"),
    ("p50_ms", "DOUBLE"),
    ("p99_ms", "DOUBLE"),
    ("slo_passed", "BOOLEAN"),
    ("valid", "BOOLEAN"),
    ("run_dir", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("offered_rps", "DOUBLE"),
    ("p95_ms", "DOUBLE"),
    ("error_rate", "DOUBLE"),
)


COMPARISON_COLUMNS = (
    ("compare_id", "VARCHAR PRIMARY KEY"),
    ("kind", "VARCHAR"),
    ("created_at", "TIMESTAMP"),
    ("scenario", "VARCHAR"),
    ("run_a", "VARCHAR"),
    ("arm_a", "VARCHAR"),
    ("run_b", "VARCHAR"),
    ("arm_b", "VARCHAR"),
    ("design", "VARCHAR"),
    ("verdict", "VARCHAR"),
    ("regression", "BOOLEAN"),
    ("margin", "VARCHAR"),
    ("summary", "VARCHAR"),
    ("metrics_json", "VARCHAR"),
)
COMPARISON_KINDS = ("compare", "gate")


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One comparison: B (`run_b`/`arm_b`) judged against A. `metrics_json` holds the
    per-metric records (estimates, p-values, verdicts) as the command printed them."""

    compare_id: str
    kind: str
    created_at: datetime | None
    scenario: str | None
    run_a: str
    arm_a: str
    run_b: str
    arm_b: str
    design: str
    verdict: str
    regression: bool
    margin: str | None
    summary: str
    metrics_json: str


@dataclass(frozen=True, slots=True)
class HistoryRow:
    run_id: str
    scenario: str | None
    started_at: datetime | None
    status: str | None
    requests: int | None
    failures: int | None
    throughput_rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    slo_passed: bool | None
    valid: bool | None
    run_dir: str | None
    kind: str | None
    offered_rps: float | None
    p95_ms: float | None
    error_rate: float | None


def history_path(out_dir: str | os.PathLike[str]) -> Path:
    return Path(out_dir) / HISTORY_FILE


@contextmanager
def connect(path: Path, read_only: bool = False, wait_s: float = 10.0) -> Iterator[Any]:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if time.monotonic() > deadline:
                raise StoreError(f"{path}: cannot open history database ({exc})") from exc
            time.sleep(0.1)
    try:
        if not read_only:
            _ensure_schema(con)
        _check_schema(con, path)
        yield con
    except duckdb.Error as exc:  # a damaged or foreign file: one typed error at the boundary
        raise StoreError(f"{path}: history database error ({exc})") from exc
    finally:
        con.close()


def _ensure_schema(con: Any) -> None:
    """Create a new database at the current version, or migrate a known older one."""
    cols = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        con.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
        con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        row = ("1",)
    if row[0] == "1":  # 1 -> 2: the comparisons table, nothing else changes
        ccols = ", ".join(f"{name} {kind}" for name, kind in COMPARISON_COLUMNS)
        con.execute(f"CREATE TABLE IF NOT EXISTS comparisons ({ccols})")
        con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        logger.info("history: migrated schema_version 1 -> 2 (comparisons table)")


def _check_schema(con: Any, path: Path) -> str:
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or row[0] not in READABLE_VERSIONS:
        raise SchemaVersionError(
            f"{path}: history schema_version {row and row[0]!r} is not supported "
            f"(knows 1 to {HISTORY_SCHEMA_VERSION})"
        )
    return str(row[0])


def _timestamp(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def row_from_summary(summary: Summary, run_dir: str | os.PathLike[str]) -> HistoryRow:
    latency = summary["latency_ms"]
    return HistoryRow(
        run_id=str(summary["run_id"]),
        scenario=summary["scenario"],
        started_at=_timestamp(summary["started_at"]),
        status=summary["status"],
        requests=summary["requests"],
        failures=summary["failures"],
        throughput_rps=summary["throughput_rps"],
        p50_ms=latency["p50"],
        p99_ms=latency["p99"],
        slo_passed=summary["slo"]["passed"],
        valid=summary["valid"],
        run_dir=str(run_dir),
        kind=summary["kind"],
        offered_rps=summary["offered_rps"],
        p95_ms=latency["p95"],
        error_rate=summary["error_rate"],
    )


def append_run(
    out_dir: str | os.PathLike[str], summary: Mapping[str, Any], run_dir: str | os.PathLike[str]
) -> HistoryRow:
    """Insert (or replace) the run's row in `<out_dir>/history.duckdb`."""
    row = row_from_summary(summary, run_dir)
    names = [name for name, _ in COLUMNS]
    values = [getattr(row, name) for name in names]
    placeholders = ", ".join("?" for _ in names)
    path = history_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as con:
        con.execute(
            f"INSERT OR REPLACE INTO runs ({', '.join(names)}) VALUES ({placeholders})", values
        )
    logger.debug("history: appended %s to %s", row.run_id, path)
    return row


def list_runs(
    out_dir: str | os.PathLike[str], limit: int | None = None, scenario: str | None = None
) -> list[HistoryRow]:
    """Runs, newest first; empty when there is no history yet."""
    path = history_path(out_dir)
    if not path.exists():
        return []
    query = f"SELECT {', '.join(name for name, _ in COLUMNS)} FROM runs"
    params: list[Any] = []
    if scenario is not None:
        query += " WHERE scenario = ?"
        params.append(scenario)
    query += " ORDER BY started_at DESC NULLS LAST, run_id DESC"
    if limit is not None:
        query += " LIMIT ?"
        params.append(int(limit))
    with connect(path, read_only=True) as con:
        return [HistoryRow(*record) for record in con.execute(query, params).fetchall()]


def rebuild_history(out_dir: str | os.PathLike[str]) -> int:
    """Re-append every summarised run `<out>/*/` (read through `load_run`, so unknown schema
    versions are refused, never guessed at); returns how many runs were added."""
    from harness.results.store import load_run

    added = 0
    for summary_path in sorted(Path(out_dir).glob("*/summary.json")):
        try:
            summary = load_run(summary_path.parent).summary
            if summary is None:
                continue
            append_run(out_dir, summary, summary_path.parent)
        except StoreError as exc:
            logger.warning("history: skipping %s (%s)", summary_path.parent, exc)
            continue
        except KeyError as exc:
            logger.warning("history: skipping %s (summary.json lacks %s)", summary_path, exc)
            continue
        added += 1
    return added


def latest_complete_run(
    out_dir: str | os.PathLike[str], scenario: str, exclude: str | None = None
) -> HistoryRow | None:
    """The newest complete run of `scenario` (other than `exclude`), or None: the baseline
    `harness run --baseline last` compares with."""
    for row in list_runs(out_dir, scenario=scenario):
        if row.status == "complete" and row.run_id != exclude:
            return row
    return None


def find_run(out_dir: str | os.PathLike[str], run_id: str) -> HistoryRow | None:
    """The row of `run_id`, or None when the history does not know it."""
    path = history_path(out_dir)
    if not path.exists():
        return None
    query = f"SELECT {', '.join(name for name, _ in COLUMNS)} FROM runs WHERE run_id = ?"
    with connect(path, read_only=True) as con:
        record = con.execute(query, [run_id]).fetchone()
    return None if record is None else HistoryRow(*record)


def record_comparison(out_dir: str | os.PathLike[str], row: ComparisonRow) -> ComparisonRow:
    """Insert (or replace, same `compare_id`) a comparison in `<out_dir>/history.duckdb`."""
    if row.kind not in COMPARISON_KINDS:
        raise ValueError(f"comparison kind {row.kind!r}: expected one of {COMPARISON_KINDS}")
    names = [name for name, _ in COMPARISON_COLUMNS]
    path = history_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as con:
        con.execute(
            f"INSERT OR REPLACE INTO comparisons ({', '.join(names)}) "
            f"VALUES ({', '.join('?' for _ in names)})",
            [getattr(row, name) for name in names],
        )
    logger.debug("history: recorded %s comparison %s", row.kind, row.compare_id)
    return row


def list_comparisons(
    out_dir: str | os.PathLike[str],
    *,
    scenario: str | None = None,
    run_b: str | None = None,
    kind: str | None = None,
    limit: int | None = None,
) -> list[ComparisonRow]:
    """Comparisons, newest first (none in a version-1 file, which predates them)."""
    path = history_path(out_dir)
    if not path.exists():
        return []
    where, params = [], []
    for column, value in (("scenario", scenario), ("run_b", run_b), ("kind", kind)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    query = f"SELECT {', '.join(name for name, _ in COMPARISON_COLUMNS)} FROM comparisons"
    query += (" WHERE " + " AND ".join(where)) if where else ""
    query += " ORDER BY created_at DESC NULLS LAST, compare_id DESC"
    if limit is not None:
        query += " LIMIT ?"
        params.append(int(limit))
    with connect(path, read_only=True) as con:
        if _check_schema(con, path) == "1":
            return []
        return [ComparisonRow(*record) for record in con.execute(query, params).fetchall()]


def gate_verdicts(out_dir: str | os.PathLike[str], scenario: str | None) -> dict[str, str]:
    """run id -> the verdict of its latest gate (`harness run --baseline`)."""
    rows = list_comparisons(out_dir, scenario=scenario, kind="gate")
    verdicts: dict[str, str] = {}
    for row in reversed(rows):  # oldest first: a later gate of the same run wins
        verdicts[row.run_b] = row.verdict
    return verdicts
