"""The run's live stream: append-only JSON-lines files the Locust master writes as the run goes.

Why files, and why append-only: the orchestrator (`harness run`) must not import Locust, yet it
shows live progress and must keep every measured window if the run is interrupted or the
master dies. So the master appends each merged, closed window (and each worker's per-second
health) as one line the moment it is known, and the orchestrator tails the files. A window
that receives late requests (an open-loop request intended in second s that completes after s
was shipped) simply appears again; `merge_stream` adds duplicates exactly. A torn last line
(a process killed mid-write) is ignored, never fatal.

Layout under `<run_dir>/stream/`: windows.jsonl, health.jsonl, events.jsonl, start.json
(the wall-clock epoch of second 0), control.json (orchestrator -> master: stop), final.json
(master: every worker's totals once the load ended), workers.json (master: the roster of
workers expected, connected, and each remote worker's join verdict).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.files import atomic_write_json
from harness.latency.windows import WindowRecord, WindowStore

log = logging.getLogger(__name__)

WINDOWS, HEALTH, EVENTS = "windows.jsonl", "health.jsonl", "events.jsonl"
START, CONTROL, FINAL = "start.json", "control.json", "final.json"
ROSTER = "workers.json"  # master: workers expected, connected, remote join verdicts


def record_to_json(record: WindowRecord) -> dict[str, Any]:
    data = record.to_dict()
    data["hdr"] = record.hdr.decode("ascii")
    data["hdr_uncorrected"] = record.hdr_uncorrected.decode("ascii")
    return data


def record_from_json(data: dict[str, Any]) -> WindowRecord:
    data = dict(data)
    for key in ("hdr", "hdr_uncorrected"):
        if isinstance(data[key], str):
            data[key] = data[key].encode("ascii")
    return WindowRecord.from_dict(data)


def append_lines(path: Path, items: Iterable[dict[str, Any]]) -> int:
    """Append one JSON object per line; flushed so a reader in another process sees it."""
    text = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items)
    if text:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
    return text.count("\n")


def read_lines(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete lines from byte `offset` on, and the offset after the last complete line."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    items = []
    for line in chunk[:end].splitlines():
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("skipping a malformed line in %s", path)
    return items, offset + end


def iter_records(path: Path) -> Iterator[WindowRecord]:
    items, _ = read_lines(path)
    for item in items:
        yield record_from_json(item)


def merge_stream(path: Path) -> WindowStore:
    """Every window line of `path` merged exactly (duplicate keys added)."""
    store = WindowStore()
    store.add_all(iter_records(path))
    return store


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic_write_json(path, data, indent=1, allow_nan=True)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
