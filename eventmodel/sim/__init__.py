"""The simulated cloud: ground truth, operations, Nova-format notifications, faults."""

from eventmodel.sim.cloud import (
    DEFAULT_FLAVORS,
    DEFAULT_WEIGHTS,
    HostSpec,
    OperationError,
    OpRecord,
    PartialInstance,
    SimCloud,
    Truth,
    diff_truth,
)
from eventmodel.sim.faults import Delivery, Faults

__all__ = [
    "DEFAULT_FLAVORS",
    "DEFAULT_WEIGHTS",
    "Delivery",
    "Faults",
    "HostSpec",
    "OpRecord",
    "OperationError",
    "PartialInstance",
    "SimCloud",
    "Truth",
    "diff_truth",
]
