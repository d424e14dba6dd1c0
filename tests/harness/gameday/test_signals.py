"""Signals during a game day, in a real child process: SIGINT stops it even when the process
inherited SIGINT *ignored* (a shell's background job, some CI runners), and the inherited
disposition is put back afterwards."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from harness.gameday.signals import deferred_interrupts, interrupts
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # inherited from the parent
    try:
        with interrupts():
            os.kill(os.getpid(), signal.SIG)
            time.sleep(10)
        print("not interrupted")
    except KeyboardInterrupt:
        print("interrupted")
    print("restored" if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else "changed")
    with deferred_interrupts():  # the cleanup: a second Ctrl-C waits until it is done
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
    print("cleanup finished")
    """
)


def _run(sig: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD.replace("signal.SIG)", f"signal.{sig})")],
        capture_output=True, text=True, timeout=30,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_sigint_interrupts_even_when_inherited_ignored_and_is_put_back() -> None:
    assert _run("SIGINT") == ["interrupted", "restored", "cleanup", "finished"]


def test_sigterm_interrupts_like_ctrl_c() -> None:
    assert _run("SIGTERM") == ["interrupted", "restored", "cleanup", "finished"]
