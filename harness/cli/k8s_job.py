"""`harness k8s-job SCENARIO --workers N --out DIR [--image IMG] [--namespace NS] [--set k=v]`.

Writes the Kubernetes manifests of one distributed run (`harness.load.k8s_job`): a ConfigMap
with the scenario, a Service and a Job for the Locust master (`harness run --workers-external
N`), and a Job of N `harness worker` pods, all on the same image and each validated strictly
against the Kubernetes schemas. Apply them with `kubectl apply -f DIR`; collect the run
directory from the master pod with `kubectl cp` (printed at the end). Exit 2 on a bad scenario
or option, nothing written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.analysis.capacity.manifests import DEFAULT_K8S_VERSION, to_yaml
from harness.cli.scenario_args import add_scenario_arguments
from harness.config import load_scenario
from harness.files import atomic_write_text
from harness.load.k8s_job import DEFAULT_IMAGE, JobOptions, build_job_manifests


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "k8s-job", help="write Kubernetes manifests for a distributed run",
        description=__doc__.splitlines()[0],
    )  # fmt: skip
    add_scenario_arguments(parser, "scenario YAML file")
    parser.add_argument("--workers", type=int, required=True, metavar="N", help="worker pods")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the harness image")
    parser.add_argument("--namespace", default=None, help="metadata.namespace of every document")
    parser.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION, help="schema version")


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, overrides=args.overrides)
    options = JobOptions(
        args.workers, image=args.image, namespace=args.namespace, k8s_version=args.k8s_version
    )
    docs = build_job_manifests(scenario, options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, doc in docs.items():
        atomic_write_text(out / name, to_yaml(doc))
    master = docs["master-job.yaml"]["metadata"]["name"]
    print(f"wrote {', '.join(docs)} to {out} (validated for Kubernetes {options.k8s_version})")
    print(f"  kubectl apply -f {out}")
    print(f"  POD=$(kubectl get pods -l job-name={master} -o name | head -1 | cut -d/ -f2)")
    print("  kubectl cp $POD:/results ./results && kubectl exec $POD -- touch /results/.collected")
    return 0
