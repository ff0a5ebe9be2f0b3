"""Faults the simulated cloud's HTTP API injects into the requests of a reader.

A :class:`HttpFault` says what goes wrong (``kind``), on which requests (``service``
and a ``path`` fragment) and when: after ``after`` matching requests went through,
on the next ``times`` matching ones (one-shot by default). A :class:`FaultPlan`
holds the armed faults and is consulted once per request, from the server's event
loop, while tests and the control endpoint arm faults from other threads.

Kinds:

- ``error``: an HTTP error (``status``, 500 by default) in the service's error shape;
- ``timeout``: the handler stalls ``stall_s`` seconds (longer than the client's
  timeout) before answering normally;
- ``reset``: the connection is closed without an answer (a TCP reset);
- ``expired_token``: the request's token, valid until now, expires: 401, and every
  later request with it too (keystoneauth then re-authenticates once).
"""

from __future__ import annotations

import threading
from typing import Any

import attrs

from eventmodel.errors import SimConfigError

from eventmodel.sim.faults import non_negative, positive

FAULT_KINDS = ("error", "timeout", "reset", "expired_token")
SERVICES = ("identity", "compute", "placement", "block-storage")


def _kind(_inst: Any, _attr: attrs.Attribute, value: str) -> None:
    if value not in FAULT_KINDS:
        raise SimConfigError(f"unknown fault kind {value!r}; known: {', '.join(FAULT_KINDS)}")


def _service(_inst: Any, _attr: attrs.Attribute, value: str | None) -> None:
    if value is not None and value not in SERVICES:
        raise SimConfigError(f"unknown service {value!r}; known: {', '.join(SERVICES)}")


def _status(_inst: Any, attr: attrs.Attribute, value: int) -> None:
    if not 400 <= value <= 599:
        raise SimConfigError(f"{attr.name} must be an HTTP error status (400-599), got {value!r}")


@attrs.frozen(slots=True)
class HttpFault:
    """One fault: ``kind`` on the requests to ``service`` whose path contains ``path``
    (either ``None``: any), after ``after`` such requests, ``times`` times."""

    kind: str = attrs.field(validator=_kind)
    service: str | None = attrs.field(default=None, validator=_service)
    path: str | None = None
    after: int = attrs.field(default=0, converter=int, validator=non_negative)
    times: int = attrs.field(default=1, converter=int, validator=positive)
    status: int = attrs.field(default=500, converter=int, validator=_status)
    stall_s: float = attrs.field(default=30.0, converter=float, validator=non_negative)

    @classmethod
    def parse(cls, spec: str) -> HttpFault:
        """``KIND[:key=value,...]``, e.g. ``reset:service=compute,path=servers/detail,after=2``."""
        kind, _, rest = spec.strip().partition(":")
        fields: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise SimConfigError(f"fault option {item!r} is not key=value (in {spec!r})")
            fields[key.strip()] = value.strip()
        return cls.from_dict({"kind": kind.strip(), **fields})

    @classmethod
    def from_dict(cls, data: Any) -> HttpFault:
        """From the control endpoint's JSON object; ValueError on anything unknown."""
        if not isinstance(data, dict):
            raise SimConfigError(f"a fault is a JSON object, got {type(data).__name__}")  # noqa: TRY004 - bad input
        known = {a.name for a in attrs.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SimConfigError(f"unknown fault field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        if "kind" not in data:
            raise SimConfigError("a fault needs a kind")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:  # a missing field, or a value its converter refuses
            raise SimConfigError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def matches(self, service: str, path: str, has_token: bool) -> bool:
        if self.service is not None and self.service != service:
            return False
        if self.path is not None and self.path not in path:
            return False
        # a token can only expire on a request that carries one
        return has_token or self.kind != "expired_token"


@attrs.define
class _Armed:
    fault: HttpFault
    seen: int = 0
    fired: int = 0


class FaultPlan:
    """The armed faults; ``take()`` is asked once per request and says which one fires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self._fired: list[dict[str, Any]] = []

    def arm(self, *faults: HttpFault) -> None:
        """Arm faults; each counts matching requests from now on."""
        with self._lock:
            self._armed.extend(_Armed(f) for f in faults)

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self, service: str, path: str, has_token: bool) -> HttpFault | None:
        """The fault this request gets, if any (every matching armed fault counts it)."""
        if not self._armed:  # the common case, without the lock
            return None
        hit = None
        with self._lock:
            for a in self._armed:
                if not a.fault.matches(service, path, has_token):
                    continue
                a.seen += 1
                if hit is None and a.seen > a.fault.after:
                    a.fired += 1
                    hit = a.fault
            if hit is not None:
                self._fired.append({"kind": hit.kind, "service": service, "path": path})
                self._armed = [a for a in self._armed if a.fired < a.fault.times]
        return hit

    def armed(self) -> list[dict[str, Any]]:
        """The faults still armed, with how many matching requests each has seen."""
        with self._lock:
            return [{**a.fault.to_dict(), "seen": a.seen, "fired": a.fired} for a in self._armed]

    def fired(self) -> list[dict[str, Any]]:
        """Every fault that fired: kind, service and request path, in order."""
        with self._lock:
            return list(self._fired)
