"""The reference models, behind one function of the stack: the only place the harness reaches
into `reference_server` besides starting it (the load engine never imports the server's code).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["default_model_repository", "ensure_default_models"]


def default_model_repository() -> Path:
    """Where the built-in models live (HARNESS_MODEL_REPOSITORY, else ./model_repository)."""
    from reference_server.config import default_model_repository as server_default

    return Path(server_default())


def ensure_default_models() -> Path:
    """The built-in model repository, built locally (no download) if missing or stale."""
    from reference_server.models.build import ensure_repository

    return Path(ensure_repository(default_model_repository()))
