"""Command line of the fault proxy, shared by `python -m chaos.faultproxy` and `harness faultproxy`.

Why one line on stdout and a port file: a parent process that starts the proxy on an ephemeral
API port (`--api 127.0.0.1:0`) must learn the port without racing. Once the API is bound the
proxy prints exactly one line, `listening api=HOST:PORT`, and, with `--port-file F`, writes
`HOST:PORT` to F atomically (a temporary file renamed into place: a reader never sees half).
It runs until SIGINT or SIGTERM, then closes every proxy and connection and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from chaos.faultproxy.errors import FaultProxyError
from chaos.faultproxy.server import FaultProxyServer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api", default="127.0.0.1:8474", metavar="HOST:PORT",
        help="control API address (Toxiproxy's default 127.0.0.1:8474; port 0 = any free port)",
    )
    parser.add_argument(
        "--allow-host", action="append", default=[], metavar="HOST",
        help="a non-loopback host proxies may listen on or connect to (repeatable)",
    )
    parser.add_argument(
        "--port-file", type=Path, metavar="FILE",
        help="write the bound API address (HOST:PORT) to FILE once listening",
    )
    parser.add_argument("--seed", type=int, help="seed for toxicity and jitter draws")
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
        help="event loop: uvloop when installed (auto, about 2x the relay throughput), "
        "or the standard library's",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 after a clean stop, 2 for a refused address."""
    try:
        server = FaultProxyServer(args.api, args.allow_host, args.seed)
    except FaultProxyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        _loop_runner(args.loop)(_serve(server, args.port_file))
    except OSError as exc:
        print(f"error: cannot listen on {args.api}: {exc}", file=sys.stderr)
        return 3
    return 0


async def _serve(server: FaultProxyServer, port_file: Path | None) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.request_stop)

    def announce(address: str) -> None:
        if port_file is not None:
            _write_atomically(port_file, address + "\n")
        print(f"listening api={address}", flush=True)

    await server.serve(on_ready=announce)


def _loop_runner(choice: str):
    """`asyncio.run`, or uvloop's when asked (or `auto` and it is installed)."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.run
    return asyncio.run


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def main(argv: list[str] | None = None) -> int:
    import logging

    parser = argparse.ArgumentParser(
        prog="python -m chaos.faultproxy",
        description="Toxiproxy-compatible fault-injecting TCP proxy (loopback only by default).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    add_arguments(parser)
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)
