"""A/B comparison of run directories: read the arms through the one run reader, judge them.

    from harness import compare_runs
    result = compare_runs("results/<split-run>")            # its two endpoints, split design
    result = compare_runs("results/a", "results/b")         # one endpoint each, two runs
    result.verdict, result.regression, result.to_dict()

The statistics are `harness.analysis.ab` (pure); the files are `harness.results`; this module
joins the two, so that the CLI, notebooks and reports compare runs the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pyarrow as pa

from harness.analysis.ab.abconfig import CompareConfig
from harness.analysis.ab.arms import ARM_COLUMNS, arms_from_table, endpoints_of
from harness.analysis.ab.compare import Comparison, compare_arms
from harness.analysis.ab.histdata import DEFAULT_RESOLUTION, ArmWindows
from harness.errors import ConfigError
from harness.results.store import Run, load_run

__all__ = ["compare_runs", "pick_arms", "read_arms", "read_run_arm", "run_endpoints"]

ALL_ENDPOINTS = "all"

RunLike = Run | str | os.PathLike[str]


def _run(run: RunLike) -> Run:
    return run if isinstance(run, Run) else load_run(run)  # load_run checks the version


def run_endpoints(run: RunLike) -> tuple[str, ...]:
    """The endpoints (arms) a run recorded, sorted."""
    return endpoints_of(_run(run).windows_table(["endpoint"]))


def pick_arms(
    run_a: RunLike, run_b: RunLike | None = None, arms: Sequence[str] = ()
) -> tuple[tuple[Run, str], tuple[Run, str]]:
    """(run, endpoint) of A and of B. One run: its two endpoints (or `arms`), the same `Run`
    twice; two runs: one endpoint each (or `arms` = [A's, B's]). ConfigError if ambiguous."""
    if len(arms) > 2:
        raise ConfigError("compare: give --arm at most twice (A, then B)")
    a = _run(run_a)
    endpoints_a = run_endpoints(a)
    if run_b is None:
        names = list(arms) or (list(endpoints_a) if len(endpoints_a) == 2 else [])
        if len(names) != 2:
            raise ConfigError(
                f"compare: {a.run_dir} has endpoints {list(endpoints_a)}; "
                "name the two arms with --arm A_ENDPOINT --arm B_ENDPOINT"
            )
        return (a, names[0]), (a, names[1])
    b = _run(run_b)
    endpoints_b = run_endpoints(b)
    if arms:
        return (a, arms[0]), (b, arms[-1])
    if len(endpoints_a) == 1 and len(endpoints_b) == 1:
        return (a, endpoints_a[0]), (b, endpoints_b[0])
    raise ConfigError("compare: the runs have several endpoints; choose with --arm")


def read_arms(
    run: RunLike,
    endpoints: Sequence[str],
    *,
    skip_warmup: bool = True,
    uncorrected: bool = False,
    resolution: float = DEFAULT_RESOLUTION,
) -> list[ArmWindows]:
    """One `ArmWindows` per endpoint of one run (one parquet read).

    Latency is measured from the intended start (`hdr`, no coordinated omission) unless
    `uncorrected`, which reads `hdr_uncorrected` (from the actual send) instead.
    """
    loaded = _run(run)
    column = "hdr_uncorrected" if uncorrected else "hdr"
    table = loaded.windows_table([column if c == "hdr" else c for c in ARM_COLUMNS])
    table = table.rename_columns(list(ARM_COLUMNS))
    notes: tuple[str, ...] = ()
    if loaded.status != "complete":
        notes = (f"run {loaded.run_id} has status {loaded.status!r}: it did not finish normally",)
    return arms_from_table(
        table,
        endpoints,
        measured_from_s=loaded.measured_from_s if skip_warmup else None,
        resolution=resolution,
        notes=notes,
        source=str(loaded.run_dir),
    )


def read_run_arm(run: RunLike, *, skip_warmup: bool = True) -> ArmWindows:
    """The whole run as one arm (every endpoint merged, named "all"): what a scheduled-run
    gate compares between two runs of one scenario, whatever split the scenario has."""
    loaded = _run(run)
    table = loaded.windows_table(list(ARM_COLUMNS))
    endpoint = pa.array([ALL_ENDPOINTS] * table.num_rows, type=pa.string())
    table = table.set_column(table.schema.get_field_index("endpoint"), "endpoint", endpoint)
    notes: tuple[str, ...] = ()
    if loaded.status != "complete":
        notes = (f"run {loaded.run_id} has status {loaded.status!r}: it did not finish normally",)
    (arm,) = arms_from_table(
        table,
        [ALL_ENDPOINTS],
        measured_from_s=loaded.measured_from_s if skip_warmup else None,
        notes=notes,
        source=str(loaded.run_dir),
    )
    return arm


def compare_runs(
    run_a: RunLike,
    run_b: RunLike | None = None,
    *,
    arms: Sequence[str] = (),
    config: CompareConfig | None = None,
    skip_warmup: bool = True,
    uncorrected: bool = False,
) -> Comparison:
    """Judge B against A (arms chosen by `pick_arms`). One run: split design; two runs:
    two-runs design (time effects confounded)."""
    (a, ep_a), (b, ep_b) = pick_arms(run_a, run_b, arms)
    opts = {"skip_warmup": skip_warmup, "uncorrected": uncorrected}
    if a is b:
        arm_a, arm_b = read_arms(a, [ep_a, ep_b], **opts)
        return compare_arms(arm_a, arm_b, config or CompareConfig(), design="split")
    (arm_a,) = read_arms(a, [ep_a], **opts)
    (arm_b,) = read_arms(b, [ep_b], **opts)
    return compare_arms(arm_a, arm_b, config or CompareConfig(), design="two-runs")
