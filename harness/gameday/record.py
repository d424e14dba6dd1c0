"""The game day in the run directory's own record: run.json says kind "gameday", the summary
and the history row are rebuilt to say so, and the stack's logs are kept in `<run>/stack/`.

Why one run directory and not a game-day directory with the load's run inside: the load's
windows, the fault's moments (events.jsonl), chaoslib's journal.json and gameday.json share
one clock and one run id, and every reader (`load_run`, reports, notebooks, `harness
history`) already knows that directory. So the load engine writes it as for any run, and once
the load is over the game day marks it: `kind: "gameday"` and a `gameday` section in
run.json (experiment, status, verdict), then `finalize_run` rewrites summary.json and
replaces the run's history row (keyed by run id) so the history shows the kind too.

The stack's files live in a temporary directory that goes when the game day ends; the logs of
every replica (a killed one's as `replica-<i>.log.<pid>`), the fault proxy and nginx are
copied into `<run>/stack/` after the stack stopped, for post-mortems, with the stack's state
(PIDs, ports, restart command lines) as it was at the end, its admin token redacted.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from harness.files import atomic_write_json, read_json_file
from harness.results import finalize_run

__all__ = ["STACK_DIR", "STACK_STATE", "copy_stack_logs", "keep_stack_state", "mark_gameday"]

log = logging.getLogger(__name__)

STACK_DIR = "stack"
STACK_STATE = "stack.json"
KEPT_SUFFIXES = (".log", ".conf")


def mark_gameday(run_dir: Path, section: dict[str, Any]) -> None:
    """run.json: kind "gameday" plus `section`; summary.json and the history row rebuilt."""
    path = Path(run_dir) / "run.json"
    run = read_json_file(path)
    run.update(kind="gameday", gameday=section)
    atomic_write_json(path, run, default=str)
    finalize_run(run_dir)


def copy_stack_logs(stack_dir: Path, run_dir: Path) -> list[str]:
    """Copy the stack's logs, configs and state (kept file names, relative to `stack_dir`)
    into `<run_dir>/stack/`; the copied paths, sorted. Nothing when either is missing."""
    stack_dir, dest = Path(stack_dir), Path(run_dir) / STACK_DIR
    if not stack_dir.is_dir() or not Path(run_dir).is_dir():
        return []
    copied = []
    for path in sorted(stack_dir.rglob("*")):
        if not path.is_file() or not _kept(path.name):
            continue
        relative = path.relative_to(stack_dir)
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(str(Path(STACK_DIR) / relative))
    log.info("stack logs kept in %s (%d files)", dest, len(copied))
    return copied


def keep_stack_state(text: str, run_dir: Path) -> None:
    """`<run>/stack/stack.json`: the state file's text, the admin token redacted."""
    state = json.loads(text)
    if state.get("admin_token"):
        state["admin_token"] = "<redacted>"
    atomic_write_json(Path(run_dir) / STACK_DIR / STACK_STATE, state)


def _kept(name: str) -> bool:
    """`x.log`, `x.log.<pid>` (a restarted replica's old log), `x.conf`."""
    return name.endswith(KEPT_SUFFIXES) or ".log." in name
