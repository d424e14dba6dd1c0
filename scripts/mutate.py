"""Mutation testing of the pure core, one package at a time (`make mutate PKG=capacity`).

Why a wrapper around mutmut: mutmut reads one `[tool.mutmut]` section and writes its
`mutants/` tree next to it. Each package here has its own files and its own tests, and the
mutated copies must never land in the checkout (ruff and pytest would find them). So this
script copies the tracked files into a scratch directory, writes the package's section into
the copy's pyproject.toml, runs mutmut there, and prints a score per file plus every
surviving mutant's diff (`--survivors`), so a reviewer can kill it with a test or explain
it as equivalent.

Too slow for CI on 2 cores (about 3 mutants/s): run it by hand after changing a package or
its tests. The scores of the last run are recorded in tests/README.md.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Package:
    files: tuple[str, ...]  # modules to mutate
    tests: tuple[str, ...]  # the tests that guard them (mutmut runs the ones that cover a mutant)


PACKAGES: dict[str, Package] = {
    "capacity": Package(
        files=tuple(
            f"harness/analysis/capacity/{m}.py"
            for m in (
                "curves", "queueing", "planner", "operating_point", "sweep_search",
                "hpa_sim", "hpa_models",
            )
        ),
        tests=("tests/harness/analysis/capacity", "tests/harness/cli/test_plan.py"),
    ),
    "ab": Package(
        files=tuple(
            f"harness/analysis/ab/{m}.py"
            for m in (
                "compare", "ranktests", "bootstrap", "disttest", "equivalence", "latency_ab",
                "metrics_ab", "proportions", "histdata", "abconfig",
            )
        ),
        tests=("tests/harness/analysis/ab", "tests/harness/cli/test_compare.py"),
    ),
    "latency": Package(
        files=(
            "harness/latency/hdr.py", "harness/latency/windows.py", "harness/latency/sparse.py",
            "harness/loadgen/recorder.py", "harness/results/windows.py",
            "harness/results/validity.py", "harness/results/slo.py",
        ),
        tests=("tests/harness/latency", "tests/harness/results"),
    ),
    "schedules": Package(
        files=(
            "harness/loadgen/schedule.py", "harness/loadgen/arrivals.py",
            "harness/loadgen/health.py",
        ),
        tests=("tests/harness/loadgen",),
    ),
    "config": Package(
        files=(
            "harness/config/durations.py", "harness/config/loader.py",
            "harness/config/overrides.py", "harness/config/scenario.py",
            "harness/config/shapes.py",
        ),
        tests=("tests/harness/config",),
    ),
}

# mutmut's exit-code convention for a mutant's test run (mutmut/stats.py).
STATUS_BY_EXIT_CODE = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
                       34: "skipped", 36: "timeout", 24: "timeout", -24: "timeout",
                       152: "timeout", 255: "timeout", 37: "type check"}


def copy_checkout(workdir: Path) -> None:
    """The tracked files (as they are on disk, edits included) into a fresh `workdir`."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = REPO / raw.decode()
        if source.is_file():
            target = workdir / raw.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    models = REPO / "model_repository"
    if models.exists():
        (workdir / "model_repository").symlink_to(models)


def write_mutmut_section(workdir: Path, package: Package) -> None:
    """Append the package's `[tool.mutmut]` table to the copy's pyproject.toml."""
    def toml_list(items: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    section = (
        "\n[tool.mutmut]\n"
        f"source_paths = {toml_list(['harness'])}\n"
        f"only_mutate = {toml_list(package.files)}\n"
        f"also_copy = {toml_list(['scenarios', 'reference_server', 'deploy'])}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(package.tests)}\n"
        f"pytest_add_cli_args = {toml_list(['-p', 'no:cacheprovider', '-q', '-x'])}\n"
    )
    with (workdir / "pyproject.toml").open("a", encoding="utf-8") as file:
        file.write(section)


def mutant_statuses(workdir: Path) -> dict[str, dict[str, str]]:
    """{module file: {mutant name: status}} from mutmut's per-file .meta records."""
    out: dict[str, dict[str, str]] = {}
    for meta in sorted((workdir / "mutants").rglob("*.py.meta")):
        source = str(meta.relative_to(workdir / "mutants")).removesuffix(".meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        out[source] = {
            name: STATUS_BY_EXIT_CODE.get(code, "suspicious") if code is not None else "not run"
            for name, code in codes.items()
        }
    return out


def mutant_diffs(workdir: Path, source: str, names: list[str]) -> dict[str, list[str]]:
    """The changed lines of each mutant, read from mutmut's mutated copy of `source`.

    mutmut keeps every variant of a function as `<name>__mutmut_<n>` beside
    `<name>__mutmut_orig`; diffing the two is much faster than `mutmut show` per mutant.
    """
    tree_text = (workdir / "mutants" / source).read_text()
    functions = {
        node.name: ast.get_source_segment(tree_text, node) or ""
        for node in ast.walk(ast.parse(tree_text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    out = {}
    for name in names:
        short = name.rsplit(".", 1)[1]
        original_name = short.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
        original = functions.get(original_name, "")
        mutated = functions.get(short, "")
        out[name] = [
            line for line in difflib.unified_diff(
                original.replace(original_name, "f", 1).splitlines(),
                mutated.replace(short, "f", 1).splitlines(), lineterm="", n=0
            )
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
    return out


def only_a_string_changed(diff: list[str]) -> bool:
    """True when the mutant only altered the text of a message (mutmut wraps a string in
    XX...XX or changes its case). A string that is compared (`== "poisson"`, `in (...)`) is
    behaviour, not a message, and is never counted here."""
    removed = [line[1:] for line in diff if line.startswith("-")]
    added = [line[1:] for line in diff if line.startswith("+")]
    wrapped = any("XX" in line for line in added)
    recased = [a.lower() for a in added] == [r.lower() for r in removed] and added != removed
    compared = any(op in line for line in removed for op in ("==", "!=", " in ", "startswith"))
    return (wrapped or recased) and not compared


def report(statuses: dict[str, dict[str, str]], workdir: Path, show_survivors: bool) -> None:
    print(f"\n{'file':<40} {'mutants':>8} {'killed':>7} {'survived':>9} {'other':>6} "
          f"{'score':>6} {'score w/o strings':>18}")
    totals = [0, 0, 0, 0, 0]
    for source, by_name in statuses.items():
        values = list(by_name.values())
        killed, survived = values.count("killed"), values.count("survived")
        other = len(values) - killed - survived
        survivors = [n for n, s in by_name.items() if s == "survived"]
        diffs = mutant_diffs(workdir, source, survivors)
        strings = sum(only_a_string_changed(d) for d in diffs.values())
        judged = killed + survived
        score = killed / judged if judged else float("nan")
        no_strings = killed / (judged - strings) if judged - strings else float("nan")
        print(f"{source:<40} {len(values):>8} {killed:>7} {survived:>9} {other:>6} "
              f"{score:>6.0%} {no_strings:>18.0%}")
        for i, value in enumerate((len(values), killed, survived, other, strings)):
            totals[i] += value
        if show_survivors:
            for name, diff in diffs.items():
                if not only_a_string_changed(diff):
                    print(f"    survived {name}")
                    for line in diff:
                        print(f"        {line.strip()}")
    mutants, killed, survived, other, strings = totals
    judged = killed + survived
    print(f"{'total':<40} {mutants:>8} {killed:>7} {survived:>9} {other:>6} "
          f"{killed / max(judged, 1):>6.0%} {killed / max(judged - strings, 1):>18.0%}")
    print(f"({strings} survivors only changed a string literal's text: messages and labels)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", choices=sorted(PACKAGES))
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch copy (default: $TMPDIR/serving-harness-mutation/PACKAGE)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--survivors", action="store_true",
                        help="print the diff of every surviving mutant (strings excepted)")
    parser.add_argument("--only", nargs="+", metavar="FILE",
                        help="mutate only these files of the package (e.g. after editing one)")
    parser.add_argument("--report-only", action="store_true",
                        help="report on the last run in --workdir without running again")
    args = parser.parse_args(argv)

    package = PACKAGES[args.package]
    if args.only:
        unknown = sorted(set(args.only) - set(package.files))
        if unknown:
            parser.error(f"not files of {args.package}: {', '.join(unknown)}")
        package = Package(files=tuple(args.only), tests=package.tests)
    workdir = args.workdir or Path(os.environ.get("TMPDIR", "/tmp")) / (
        f"serving-harness-mutation/{args.package}"
    )
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    if not Path(mutmut).exists():
        print("mutmut is not installed: pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    if not args.report_only:
        copy_checkout(workdir)
        write_mutmut_section(workdir, package)
        log = workdir / "mutmut.log"
        print(f"mutating {len(package.files)} files in {workdir} (log: {log}) ...", flush=True)
        started = time.monotonic()
        with log.open("w") as out:
            ran = subprocess.run([mutmut, "run", "--max-children", str(args.max_children)],
                                 cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        print(f"mutmut finished in {time.monotonic() - started:.0f} s (exit {ran.returncode})")
        if ran.returncode != 0:
            print(log.read_text()[-3000:], file=sys.stderr)
            return 1
    report(mutant_statuses(workdir), workdir, args.survivors)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
