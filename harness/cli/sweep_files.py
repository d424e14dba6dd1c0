"""The files and tables of a sweep run: sweep.parquet's schema, reading a sweep back, and
the console output of `harness sweep` (kept apart from the search driver in `sweep.py`).

`sweep.parquet`: one row per step, columns SWEEP_COLUMNS; `sweep.json`: criteria, search
outcome (steps vs a linear sweep), the curve fits of `analyse_sweep`. `read_sweep` is what
`harness plan --from` uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from harness.analysis.sweep_search import SearchResult
from harness.errors import StoreError
from harness.results.store import read_json

__all__ = [
    "SWEEP_COLUMNS",
    "SWEEP_SCHEMA",
    "UNMEASURED_NOTE",
    "SweepData",
    "print_curves",
    "print_result",
    "read_sweep",
    "sweep_table",
]

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
    ]
)
SWEEP_COLUMNS = tuple(SWEEP_SCHEMA.names)


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


def read_sweep(run_dir: str | Path) -> SweepData:
    run_dir = Path(run_dir)
    meta = read_json(run_dir / "sweep.json")
    try:
        table = pq.read_table(run_dir / "sweep.parquet")
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"{run_dir / 'sweep.parquet'}: unreadable ({exc})") from exc
    missing = [c for c in SWEEP_COLUMNS if c not in table.column_names]
    if missing:
        raise StoreError(f"{run_dir / 'sweep.parquet'}: missing columns {missing}")
    cols = {c: table.column(c).to_numpy(zero_copy_only=False) for c in SWEEP_COLUMNS}
    return SweepData(run_dir=run_dir, mode=str(meta["mode"]), columns=cols, meta=meta)


def sweep_table(result: SearchResult, mode: str) -> pa.Table:
    rows: dict[str, list[Any]] = {c: [] for c in SWEEP_COLUMNS}
    for i, (s, ok) in enumerate(zip(result.steps, result.passed, strict=True)):
        for col, val in (
            ("step", i),
            ("mode", mode),
            ("load", s.load),
            ("throughput_rps", s.throughput),
            ("p50_ms", s.p50_ms),
            ("p99_ms", s.p99_ms),
            ("mean_ms", s.mean_ms),
            ("error_rate", s.error_rate),
            ("stable", s.stable),
            ("passed", ok),
            ("run_id", s.run_id or ""),
        ):
            rows[col].append(val)
    return pa.Table.from_pydict(rows, schema=SWEEP_SCHEMA)


UNMEASURED_NOTE = (
    "the load generator was unhealthy in every second at load {loads} (schedule lag / CPU), "
    "so those steps measured nothing and counted as failures: the highest passing load is a "
    "floor set by the generator, not the target's limit; re-run with more workers "
    "(`workers: N`) or on a quieter host"
)


def _num(x: float, digits: int) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "-"  # "-": nothing measured


def print_result(console: Console, run_dir: Path, result: SearchResult, mode: str) -> None:
    unit = "users" if mode == "closed" else "req/s offered"
    table = Table(title=f"sweep ({mode} loop) — {run_dir}")
    for col in ("step", f"load ({unit})", "throughput rps", "p99 ms", "errors", "stable", "SLO"):
        table.add_column(col, justify="right")
    for i, (s, ok) in enumerate(zip(result.steps, result.passed, strict=True)):
        table.add_row(
            str(i),
            f"{s.load:g}",
            _num(s.throughput, 1),
            _num(s.p99_ms, 2),
            f"{s.error_rate:.2%}",
            "yes" if s.stable else "no",
            "[green]pass[/]" if ok else "[red]fail[/]",
        )
    console.print(table)
    best = "none" if result.best is None else f"{result.best.load:g} {unit}"
    console.print(
        f"highest passing load: [bold]{best}[/] ({result.reason}); "
        f"{result.n_steps} steps vs {result.linear_steps} for a linear sweep at "
        f"resolution {result.resolution:g}"
    )


def print_curves(console: Console, meta: dict[str, Any]) -> None:
    """The fits in one or two lines each, with a warning when they do not fit."""
    usl = meta.get("usl")
    if usl and "error" not in usl:
        n_star = usl["n_star"]
        peak = "unbounded" if n_star is None or n_star > 1e6 else f"{n_star:.1f}"
        console.print(
            f"USL: lambda {usl['lambda']['value']:.1f} req/s, sigma "
            f"{usl['sigma']['value']:.4f}, kappa {usl['kappa']['value']:.2e}, R^2 "
            f"{usl['r2']:.3f}; N* = {peak}"
        )
        if usl["r2"] < 0.9:
            console.print(
                "[yellow]warning:[/] the USL does not fit these steps (noisy host or "
                "steps too short): do not plan from them without a re-run"
            )
    elif usl:
        console.print(f"USL: not fitted ({usl['error']})")
    lat = meta.get("latency")
    if lat and "error" not in lat and lat["max_under_slo"]["throughput"] is not None:
        m = lat["max_under_slo"]
        console.print(
            f"max throughput meeting the SLO (measured and fitted p99): "
            f"{m['throughput']:.1f} req/s at load {m['load']:g}; p99 knee at "
            f"{lat['knee']['throughput']:.1f} req/s"
        )
