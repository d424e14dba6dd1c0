"""The end-of-run table `harness run` prints: every number read from the typed summary, the
per-endpoint latency from the intended send AND from the actual send, goodput beside
throughput, and a caption whose lines fit a narrow terminal (an 87-column terminal used to
get a lone "0" on its own line)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from harness.cli.run import summary_table
from harness.config import validate_scenario
from harness.loadgen.recorder import LatencyRecorder
from harness.results import RunWriter, load_run, summarize

SCENARIO = {
    "name": "late-sends",
    "target": {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "digits"},
    "load": {"mode": "open", "rate": 200, "duration": "20s"},
    "slo": {"p99_ms": 10},
}


@pytest.fixture()
def summary(tmp_path):
    recorder = LatencyRecorder()
    for i in range(4000):  # 20 s at 200/s; every request sent 30 ms late, served in 2 ms
        t = i / 200
        recorder.record("digits/1", True, t, t + 0.030, t + 0.032)
    config = validate_scenario(SCENARIO).model_dump(mode="json")
    writer = RunWriter(tmp_path, "late-sends", scenario_config=config)
    writer.start()
    writer.write_windows(recorder.flush())
    writer.finish("complete")
    out = summarize(load_run(writer.run_dir))
    out["loadgen"] = {  # as the load engine adds it (a synthetic run has no stream/)
        "mode": "open", "workers_expected": 1, "workers_finished": 1, "workers_lost": [],
        "sent": 4000, "dropped": 7, "abandoned": 0, "rejected": 0,
        "schedule_lag_ms": {"p50": 0.1, "p99": 29.87}, "worker_cpu_s": 1.0,
        "max_cpu_percent": 20.0, "unhealthy_seconds": [], "unhealthy_reasons": [],
    }  # fmt: skip
    return out


def _render(summary, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(summary_table(summary))
    return console.export_text().splitlines()


def test_endpoint_rows_show_latency_from_intended_and_actual_send(summary):
    lines = _render(summary, 120)
    row = next(line for line in lines if "digits/1" in line)
    numbers = re.findall(r"\d+\.\d+|\d+", row.split("digits/1", 1)[1])
    # measured, failures, rps, p50, p99, p99 from send, accuracy("-")
    measured, failures, _rps, _p50, p99, p99_sent = numbers[:6]
    assert (int(measured), int(failures)) == (4000, 0)
    assert float(p99) == pytest.approx(32, rel=0.01)  # from the intended start
    assert float(p99_sent) == pytest.approx(2, rel=0.01)  # from the actual send


@pytest.mark.parametrize("width", [80, 87, 120])
def test_caption_lines_stay_whole_in_a_narrow_terminal(summary, width):
    text = "\n".join(_render(summary, width))
    for line in (
        "4000 requests in all (0 failed)",
        "generator: dropped 7; schedule lag p99 29.87 ms; unhealthy seconds 0",
    ):
        assert line in text, text
    assert re.search(r"^SLO p99_ms: 3[12]\.\d\d vs 10\.0 \[FAIL\]", text, re.M), text
    # every answer took 32 ms from its intended start: none is within the 10 ms SLO
    assert "goodput 0.0 req/s within 10 ms (0.0% of answers) of 200.0 req/s answered" in text
    assert not re.search(r"^\s*\d+\s*$", text, re.M), "a number wrapped onto its own line"
