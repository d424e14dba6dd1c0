"""Where the Locust side lives and the environment its processes start with.

One place for both, because local workers (`processes`) and a remote worker joining from
another machine (`remote`) start the same Locust side: from the repository root, with it on
PYTHONPATH, unbuffered.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO_ROOT / "scenarios" / "locustfile.py"


def locust_side_env(**extra: str) -> dict[str, str]:
    """This process's environment, plus the repository on PYTHONPATH, unbuffered output and
    `extra`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra)
    return env
