"""`harness serve`: run one reference server in the foreground.

The options and behaviour are exactly those of `python -m reference_server` (both call
`reference_server.cli`); logging is configured by `harness` itself (`-v`).
"""

from __future__ import annotations

import argparse

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
    return server_cli.run(args)
