"""The notebooks run against runs this test makes (nbclient, bounded), and are stored clean."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.harness.report.runs import gameday_doc, split_run, sweep_with_plan, write_gameday

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_and_they_are_stored_without_outputs() -> None:
    assert [p.name for p in NOTEBOOKS] == ["reading_runs.ipynb"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_against_fresh_runs(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = split_run(tmp_path / "split")
    gameday_dir = split_run(tmp_path / "gd", seed=5)
    write_gameday(gameday_dir, gameday_doc("gd"))
    sweep_dir = sweep_with_plan(tmp_path, monkeypatch)
    monkeypatch.setenv("HARNESS_RUN", str(run_dir))  # the kernel inherits the environment
    monkeypatch.setenv("HARNESS_SWEEP", str(sweep_dir))
    monkeypatch.setenv("HARNESS_GAMEDAY", str(gameday_dir))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # latency, throughput, errors, A/B CDF, sweep curve, game-day timeline: six figures
    assert len(images) == 6
