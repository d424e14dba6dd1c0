"""ServerConfig: everything one reference-server process is told, validated once at the edge.

Declared once as a frozen pydantic model with unknown keys rejected, so a typo in a
stack definition or a test fails loudly instead of silently keeping a default. The CLI
(`reference_server.cli`) builds it from options (and HARNESS_ADMIN_TOKEN); tests and the
stack build it directly. Leaf module: no I/O at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REPOSITORY_ENV = "HARNESS_MODEL_REPOSITORY"


def default_model_repository() -> Path:
    """The built-in models: $HARNESS_MODEL_REPOSITORY, else <checkout>/model_repository."""
    configured = os.environ.get(REPOSITORY_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "model_repository"


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_repository: Path | None = None  # None = the default one, built if missing
    host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)  # 0 = pick a free port
    grpc_port: int = Field(default=8001, ge=0, le=65535)
    metrics_port: int = Field(default=8002, ge=0, le=65535)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    intra_op_threads: int = Field(default=1, ge=0)  # 0 = ONNX Runtime's default (all cores)
    admin_token: str | None = Field(default=None, min_length=1)  # None = admin API off
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    workers: int = Field(default=1, ge=1, le=256)  # > 1: processes sharing the ports
    # refuse new inference while the event loop runs this far behind (overload.py); 0 = off
    max_loop_lag_ms: float = Field(default=20.0, ge=0)
