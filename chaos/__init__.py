"""Chaos game days: Chaos Toolkit experiments, their actions and probes, and the fault proxy.

    actions      kill/restart a replica, server faults, proxy toxics, rollback_all
    probes       the running load's SLO numbers, the stack's health, faults and toxics
    experiments/ node-kill, network-latency(-client), gpu-loss-*, k8s/ (Chaos Toolkit JSON)
    faultproxy/  the Toxiproxy-compatible fault-injecting TCP proxy (stands alone)

`discover` is what `chaos discover --no-install serving-harness` calls: chaoslib maps the
distribution to its first top-level package (`top_level.txt` is sorted, and `chaos` sorts
before `harness`, `reference_server` and `scenarios`) and calls that package's `discover`.
Without `--no-install`, `chaos discover` first runs `pip install -U serving-harness`, which
looks the name up on PyPI, where this project is not published: always pass `--no-install`.
chaoslib is imported inside the function, so importing `chaos.faultproxy` stays light.
"""

from typing import Any

__all__ = ["discover"]

EXTENSION = "serving-harness"
MODULES = (("chaos.actions", "action"), ("chaos.probes", "probe"))


def discover(discover_system: bool = True) -> dict[str, Any]:
    """Chaos Toolkit's discovery of this extension: every action and probe in the `__all__`
    of `chaos.actions` and `chaos.probes`, with their arguments and return types. The system
    (a local stack) is not discovered: it exists only while a game day or `harness stack up`
    runs, and its state file is an experiment's configuration."""
    from importlib.metadata import PackageNotFoundError, version

    from chaoslib.discovery.discover import discover_activities, initialize_discovery_result

    try:
        ours = version(EXTENSION)
    except PackageNotFoundError:
        ours = "unknown"
    discovery = initialize_discovery_result(EXTENSION, ours, "serving-stack")
    for module, kind in MODULES:
        discovery["activities"].extend(discover_activities(module, kind))
    return discovery
