"""The simulated cloud: ground truth, operations, Nova-format notifications, faults, API reads.

Module map (the ground truth is the one thing the parts share):

- :mod:`~eventmodel.sim.truth` — the ground truth (hosts, nodes, services, instances,
  aggregates and zones), :class:`Truth` (a frozen copy) and :func:`diff_truth`;
- :mod:`~eventmodel.sim.world` — the cloud before the log starts: people, flavors,
  hosts, aggregates, the instances already placed;
- :mod:`~eventmodel.sim.explicit` — the explicit operations as changes of the truth
  and their notifications, their history;
- :mod:`~eventmodel.sim.operations` — the random operation mix of ``step()``, drawn over
  the explicit operations;
- :mod:`~eventmodel.sim.timing` — simulated time: operation phases, the hosts' clocks;
- :mod:`~eventmodel.sim.notifications` — Nova's versioned payloads and the wire format
  (the one place that builds them);
- :mod:`~eventmodel.sim.emitter` — messages around the payloads, and their delivery;
- :mod:`~eventmodel.sim.faults` — what goes wrong (delivery faults, payload and listing quirks);
- :mod:`~eventmodel.sim.listing` — the in-process sync reads, with Nova's listing quirks;
- :mod:`~eventmodel.sim.cinder` / :mod:`~eventmodel.sim.storage` — the simulated Cinder
  (backends, pools, volume types, volumes, its operations and unversioned
  notifications) and its ground truth (:func:`~eventmodel.sim.storage.diff_storage`);
- :mod:`~eventmodel.sim.api` / :mod:`~eventmodel.sim.server` — the same reads over HTTP
  (Cinder's Block Storage API in :mod:`~eventmodel.sim.api_block_storage`);
- :mod:`~eventmodel.sim.cloud` — :class:`SimCloud`, the facade that wires them.
"""

from eventmodel.events import PartialInstance
from eventmodel.sim.cloud import DEFAULT_FLAVORS, DEFAULT_WEIGHTS, SimCloud
from eventmodel.sim.faults import Delivery, Faults
from eventmodel.sim.explicit import OpRecord
from eventmodel.sim.truth import (
    DEFAULT_ZONE,
    HostSpec,
    OperationError,
    Truth,
    diff_truth,
    flavor_disk_gb,
)

__all__ = [
    "DEFAULT_FLAVORS",
    "DEFAULT_WEIGHTS",
    "DEFAULT_ZONE",
    "Delivery",
    "Faults",
    "HostSpec",
    "OpRecord",
    "OperationError",
    "PartialInstance",
    "SimCloud",
    "Truth",
    "diff_truth",
    "flavor_disk_gb",
]
