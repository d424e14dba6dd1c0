"""The shipped trace is found by path: the orchestrator never imports the Locust side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.traces import shipped_trace_path

REPO = Path(__file__).resolve().parents[2]


def test_shipped_trace_path_is_the_file_in_scenarios_data():
    assert shipped_trace_path() == REPO / "scenarios" / "data" / "azure_llm_conv_2023.csv"
    assert shipped_trace_path().stat().st_size > 100_000


def test_simulate_hpa_finds_the_trace_without_importing_scenarios_or_locust():
    code = (
        "import sys\n"
        "import harness.cli.simulate_hpa\n"
        "from harness.traces import shipped_trace_path\n"
        "shipped_trace_path()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scenarios', 'locust', "
        "'gevent')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
