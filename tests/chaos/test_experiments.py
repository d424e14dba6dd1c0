"""The experiments as files: every one passes the real `chaos validate`, and each keeps the
safety rules a game day relies on; the extension's actions and probes are discoverable.

`chaos discover --no-install serving-harness` runs for real: chaoslib 1.44 maps the
distribution to its first top-level package in `top_level.txt` (sorted: `chaos` comes first)
and calls `chaos.discover`. Without `--no-install` it would `pip install -U serving-harness`
from PyPI first, which is not run here. The Kubernetes experiments are only validated: no
cluster runs here, so none of their activities was executed (see the skip below).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chaoslib.discovery.discover import discover_actions, discover_probes

import chaos.actions
import chaos.probes

REPO = Path(__file__).resolve().parents[2]
CHAOS = Path(sys.executable).with_name("chaos")
LOCAL = sorted((REPO / "chaos" / "experiments").glob("*.json"))
K8S = sorted((REPO / "chaos" / "experiments" / "k8s").glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def activities(experiment: dict) -> list[dict]:
    return experiment["method"] + experiment.get("rollbacks", [])


def test_the_experiments_asked_for_are_there():
    assert [p.stem for p in LOCAL] == [
        "gpu-loss-cpu-fallback", "gpu-loss-unready", "network-latency-client",
        "network-latency", "node-kill",
    ]  # fmt: skip (sorted by file name: "-client.json" < ".json")
    assert [p.stem for p in K8S] == ["gpu-loss", "node-drain", "node-kill"]


@pytest.mark.parametrize("path", LOCAL + K8S, ids=lambda p: str(p.relative_to(REPO)))
def test_chaos_validate_passes(path: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    proc = subprocess.run(
        [str(CHAOS), "--no-version-check", "validate", str(path)],
        cwd=tmp_path, env=env | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "experiment syntax and semantic look valid" in proc.stdout + proc.stderr


@pytest.mark.parametrize("path", LOCAL + K8S, ids=lambda p: p.stem)
def test_rollbacks_always_and_the_hypothesis_reads_the_live_slo(path: Path):
    experiment = load(path)
    assert experiment["runtime"]["rollbacks"]["strategy"] == "always"
    first = experiment["steady-state-hypothesis"]["probes"][0]
    assert (first["provider"]["module"], first["provider"]["func"]) == ("chaos.probes", "live_slo")
    assert first["tolerance"]["provider"]["func"] == "slo_ok"
    config = experiment["configuration"]
    assert config["run_dir"] == {"type": "env", "key": "HARNESS_RUN_DIR", "default": ""}
    # every pause is bounded by configuration with a default
    for activity in experiment["method"]:
        for pause in activity.get("pauses", {}).values():
            assert config[pause.strip("${}")]["default"] > 0


@pytest.mark.parametrize("path", LOCAL, ids=lambda p: p.stem)
def test_local_faults_are_bounded_and_rolled_back(path: Path):
    experiment = load(path)
    assert experiment["configuration"]["stack_state"]["key"] == "HARNESS_STACK_STATE"
    funcs = [a["provider"]["func"] for a in experiment["rollbacks"]]
    assert funcs[-1] == "rollback_all"
    for activity in experiment["method"]:
        provider = activity["provider"]
        if provider["func"].startswith("set_"):  # a server fault expires by itself
            assert provider["arguments"]["duration_s"] == "${fault_max_s}"
        if "toxic" in provider["func"] and provider["func"].startswith("add_"):
            assert "remove_all_toxics" in funcs
            # the fault proxy removes it by itself if the rollback never comes
            assert provider["arguments"]["duration_s"] == "${fault_max_s}"


def test_kubernetes_experiments_were_only_validated():
    used = {
        (a["provider"]["module"], a["provider"]["func"])
        for path in K8S
        for a in activities(load(path))
    }
    assert ("chaosk8s.pod.actions", "terminate_pods") in used
    node_actions = ("cordon_node", "drain_nodes", "uncordon_node")
    assert {("chaosk8s.node.actions", f) for f in node_actions} <= used
    # Not run: no Kubernetes cluster here; pod kill, drain and the GPU-node cordon + evict are
    # checked by `chaos validate` (above) and by the actions they name (this test) only.


def test_the_real_chaos_discover_lists_our_actions_and_probes(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    out = tmp_path / "discovery.json"
    proc = subprocess.run(
        [str(CHAOS), "--no-version-check", "--no-log-file", "discover", "--no-install",
         "--no-system-info", "--discovery-path", str(out), "serving-harness"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and out.exists(), proc.stdout + proc.stderr
    discovery = json.loads(out.read_text())
    assert discovery["extension"]["name"] == "serving-harness"
    found = {(a["type"], a["mod"], a["name"]) for a in discovery["activities"]}
    assert found == {("action", "chaos.actions", n) for n in chaos.actions.__all__} | {
        ("probe", "chaos.probes", n) for n in chaos.probes.__all__
    }
    toxic = next(a for a in discovery["activities"] if a["name"] == "add_latency_toxic")
    assert {a["name"]: a.get("default") for a in toxic["arguments"]}["duration_s"] == 60.0


def test_discovery_lists_every_exported_action_and_probe():
    actions = {a["name"]: a for a in discover_actions("chaos.actions")}
    probes = {p["name"]: p for p in discover_probes("chaos.probes")}
    assert sorted(actions) == sorted(chaos.actions.__all__)
    assert sorted(probes) == sorted(chaos.probes.__all__)
    assert {a["type"] for a in actions.values()} == {"action"}
    args = {a["name"]: a.get("type") for a in probes["live_slo"]["arguments"]}
    assert args == {
        "run_dir": "string", "windows": "integer", "max_p99_ms": "number",
        "max_error_rate": "number", "min_requests": "integer", "configuration": "mapping",
    }  # fmt: skip
    assert probes["live_slo"]["return_type"] == "mapping"
    assert probes["stack_at_full_strength"]["return_type"] == "boolean"
    kill = {a["name"]: a.get("default") for a in actions["kill_replica"]["arguments"]}
    assert kill == {"index": 0, "configuration": None}
