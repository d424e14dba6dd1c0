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

from harness.analysis.ab.abconfig import CompareConfig
from harness.analysis.ab.arms import ARM_COLUMNS, arms_from_table, endpoints_of
from harness.analysis.ab.compare import Comparison, compare_arms
from harness.analysis.ab.histdata import DEFAULT_RESOLUTION, ArmWindows
from harness.errors import SchemaVersionError, StoreError
from harness.results.store import SCHEMA_VERSION, Run, load_run

__all__ = ["compare_runs", "read_arms", "run_endpoints"]

RunLike = Run | str | os.PathLike[str]


def _run(run: RunLike) -> Run:
    if isinstance(run, Run):
        return run
    loaded = load_run(run)
    if loaded.meta.get("schema_version") != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{loaded.run_dir / 'run.json'}: schema_version "
            f"{loaded.meta.get('schema_version')!r}, this harness reads {SCHEMA_VERSION}"
        )
    return loaded


def run_endpoints(run: RunLike) -> tuple[str, ...]:
    """The endpoints (arms) a run recorded, sorted."""
    return endpoints_of(_run(run).windows_table(["endpoint"]))


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


def compare_runs(
    run_a: RunLike,
    run_b: RunLike | None = None,
    *,
    arms: Sequence[str] = (),
    config: CompareConfig | None = None,
    skip_warmup: bool = True,
    uncorrected: bool = False,
) -> Comparison:
    """Judge B against A. One run: its two endpoints (or `arms`), split design. Two runs:
    one endpoint each (or `arms` = [A's, B's]), two-runs design (time effects confounded)."""
    config = config or CompareConfig()
    opts = {"skip_warmup": skip_warmup, "uncorrected": uncorrected}
    a = _run(run_a)
    if run_b is None:
        names = list(arms) or list(run_endpoints(a))
        if len(names) != 2:
            raise StoreError(f"{a.run_dir}: has endpoints {list(run_endpoints(a))}; name two arms")
        arm_a, arm_b = read_arms(a, names, **opts)
        return compare_arms(arm_a, arm_b, config, design="split")
    b = _run(run_b)
    ep_a, ep_b = (arms[0], arms[-1]) if arms else (run_endpoints(a)[0], run_endpoints(b)[0])
    (arm_a,) = read_arms(a, [ep_a], **opts)
    (arm_b,) = read_arms(b, [ep_b], **opts)
    return compare_arms(arm_a, arm_b, config, design="two-runs")
