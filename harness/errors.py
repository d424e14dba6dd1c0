"""Exceptions of the `harness` package.

    HarnessError
    ├── ConfigError                 bad scenario / option; CLI exit 2
    ├── TargetError                 the system under test misbehaved; CLI exit 3
    │   ├── TargetUnavailable       never became ready, or went away
    │   └── ProtocolViolation       answered something the protocol does not allow
    ├── InfrastructureError         our own machinery failed (nginx, Locust worker lost); exit 3
    ├── StoreError                  results directory / history database problems
    │   └── SchemaVersionError      a run directory written by an unknown schema version
    └── AnalysisError
        └── InsufficientData        not enough data to conclude; says how much more is needed

The CLI maps these to exit codes (see `harness.cli.main`); library code never calls sys.exit.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 3


class ConfigError(HarnessError):
    """A scenario file or option is invalid. The message names the file and the field."""

    exit_code = 2


class TargetError(HarnessError):
    exit_code = 3


class TargetUnavailable(TargetError):
    pass


class ProtocolViolation(TargetError):
    pass


class InfrastructureError(HarnessError):
    exit_code = 3


class StoreError(HarnessError):
    exit_code = 3


class SchemaVersionError(StoreError):
    pass


class AnalysisError(HarnessError):
    exit_code = 2


class InsufficientData(AnalysisError):
    """Raised when a statistic cannot be computed meaningfully; `needed` says how much more."""

    def __init__(self, message: str, needed: int | None = None) -> None:
        super().__init__(message)
        self.needed = needed
