"""The random operation mix of the simulated cloud: :class:`Operations` draws
operations from a weighted mix (:data:`DEFAULT_WEIGHTS`) for ``step()``, each on an
instance, service, host or aggregate it is allowed on, and performs it as an explicit
operation (:class:`~eventmodel.sim.explicit.ExplicitOperations`, whose methods it
inherits).

An aggregate change sends no ``service.update``: the zone a service reports changes
silently, so the random mix moves hosts between zones only when ``aggregate_zone`` is
weighted (0 by default: see :data:`DEFAULT_WEIGHTS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eventmodel.events import Aggregate, Instance
from eventmodel.sim.explicit import METADATA_STATES, OP_KINDS, ExplicitOperations, OpRecord, cumulative, pick

__all__ = ["DEFAULT_WEIGHTS", "OP_KINDS", "OpRecord", "Operations", "operation_mix"]


#: the operation mix: relative weights of what step() does
DEFAULT_WEIGHTS: dict[str, float] = {
    "boot": 10,
    "delete": 10,
    "live_migrate": 20,
    "cold_migrate": 5,
    "resize": 8,
    "state_away": 12,  # active -> stopped / paused / suspended / shelved(+offloaded)
    "state_back": 15,  # back to active (or stopped -> shelved, shelved -> offloaded)
    "lock": 3,
    "unlock": 3,
    "instance_metadata": 2,  # set or delete a key of a server's metadata
    "service_disable": 2,
    "service_enable": 2,
    "service_force_down": 1,
    "service_force_up": 1,
    # aggregates without a zone: rare
    "aggregate_create": 0.3,
    "aggregate_delete": 0.3,
    "aggregate_add_host": 0.4,
    "aggregate_remove_host": 0.4,
    "aggregate_metadata": 0.3,
    "aggregate_rename": 0.2,
    # a host joins or leaves a zone aggregate. Nova sends no service.update for it, so a
    # model fed by notifications alone keeps the service's old zone until the next sync:
    # off by default, for tests that sync
    "aggregate_zone": 0,
}

DISABLE_REASONS = ("maintenance", "hardware fault: DIMM errors", "kernel upgrade", "decommissioning", None)
LOCK_REASONS = ("investigating incident", "legal hold", "do not touch: migration pending")
#: metadata keys the random mix sets on a server, and their values
SERVER_METADATA = (("optimize", ("true", "false")), ("watcher-exclude", ("true",)), ("owner", ("sre", "data")))
#: metadata keys the random mix sets on an aggregate without a zone
AGGREGATE_METADATA = (("ssd", ("true", "false")), ("gpu", ("true",)), ("rack", ("r01", "r02", "r07")),
                      ("pinned", ("true",)))  # fmt: skip
AWAY = (("power_off", 4), ("shelve", 2), ("suspend", 1), ("pause", 1))


def operation_mix(weights: Mapping[str, float] | None) -> dict[str, float]:
    """:data:`DEFAULT_WEIGHTS` with ``weights`` over it (checked)."""
    mix = dict(DEFAULT_WEIGHTS)
    for k, v in (weights or {}).items():
        if k not in DEFAULT_WEIGHTS:
            raise ValueError(f"unknown operation {k!r}; known: {', '.join(DEFAULT_WEIGHTS)}")
        if v < 0:
            raise ValueError(f"weight of {k!r} must be >= 0")
        mix[k] = v
    return mix


class Operations(ExplicitOperations):
    """The explicit operations, and ``step()``: random ones drawn from ``weights``."""

    def __init__(self, *args: Any, weights: dict[str, float], **kwargs: Any) -> None:
        """As :class:`ExplicitOperations`, and ``weights``: the mix (see :func:`operation_mix`)."""
        super().__init__(*args, **kwargs)
        self.weights = weights
        self.kinds = [k for k, v in weights.items() if v > 0]
        self.kind_cum = cumulative([weights[k] for k in self.kinds])

    # ------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------

    def step(self, n: int = 1) -> None:
        """Perform n random operations (their notifications are queued)."""
        rng = self.rng
        kinds, cum = self.kinds, self.kind_cum
        for _ in range(n):
            for _attempt in range(64):
                if not kinds:
                    break
                kind = kinds[pick(cum, rng)]
                if getattr(self, "_try_" + kind)():
                    break
                self.counters["skipped"] += 1

    # ------------------------------------------------------------------
    # Random choices for step()
    # ------------------------------------------------------------------

    def _random_instance(self, ok: Callable[[Instance], bool], tries: int = 4) -> Instance | None:
        t = self.truth
        if not t.live:
            return None
        for _ in range(tries):
            inst = t.instances[t.live.choice(self.rng)]
            if ok(inst):
                return inst
        return None

    def _try_boot(self) -> bool:
        f = self.pick_flavor()
        dest = self.truth.pick_host(self.rng, f)
        if dest is None:
            return False
        self._boot(f, dest, None, None)
        return True

    def _try_delete(self) -> bool:
        inst = self._random_instance(lambda x: not x.locked)
        if inst is None:
            return False
        self._delete(inst)
        return True

    def _try_live_migrate(self) -> bool:
        t = self.truth
        inst = self._random_instance(lambda x: x.vm_state == "active" and t.host_up(x.host))
        if inst is None:
            return False
        dest = t.pick_host(self.rng, inst.flavor, exclude=t.host_idx[inst.host])  # type: ignore[index]
        if dest is None:
            return False
        self._live_migrate(inst, dest)
        return True

    def _try_cold_migrate(self) -> bool:
        t = self.truth
        inst = self._random_instance(lambda x: x.vm_state in ("active", "stopped") and t.host_up(x.host))
        if inst is None:
            return False
        dest = t.pick_host(self.rng, inst.flavor, exclude=t.host_idx[inst.host])  # type: ignore[index]
        if dest is None:
            return False
        self._resize(inst, inst.flavor, dest, self.rng.random() < 0.15)
        return True

    def _try_resize(self) -> bool:
        if len(self.flavors) < 2:
            return False
        t = self.truth
        inst = self._random_instance(
            lambda x: x.vm_state in ("active", "stopped") and not x.locked and t.host_up(x.host)
        )
        if inst is None:
            return False
        rng = self.rng
        new = self.flavors[pick(self.flavor_cum, rng)]
        if new == inst.flavor:
            return False
        src = t.host_idx[inst.host]  # type: ignore[index]
        if rng.random() < 0.3 and self._fits_same_host(src, new):
            dest: int | None = src
        else:
            dest = t.pick_host(rng, new, exclude=src)
        if dest is None:
            return False
        self._resize(inst, new, dest, rng.random() < 0.2)
        return True

    def _try_state_away(self) -> bool:
        t = self.truth
        inst = self._random_instance(lambda x: x.vm_state == "active" and not x.locked and t.host_up(x.host))
        if inst is None:
            return False
        rng = self.rng
        r = rng.random() * sum(w for _, w in AWAY)
        for action, w in AWAY:
            r -= w
            if r < 0:
                break
        if action == "shelve":
            self._shelve(inst, rng.random() < 0.85)
        else:
            self._transition(inst, action)
        return True

    def _try_state_back(self) -> bool:
        t = self.truth
        if not t.parked:
            return False
        rng = self.rng
        inst = t.instances[t.parked.choice(rng)]
        if inst.locked or (inst.host is not None and not t.host_up(inst.host)):
            return False
        vm = inst.vm_state
        if vm == "stopped":
            if rng.random() < 0.15:
                self._shelve(inst, rng.random() < 0.85)
            else:
                self._transition(inst, "power_on")
        elif vm == "paused":
            self._transition(inst, "unpause")
        elif vm == "suspended":
            self._transition(inst, "resume")
        elif vm == "shelved":
            if rng.random() < 0.5:
                self.clock.begin()
                self._shelve_offload(inst, self.emit.admin_ctx())
                self._end()
            else:
                self._unshelve(inst, None)
        elif vm == "shelved_offloaded":
            dest = t.pick_host(rng, inst.flavor)
            if dest is None:
                return False
            self._unshelve(inst, dest)
        else:
            return False
        return True

    def _try_lock(self) -> bool:
        inst = self._random_instance(lambda x: not x.locked)
        if inst is None:
            return False
        rng = self.rng
        reason = None if rng.random() < 0.6 else LOCK_REASONS[int(rng.random() * len(LOCK_REASONS))]
        self._lock(inst, True, reason)
        return True

    def _try_unlock(self) -> bool:
        t = self.truth
        if not t.locked:
            return False
        self._lock(t.instances[t.locked.choice(self.rng)], False, None)
        return True

    def _try_instance_metadata(self) -> bool:
        inst = self._random_instance(lambda x: x.vm_state in METADATA_STATES and not x.locked)
        if inst is None:
            return False
        rng = self.rng
        md = dict(inst.metadata)
        if md and rng.random() < 0.4:
            keys = sorted(md)
            del md[keys[int(rng.random() * len(keys))]]
        else:
            key, values = SERVER_METADATA[int(rng.random() * len(SERVER_METADATA))]
            md[key] = values[int(rng.random() * len(values))]
        if md == inst.metadata:
            return False
        self._set_metadata(inst, md, False)
        return True

    def _try_service_disable(self) -> bool:
        t = self.truth
        n = len(t.hosts)
        if not n or len(t.disabled) >= max(1, n // 5):
            return False
        rng = self.rng
        i = int(rng.random() * n)
        if i in t.disabled:
            return False
        reason = DISABLE_REASONS[int(rng.random() * len(DISABLE_REASONS))]
        self._service(i, "service_disable", disabled=True, reason=reason)
        return True

    def _try_service_enable(self) -> bool:
        t = self.truth
        if not t.disabled:
            return False
        self._service(t.disabled.choice(self.rng), "service_enable", disabled=False, reason=None)
        return True

    def _try_service_force_down(self) -> bool:
        t = self.truth
        n = len(t.hosts)
        if not n or len(t.forced) >= max(1, n // 10):
            return False
        i = int(self.rng.random() * n)
        if i in t.forced:
            return False
        self._service(i, "service_force_down", forced_down=True)
        return True

    def _try_service_force_up(self) -> bool:
        t = self.truth
        if not t.forced:
            return False
        self._service(t.forced.choice(self.rng), "service_force_up", forced_down=False)
        return True

    def _plain_aggregates(self) -> list[Aggregate]:
        """Aggregates without a zone, in a stable order."""
        return sorted((a for a in self.truth.aggregates.values() if not a.availability_zone), key=lambda a: a.id or 0)

    def _try_aggregate_create(self) -> bool:
        if len(self._plain_aggregates()) >= 8:
            return False
        rng = self.rng
        self._agg_seq += 1
        key, values = AGGREGATE_METADATA[int(rng.random() * len(AGGREGATE_METADATA))]
        name = f"agg-{key}-{self._agg_seq:03d}"
        if any(a.name == name for a in self.truth.aggregates.values()):
            return False
        self._create_aggregate(name, {key: values[int(rng.random() * len(values))]})
        return True

    def _try_aggregate_delete(self) -> bool:
        empty = [a for a in self._plain_aggregates() if not a.hosts]
        if not empty:
            return False
        self._delete_aggregate(empty[int(self.rng.random() * len(empty))])
        return True

    def _try_aggregate_add_host(self) -> bool:
        aggs, t = self._plain_aggregates(), self.truth
        if not aggs or not t.hosts:
            return False
        rng = self.rng
        agg = aggs[int(rng.random() * len(aggs))]
        host = t.hosts[int(rng.random() * len(t.hosts))]
        if host in agg.hosts:
            return False
        self._aggregate_hosts(agg, host, add=True)
        return True

    def _try_aggregate_remove_host(self) -> bool:
        aggs = [a for a in self._plain_aggregates() if a.hosts]
        if not aggs:
            return False
        rng = self.rng
        agg = aggs[int(rng.random() * len(aggs))]
        self._aggregate_hosts(agg, agg.hosts[int(rng.random() * len(agg.hosts))], add=False)
        return True

    def _try_aggregate_metadata(self) -> bool:
        aggs = self._plain_aggregates()
        if not aggs:
            return False
        rng = self.rng
        agg = aggs[int(rng.random() * len(aggs))]
        md = dict(agg.metadata)
        key, values = AGGREGATE_METADATA[int(rng.random() * len(AGGREGATE_METADATA))]
        if key in md and rng.random() < 0.4:
            del md[key]
        else:
            md[key] = values[int(rng.random() * len(values))]
        if md == agg.metadata:
            return False
        self._aggregate_metadata(agg, md)
        return True

    def _try_aggregate_rename(self) -> bool:
        aggs = self._plain_aggregates()
        if not aggs:
            return False
        agg = aggs[int(self.rng.random() * len(aggs))]
        self._agg_seq += 1
        base = agg.name.rsplit("~", 1)[0]
        name = f"{base}~{self._agg_seq}"
        if any(a.name == name for a in self.truth.aggregates.values()):
            return False
        self._rename_aggregate(agg, name)
        return True

    def _try_aggregate_zone(self) -> bool:
        """A host leaves its zone aggregate, or joins one (when in no zone)."""
        t = self.truth
        zoned = sorted((a for a in t.aggregates.values() if a.availability_zone), key=lambda a: a.id or 0)
        if not zoned or not t.hosts:
            return False
        rng = self.rng
        host = t.hosts[int(rng.random() * len(t.hosts))]
        mine = [a for a in zoned if host in a.hosts]
        if mine:
            self._aggregate_hosts(mine[0], host, add=False)
        else:
            self._aggregate_hosts(zoned[int(rng.random() * len(zoned))], host, add=True)
        return True
