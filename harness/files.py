"""Files written whole or not at all, and JSON read with a clear error: the one helper every
part of the harness uses (stdlib only, so Locust's gevent processes may import it too).

A write goes to a temporary file in the same directory, is flushed and fsynced, then
renamed over the target (`os.replace` is atomic on POSIX): a reader sees the old file or the
new one, never half of either, and a failed write leaves neither a torn file nor a temp file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "read_json_file"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(
    path: Path, obj: Any, *, indent: int | None = 2, default: Any = None, allow_nan: bool = False
) -> None:
    """`obj` as JSON followed by a newline (NaN refused unless `allow_nan`: JSON has none)."""
    text = json.dumps(obj, indent=indent, default=default, allow_nan=allow_nan)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def read_json_file(path: Path) -> Any:
    """The parsed JSON in `path`; ValueError naming the file when it is missing or invalid."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: missing") from exc
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from exc
