"""`--set key.sub=value` and environment overrides applied to a raw scenario mapping.

One precedence order everywhere: `--set` > environment > file > model defaults. Overrides
are applied to the parsed YAML *before* validation, so an override is checked by exactly
the same models (and gets the same field-naming error messages) as the file itself.
Values are parsed as YAML scalars/flow collections, so `--set load.rate=250` is a number,
`--set load.wait_time=[0.1,0.5]` a list and `--set stack.local=false` a boolean.

Environment variables: `HARNESS_SCENARIO__LOAD__RATE=250` is `load.rate=250` (prefix
`HARNESS_SCENARIO__`, path segments separated by `__`, names lower-cased).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

ENV_PREFIX = "HARNESS_SCENARIO__"


class OverrideError(ValueError):
    """An override string is malformed or points through a non-mapping."""


def env_overrides(env: Mapping[str, str]) -> list[str]:
    """Overrides found in `env`, as `key.sub=value` strings, in a stable (sorted) order."""
    found = []
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            path = ".".join(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
            found.append(f"{path}={env[name]}")
    return found


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """`"load.rate=250"` -> (["load", "rate"], 250). List indexes are plain integers."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OverrideError(f"override {text!r} must look like key.sub=value")
    path: list[str | int] = []
    for part in key.split("."):
        if not part:
            raise OverrideError(f"override {text!r} has an empty key segment")
        path.append(int(part) if part.isdigit() else part)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        column, problem = yaml_problem(exc)[1:]
        where = f" at column {column}" if column else ""
        message = f"override {text!r}: value is not valid YAML{where}: {problem}"
        raise OverrideError(message) from exc
    return path, value


def yaml_problem(exc: yaml.YAMLError) -> tuple[int | None, int | None, str]:
    """(line, column, problem) of a PyYAML error, 1-based, the problem on one line.

    PyYAML's own message spans several lines and quotes the input; ours are one line.
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return None, None, problem
    return mark.line + 1, mark.column + 1, problem


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A deep copy of `data` with each override applied in order (later wins)."""
    result: dict[str, Any] = copy.deepcopy(dict(data))
    for text in overrides:
        path, value = parse_override(text)
        _set_path(result, path, value, text)
    return result


def _set_path(root: dict[str, Any], path: list[str | int], value: Any, text: str) -> None:
    node: Any = root
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {} if not isinstance(path[i + 1], int) else [])
        elif isinstance(node, list) and isinstance(part, int):
            if part > len(node):
                raise OverrideError(f"override {text!r}: index {part} is past the list end")
            if part == len(node):
                node.append(value if last else {})
            elif last:
                node[part] = value
            node = node[part]
        else:
            where = ".".join(str(p) for p in path[:i]) or "<root>"
            raise OverrideError(f"override {text!r}: {where} is not a mapping")
