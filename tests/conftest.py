"""Project-wide fixtures: the default model repository (built once) and a clean environment.

Why: building the models (training two digits classifiers, exporting four ONNX graphs)
takes a few seconds, so one session-scoped copy serves every test; and code that reads
`HARNESS_*` environment variables (model repository, admin token, scenario overrides) must
not see whatever the developer's shell exports, so those are cleared for every test.

Integration tests (everything under tests/integration: real servers, nginx, Locust, Prometheus
on a shared 2-core host; marked `integration` here if a module forgot the marker) are run
once more when they fail (pytest-rerunfailures): each of the last three CI runs failed on a
different timing-dependent assertion that passed on rerun and in every local run. A rerun is
printed ("R" in the progress line, "N rerun" in the summary) and listed in the CI log, so a
test that starts needing it is seen; a test that fails twice fails the suite. Unit tests are
never rerun: they are deterministic or seeded, and a failure there is a bug. The failure that
caused each rerun is printed at the end of the run ("failures that were rerun"), so a log
from CI says why, not only that, a test needed its second try.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reference_server.config import ServerConfig

ENV_PREFIXES = ("HARNESS_",)
INTEGRATION_RERUNS = 1


INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in item.path.parents and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)  # every test there: none forgotten
        if item.get_closest_marker("integration") and not item.get_closest_marker("flaky"):
            item.add_marker(pytest.mark.flaky(reruns=INTEGRATION_RERUNS, reruns_delay=2))


RERUN_TAIL_LINES = 40  # of each rerun's first failure: the assertion and where it failed
_rerun_failures: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome == "rerun":  # pytest-rerunfailures' name for the failed first try
        _rerun_failures.append((report.nodeid, report.longreprtext))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _rerun_failures:
        return
    terminalreporter.section("failures that were rerun (first try)")
    for nodeid, text in _rerun_failures:
        terminalreporter.write_line(f"--- {nodeid}")
        for line in text.splitlines()[-RERUN_TAIL_LINES:]:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear every environment variable the project's code reads (HARNESS_*)."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default models (digits v1+v2, mlp, cnn), built once into a temporary directory."""
    from reference_server.models.build import build_repository

    return build_repository(tmp_path_factory.mktemp("models") / "repo")


@pytest.fixture
def server_config() -> Callable[..., ServerConfig]:
    """Factory: a reference-server config for in-process cores (CPU, one intra-op thread)."""

    def make(model_repository: Path | None, **overrides: object) -> ServerConfig:
        values = {"model_repository": model_repository, "device": "cpu", "intra_op_threads": 1}
        return ServerConfig(**{**values, **overrides})

    return make
