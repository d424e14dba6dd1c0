"""Project-wide fixtures: the default model repository (built once) and a clean environment.

Why: building the models (training two digits classifiers, exporting four ONNX graphs)
takes a few seconds, so one session-scoped copy serves every test; and code that reads
`HARNESS_*` environment variables (model repository, admin token, scenario overrides) must
not see whatever the developer's shell exports, so those are cleared for every test.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reference_server.config import ServerConfig

ENV_PREFIXES = ("HARNESS_",)


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
