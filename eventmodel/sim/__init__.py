"""The simulated cloud: ground truth, operations, Nova-format notifications, faults."""

from eventmodel.sim.cloud import (
    DEFAULT_FLAVORS,
    DEFAULT_WEIGHTS,
    Faults,
    HostSpec,
    OperationError,
    OpRecord,
    SimCloud,
    Truth,
    diff_truth,
)

__all__ = [
    "DEFAULT_FLAVORS",
    "DEFAULT_WEIGHTS",
    "Faults",
    "HostSpec",
    "OpRecord",
    "OperationError",
    "SimCloud",
    "Truth",
    "diff_truth",
]
