"""The run directory: written atomically, versioned, readable after an interruption.

    <out>/<run-id>/run.json               what ran (config, versions, git sha, host, status)
                   windows.parquet        per-second HDR windows (see harness.latency)
                   server_metrics.parquet scraped /metrics, long format
                   events.jsonl           stage changes, warm-up end, faults ...
                   summary.json           the verdict (harness.results.summary)

Every file but events.jsonl is replaced whole (temp file + `os.replace`), so a reader never
sees half a file and a run killed midway keeps everything written so far; `RunWriter` is
meant to be called repeatedly (e.g. windows every few seconds). events.jsonl is appended
line by line and flushed; a torn last line is skipped on read. Files carry
`schema_version`; reading a version this code does not know raises SchemaVersionError.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness import files
from harness.errors import SchemaVersionError, StoreError
from harness.files import atomic_write_bytes
from harness.latency.windows import WindowRecord
from harness.results.schema import Summary

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
STATUSES = frozenset({"complete", "incomplete", "failed"})

WINDOWS_SCHEMA = pa.schema(
    [
        ("second", pa.int64()),
        ("endpoint", pa.string()),
        ("outcome", pa.string()),
        ("count", pa.int64()),
        ("hdr", pa.binary()),
        ("hdr_uncorrected", pa.binary()),
        ("checked", pa.int64()),
        ("correct", pa.int64()),
        ("rejected", pa.int64()),
        ("healthy", pa.bool_()),
    ],
    metadata={"schema_version": str(SCHEMA_VERSION)},
)
METRICS_SCHEMA = pa.schema(
    [
        ("ts", pa.float64()),
        ("metric", pa.string()),
        ("labels", pa.string()),
        ("value", pa.float64()),
    ],
    metadata={"schema_version": str(SCHEMA_VERSION)},
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id(scenario: str, now: datetime | None = None) -> str:
    """`20261123T112233Z-steady-digits-ab12`: sortable by time, unique by a random suffix."""
    stamp = (now or utc_now()).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{scenario}-{secrets.token_hex(2)}"


def atomic_write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """JSON that also takes datetimes, paths and numpy scalars (see `harness.files`)."""
    files.atomic_write_json(path, obj, default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def atomic_write_table(path: Path, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def check_version(data: Mapping[str, Any], source: Path | str) -> None:
    version = data.get("schema_version")
    if version not in SUPPORTED_VERSIONS:
        raise SchemaVersionError(
            f"{source}: schema_version {version!r} is not supported by this harness "
            f"(knows {sorted(SUPPORTED_VERSIONS)})"
        )


def read_json(path: Path) -> dict[str, Any]:
    """A versioned JSON object of the run directory; StoreError when missing or unknown."""
    try:
        data = files.read_json_file(path)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a JSON object")
    check_version(data, path)
    return data


def windows_table(records: Iterable[WindowRecord]) -> pa.Table:
    rows = sorted(records, key=lambda r: r.key)
    columns = {name: [getattr(r, name) for r in rows] for name in WINDOWS_SCHEMA.names}
    return pa.Table.from_pydict(columns, schema=WINDOWS_SCHEMA)


def records_from_table(table: pa.Table) -> list[WindowRecord]:
    return [WindowRecord.from_dict(row) for row in table.to_pylist()]


def read_table(path: Path, schema: pa.Schema) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: unreadable ({exc})") from exc
    meta = table.schema.metadata or {}
    raw = meta.get(b"schema_version")
    check_version({"schema_version": int(raw) if raw and raw.isdigit() else raw}, path)
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise StoreError(f"{path}: missing columns {missing}")
    return table.select(schema.names).cast(schema)


def _versions(packages: Iterable[str]) -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


VERSIONED_PACKAGES = (
    "serving-harness", "locust", "hdrhistogram", "onnxruntime-gpu", "onnxruntime",
    "tritonclient", "numpy", "scipy", "pyarrow", "duckdb", "pydantic", "chaostoolkit-lib",
)  # fmt: skip


def git_sha(cwd: Path | None = None) -> str | None:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def host_info() -> dict[str, Any]:
    import platform

    import psutil

    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus_logical": psutil.cpu_count(logical=True),
        "cpus_physical": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
    }


class RunWriter:
    """Creates `<out>/<run-id>/` and keeps it up to date while a run goes on.

    writer = RunWriter(out, "steady-digits", scenario_config=scenario.model_dump(mode="json"))
    writer.start()                       # run.json, status "incomplete"
    writer.event("stage", ts=0.0, index=0)
    writer.write_windows(store.records())   # as often as wanted; replaces the file
    writer.finish("complete")            # run.json status + ended_at
    writer.write_summary(summarize(load_run(writer.run_dir)))
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        scenario: str,
        *,
        scenario_config: Mapping[str, Any],
        kind: str = "run",
        run_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.run_id = run_id or new_run_id(scenario)
        self.run_dir = Path(out_dir) / self.run_id
        self._run: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "scenario": scenario,
            "scenario_config": dict(scenario_config),
            "kind": kind,
            "versions": {},
            "git_sha": None,
            "host": {},
            "started_at": None,
            "ended_at": None,
            "status": "incomplete",
            "status_reason": None,
            **(extra or {}),
        }

    def start(self, started_at: datetime | None = None) -> Path:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError as exc:
            raise StoreError(f"{self.run_dir}: run directory already exists") from exc
        self._run.update(
            versions=_versions(VERSIONED_PACKAGES),
            git_sha=git_sha(),
            host=host_info(),
            started_at=iso(started_at or utc_now()),
        )
        atomic_write_json(self.run_dir / "run.json", self._run)
        (self.run_dir / "events.jsonl").touch()
        return self.run_dir

    @property
    def run(self) -> dict[str, Any]:
        return dict(self._run)

    def update(self, **fields: Any) -> None:
        """Add or change top-level run.json fields (e.g. the resolved target URL)."""
        self._run.update(fields)
        atomic_write_json(self.run_dir / "run.json", self._run)

    def event(self, type: str, ts: float, **fields: Any) -> None:
        """Append one event (`ts`: seconds since run start) to events.jsonl."""
        line = json.dumps({"ts": ts, "type": type, **fields}, default=_json_default)
        with (self.run_dir / "events.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()

    def write_windows(self, records: Iterable[WindowRecord]) -> None:
        """Replace windows.parquet with `records` (all windows so far)."""
        atomic_write_table(self.run_dir / "windows.parquet", windows_table(records))

    def write_server_metrics(self, rows: Iterable[tuple[float, str, Any, float]]) -> None:
        """Replace server_metrics.parquet; rows are (ts, metric, labels dict|JSON str, value)."""
        ts, metric, labels, value = [], [], [], []
        for row in rows:
            ts.append(float(row[0]))
            metric.append(str(row[1]))
            raw = row[2]
            labels.append(raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True))
            value.append(float(row[3]))
        columns = {"ts": ts, "metric": metric, "labels": labels, "value": value}
        table = pa.Table.from_pydict(columns, schema=METRICS_SCHEMA)
        atomic_write_table(self.run_dir / "server_metrics.parquet", table)

    def finish(self, status: str, reason: str | None = None, ended_at: datetime | None = None):
        if status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}, not {status!r}")
        self.update(status=status, status_reason=reason, ended_at=iso(ended_at or utc_now()))

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        path = self.run_dir / "summary.json"
        atomic_write_json(path, summary)
        return path


class Run:
    """A run directory, read: run.json (`meta`), events, summary; windows and server metrics
    are read on first use (a report may need only the summary).

    `load_run(dir)` is the one reader: the CLI, compare, history, reports and notebooks use it.
    """

    def __init__(
        self,
        run_dir: Path,
        meta: dict[str, Any],
        events: list[dict[str, Any]],
        summary: Summary | None,
    ) -> None:
        self.run_dir = run_dir
        self.meta = meta
        self.events = events
        self.summary = summary

    @cached_property
    def windows(self) -> list[WindowRecord]:
        path = self.run_dir / "windows.parquet"
        return records_from_table(read_table(path, WINDOWS_SCHEMA)) if path.exists() else []

    @cached_property
    def server_metrics(self) -> pa.Table | None:
        path = self.run_dir / "server_metrics.parquet"
        return read_table(path, METRICS_SCHEMA) if path.exists() else None

    def windows_table(self, columns: Sequence[str] | None = None) -> pa.Table:
        """windows.parquet as a table (only `columns`), for columnar readers such as compare."""
        path = self.run_dir / "windows.parquet"
        if not path.exists():
            raise StoreError(f"{path}: missing")
        try:
            return pq.read_table(path, columns=list(columns) if columns else None)
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"{path}: unreadable ({exc})") from exc

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.run_dir.name))

    @property
    def status(self) -> str:
        return str(self.meta.get("status", ""))

    @property
    def measured_from_s(self) -> float | None:
        """First measured second: the summary's validity verdict (after warm-up, and within
        the last stage of a staged load), else a `warmup_end` event, else None."""
        if self.summary is not None and self.summary["validity"]["warmup_s"] is not None:
            validity = self.summary["validity"]
            return float(validity["analysed_from_s"]) + float(validity["warmup_s"])
        for event in self.events:
            if event.get("type") == "warmup_end":
                return float(event["ts"])
        return None


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """The run in `run_dir`, version-checked; missing optional files read as empty."""
    path = Path(run_dir)
    meta = read_json(path / "run.json")
    summary_path = path / "summary.json"
    summary = read_json(summary_path) if summary_path.exists() else None
    return Run(path, meta, read_events(path / "events.jsonl"), summary)


def write_synthetic_run(
    run_dir: str | os.PathLike[str],
    windows: Iterable[WindowRecord],
    *,
    scenario: str = "synthetic",
    scenario_config: Mapping[str, Any] | None = None,
    events: Iterable[Mapping[str, Any]] = (),
    status: str = "complete",
) -> Path:
    """A run directory made from given windows (tests, benchmarks, notebooks), written by the
    same `RunWriter` as a real run. `run_dir` must not exist yet."""
    path = Path(run_dir)
    writer = RunWriter(
        path.parent, scenario, scenario_config=scenario_config or {}, run_id=path.name
    )
    writer.start()
    for event in events:
        fields = {k: v for k, v in event.items() if k not in ("type", "ts")}
        writer.event(str(event["type"]), float(event["ts"]), **fields)
    writer.write_windows(windows)
    writer.finish(status)
    return writer.run_dir


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a torn last line from an interrupted run
        if isinstance(event, dict):
            events.append(event)
    return events
