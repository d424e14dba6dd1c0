"""LocalStack never builds over a user's own model repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.stack import LocalStack


def test_missing_user_repository_is_a_config_error(tmp_path: Path) -> None:
    stack = LocalStack(replicas=1, model_repository=tmp_path / "nope", workdir=tmp_path / "w")
    with pytest.raises(ConfigError, match="not a directory"):
        stack.start()
    assert not (tmp_path / "nope").exists(), "nothing may be built at a user-given path"


def test_user_repository_is_used_as_is(tmp_path: Path) -> None:
    own = tmp_path / "own"
    (own / "mymodel").mkdir(parents=True)
    stack = LocalStack(replicas=1, model_repository=own, workdir=tmp_path / "w")
    assert stack._ensure_models() == own
    assert sorted(p.name for p in own.iterdir()) == ["mymodel"]  # not replaced by defaults


def test_bad_replica_count_and_non_loopback_host_are_refused() -> None:
    with pytest.raises(ConfigError, match="replicas"):
        LocalStack(replicas=0)
    with pytest.raises(ConfigError, match="loopback"):
        LocalStack(host="0.0.0.0")
