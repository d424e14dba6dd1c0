"""`harness serve`: run one reference server in the foreground (`--workers N`: N processes
on its ports under one supervisor, see reference_server.supervisor).

The options and behaviour are exactly those of `python -m reference_server` (both call
`reference_server.cli`); logging is configured by `harness` itself (`-v`), the server's INFO
lines (which provider `--device auto` chose) shown by default.
"""

from __future__ import annotations

import argparse
import logging

from reference_server import cli as server_cli


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve",
        help="run the reference server (KServe v2 HTTP + gRPC, TF-Serving REST)",
        description="Run the reference server until SIGTERM/SIGINT; prints "
        "'listening http=P grpc=P metrics=P' once ready.",
    )
    server_cli.add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    # The server's own INFO lines (the provider `--device auto` chose, shutdown progress), as
    # `python -m reference_server` shows them; harness's WARNING default would hide them.
    server_logger = logging.getLogger("reference_server")
    if server_logger.getEffectiveLevel() > logging.INFO:
        server_logger.setLevel(logging.INFO)
    return server_cli.run(args)
