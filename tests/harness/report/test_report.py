"""`harness report` on small run directories: numbers against summary.json and the windows,
one self-contained page that opens in headless Chromium, sections by what a directory holds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.compare import compare_runs
from harness.latency.hdr import decode_histogram, new_histogram
from harness.report import build_report, write_reports
from harness.report.data import latency_frame
from harness.results import load_run
from tests.harness.report.chromium import CHROMIUM, open_page
from tests.harness.report.runs import (
    gameday_doc,
    one_arm_run,
    split_run,
    sweep_with_plan,
    write_gameday,
)

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)""", re.IGNORECASE)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return split_run(tmp_path_factory.mktemp("runs") / "split")


@pytest.fixture(scope="module")
def split_report(split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    assert main(["report", str(split), "--out", str(out)]) == 0
    return out / "split"


def test_summary_md_states_the_summary_numbers(split: Path, split_report: Path) -> None:
    summary = json.loads((split / "summary.json").read_text())
    md = (split_report / "summary.md").read_text()
    p99, rate, errors = (
        summary["latency_ms"]["p99"],
        summary["throughput_rps"],
        summary["error_rate"],
    )
    headline = (
        f"**valid run; p99 {p99:.3g} ms meets the 250 ms SLO at {rate:.3g} req/s; "
        f"{100 * errors:.2g} % errors**"
    )
    assert md.splitlines()[2] == headline  # the summary line comes first, after the title
    for key, label in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
        value = summary["latency_ms"][key]
        lo, hi = summary["latency_ci_ms"][key]
        row = f"| {label} | {value:.3g} | {summary['latency_uncorrected_ms'][key]:.3g} | "
        assert row + f"[{lo:.3g}, {hi:.3g}] |" in md
    assert f"| p99_ms | 250 | {p99:.3g} | pass |" in md


def test_per_second_percentiles_are_the_window_histograms_own(split: Path) -> None:
    frame = latency_frame(load_run(split)).set_index("second")
    by_second: dict[int, object] = {}
    for record in load_run(split).windows:
        if record.outcome == "success":
            hist = by_second.setdefault(record.second, new_histogram())
            hist.add(decode_histogram(record.hdr))
    assert sorted(by_second) == list(frame.index)
    for second, hist in by_second.items():
        for column, p in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p999_ms", 99.9)):
            assert frame.loc[second, column] == hist.get_value_at_percentile(p) / 1000.0
        assert frame.loc[second, "successes"] == hist.get_total_count()


def test_the_page_is_one_self_contained_file(split_report: Path) -> None:
    html = (split_report / "report.html").read_text()
    assert not EXTERNAL.search(html)
    sources = re.findall(r"""\bsrc\s*=\s*["']([^"']*)""", html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<link\b|<script\b|@import|url\(", html, re.IGNORECASE)
    names = {p.stem for p in (split_report / "figures").glob("*.png")}
    assert names == {"latency_over_time", "throughput", "errors", "ab_cdf"}
    assert len(sources) == len(names)


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (scripts/install_system_deps.sh installs Debian's chromium)",
)
def test_the_page_opens_in_headless_chromium_without_errors(
    split_report: Path, tmp_path: Path
) -> None:
    page = open_page(split_report / "report.html")
    assert page.failed_resources == [] and page.console_errors == []
    assert all(u.startswith("data:") for u in page.requested[1:]), page.requested[:1]
    assert page.requested[0] == (split_report / "report.html").resolve().as_uri()
    shot = tmp_path / "report.png"
    shot.write_bytes(page.screenshot)
    assert page.screenshot.startswith(b"\x89PNG") and len(page.screenshot) > 50_000


def test_split_run_gets_the_compare_verdict(split: Path, split_report: Path) -> None:
    result = compare_runs(split)
    md = (split_report / "summary.md").read_text()
    assert "## A/B comparison (split run)" in md
    assert f"- verdict: {result.verdict.upper()}" in md
    p99 = result.metric("p99")
    assert f"| latency p99 | {p99.a:.3g} | {p99.b:.3g} |" in md


def test_two_runs_of_one_scenario_the_second_compared_with_the_first(tmp_path: Path) -> None:
    a, b = one_arm_run(tmp_path / "a", seed=10), one_arm_run(tmp_path / "b", 20, scale=1.4)
    files = write_reports([a, b], tmp_path / "reports", compare=compare_runs)
    first, second = (f.report for f in files)
    assert [s.key for s in first.sections] == ["run"]
    assert [s.key for s in second.sections] == ["run", "comparison"]
    comparison = second.sections[1]
    assert comparison.title == "Comparison with a (A = that run, B = this one)"
    assert comparison.facts[0].startswith(f"verdict: {compare_runs(a, b).verdict.upper()}")
    assert (tmp_path / "reports" / "b" / "figures" / "comparison_cdf.png").is_file()


def test_sweep_plan_and_hpa_simulation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep_dir = sweep_with_plan(tmp_path, monkeypatch)
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    plan = json.loads((sweep_dir / "plan.json").read_text())
    (files,) = write_reports([sweep_dir], tmp_path / "reports")
    report = files.report
    assert [s.key for s in report.sections] == ["plan", "sweep"]
    assert report.headline == (
        f"plan: {plan['replicas']} replicas for 5000 req/s at peak at p99 ≤ 100 ms "
        f"(HPA {plan['min_replicas']}..{plan['max_replicas']})"
    )
    best = meta["latency"]["max_under_slo"]
    sweep = report.sections[1]
    assert best["throughput"] > 1000  # 3 significant digits would hide units: whole req/s
    assert any(
        f.startswith(
            f"max throughput under the SLO: {best['throughput']:.0f} req/s "
            f"at load {best['load']:.0f}"
        )
        for f in sweep.facts
    )
    kappa = meta["usl"]["kappa"]
    usl = next(t for t in sweep.tables if t.title.startswith("USL fit"))
    assert usl.rows[2][1:] == (f"{kappa['value']:.4g}", f"[{kappa['lo']:.4g}, {kappa['hi']:.4g}]")
    stems = {p.stem for p in files.figures}
    assert stems == {"sweep_curve", "usl", "hpa_simulation"}
    html = files.html.read_text()
    assert "kind: HorizontalPodAutoscaler" in html and not EXTERNAL.search(html)
    sim = json.loads((sweep_dir / "hpa_sim.json").read_text())
    rows = next(t for t in report.sections[0].tables if t.title.startswith("HPA simulation")).rows
    assert [r[0] for r in rows] == [r["name"] for r in sim["results"]]


def test_game_day_section_from_gameday_json(split: Path, tmp_path: Path) -> None:
    run_dir = split_run(tmp_path / "gd", seed=3)
    write_gameday(run_dir, gameday_doc("gd"))
    report = build_report(run_dir)
    assert report.headline == (
        "game day PASS (kill one replica): detected in 1 s, recovered in 3 s, 37 failed requests"
    )
    section = report.sections[0]
    assert section.key == "gameday" and section.figures[0].name == "gameday_timeline"
    tables = {t.title: dict((r[0], r[1:]) for r in t.rows) for t in section.tables}
    assert tables["Steady-state hypothesis"]["during"] == ("NOT met",)
    assert tables["Impact"]["failed requests"] == ("37",)
    assert tables["Before / during / after the fault"]["during"][2:4] == ("4 %", "90")
    assert tables["Rollback check"]["stack after the rollback equals before"] == ("yes",)


def test_game_day_without_impact_and_runs_without_gameday_json(split: Path, tmp_path: Path) -> None:
    assert "gameday" not in [s.key for s in build_report(split).sections]
    run_dir = split_run(tmp_path / "gd", seed=4)
    write_gameday(
        run_dir,
        {
            **gameday_doc("gd"),
            "impact": None,
            "verdict": {
                "result": "fail",
                "reasons": ["no impact analysis (no windows measured)"],
                "exit_code": 1,
            },
        },
    )
    section = build_report(run_dir).sections[0]
    assert "no impact analysis (no windows measured, or no fault injected)" in section.facts
    assert section.notes == ("no impact analysis (no windows measured)",)


def test_a_directory_that_is_no_run_exits_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == (
        f"error: {tmp_path / 'empty'}: not a run, sweep or plan directory (no "
        "run.json, sweep.json or plan.json)"
    )
