"""Open a page in headless Chromium over the DevTools protocol and report what went wrong.

Why the protocol and not `--screenshot` alone: a resource that fails to load (a missing
image, a blocked URL) leaves no trace on stderr; the protocol reports it
(`Network.loadingFailed`), along with console errors, uncaught exceptions and log entries.
The browser is driven through `--remote-debugging-pipe` (file descriptors 3 and 4: no port,
nothing listening), and stopped in every case.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageCheck:
    failed_resources: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    screenshot: bytes = b""


class _Pipe:
    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int) -> None:
        self.proc, self.write_fd = proc, write_fd
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, args=(read_fd,), daemon=True).start()

    def _read(self, fd: int) -> None:
        buf = b""
        with os.fdopen(fd, "rb", buffering=0) as stream:
            while chunk := stream.read(65536):
                buf += chunk
                while b"\0" in buf:
                    raw, buf = buf.split(b"\0", 1)
                    self.messages.put(json.loads(raw))

    def send(self, method: str, session: str | None = None, **params: Any) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.write_fd, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def until(self, match, deadline: float, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Messages until one satisfies `match`; every message is kept in `events`."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("Chromium did not answer before the deadline")
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            events.append(msg)
            if "error" in msg:
                raise AssertionError(f"DevTools error: {msg['error']}")
            if match(msg):
                return msg

    def call(
        self, method: str, deadline: float, events: list, session: str | None = None, **params: Any
    ) -> dict[str, Any]:
        wanted = self.send(method, session, **params)
        return self.until(lambda m: m.get("id") == wanted, deadline, events).get("result", {})


def _child_fds(read_fd: int, write_fd: int) -> None:
    """In the child: the command pipe on fd 3, the answer pipe on fd 4."""
    r, w = os.dup(read_fd), os.dup(write_fd)  # out of the way of 3 and 4 first
    os.dup2(r, 3)
    os.dup2(w, 4)


def open_page(path: Path, timeout_s: float = 60.0, width: int = 1100) -> PageCheck:
    """Load `path` from disk, wait for its load event, take a full-page screenshot."""
    assert CHROMIUM, "chromium is not installed"
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    args = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--remote-debugging-pipe",
        f"--window-size={width},900",
        "about:blank",
    ]
    proc = subprocess.Popen(
        args,
        pass_fds=(3, 4, to_child_r, from_child_w),  # 3, 4: set by _child_fds, kept open
        preexec_fn=lambda: _child_fds(to_child_r, from_child_w),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(to_child_r)
    os.close(from_child_w)
    check, events = PageCheck(), []
    deadline = time.monotonic() + timeout_s
    try:
        pipe = _Pipe(proc, to_child_w, from_child_r)
        target = pipe.call("Target.createTarget", deadline, events, url="about:blank")
        attached = pipe.call(
            "Target.attachToTarget", deadline, events, targetId=target["targetId"], flatten=True
        )
        session = attached["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            pipe.call(f"{domain}.enable", deadline, events, session)
        pipe.call("Page.navigate", deadline, events, session, url=path.resolve().as_uri())
        pipe.until(lambda m: m.get("method") == "Page.loadEventFired", deadline, events)
        shot = pipe.call(
            "Page.captureScreenshot",
            deadline,
            events,
            session,
            format="png",
            captureBeyondViewport=True,
        )
        check.screenshot = base64.b64decode(shot["data"])
        pipe.send("Browser.close")
    finally:
        os.close(to_child_w)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _collect(events, check)
    return check


def _collect(events: list[dict[str, Any]], check: PageCheck) -> None:
    for msg in events:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent":
            check.requested.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            check.failed_resources.append(f"{params.get('type')}: {params.get('errorText')}")
        elif method == "Network.responseReceived" and params["response"].get("status", 0) >= 400:
            check.failed_resources.append(
                f"{params['response']['url']}: HTTP {params['response']['status']}"
            )
        elif method == "Runtime.exceptionThrown":
            check.console_errors.append(str(params["exceptionDetails"].get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in (
            "error",
            "warning",
            "assert",
        ):
            check.console_errors.append(json.dumps(params.get("args")))
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            check.console_errors.append(params["entry"].get("text", ""))
