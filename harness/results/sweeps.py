"""The files of a sweep run: `sweep.parquet` (one row per step) and `sweep.json`.

`sweep.parquet` has the columns SWEEP_COLUMNS; `sweep.json` holds the criteria, the search
outcome (steps vs a linear sweep) and the curve fits. `write_sweep` is what the sweep driver
(`harness.sweep`) writes, `read_sweep` what `harness plan --from` and reports read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import StoreError
from harness.results.store import atomic_write_json, atomic_write_table, read_json

__all__ = ["SWEEP_COLUMNS", "SWEEP_SCHEMA", "SweepData", "read_sweep", "write_sweep"]

SWEEP_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("mode", pa.string()),
        ("load", pa.float64()),
        ("throughput_rps", pa.float64()),
        ("p50_ms", pa.float64()),
        ("p99_ms", pa.float64()),
        ("mean_ms", pa.float64()),
        ("error_rate", pa.float64()),
        ("stable", pa.bool_()),
        ("passed", pa.bool_()),
        ("run_id", pa.string()),
        ("verdict", pa.string()),  # pass | fail | unmeasured
        ("unmeasured_reason", pa.string()),  # "" when measured
        ("concurrency", pa.float64()),  # in flight at the server (X x mean R); NaN: unknown
        ("workers", pa.int64()),  # Locust workers that ran the step; 0: unknown
        ("concurrency_from", pa.string()),  # "server counter" | "little's law" | "" (unknown)
    ]
)
SWEEP_COLUMNS = tuple(SWEEP_SCHEMA.names)
# Columns sweeps written before they existed lack: read as these (steps were all judged).
_LATER_COLUMNS = {
    "verdict": None,
    "unmeasured_reason": "",
    "concurrency": np.nan,
    "workers": 0,
    "concurrency_from": "",
}


@dataclass(frozen=True, slots=True)
class SweepData:
    """A sweep read back from disk."""

    run_dir: Path
    mode: str  # "closed" | "open"
    columns: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def slo_p99_ms(self) -> float | None:
        return self.meta.get("criteria", {}).get("p99_ms")


def write_sweep(
    run_dir: Path, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]
) -> None:
    """`sweep.parquet` from one mapping per step (keys SWEEP_COLUMNS), then `sweep.json`."""
    table = pa.Table.from_pylist([{c: row[c] for c in SWEEP_COLUMNS} for row in rows],
                                 schema=SWEEP_SCHEMA)
    atomic_write_table(run_dir / "sweep.parquet", table)
    atomic_write_json(run_dir / "sweep.json", dict(meta))


def read_sweep(run_dir: str | Path) -> SweepData:
    run_dir = Path(run_dir)
    meta = read_json(run_dir / "sweep.json")
    try:
        table = pq.read_table(run_dir / "sweep.parquet")
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"{run_dir / 'sweep.parquet'}: unreadable ({exc})") from exc
    missing = [
        c for c in SWEEP_COLUMNS if c not in table.column_names and c not in _LATER_COLUMNS
    ]
    if missing:
        raise StoreError(f"{run_dir / 'sweep.parquet'}: missing columns {missing}")
    cols = {
        c: table.column(c).to_numpy(zero_copy_only=False)
        for c in SWEEP_COLUMNS
        if c in table.column_names
    }
    for name, default in _LATER_COLUMNS.items():
        if name not in cols:
            fill = np.where(cols["passed"], "pass", "fail") if name == "verdict" else default
            cols[name] = np.broadcast_to(np.asarray(fill), cols["passed"].shape).copy()
    return SweepData(run_dir=run_dir, mode=str(meta["mode"]), columns=cols, meta=meta)
