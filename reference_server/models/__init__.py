"""The default model repository: models built locally (no downloads) for the reference server.

`build_repository(path)` trains and exports them; `ensure_repository(path)` builds only when
the repository is missing. See `reference_server.models.build` for what each model is.
"""

from reference_server.models.build import (
    DEFAULT_MODELS,
    build_repository,
    ensure_repository,
    repository_complete,
)

__all__ = ["DEFAULT_MODELS", "build_repository", "ensure_repository", "repository_complete"]
