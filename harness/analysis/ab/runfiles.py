"""Read A/B arms from run directories (and write synthetic ones) per the results contract.

Why: the statistics in this package are pure; this is the one module of `harness.analysis`
that touches files, so the boundary is explicit. It reads `run.json` (schema check),
`events.jsonl` (end of warm-up) and `windows.parquet` (one HDR histogram per second,
endpoint and outcome) with pyarrow, decodes each window once with `hdrhistogram`, and
builds an `ArmWindows` per endpoint: the exact merged histogram plus the per-second
log-grid matrix. Memory is bounded by windows x grid bins, whatever the request rate.

Excluded from latency and counts, and reported: seconds before the measured span starts
(summary.json's validity: `analysed_from_s + warmup_s`, i.e. after warm-up and, for staged
loads, within the last stage; without a summary, a `warmup_end` event) and seconds in which
the load generator was not healthy (its latency there measures itself). Latency
statistics use successful requests only; failures count towards the error rate. An arm
with no failure rows has zero failures.

Writing (`write_run`, `window_rows`) exists for tests, benchmarks and notebooks; the load
engine owns the real writer (harness/results).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hdrh.histogram import HdrHistogram

from harness.analysis.ab.histdata import (
    DEFAULT_RESOLUTION,
    ArmWindows,
    HdrLayout,
    Histogram,
    bin_ids_for,
)
from harness.errors import SchemaVersionError, StoreError
from harness.results.store import WINDOWS_SCHEMA

__all__ = ["RunInfo", "encode_window", "read_arms", "read_run_info", "window_rows", "write_run"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_COLUMNS = [
    "second",
    "endpoint",
    "outcome",
    "count",
    "hdr",
    "checked",
    "correct",
    "rejected",
    "healthy",
]


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_dir: Path
    run_id: str
    scenario: str
    status: str
    started_at: str
    endpoints: tuple[str, ...]
    warmup_end_s: float | None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise StoreError(f"{path}: missing (is this a run directory?)") from exc
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path}: not valid JSON ({exc})") from exc


def _warmup_end(run_dir: Path) -> float | None:
    """First measured second: the summary's validity verdict, else a warmup_end event."""
    summary = run_dir / "summary.json"
    if summary.exists():
        validity = _read_json(summary).get("validity") or {}
        if validity.get("warmup_s") is not None:
            return float(validity.get("analysed_from_s") or 0) + float(validity["warmup_s"])
    path = run_dir / "events.jsonl"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:  # a torn last line
            continue
        if event.get("type") == "warmup_end":
            return float(event["ts"])
    return None


def read_run_info(run_dir: str | Path) -> RunInfo:
    """run.json (schema-checked), the endpoints present and the end of warm-up."""
    run_dir = Path(run_dir)
    meta = _read_json(run_dir / "run.json")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{run_dir / 'run.json'}: schema_version {meta.get('schema_version')!r}, "
            f"this harness reads {SCHEMA_VERSION}"
        )
    windows = run_dir / "windows.parquet"
    if not windows.exists():
        raise StoreError(f"{windows}: missing")
    endpoints = pq.read_table(windows, columns=["endpoint"]).column("endpoint")
    return RunInfo(
        run_dir=run_dir,
        run_id=str(meta.get("run_id", run_dir.name)),
        scenario=str(meta.get("scenario", "")),
        status=str(meta.get("status", "")),
        started_at=str(meta.get("started_at", "")),
        endpoints=tuple(sorted(str(e) for e in pc.unique(endpoints).to_pylist())),
        warmup_end_s=_warmup_end(run_dir),
    )


class _Decoder:
    """Decodes HDR windows into (log-grid bin ids, counts), caching per-layout lookups."""

    def __init__(self, resolution: float) -> None:
        self.resolution = resolution
        self._luts: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.merged: dict[tuple[int, int, int], np.ndarray] = {}

    def decode(self, blob: bytes) -> tuple[np.ndarray, np.ndarray]:
        h = HdrHistogram.decode(blob)
        key = (h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures)
        if key not in self._luts:
            layout = HdrLayout(*key)
            values = layout.value_of(np.arange(h.counts_len))
            self._luts[key] = (values, bin_ids_for(values, self.resolution))
            self.merged[key] = np.zeros(h.counts_len, dtype=np.int64)
        counts = np.ctypeslib.as_array(h.counts)
        nz = np.flatnonzero(counts)
        self.merged[key][nz] += counts[nz].astype(np.int64)
        bins = self._luts[key][1][nz]  # non-decreasing: sum the HDR slots of each grid bin
        starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
        summed = np.add.reduceat(counts[nz], starts) if nz.size else counts[:0]
        return bins[starts].astype(np.int32), summed.astype(np.float32)

    def merged_histogram(self) -> Histogram:
        parts = [(self._luts[k][0], c) for k, c in self.merged.items()]
        if not parts:
            return Histogram(np.zeros(0), np.zeros(0, dtype=np.int64))
        return Histogram.from_pairs(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        )


def _kept_seconds(table: pa.Table, warmup_end: float | None) -> tuple[np.ndarray, int]:
    seconds = table.column("second").to_numpy()
    healthy = table.column("healthy").to_numpy(zero_copy_only=False).astype(bool)
    all_s = np.unique(seconds)
    keep = ~np.isin(all_s, seconds[~healthy])
    if warmup_end is not None:
        keep &= all_s >= math.ceil(warmup_end)
    return all_s[keep], int((~keep).sum())


def _arm_from_table(
    name: str, table: pa.Table, warmup_end: float | None, resolution: float
) -> ArmWindows:
    seconds, excluded = _kept_seconds(table, warmup_end)
    sec = table.column("second").to_numpy()
    rows = np.flatnonzero(np.isin(sec, seconds))
    row_of = np.searchsorted(seconds, sec[rows])
    count = table.column("count").to_numpy()[rows]
    fail = table.column("outcome").to_numpy(zero_copy_only=False)[rows] != "success"
    requests = np.bincount(row_of, weights=count, minlength=seconds.size).astype(np.int64)
    failures = np.bincount(row_of[fail], weights=count[fail], minlength=seconds.size)
    decoder = _Decoder(resolution)
    blobs = table.column("hdr").to_pylist()
    r_idx, b_idx, c_val = [], [], []
    for i in np.flatnonzero(~fail):
        bins, counts = decoder.decode(blobs[rows[i]])
        r_idx.append(np.full(bins.size, row_of[i], dtype=np.int32))
        b_idx.append(bins)
        c_val.append(counts)
    matrix, bin_ids = _dense(seconds.size, r_idx, b_idx, c_val)
    total = {
        c: int(table.column(c).to_numpy()[rows].sum()) for c in ("checked", "correct", "rejected")
    }
    return ArmWindows(
        name=name,
        seconds=seconds,
        bin_ids=bin_ids,
        counts=matrix,
        merged=decoder.merged_histogram(),
        requests=requests,
        failures=failures.astype(np.int64),
        checked=total["checked"],
        correct=total["correct"],
        rejected=total["rejected"],
        resolution=resolution,
        excluded_windows=excluded,
    )


def _dense(n_rows, r_idx, b_idx, c_val) -> tuple[np.ndarray, np.ndarray]:
    if not r_idx:
        return np.zeros((n_rows, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    rows, bins, vals = (np.concatenate(x) for x in (r_idx, b_idx, c_val))
    del r_idx[:], b_idx[:], c_val[:]
    bin_ids, col = np.unique(bins, return_inverse=True)
    matrix = np.zeros((n_rows, bin_ids.size), dtype=np.float32)
    np.add.at(matrix, (rows, col), vals)  # add, not assign: duplicate rows would sum
    return matrix, bin_ids.astype(np.int64)


def read_arms(
    run_dir: str | Path,
    endpoints: Sequence[str],
    *,
    skip_warmup: bool = True,
    uncorrected: bool = False,
    resolution: float = DEFAULT_RESOLUTION,
) -> list[ArmWindows]:
    """One `ArmWindows` per endpoint, read from one run directory (one parquet read).

    Latency is measured from the intended start (`hdr`, no coordinated omission) unless
    `uncorrected`, which reads `hdr_uncorrected` (from the actual send) instead.
    """
    info = read_run_info(run_dir)
    missing = [e for e in endpoints if e not in info.endpoints]
    if missing:
        raise StoreError(f"{info.run_dir}: no endpoint {missing}; it has {list(info.endpoints)}")
    column = "hdr_uncorrected" if uncorrected else "hdr"
    wanted = [column if c == "hdr" else c for c in _COLUMNS]
    table = pq.read_table(info.run_dir / "windows.parquet", columns=wanted)
    table = table.rename_columns(_COLUMNS)
    warmup = info.warmup_end_s if skip_warmup else None
    notes = ()
    if info.status != "complete":
        notes = (f"run {info.run_id} has status {info.status!r}: it did not finish normally",)
    out = []
    for endpoint in endpoints:
        sub = table.filter(pc.equal(table.column("endpoint"), endpoint))
        arm = _arm_from_table(endpoint, sub, warmup, resolution)
        out.append(replace(arm, notes=notes) if notes else arm)
    return out


# --- writing: synthetic run directories --------------------------------------------------


def encode_window(latencies_us: np.ndarray, layout: HdrLayout | None = None) -> tuple[bytes, int]:
    """Encode latencies into one HDR window; returns (encoded bytes, rejected count)."""
    layout = layout or HdrLayout()
    h = HdrHistogram(layout.lowest, layout.highest, layout.significant_figures)
    lat = np.rint(np.asarray(latencies_us, dtype=np.float64)).astype(np.int64)
    ok = (lat >= 0) & (lat <= layout.highest)
    idx = layout.index_of(lat[ok])
    counts = np.ctypeslib.as_array(h.counts)
    if idx.size:
        counts[:] = np.bincount(idx, minlength=h.counts_len)[: h.counts_len]
        nz = np.flatnonzero(counts)
        h.set_internal_tacking_values(int(nz[0]), int(nz[-1]), int(idx.size))
    return h.encode(), int((~ok).sum())


def window_rows(endpoint: str, seconds, latency_us, failed, checked=None, correct=None):
    """Rows of windows.parquet for one endpoint from per-request arrays."""
    seconds = np.asarray(seconds)
    failed = np.asarray(failed, dtype=bool)
    checked = np.zeros(seconds.size, bool) if checked is None else np.asarray(checked, bool)
    correct = np.zeros(seconds.size, bool) if correct is None else np.asarray(correct, bool)
    order = np.argsort(seconds, kind="stable")
    bounds = np.flatnonzero(np.diff(seconds[order])) + 1
    rows = []
    for group in np.split(order, bounds):
        for outcome, mask in (("success", ~failed[group]), ("failure", failed[group])):
            sel = group[mask]
            if sel.size == 0:
                continue
            blob, rejected = encode_window(latency_us[sel])
            rows.append(
                {
                    "second": int(seconds[sel[0]]),
                    "endpoint": endpoint,
                    "outcome": outcome,
                    "count": int(sel.size),
                    "hdr": blob,
                    "hdr_uncorrected": blob,
                    "checked": int(checked[sel].sum()),
                    "correct": int(correct[sel].sum()),
                    "rejected": rejected,
                    "healthy": True,
                }
            )
    return rows


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_run(
    run_dir: str | Path,
    rows: list[dict],
    *,
    scenario: str = "synthetic",
    events: Sequence[dict] = (),
) -> Path:
    """Write run.json, windows.parquet and events.jsonl (schema 1) atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_dir.name,
        "scenario": scenario,
        "scenario_config": {},
        "versions": {},
        "git_sha": "",
        "host": {},
        "started_at": "1970-01-01T00:00:00Z",
        "ended_at": "1970-01-01T00:00:00Z",
        "status": "complete",
        "status_reason": "",
        "kind": "run",
    }
    table = pa.Table.from_pylist(rows, schema=WINDOWS_SCHEMA)
    _atomic_write(run_dir / "windows.parquet", lambda p: pq.write_table(table, p))
    _atomic_write(run_dir / "run.json", lambda p: Path(p).write_text(json.dumps(meta)))
    lines = "".join(json.dumps(e) + "\n" for e in events)
    _atomic_write(run_dir / "events.jsonl", lambda p: Path(p).write_text(lines))
    return run_dir
