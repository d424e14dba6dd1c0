"""`harness stack up|down|status`: the local reference stack from the command line.

`up` starts N replicas (nginx in front when N > 1), prints the endpoints and writes a state
file naming every PID; `--monitor` adds a Prometheus scraping every replica and prints its
URL. Without `--detach` it stays in the foreground until Ctrl-C/SIGTERM and then stops
everything; with `--detach` it returns and `harness stack down` stops the stack later.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from harness.errors import ConfigError
from harness.stack.local import LocalStack, StackState, read_state, stop_state
from harness.stack.server_process import pid_alive

DEFAULT_STATE_DIR = Path(".harness/stack")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("stack", help="start/stop the local reference stack")
    actions = parser.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start N replicas (nginx in front when N > 1)")
    up.add_argument("--replicas", type=int, default=1)
    up.add_argument(
        "--workers", type=int, default=1, help="server processes per replica (one port each)"
    )
    up.add_argument("--model-repository", type=Path, default=None)
    up.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    up.add_argument("--admin-token", default=None, help="enable the fault-injection admin API")
    up.add_argument(
        "--fault-proxies",
        action="store_true",
        help="a fault proxy (Toxiproxy REST API) in front of every replica and of the stack",
    )
    up.add_argument(
        "--monitor",
        action="store_true",
        help="a Prometheus scraping every replica every second (stopped with the stack)",
    )
    up.add_argument("--detach", action="store_true", help="return once ready; stop with `down`")
    up.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    down = actions.add_parser("down", help="stop a stack started with `up`")
    down.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    status = actions.add_parser("status", help="show the running stack (exit 0 running, 1 not)")
    status.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)


def run(args: argparse.Namespace) -> int:
    console = Console()
    state_file = args.state_dir / "stack.json"
    if args.stack_command == "up":
        return _up(args, state_file, console)
    if args.stack_command == "down":
        return _down(state_file, console)
    return _status(state_file, console)


def _up(args: argparse.Namespace, state_file: Path, console: Console) -> int:
    if state_file.exists() and _any_alive(StackState.from_json(state_file.read_text())):
        raise ConfigError(f"a stack is already running (state: {state_file}); `harness stack down`")
    stack = LocalStack(
        replicas=args.replicas,
        model_repository=args.model_repository,
        device=args.device,
        admin_token=args.admin_token,
        workdir=args.state_dir.resolve(),
        detach=args.detach,
        fault_proxies=args.fault_proxies,
        state_file=state_file,  # written at start (mode 0600); stop() stops what it names
        monitor=args.monitor,
        workers=args.workers,
    )
    stack.start()
    detached = False
    try:  # whatever happens from here on (Ctrl-C included), a foreground stack is stopped
        state = stack.state()
        _print_state(state, console)
        if args.detach:
            detached = True
            console.print(
                f"detached; stop with [bold]harness stack down --state-dir {args.state_dir}"
            )
            return 0
        by_signal = _serve_until_signal(state_file, console)
    finally:
        if not detached:
            stack.stop()
            state_file.unlink(missing_ok=True)
    if not by_signal:
        console.print("[red]every replica exited on its own[/]; logs in " + str(stack.workdir))
        return 3
    console.print("stack stopped")
    return 0


def _serve_until_signal(state_file: Path, console: Console) -> bool:
    """Block until SIGINT/SIGTERM (True) or until every replica has exited (False). The state
    is read again each time: a chaos actor may have restarted a replica under a new PID."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print("serving; Ctrl-C stops the stack")
    while not stop.wait(0.5):
        if not _any_alive(read_state(state_file)):
            return False
    return True


def _down(state_file: Path, console: Console) -> int:
    if not state_file.exists():
        console.print(f"no stack state at {state_file}: nothing to stop")
        return 0
    stopped = stop_state(StackState.from_json(state_file.read_text()))
    state_file.unlink(missing_ok=True)
    console.print(f"stopped {len(stopped)} process(es): {', '.join(map(str, stopped)) or '-'}")
    return 0


def _status(state_file: Path, console: Console) -> int:
    if not state_file.exists():
        console.print("no stack running")
        return 1
    state = StackState.from_json(state_file.read_text())
    _print_state(state, console)
    if not _any_alive(state):
        console.print("not running: every replica has exited (`harness stack down` clears it)")
        return 1
    return 0


def _any_alive(state: StackState) -> bool:
    return any(pid_alive(r.pid) for r in state.replicas)


def _print_state(state: StackState, console: Console) -> None:
    # host:port cells (no scheme, no /metrics path) so the table fits 80 columns, the width
    # rich uses when the output is piped; the full URLs are in the state file.
    table = Table(title="reference stack", box=box.SIMPLE, pad_edge=False)
    for col in ("", "pid", "http", "grpc", "metrics", "up"):
        table.add_column(col, no_wrap=True, overflow="fold")
    if state.nginx_pid:
        alive = pid_alive(state.nginx_pid)
        table.add_row(
            "nginx", str(state.nginx_pid), _hp(state.url), state.grpc_url, "-", _yn(alive)
        )
    for r in state.replicas:
        table.add_row(
            f"replica {r.index}",
            str(r.pid),
            _hp(r.http_url),
            r.grpc_url,
            _hp(r.metrics_url),
            _yn(pid_alive(r.pid)),
        )
    if state.fault_proxy:
        alive = pid_alive(state.fault_proxy.pid)
        api = _hp(state.fault_proxy.api_url)
        table.add_row("faultproxy", str(state.fault_proxy.pid), api, "-", "-", _yn(alive))
    console.print(table)
    console.print(f"endpoint: [bold]{state.url}[/] (HTTP)  [bold]{state.grpc_url}[/] (gRPC)")
    console.print(
        f"metrics: http://<metrics>/metrics per replica; state: {state.workdir}/stack.json"
    )
    if state.monitor is not None:
        console.print(f"prometheus: [bold]{state.monitor.url}[/] (pid {state.monitor.pid})")


def _hp(url: str) -> str:
    """'http://127.0.0.1:8000/metrics' -> '127.0.0.1:8000'."""
    return url.split("://", 1)[-1].split("/", 1)[0]


def _yn(alive: bool) -> str:
    return "yes" if alive else "[red]no[/]"
