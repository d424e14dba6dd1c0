"""Request-arrival traces: load a real trace, bin it into a rate series, rescale it.

Why a module of its own: both the load engine (trace replay, open loop) and the analysis side
(HPA simulation) replay the same real arrivals, and both must read them the same way. The
shipped trace (`scenarios/data/azure_llm_conv_2023.csv`, see its README for attribution) stamps
arrivals as `YYYY-MM-DD HH:MM:SS.fffffff` (7 fractional digits, 100 ns). Parsing those through
float seconds-since-epoch loses the last digit (a float64 near 1.7e9 s resolves ~240 ns), so
timestamps are parsed to integer nanoseconds with numpy's datetime64 parser and only the
*offsets from the first arrival* (small numbers) become float64 seconds.

Pure functions, no global state; only `load_arrivals`/`load_trace` touch the file system.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import ConfigError

__all__ = [
    "Trace",
    "load_arrivals",
    "load_trace",
    "rate_series",
    "scale_to_peak",
    "shipped_trace_path",
    "time_scale",
]

log = logging.getLogger(__name__)

TIMESTAMP_COLUMN = "TIMESTAMP"
SHIPPED_TRACE = ("data", "azure_llm_conv_2023.csv")  # inside the `scenarios` package


def shipped_trace_path() -> Path:
    """Where the shipped Azure trace lies, found without importing `scenarios`.

    Importing the Locust side would monkey-patch this process with gevent; `find_spec` of a
    top-level package only locates it.
    """
    spec = importlib.util.find_spec("scenarios")
    if spec is None or spec.origin is None:
        raise ConfigError("the shipped trace is missing: the `scenarios` package is not installed")
    return Path(spec.origin).parent.joinpath(*SHIPPED_TRACE)


_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,9})?$")
_TS_FORM = "'YYYY-MM-DD HH:MM:SS.fffffff'"
_SECONDS_RE = re.compile(r"^\d+(\.\d*)?$")


@dataclass(frozen=True, slots=True)
class Trace:
    """A parsed trace: sorted arrival offsets (s) and optional per-request size columns."""

    arrivals: np.ndarray  # float64 seconds since the first arrival, sorted ascending
    start_ns: int  # absolute time of the first arrival, ns since the Unix epoch (UTC-naive)
    columns: dict[str, np.ndarray]  # other numeric columns (e.g. ContextTokens), same order

    @property
    def duration_s(self) -> float:
        return float(self.arrivals[-1]) if self.arrivals.size else 0.0

    @property
    def mean_rate(self) -> float:
        return self.arrivals.size / self.duration_s if self.duration_s > 0 else float("nan")


def _parse_timestamps(values: list[str], path: Path, column: str) -> np.ndarray:
    """Strings -> int64 nanoseconds: datetimes exactly (no float on the way), or plain
    seconds (e.g. `0.25`, offsets or epoch seconds), as the first row has them."""
    seconds = bool(_SECONDS_RE.match(values[0]))
    pattern, form = (_SECONDS_RE, "seconds") if seconds else (_TS_RE, _TS_FORM)
    for i, value in enumerate(values):
        if not pattern.match(value):
            raise ConfigError(
                f"{path}: row {i + 2}: {column} {value!r} is not {form} (as in row 2)"
            )
    if seconds:
        return np.rint(np.array(values, dtype=np.float64) * 1e9).astype(np.int64)
    return np.array(values, dtype="datetime64[ns]").astype(np.int64)


def _numeric_column(values: list[str]) -> np.ndarray | None:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return None


def load_trace(path: str | Path, column: str = TIMESTAMP_COLUMN) -> Trace:
    """Read a CSV whose `column` (default `TIMESTAMP`) holds the arrival times (datetimes or
    seconds); other numeric columns are kept alongside."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            if column not in fields:
                raise ConfigError(f"{path}: no {column} column (columns: {fields})")
            rows = [row for row in reader if any((v or "").strip() for v in row.values())]
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read trace: {exc}") from exc
    if not rows:
        raise ConfigError(f"{path}: trace has no rows")
    ns = _parse_timestamps([row[column].strip() for row in rows], path, column)
    order = np.argsort(ns, kind="stable")
    if np.any(order != np.arange(order.size)):
        log.warning("%s: arrivals were not sorted; sorted %d rows", path, order.size)
    ns = ns[order]
    columns: dict[str, np.ndarray] = {}
    for name in fields:
        if name == column:
            continue
        col = _numeric_column([(row[name] or "").strip() for row in rows])
        if col is not None:
            columns[name] = col[order]
    arrivals = (ns - ns[0]).astype(np.float64) / 1e9
    return Trace(arrivals=arrivals, start_ns=int(ns[0]), columns=columns)


def load_arrivals(path: str | Path, column: str = TIMESTAMP_COLUMN) -> np.ndarray:
    """Arrival times of a trace CSV as float64 seconds since the first arrival, sorted."""
    return load_trace(path, column).arrivals


def rate_series(arrivals: np.ndarray, bin_s: float = 1.0) -> np.ndarray:
    """Arrivals per second in consecutive bins of `bin_s` seconds starting at 0.

    Bin i covers [i*bin_s, (i+1)*bin_s); the last arrival falls in the last bin. Returns
    float64 rates (count / bin_s), so a series binned at 10 s is still in requests per second.
    """
    if bin_s <= 0:
        raise ValueError("bin_s must be > 0")
    arr = np.asarray(arrivals, dtype=np.float64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.float64)
    if arr.min() < 0:
        raise ValueError("arrivals must be offsets >= 0")
    n_bins = math.floor(arr.max() / bin_s) + 1
    idx = np.minimum((arr // bin_s).astype(np.int64), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    return counts.astype(np.float64) / bin_s


def scale_to_peak(rates: np.ndarray, peak: float) -> np.ndarray:
    """Multiply a rate series so that its maximum equals `peak` (same shape, same burstiness)."""
    r = np.asarray(rates, dtype=np.float64)
    if peak < 0:
        raise ValueError("peak must be >= 0")
    top = float(r.max()) if r.size else 0.0
    if top <= 0:
        raise ValueError("rate series has no positive value to scale")
    return r * (peak / top)


def time_scale(arrivals: np.ndarray, speedup: float) -> np.ndarray:
    """Compress (speedup > 1) or stretch (< 1) arrival times: rates scale by `speedup`."""
    if speedup <= 0:
        raise ValueError("speedup must be > 0")
    return np.asarray(arrivals, dtype=np.float64) / speedup
