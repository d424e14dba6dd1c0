"""The default model repository: models built locally (no downloads) for the reference server.

`build_repository(path)` trains and exports them; `ensure_repository(path)` builds only when
the repository is missing. See `reference_server.models.build` for what each model is.
Re-exported lazily so `python -m reference_server.models.build` runs the module only once.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_MODELS", "build_repository", "ensure_repository", "repository_complete"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from reference_server.models import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
