"""Command line of the reference server: `python -m reference_server` and `harness serve`.

Both front doors share `add_arguments` and `run`, so the options cannot drift apart
(`harness serve` imports this module; this package never imports `harness`).

`--workers N` (N > 1) runs a supervisor and N worker processes sharing the ports
(supervisor.py); the workers are this same command with the hidden `--worker-*` options. A
worker that cannot start makes the supervisor exit with that worker's code (2 or 3); a
worker that keeps dying, exit 3.

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
from pathlib import Path
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
        "--max-loop-lag-ms",
        type=float,
        metavar="MS",
        help="refuse new inference (503 / UNAVAILABLE) while the event loop runs more than MS "
        "behind on two checks in a row: overload shedding; 0 = off (default 20)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="server processes sharing the HTTP and gRPC ports (SO_REUSEPORT), each with its "
        "own model instances; one /metrics sums them (default 1)",
    )
    # a worker of a supervisor (set by the supervisor only)
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-control", help=argparse.SUPPRESS)
    parser.add_argument("--worker-board-fd", type=int, help=argparse.SUPPRESS)
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
    "workers",
    "max_loop_lag_ms",
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
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        sys.stderr.write(f"error: invalid server configuration: {errors}\n")
        return EXIT_CONFIG
    try:
        return _run_loop(_main_coroutine(config, args), args.event_loop)
    except DeviceUnavailable as exc:
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return EXIT_INFRA
    except ModelLoadError as exc:
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return EXIT_CONFIG
    except OSError as exc:
        sys.stderr.write(f"error: cannot start the server: {_one_line(exc)}\n")
        return EXIT_INFRA


def _main_coroutine(config: ServerConfig, args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """One server, a worker of a supervisor, or the supervisor of `config.workers` workers."""
    from reference_server.app import serve

    if args.worker_index is not None:
        from reference_server.worker import WorkerRole

        role = WorkerRole(args.worker_index, args.worker_control, args.worker_board_fd)
        return serve(config.model_copy(update={"workers": 1}), role=role)
    if config.workers == 1:
        return serve(config)
    from reference_server.supervisor import Supervisor, WorkerOptions

    if config.model_repository is None:  # built once here, not raced by N workers
        config = config.model_copy(update={"model_repository": _default_repository()})
    level = logging.getLevelName(logging.getLogger("reference_server").getEffectiveLevel())
    return Supervisor(config, WorkerOptions(args.event_loop, level)).run()


def _default_repository() -> Path:
    from reference_server.config import default_model_repository
    from reference_server.models.build import ensure_repository

    return ensure_repository(default_model_repository())


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
