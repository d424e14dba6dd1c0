"""Command line of the reference server: `python -m reference_server` and `harness serve`.

Both front doors share `add_arguments` and `run`, so the options cannot drift apart
(`harness serve` imports this module; this package never imports `harness`).

Exit codes: 0 served and shut down cleanly; 2 configuration error (bad option, bad model
repository or model); 3 infrastructure error (`--device cuda` without a usable GPU, a port
that cannot be bound). Start-up errors print one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Coroutine, Mapping
from typing import Any

from pydantic import ValidationError

from reference_server.config import ServerConfig
from reference_server.errors import DeviceUnavailable, ModelLoadError

logger = logging.getLogger(__name__)

TOKEN_ENV = "HARNESS_ADMIN_TOKEN"
EXIT_CONFIG = 2
EXIT_INFRA = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server options (shared by `python -m reference_server` and `harness serve`).

    Options left out keep ServerConfig's defaults, so the defaults live in one place.
    """
    parser.add_argument(
        "--model-repository",
        metavar="DIR",
        help="Triton-layout model repository (default: the built-in one, built if missing)",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    for name in ("http", "grpc", "metrics"):
        parser.add_argument(
            f"--{name}-port", type=int, metavar="N", help=f"{name} port; 0 = pick a free one"
        )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto")
    parser.add_argument("--intra-op-threads", type=int, metavar="N")
    parser.add_argument(
        "--admin-token",
        metavar="T",
        help=f"enable the /admin fault API with this bearer token (or ${TOKEN_ENV})",
    )
    parser.add_argument("--max-body-bytes", type=int, metavar="N")
    parser.add_argument(
        "--event-loop",
        choices=("asyncio", "uvloop"),
        default="uvloop",
        help="event loop implementation (default uvloop)",
    )


_CONFIG_OPTIONS = (
    "model_repository",
    "host",
    "http_port",
    "grpc_port",
    "metrics_port",
    "device",
    "intra_op_threads",
    "max_body_bytes",
)


def config_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """Build the ServerConfig; CLI options win over the environment over defaults."""
    env = os.environ if environ is None else environ
    values = {k: getattr(args, k) for k in _CONFIG_OPTIONS if getattr(args, k) is not None}
    token = args.admin_token or env.get(TOKEN_ENV)
    if token:
        values["admin_token"] = token
    return ServerConfig(**values)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _run_loop(coro: Coroutine[Any, Any, int], event_loop: str) -> int:
    """uvloop by default: ~10 % less CPU per HTTP request here, and grpc.aio runs on it."""
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:  # e.g. Windows: the stdlib loop works, only slower
            logger.warning("uvloop is not available; using the asyncio event loop")
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def run(args: argparse.Namespace) -> int:
    """Start the server described by parsed `args`; return the process exit code."""
    from reference_server.app import serve

    try:
        config = config_from_args(args)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        sys.stderr.write(f"error: invalid server configuration: {errors}\n")
        return EXIT_CONFIG
    try:
        return _run_loop(serve(config), args.event_loop)
    except DeviceUnavailable as exc:
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return EXIT_INFRA
    except ModelLoadError as exc:
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return EXIT_CONFIG
    except OSError as exc:
        sys.stderr.write(f"error: cannot start the server: {_one_line(exc)}\n")
        return EXIT_INFRA


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server",
        description="Reference KServe v2 (HTTP + gRPC) / TF-Serving server over ONNX Runtime.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(args)
