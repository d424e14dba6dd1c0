"""Read a scenario file, apply overrides, validate — and say precisely what is wrong.

Every problem becomes one `ConfigError` whose message names the file and the field path, e.g.
`scenarios/x.yaml: load.rate: must be > 0`, `scenarios/x.yaml: load.rat: unknown key`, or
`scenarios/x.yaml: line 3: YAML syntax error: ...`. Nothing starts on a bad scenario.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.config.overrides import OverrideError, apply_overrides, env_overrides, yaml_problem
from harness.config.scenario import Scenario
from harness.errors import ConfigError

_LOAD_TAGS = frozenset({"open", "closed"})


def load_scenario(
    path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Scenario:
    """Validated scenario from `path`; precedence `overrides` (--set) > `env` > file > defaults.

    `env` defaults to `os.environ` (see `overrides.ENV_PREFIX`). Raises ConfigError.
    """
    source = str(path)
    data = read_yaml_mapping(Path(path))
    env_sets = env_overrides(os.environ if env is None else env)
    try:
        data = apply_overrides(data, [*env_sets, *overrides])
    except OverrideError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    return validate_scenario(data, source)


def validate_scenario(data: Mapping[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate an already-parsed mapping; errors are prefixed with `source`."""
    try:
        return Scenario.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from exc


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read scenario file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {_yaml_problem(exc)}") from exc
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ConfigError(f"{path}: a scenario must be a mapping of keys, got {kind}")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    line, column, problem = yaml_problem(exc)
    if line is not None:
        return f"line {line}, column {column}: YAML syntax error: {problem}"
    return f"YAML syntax error: {problem}"


def format_validation_error(exc: ValidationError) -> str:
    """All errors on one line: `field.path: message; other.field: message`."""
    parts = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "mode")
        parts.append(f"{field_path(loc)}: {_message(error)}")
    return "; ".join(dict.fromkeys(parts))


def field_path(loc: Sequence[str | int]) -> str:
    """Dotted path, without pydantic's union-tag segments (`load.open.rate` -> `load.rate`)."""
    parts: list[str] = []
    for i, item in enumerate(loc):
        if i == 1 and loc[0] == "load" and item in _LOAD_TAGS:
            continue
        if isinstance(item, str) and item.startswith(("function-", "tagged-union")):
            continue
        parts.append(str(item))
    return ".".join(parts) or "<root>"


def _message(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    short = {
        "extra_forbidden": "unknown key",
        "missing": "required field is missing",
        "greater_than": f"must be > {_num(ctx.get('gt'))}",
        "greater_than_equal": f"must be >= {_num(ctx.get('ge'))}",
        "less_than": f"must be < {_num(ctx.get('lt'))}",
        "less_than_equal": f"must be <= {_num(ctx.get('le'))}",
        "literal_error": f"must be {ctx.get('expected')}",
        "union_tag_invalid": f"must be {ctx.get('expected_tags')}, got {ctx.get('tag')!r}",
        "union_tag_not_found": "required: open or closed",
    }
    if kind in short:
        return short[kind]
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return f"{message} (got {error['input']!r})" if kind.endswith("_type") else message


def _num(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
