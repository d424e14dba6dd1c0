"""The capacity sections of a report: the sweep (curves, fits, the answer) and the plan
(instance arithmetic, HPA manifest, HPA simulation).

Why they read sweep.json / plan.json and do not refit: the report shows what the sweep and
the plan concluded (their numbers are the ones a reviewer will see in the CLI output); the
fitted curves are only *evaluated* here (`harness.analysis.capacity.curves`) to be drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.capacity.curves import latency_curve, usl_throughput
from harness.report import data, figures
from harness.report.model import FigureItem, Section, Table, fmt_ms, fmt_num
from harness.results.sweeps import SweepData, read_sweep

__all__ = ["plan_headline", "plan_section", "sweep_headline", "sweep_section"]

PLAN_MANIFEST = "hpa.yaml"
HPA_CAPTION = (
    "The {traffic} traffic (grey, rescaled to the planned peak) replayed through each HPA "
    "setting: replicas over time (top) and the p99 predicted from the plan's fitted curve "
    "(bottom) against the SLO. Minutes over the SLO and replica-hours per setting are in the "
    "table."
)


def sweep_headline(sweep: SweepData) -> str:
    meta = sweep.meta
    best = ((meta.get("latency") or {}).get("max_under_slo") or {}).get("throughput")
    slo = sweep.slo_p99_ms
    steps = len(sweep.columns["load"])
    head = f"sweep ({sweep.mode} loop, {steps} steps)"
    if best is None:
        return f"{head}: no step met the {fmt_ms(slo)} p99 SLO"
    return (
        f"{head}: max {fmt_num(best)} req/s under the {fmt_ms(slo)} p99 SLO "
        f"(best load {fmt_num(meta.get('best_load'))})"
    )


def sweep_section(run_dir: Path, prefix: str = "") -> Section:
    sweep = read_sweep(run_dir)
    steps = data.sweep_frame(sweep.columns)
    meta = sweep.meta
    fit = (meta.get("latency") or {}).get("fit")
    fitted = None
    if fit and steps["throughput_rps"].notna().any():
        grid = np.linspace(
            0.0, min(float(steps["throughput_rps"].max()) * 1.05, fit["saturation"] * 0.995), 200
        )
        p99 = latency_curve(grid, fit["a_ms"], fit["b_ms"], fit["saturation"])
        fitted = pd.DataFrame({"throughput_rps": grid, "p99_ms": p99})
    items = [
        FigureItem(
            f"{prefix}sweep_curve",
            "Throughput vs p99 latency",
            "Each step's achieved throughput and p99 (circles passed the sweep's criteria, crosses "
            "failed); the grey line is the fitted queueing curve p99 = a + b·u/(1−u), u = X / "
            "saturation; the diamond is its knee; the green line the highest throughput whose "
            "measured and fitted p99 both meet the SLO (red).",
            figures.png_bytes(figures.sweep_curve(steps, meta, fitted, sweep.slo_p99_ms)),
        )
    ]
    usl = meta.get("usl")
    if usl and "error" not in usl and meta.get("concurrency", "load") == "load":
        items.append(_usl_figure(steps, usl, prefix))
    return Section(
        "sweep",
        "Sweep: throughput and latency",
        facts=_sweep_facts(sweep),
        tables=(_steps_table(steps), *_fit_tables(meta)),
        figures=tuple(items),
        notes=tuple(_fit_errors(meta)),
    )


def _usl_figure(steps: pd.DataFrame, usl: dict[str, Any], prefix: str) -> FigureItem:
    n = np.linspace(0.0, float(steps["load"].max()) * 1.1, 200)
    value = {k: usl[k]["value"] for k in ("lambda", "sigma", "kappa")}
    fitted = pd.DataFrame(
        {"n": n, "x": usl_throughput(n, value["lambda"], value["sigma"], value["kappa"])}
    )
    # the envelope of the curves with each parameter at its interval's end (not a joint band)
    ends = [
        usl_throughput(n, lam, sig, kap)
        for lam in (usl["lambda"]["lo"], usl["lambda"]["hi"])
        for sig in (usl["sigma"]["lo"], usl["sigma"]["hi"])
        for kap in (usl["kappa"]["lo"], usl["kappa"]["hi"])
    ]
    band = pd.DataFrame({"n": n, "lo": np.min(ends, axis=0), "hi": np.max(ends, axis=0)})
    return FigureItem(
        f"{prefix}usl",
        "Universal Scalability Law",
        "Throughput X(N) = λN / (1 + σ(N−1) + κN(N−1)) fitted to the steps (closed loop: N "
        "is the number of users). Shaded: the curves with every parameter at either end of "
        "its confidence interval, a visual range rather than a joint band. The peak is at "
        "N* = √((1−σ)/κ).",
        figures.png_bytes(figures.usl_curve(steps, fitted, band)),
    )


def _sweep_facts(sweep: SweepData) -> tuple[str, ...]:
    meta, crit, search = sweep.meta, sweep.meta.get("criteria", {}), sweep.meta.get("search", {})
    latency = meta.get("latency") or {}
    ratio = crit.get("min_throughput_ratio")
    best = latency.get("max_under_slo") or {}
    knee = latency.get("knee") or {}
    facts = [
        f"{sweep.mode} loop; criteria: p99 ≤ {fmt_ms(crit.get('p99_ms'))}, error rate ≤ "
        f"{fmt_num(crit.get('max_error_rate'))}"
        + (f", throughput ≥ {fmt_num(ratio)} × offered" if ratio is not None else ""),
        f"search: {search.get('steps')} steps instead of {search.get('linear_steps')} "
        f"(linear); stopped because {search.get('reason')}",
        f"best load {fmt_num(meta.get('best_load'))} ({fmt_num(meta.get('best_throughput_rps'))}"
        f" req/s); first failing load {fmt_num(meta.get('first_failing_load'))}",
        f"max throughput under the SLO: {fmt_num(best.get('throughput'))} req/s at load "
        f"{fmt_num(best.get('load'))} (p99 measured {fmt_ms(best.get('p99_measured_ms'))}, "
        f"fitted {fmt_ms(best.get('p99_fitted_ms'))}); fitted curve crosses the SLO at "
        f"{fmt_num(best.get('fitted_crossing'))} req/s",
        f"knee of the fitted curve: {fmt_num(knee.get('throughput'))} req/s at p99 "
        f"{fmt_ms(knee.get('p99_ms'))}",
    ]
    if meta.get("unmeasured_loads"):
        facts.append(
            "loads the generator could not measure: "
            + ", ".join(fmt_num(x) for x in meta["unmeasured_loads"])
        )
    return tuple(facts)


def _steps_table(steps: pd.DataFrame) -> Table:
    rows = tuple(
        (
            str(r.step),
            fmt_num(r.load),
            fmt_num(r.throughput_rps),
            fmt_num(r.p50_ms),
            fmt_num(r.p99_ms),
            fmt_num(r.error_rate),
            "yes" if r.stable else "no",
            "pass" if r.passed else "fail",
        )
        for r in steps.itertuples()
    )
    header = ("step", "load", "req/s", "p50 (ms)", "p99 (ms)", "error rate", "stable", "verdict")
    return Table("Steps (sorted by load)", header, rows)


def _fit_tables(meta: dict[str, Any]) -> tuple[Table, ...]:
    tables = []
    usl = meta.get("usl")
    if usl and "error" not in usl:
        rows = tuple(
            (
                name,
                fmt_num(usl[key]["value"], 4),
                f"[{fmt_num(usl[key]['lo'], 4)}, {fmt_num(usl[key]['hi'], 4)}]",
            )
            for key, name in (
                ("lambda", "λ (req/s per unit N)"),
                ("sigma", "σ contention"),
                ("kappa", "κ coherency"),
            )
        )
        rows += (
            ("R²", fmt_num(usl.get("r2"), 4), ""),
            ("N* (peak)", fmt_num(usl.get("n_star")), ""),
            ("X(N*) (req/s)", fmt_num(usl.get("x_max")), ""),
        )
        tables.append(
            Table(
                f"USL fit (N = {meta.get('concurrency', 'load')} concurrency)",
                ("parameter", "estimate", "95 % CI"),
                rows,
            )
        )
    fit = (meta.get("latency") or {}).get("fit")
    if fit:
        rows = (
            ("a: p99 at zero load (ms)", fmt_num(fit["a_ms"])),
            ("b: queueing scale (ms)", fmt_num(fit["b_ms"])),
            ("saturation throughput (req/s)", fmt_num(fit["saturation"])),
            ("R²", fmt_num(fit["r2"], 4)),
        )
        tables.append(Table("Latency fit p99 = a + b·u/(1−u)", ("parameter", "estimate"), rows))
    return tuple(tables)


def _fit_errors(meta: dict[str, Any]) -> list[str]:
    return [
        f"{name} fit: {part['error']}"
        for name, part in (("USL", meta.get("usl")), ("latency", meta.get("latency")))
        if isinstance(part, dict) and "error" in part
    ]


def plan_headline(plan: dict[str, Any]) -> str:
    slo = (plan.get("inputs") or {}).get("slo_p99_ms")
    tail = f" at p99 ≤ {fmt_ms(slo)}" if slo else ""
    return (
        f"plan: {plan['replicas']} replicas for {fmt_num(plan['peak_qps'])} req/s at "
        f"peak{tail} (HPA {plan['min_replicas']}..{plan['max_replicas']})"
    )


def plan_section(plan_dir: Path, plan: dict[str, Any], prefix: str = "") -> Section:
    """plan.json as `harness plan` printed it, the HPA manifest, the HPA simulation."""
    op = plan.get("operating_point") or {}
    rows = (
        ("replicas at peak", str(plan["replicas"])),
        ("HPA minReplicas", str(plan["min_replicas"])),
        ("HPA maxReplicas", str(plan["max_replicas"])),
        ("utilisation target ρ_t", fmt_num(plan.get("rho_target"))),
        ("HPA in-flight target / pod", fmt_num(plan.get("hpa_inflight_target"))),
        ("HPA requests/s guard / pod", fmt_num(plan.get("hpa_rps_target"))),
        ("operating point", _operating_point(op)),
    )
    arithmetic = tuple((str(i), line) for i, line in enumerate(plan.get("arithmetic", []), 1))
    tables = [
        Table(f"Capacity plan for {fmt_num(plan['peak_qps'])} req/s at peak", ("", ""), rows),
        Table("Arithmetic", ("#", "step"), arithmetic),
    ]
    code = []
    manifest = plan_dir / PLAN_MANIFEST
    if manifest.is_file():
        code.append((f"HPA manifest ({PLAN_MANIFEST}, autoscaling/v2)", manifest.read_text()))
    figs: list[FigureItem] = []
    sim = data.read_optional_json(plan_dir / "hpa_sim.json")
    if sim is not None:
        tables.append(_hpa_table(sim))
        frame = data.hpa_frame(plan_dir / "hpa_sim.csv")
        if frame is not None and not frame.empty:
            figs.append(
                FigureItem(
                    f"{prefix}hpa_simulation",
                    "HPA simulation",
                    HPA_CAPTION.format(traffic=sim.get("traffic")),
                    figures.png_bytes(figures.hpa_simulation(frame, sim.get("slo_p99_ms"))),
                )
            )
    return Section(
        "plan",
        "Capacity plan",
        tables=tuple(tables),
        figures=tuple(figs),
        code=tuple(code),
        notes=tuple(plan.get("notes", [])),
    )


def _operating_point(op: dict[str, Any]) -> str:
    mean_s = op.get("mean_latency_s")
    return (
        f"{op.get('source')}: concurrency {fmt_num(op.get('concurrency'))}, "
        f"{fmt_num(op.get('throughput'))} req/s, mean latency "
        f"{fmt_ms(None if mean_s is None else 1000 * mean_s)}"
    )


def _hpa_table(sim: dict[str, Any]) -> Table:
    rows = tuple(
        (
            str(r["name"]),
            fmt_num(r["minutes_over_slo"]),
            fmt_num(r["replica_hours"]),
            str(r["max_replicas"]),
            fmt_num(r["mean_replicas"]),
            str(r["scale_events"]),
            fmt_num(r.get("worst_p99_ms")),
        )
        for r in sim["results"]
    )
    header = (
        "setting",
        "minutes over SLO",
        "replica-hours",
        "max pods",
        "mean pods",
        "scale events",
        "worst p99 (ms)",
    )
    return Table(
        f"HPA simulation ({sim.get('seconds')} s of {sim.get('traffic')} traffic, "
        f"planned {sim.get('planned_replicas')} replicas)",
        header,
        rows,
    )
