"""Chaos fault hooks: what the admin API switches on and the core applies to each request.

Why in-process hooks: a game day needs faults that are precise (a 7 % failure ratio, 50 ms
+- 10 ms), bounded (`duration_s` expires them by itself, so a crashed experiment cannot leave
a server broken) and observable from a client, without root, netem or a GPU to unplug.

  latency      {"fixed_ms": >= 0, "jitter_ms": >= 0}   delay uniform in fixed +- jitter
  failure      {"ratio": 0..1}                          that share of requests fail (500)
  device_loss  {"policy": "unready" | "cpu-fallback"}   unready: readiness fails, inference
                                                        503; cpu-fallback: sessions move to
                                                        the CPU provider, server degraded
  hang         {}                                       requests never complete until the
                                                        fault is removed or expires

Every spec may carry `duration_s` (> 0, auto-expiry) and `model` (scope: one model only;
not for device_loss, which takes the whole device and so every model).
Specs are validated by pydantic models that reject unknown keys; errors become
InvalidInput naming the field. The RNG and the clock are injected so tests are exact.
Listeners (the core) are told when the set of faults changes, to react to device loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from reference_server.errors import InjectedFailure, InvalidInput

logger = logging.getLogger(__name__)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    duration_s: float | None = Field(default=None, gt=0)
    model: str | None = None


class LatencySpec(_Spec):
    type: Literal["latency"]
    fixed_ms: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0)


class FailureSpec(_Spec):
    type: Literal["failure"]
    ratio: float = Field(ge=0, le=1)


class DeviceLossSpec(_Spec):
    type: Literal["device_loss"]
    policy: Literal["unready", "cpu-fallback"] = "unready"


class HangSpec(_Spec):
    type: Literal["hang"]


FaultSpec = Annotated[
    LatencySpec | FailureSpec | DeviceLossSpec | HangSpec, Field(discriminator="type")
]
_ADAPTER: TypeAdapter[FaultSpec] = TypeAdapter(FaultSpec)
FAULT_TYPES = ("latency", "failure", "device_loss", "hang")


def parse_spec(spec: object) -> LatencySpec | FailureSpec | DeviceLossSpec | HangSpec:
    """Validate a fault spec dict; InvalidInput names the offending field."""
    if not isinstance(spec, dict):
        raise InvalidInput("fault spec must be a JSON object")
    if "type" not in spec:
        raise InvalidInput(f"fault field 'type' is required: one of {', '.join(FAULT_TYPES)}")
    try:
        parsed = _ADAPTER.validate_python(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"] if str(p) not in FAULT_TYPES]
        field = ".".join(loc) or "type"
        raise InvalidInput(f"fault field '{field}': {err['msg']}") from None
    if parsed.type == "device_loss" and parsed.model is not None:
        raise InvalidInput("fault field 'model': a device_loss fault applies to the whole server")
    return parsed


@dataclass(frozen=True, slots=True)
class Fault:
    id: str
    spec: LatencySpec | FailureSpec | DeviceLossSpec | HangSpec
    created_at: float
    expires_at: float | None

    def to_dict(self, now: float) -> dict:
        out = {"id": self.id, **self.spec.model_dump(exclude_none=True)}
        if self.expires_at is not None:
            out["remaining_s"] = round(max(0.0, self.expires_at - now), 3)
        return out


class FaultState:
    """The active faults of one server; `active` is False on the fast path."""

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rng = rng or random.Random()
        self._clock = clock
        self._faults: dict[str, Fault] = {}
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[], None]] = []
        self._changed: asyncio.Event | None = None
        self.active = False

    # -- admin API -----------------------------------------------------------------------
    def add(self, spec: dict, fault_id: str | None = None) -> dict:
        """Validate and activate a fault; returns it with its id (assigned here unless given:
        a supervisor gives every worker the same id for one fault)."""
        parsed = parse_spec(spec)
        now = self._clock()
        expires = now + parsed.duration_s if parsed.duration_s else None
        fault = Fault(fault_id or f"{parsed.type}-{next(self._ids)}", parsed, now, expires)
        self._faults[fault.id] = fault
        logger.warning("fault added: %s", fault.to_dict(now))
        self._changed_now()
        return fault.to_dict(now)

    def list(self) -> list[dict]:
        now = self._expire()
        return [f.to_dict(now) for f in self._faults.values()]

    def remove(self, fault_id: str) -> bool:
        found = self._faults.pop(fault_id, None) is not None
        if found:
            logger.warning("fault removed: %s", fault_id)
            self._changed_now()
        return found

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        if count:
            logger.warning("all %d fault(s) cleared", count)
        self._changed_now()
        return count

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever faults are added, removed, cleared or expire."""
        self._listeners.append(listener)

    # -- queries used by the core --------------------------------------------------------
    def _expire(self) -> float:
        now = self._clock()
        expired = [k for k, f in self._faults.items() if f.expires_at and f.expires_at <= now]
        for key in expired:
            del self._faults[key]
            logger.warning("fault expired: %s", key)
        if expired:
            self._changed_now()
        return now

    def _matching(self, model: str | None, kind: str) -> list[Fault]:
        return [
            f
            for f in self._faults.values()
            if f.spec.type == kind and (model is None or f.spec.model in (None, model))
        ]

    def device_loss(self) -> str | None:
        """The policy of the active device-loss fault (unready wins over cpu-fallback)."""
        self._expire()
        policies = {f.spec.policy for f in self._matching(None, "device_loss")}  # type: ignore[union-attr]
        if "unready" in policies:
            return "unready"
        return "cpu-fallback" if policies else None

    def delay_s(self, model: str) -> float:
        """Total injected latency for one request to `model`, in seconds."""
        total = 0.0
        for f in self._matching(model, "latency"):
            spec: LatencySpec = f.spec  # type: ignore[assignment]
            jitter = self._rng.uniform(-spec.jitter_ms, spec.jitter_ms) if spec.jitter_ms else 0.0
            total += max(0.0, spec.fixed_ms + jitter) / 1000.0
        return total

    def check_failure(self, model: str) -> None:
        """Raise InjectedFailure for the configured share of requests."""
        for f in self._matching(model, "failure"):
            ratio = f.spec.ratio  # type: ignore[union-attr]
            if ratio and self._rng.random() < ratio:
                raise InjectedFailure(f"injected failure (fault {f.id}, ratio {ratio})")

    async def apply(self, model: str) -> None:
        """Everything a request to `model` goes through before it is queued."""
        self._expire()
        if not self._faults:
            return
        await self.wait_hangs(model)
        delay = self.delay_s(model)
        if delay > 0:
            await asyncio.sleep(delay)
        self.check_failure(model)

    async def wait_hangs(self, model: str) -> None:
        """Block while a hang fault for `model` is active (until removed or expired)."""
        while True:
            hangs = self._matching(model, "hang")
            if not hangs:
                return
            if self._changed is None:
                self._changed = asyncio.Event()
            changed = self._changed
            expiries = [f.expires_at for f in hangs if f.expires_at is not None]
            timeout = max(0.0, min(expiries) - self._clock()) if expiries else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
            self._expire()

    def _changed_now(self) -> None:
        self.active = bool(self._faults)
        if self._changed is not None:  # release hung requests so they re-check
            self._changed.set()
            self._changed = None
        for listener in self._listeners:
            listener()
