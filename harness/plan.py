"""The plan side of capacity planning: write what `harness.analysis.capacity.planner` computed.

    write_manifests(build_manifests(plan, options), Path("results/plan"))

The analysis builds and validates documents in memory (pure); this module is where they
become files: validated first, then each written atomically, nothing written if one fails.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harness.analysis.capacity.manifests import DEFAULT_K8S_VERSION, to_yaml, validate_manifest
from harness.files import atomic_write_text

__all__ = ["write_manifests"]

log = logging.getLogger(__name__)


def write_manifests(
    docs: dict[str, dict[str, Any]], out_dir: Path, k8s_version: str = DEFAULT_K8S_VERSION
) -> list[Path]:
    """Validate every document, then write `<stem>.yaml` each; nothing written if one fails."""
    for doc in docs.values():
        validate_manifest(doc, k8s_version)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, doc in docs.items():
        path = out_dir / f"{stem}.yaml"
        atomic_write_text(path, to_yaml(doc))
        paths.append(path)
    log.info(
        "wrote %d manifests (validated for Kubernetes %s) to %s", len(paths), k8s_version, out_dir
    )
    return paths
