"""Moving-block bootstrap over whole seconds, vectorised as one matrix product per chunk.

Why: a percentile difference has no usable closed-form interval for heavy-tailed,
autocorrelated latency, and resampling single requests pretends they are independent. We
resample *seconds* in blocks of consecutive seconds (circular block bootstrap, Politis &
Romano 1992), which keeps the dependence inside a block. A replicate is a weight vector
over windows (how often each second was drawn); the replicate's merged histogram of every
replicate in a chunk is then one float32 BLAS product ``weights (R x n) @ counts (n x K)``,
so a one-hour run (3,600 windows per arm) with 1,000 replicates costs a few GEMMs, and
memory is bounded by ``chunk x K`` — it does not grow with the request count.

Block length: the AR(1) plug-in of Politis & White's optimal circular-block length,
b = (6 rho^2 / (1 - rho^2)^2)^(1/3) n^(1/3), never below n^(1/3) (the textbook rate) and
never above n / 8 (so at least eight blocks are drawn). rho is the lag-1 autocorrelation of
the per-second rank-test influence (see `ranktests.placement_deviations`).

In a split run both arms are resampled with the *same* seconds (paired blocks), which keeps
the shared per-second load in both arms of a replicate, exactly as in the experiment.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

__all__ = [
    "block_length",
    "bootstrap_p_value",
    "circular_block_weights",
    "percentile_interval",
    "quantile_rows",
    "replicate_chunks",
]


def block_length(n: int, rho: float = 0.0) -> int:
    """Block length for `n` windows whose influence series has lag-1 autocorrelation rho."""
    if n <= 1:
        return 1
    base = n ** (1 / 3)
    r = min(max(rho, 0.0), 0.95)
    plug_in = (6 * r**2 / (1 - r**2) ** 2) ** (1 / 3) * base
    return int(max(1, min(math.ceil(max(base, plug_in)), max(1, n // 8))))


def circular_block_weights(n: int, block: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size x n) float32: how often each window is drawn in each replicate."""
    n_blocks = math.ceil(n / block)
    starts = rng.integers(0, n, size=(size, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)).reshape(size, -1)[:, :n] % n
    flat = np.bincount((idx + n * np.arange(size)[:, None]).ravel(), minlength=size * n)
    return flat.reshape(size, n).astype(np.float32)


def replicate_chunks(
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    *,
    paired: bool,
    n_boot: int,
    block: int,
    rng: np.random.Generator,
    chunk: int = 250,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (hist_a, hist_b) replicate histograms, each ``(r x K)`` float32, r <= chunk.

    With `paired`, both arms must have the same windows (rows) and share the weights.
    """
    n_a, n_b = counts_a.shape[0], counts_b.shape[0]
    if paired and n_a != n_b:
        raise ValueError("paired resampling needs the same windows in both arms")
    done = 0
    while done < n_boot:
        size = min(chunk, n_boot - done)
        w_a = circular_block_weights(n_a, block, size, rng)
        w_b = w_a if paired else circular_block_weights(n_b, block, size, rng)
        yield w_a @ counts_a, w_b @ counts_b
        done += size


def quantile_rows(hists: np.ndarray, values: np.ndarray, pcts: np.ndarray) -> np.ndarray:
    """Percentiles (HdrHistogram rounding) of every row of ``hists`` -> (rows x len(pcts))."""
    cum = np.cumsum(hists, axis=1, dtype=np.float64)
    total = cum[:, -1]
    out = np.empty((hists.shape[0], pcts.size))
    for j, pct in enumerate(pcts):
        target = np.maximum(np.floor(pct / 100 * total + 0.5), 1.0)
        idx = (cum < target[:, None]).sum(axis=1)
        out[:, j] = values[np.minimum(idx, values.size - 1)]
    return out


def percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap replicates."""
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_p_value(replicates: np.ndarray) -> float:
    """Two-sided p-value for 'difference = 0', consistent with the percentile interval.

    p = 2 min(P*(d <= 0), P*(d >= 0)) with ties at 0 split evenly, floored at 1 / (R + 1).
    """
    r = replicates.size
    below = float(np.count_nonzero(replicates < 0))
    at = float(np.count_nonzero(replicates == 0))
    above = r - below - at
    tail = min(below + at / 2, above + at / 2)
    return float(min(1.0, max(2 * tail / r, 1 / (r + 1))))
