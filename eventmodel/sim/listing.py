"""What Nova's API would answer right now: the in-process reads a full sync makes.

:class:`Listing` reads the ground truth as typed entities (``list_services``,
``list_nodes``, ``list_servers`` in pages sorted by uuid, ``list_aggregates``) with
Nova's listing quirks from :class:`~eventmodel.sim.faults.Faults`: a server left out
of a listing, a down cell's servers as minimal records (``PartialInstance``), ``''``
for "no availability zone". ``during_listing``, when set, runs before each page of
servers and before and after the other lists, so that operations start and finish
while a full sync reads.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable

import attrs

from eventmodel.events import (
    Aggregate,
    ComputeNode,
    ComputeService,
    Instance,
    PartialInstance,
)
from eventmodel.sim.faults import Faults
from eventmodel.sim.truth import GroundTruth


class Listing:
    """The sync reads of the simulated cloud, with its listing faults."""

    def __init__(self, truth: GroundTruth, rng: random.Random, faults: Faults, counters: dict[str, int]) -> None:
        self.truth = truth
        self.faults = faults
        self.counters = counters
        self._rng = rng
        self.during_listing: Callable[[], None] | None = None
        self.omitted_last_listing: set[str] = set()
        self.minimal_last_listing: set[str] = set()
        self.down_cell_last_listing: int | None = None
        self._omit: dict[str, bool] = {}  # decisions of the current listing, per uuid
        self._in_hook = False
        for k in ("listings", "omitted", "minimal", "server_gets"):
            counters.setdefault(k, 0)

    def cell_of(self, host: str | None, uuid: str) -> int:
        """The cell an instance lives in: its host's (host index modulo ``faults.cells``),
        else one derived from its uuid."""
        cells = self.faults.cells
        if host is not None:
            return self.truth.host_idx[host] % cells
        return int(uuid[:8], 16) % cells

    def list_services(self) -> list[ComputeService]:
        self._hook()
        t = self.truth
        out = [t.services[h] for h in t.hosts]
        self._hook()
        return out

    def list_nodes(self) -> list[ComputeNode]:
        self._hook()
        t = self.truth
        out = [t.nodes[n] for n in t.node_of]
        self._hook()
        return out

    def list_aggregates(self) -> list[Aggregate]:
        """Every aggregate, by id (Nova's order), each with its zone, hosts and metadata."""
        self._hook()
        out = sorted(self.truth.aggregates.values(), key=lambda a: a.id or 0)
        self._hook()
        return out

    def list_servers(self, *, limit: int = 1000, marker: str | None = None) -> list[Instance | PartialInstance]:
        """One page of servers sorted by uuid, starting after ``marker`` (the last uuid seen).

        A marker need not exist any more (deleted between pages): the page starts after
        where it would sort, so a server that exists for the whole listing is listed
        exactly once (unless omitted), whatever is created or deleted between pages.
        ``marker=None`` starts a new full listing: the listing faults are drawn for it
        (which cell is down; per server, on first sight, whether it is omitted).
        An omitted server does not shorten the page.
        """
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if marker is None:
            self._new_listing()
        self._hook()
        t = self.truth
        if t.sorted is None:
            t.sorted = sorted(t.instances)
        keys = t.sorted
        k = bisect.bisect_right(keys, marker) if marker is not None else 0
        fl = self.faults
        omit, down = fl.omit, self.down_cell_last_listing
        api_az = "" if fl.empty_az else None
        decided = self._omit
        r = self._rng.random
        instances = t.instances
        page: list[Instance | PartialInstance] = []
        n = len(keys)
        while len(page) < limit and k < n:
            u = keys[k]
            k += 1
            inst = instances[u]
            if omit:
                skip = decided.get(u)
                if skip is None:
                    skip = decided[u] = r() < omit
                if skip:
                    self.omitted_last_listing.add(u)
                    self.counters["omitted"] += 1
                    continue
            if down is not None and self.cell_of(inst.host, u) == down:
                self.minimal_last_listing.add(u)
                self.counters["minimal"] += 1
                page.append(PartialInstance(u, "UNKNOWN", inst.project_id))
                continue
            if inst.availability_zone is None and api_az is not None:
                inst = attrs.evolve(inst, availability_zone=api_az)
            page.append(inst)
        return page

    def get_server(self, uuid: str) -> Instance | PartialInstance | None:
        """One server by uuid as Nova's show server answers now: None when it does not
        exist (Nova's 404). The per-server conversion of :meth:`list_servers`: ``''`` for
        no zone when ``faults.empty_az``; a minimal record (``PartialInstance``) when its
        cell is the one down in the current listing (``down_cell_last_listing``, while
        the faults allow down cells). A server read by uuid is never omitted. Counted in
        ``counters["server_gets"]`` (not in ``omitted``/``minimal``, which count listings).
        ``during_listing`` runs before the read."""
        self._hook()
        self.counters["server_gets"] += 1
        inst = self.truth.instances.get(uuid)
        if inst is None:
            return None
        fl = self.faults
        down = self.down_cell_last_listing
        if fl.down_cell and down is not None and self.cell_of(inst.host, uuid) == down:
            return PartialInstance(uuid, "UNKNOWN", inst.project_id)
        if inst.availability_zone is None and fl.empty_az:
            inst = attrs.evolve(inst, availability_zone="")
        return inst

    def _new_listing(self) -> None:
        self.omitted_last_listing = set()
        self.minimal_last_listing = set()
        self._omit = {}
        fl = self.faults
        down = None
        if fl.down_cell and self._rng.random() < fl.down_cell:
            down = int(self._rng.random() * fl.cells)
        self.down_cell_last_listing = down
        self.counters["listings"] += 1

    def _hook(self) -> None:
        hook = self.during_listing
        if hook is None or self._in_hook:
            return
        self._in_hook = True
        try:
            hook()
        finally:
            self._in_hook = False
