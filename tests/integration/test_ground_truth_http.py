"""The projection against the simulator's ground truth with every full sync over HTTP.

The same hypothesis state machine as ``tests/unit/test_ground_truth.py`` (a kind or
Nova-like cloud, notifications through the normalizer onto a SQLite log, syncs at
random points, some while operations run, another cloud taking over the log), but
each sync reads the cloud as production does: Keystone, Nova and Placement served
by ``SimServer`` on a loopback port, read by ``OpenStackReader`` through openstacksdk
(tokens, version discovery, microversions, paging links, JSON). Each cloud gets its
own server (a new cloud replaces the server with it); operations that run while a
sync reads run on the server's thread, under the sim's lock, as it answers a request.

The guarantees are the unit test's, every field compared: after every quiescent sync
the model equals the truth (instances with metadata, created time and flavor extra
specs, nodes, services with their zone, aggregates, each node's status); a kind
cloud is followed exactly between syncs; no record is rejected; a replay from zero
gives the same model. Fewer, shorter runs than the in-process machine: each sync
here costs tens of requests.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import settings

from eventmodel.sim.cloud import SimCloud
from eventmodel.sim.server import SimServer
from eventmodel.sources.openstack import OpenStackReader
from tests.unit.test_ground_truth import CloudVersusModel

# openstacksdk warns, per connection, of a metrics library it will drop
pytestmark = pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning")


class CloudVersusModelOverHttp(CloudVersusModel):
    """Every sync through openstacksdk against the cloud's own SimServer."""

    server: SimServer | None = None
    http_reader: OpenStackReader | None = None

    def _reader(self, sim: SimCloud) -> Any:
        self.server = SimServer(sim, token_ttl_s=3600).start()
        reader = OpenStackReader.connect(None, timeout=10, **self.server.auth_args())
        reader.page_size = 3  # hypervisors in pages too (servers: the Snapshotter's 7)
        self.http_reader = reader
        return reader

    def _changing(self) -> contextlib.AbstractContextManager[Any]:
        return self.server.lock if self.server is not None else contextlib.nullcontext()

    def _stop_cloud(self) -> None:
        if self.http_reader is not None:
            self.http_reader.conn.close()
            self.http_reader = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    def quiescent_sync(self) -> None:
        before = self.server.api.stats()
        super().quiescent_sync()
        # it went over HTTP: services, hypervisors, aggregates and a page of servers
        # from Nova, one inventory per node from Placement
        after = self.server.api.stats()
        assert after["compute"] - before["compute"] >= 4
        assert after["placement"] - before["placement"] >= len(self.sim.truth().nodes)


CloudVersusModelOverHttp.TestCase.settings = settings(max_examples=20, stateful_step_count=12, deadline=None)
TestCloudVersusModelOverHttp = CloudVersusModelOverHttp.TestCase
