"""The build stamp: a default repository built by another model-build version is rebuilt."""

from __future__ import annotations

import shutil
from pathlib import Path

from reference_server.models.build import (
    BUILD_VERSION,
    STAMP_FILE,
    ensure_repository,
    repository_complete,
)


def test_stale_or_missing_stamp_triggers_a_rebuild(model_repository: Path, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    shutil.copytree(model_repository, repo)
    assert repository_complete(repo)
    (repo / STAMP_FILE).write_text("0\n")  # built by an older version of the build code
    marker = repo / "mlp" / "stale-marker"
    marker.write_text("from the old build")
    assert not repository_complete(repo)
    ensure_repository(repo)
    assert (repo / STAMP_FILE).read_text().strip() == BUILD_VERSION
    assert not marker.exists(), "the stale repository must be replaced, not patched"
    assert repository_complete(repo)
