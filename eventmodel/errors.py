"""One root for every error eventmodel and projections raise on purpose, so that an
embedder can write ``except eventmodel.Error``. Each class keeps the built-in base its
callers relied on before (second parent), so ``except ValueError`` still works.

    Error
    ├── ConfigError (ValueError)                 a bad URL, option or text form (position, time, target)
    │   └── SimConfigError (+SimError)           a bad fault spec or fault rate of the simulator
    ├── LogError (RuntimeError)                  the log could not do what was asked
    │   ├── LogUrlError (+ConfigError)           a bad log URL or log URL option
    │   ├── RecordsRejected                      records refused for good (dead-letter them)
    │   ├── PositionNotCovered                   records before/after a position are gone
    │   │   └── PartitionsChanged
    │   └── BroadcastIncomplete                  a marker reached only some partitions
    ├── DecodeError (ValueError)                 stored bytes that are not an envelope
    ├── SourceError                              reading a source of events
    │   ├── Invalid (ValueError)                 a notification that cannot be read (dead-lettered)
    │   ├── CloudApiError (RuntimeError)         the cloud's API answered an error
    │   ├── PublishError (RuntimeError)          publishing to the bus failed
    │   ├── BridgeConfigError (RuntimeError)     the AMQP bridge is misconfigured (it stops)
    │   ├── ExchangeMissing (RuntimeError)       not declared yet (the bridge waits for it)
    │   └── SyncStopped                          a full sync asked to stop
    ├── ModelError                               reading or storing the model
    │   ├── UnknownEntity (KeyError)
    │   ├── AuditNotFound (LookupError)
    │   ├── CheckpointError (ValueError)
    │   └── SnapshotFileError (ValueError)
    ├── WatcherError                             the Watcher integration
    │   ├── WatcherMissing (ImportError)         python-watcher is not installed
    │   └── WatcherXmlError (ValueError)
    ├── ServeError                               ``eventmodel serve``
    │   ├── NotReady (RuntimeError), BadRequest (ValueError), NotFound (LookupError)
    │   ├── TokenError (ValueError)
    │   ├── Busy (RuntimeError)                  too much of one kind of work at once (503, Retry-After)
    │   ├── Cancelled (RuntimeError)             a build every waiting client left
    │   └── WorkerDied (RuntimeError)            a replay worker process ended mid-build (503)
    ├── SimError                                 the simulated cloud
    │   ├── SimApiError                          an API error it answers with
    │   ├── OperationError (ValueError)          an operation the cloud refuses
    │   └── DemoFailed                           a step of the demo failed (API not served, a sync)
    └── RetryStopped                             a retry loop was told to stop

The classes live next to the code that raises them; this module holds the root and the
areas only, and imports nothing from the project.
"""

from __future__ import annotations


class Error(Exception):
    """The root of every error eventmodel raises on purpose."""


class ConfigError(Error, ValueError):
    """A URL, option or text form given by an operator or a caller is invalid."""


class SourceError(Error):
    """Reading a source of events: notifications, the cloud's APIs, the bus."""


class ModelError(Error):
    """Reading, storing or restoring the model (projections)."""


class WatcherError(Error):
    """The Watcher integration."""


class ServeError(Error):
    """``eventmodel serve``."""


class SimError(Error):
    """The simulated cloud."""


class SimConfigError(SimError, ConfigError):
    """A fault spec, a fault rate or another setting of the simulator is invalid."""
