"""`harness faultproxy`: run the Toxiproxy-compatible fault proxy in the foreground.

The options and behaviour are exactly those of `python -m chaos.faultproxy` (both call
`chaos.faultproxy.cli`): the control API on `--api` (default 127.0.0.1:8474, port 0 = any free
port), one `listening api=HOST:PORT` line once bound, loopback only unless `--allow-host`,
a clean stop on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse

from chaos.faultproxy import cli as faultproxy_cli


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "faultproxy",
        help="run the fault-injecting TCP proxy (Toxiproxy's REST API)",
        description="Run the fault proxy until SIGTERM/SIGINT; prints 'listening api=HOST:PORT' "
        "once its control API is bound.",
    )
    faultproxy_cli.add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    return faultproxy_cli.run(args)
