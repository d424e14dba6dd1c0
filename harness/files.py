"""Files written whole or not at all, and JSON read with a clear error: the one helper every
part of the harness uses (stdlib only, so Locust's gevent processes may import it too).

A write goes to a temporary file in the same directory, is flushed and fsynced, then
renamed over the target (`os.replace` is atomic on POSIX): a reader sees the old file or the
new one, never half of either, and a failed write leaves neither a torn file nor a temp file.
The file gets the permissions a plain `open()` would give (0666 less the umask: results and
reports are meant to be shared), not the temp file's private 0600 -- unless `mode` asks for
it (a file holding a secret passes 0o600; it is never readable by others, not even briefly).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "read_json_file"]


def _umask() -> int:
    """The process umask, read without changing it (Linux), else by the set-and-restore."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """`data` into `path`, whole or not at all; `mode` None: 0666 less the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_umask() if mode is None else mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


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
