"""Faults for testing atomic writers: a write that stops half-way, a rename that fails.

Why: an atomic writer (temp file + `os.replace`) must leave the old file whole, and no temp
file behind, when it fails *after* bytes reached the disk. A fault raised before anything is
written (an unserialisable value) cannot tell an atomic writer from one that writes in place.
Both faults here strike mid-write: `torn_writes` makes every file opened for writing write
half of what it is given (flushed to disk) and then raise ENOSPC; `failing_replace` lets the
temp file be written in full and then makes the rename fail.

Both patch `io.open`/`builtins.open` or `os.replace` for the duration of a `with` block only.
`io.open` is what `os.fdopen`, `Path.open`, `Path.write_text` and `Path.write_bytes` call.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


class _TornFile:
    """A file object whose every write() writes the first half, flushes, then raises."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: Any) -> int:
        self._handle.write(data[: max(len(data) // 2, 1)])
        self._handle.flush()
        raise OSError(errno.ENOSPC, "No space left on device (injected half-way)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._handle)

    def __enter__(self) -> _TornFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


@contextmanager
def torn_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_open = io.open

    def opener(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        return _TornFile(handle) if set(mode) & set("wax+") else handle

    with monkeypatch.context() as patch:
        patch.setattr(io, "open", opener)
        patch.setattr(builtins, "open", opener)
        yield


@contextmanager
def failing_replace(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """`os.replace` raises EXDEV; yields the (src, dst) pairs it was asked to rename."""
    calls: list[tuple[str, str]] = []

    def refuse(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        calls.append((os.fspath(src), os.fspath(dst)))
        raise OSError(errno.EXDEV, "Invalid cross-device link (injected)")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", refuse)
        yield calls


def listing(folder: Path) -> list[str]:
    """Every entry of `folder`, hidden temp files included, sorted."""
    return sorted(p.name for p in folder.iterdir())
