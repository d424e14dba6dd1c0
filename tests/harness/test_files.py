"""The one atomic-file helper: shared results get a plain file's permissions (not the temp
file's private 0600), a secret keeps 0600 from its first byte on."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from harness.files import atomic_write_bytes, atomic_write_json, atomic_write_text


@pytest.fixture()
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_get_what_open_would_give(tmp_path: Path, umask_027) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what a plain open() gives under this umask: 0640
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    for name in ("a.txt", "a.json", "a.bin"):
        assert _mode(tmp_path / name) == _mode(plain) == 0o640, name


def test_a_secret_is_private_from_the_start(tmp_path: Path, umask_027, monkeypatch) -> None:
    seen = []
    real_replace = os.replace

    def spy(src, dst):  # the temp file's mode at the moment it becomes the target
        seen.append(_mode(Path(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_text(tmp_path / "state.json", "{}", mode=0o600)
    assert seen == [0o600] and _mode(tmp_path / "state.json") == 0o600


def test_a_stack_state_file_is_private(tmp_path: Path) -> None:
    from harness.stack.local import StackState, write_state

    state = StackState(url="http://127.0.0.1:1", grpc_url="127.0.0.1:2", replicas=())
    write_state(tmp_path / "stack.json", state)
    assert _mode(tmp_path / "stack.json") == 0o600
