"""A Watcher cluster-data-model collector whose compute model is the projection (ADR 0014).

Watcher's own ``compute`` collector rebuilds its model from Nova and Placement (about
three API calls per host) and deep-copies it for every audit. This one keeps a
:class:`~projections.engine.ModelEngine` in the decision-engine process — restored
from a checkpoint, following the event log — and answers each audit with a
:class:`~projections.watcher.view.WatcherView` over the latest snapshot: O(1), no API
call, and the audit's own changes never reach the shared snapshot. Audits at one model
version share what is derived from it alone (the :class:`~projections.watcher.layout.Layout`:
order, each node's instances and what they use; the hosts' zones).

The audit scope is Watcher's (``ComputeScope``: availability zones, host aggregates,
excluded instances, compute nodes, aggregates, projects and instance metadata), with
the zones and aggregates read from the same snapshot instead of Nova's API.

Entry point (group ``watcher_cluster_data_model_collectors``): ``eventmodel``. Its
options live in the group ``[watcher_cluster_data_model_collectors.<name>]`` of
watcher.conf, ``<name>`` being the entry point's name (README: "Watcher").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from oslo_config import cfg
from oslo_log import log
from watcher.decision_engine.model.collector import base
from watcher.decision_engine.scope import base as scope_base
from watcher.decision_engine.scope import compute as compute_scope

from eventmodel.events import Aggregate
from eventmodel.log import LogError
from eventmodel.log.base import Position
from projections.engine import ModelEngine
from projections.model import ClusterModel
from projections.watcher.layout import Layout
from projections.watcher.view import ORDERS, WatcherView

LOG = log.getLogger(__name__)


def host_zones(model: ClusterModel) -> dict[str, str | None]:
    """Compute host → its availability zone, as :meth:`ClusterModel.node_status` reads it
    (the zone of an aggregate holding the host, else the service's), for the hosts of the
    model's compute nodes: the only hosts a scope can keep or remove."""
    by_host = model.aggregates_by_host()
    return {n.host: model.node_status(n.name, by_host).zone for n in model.compute_nodes().values() if n.host}


def wildcard(values: list[Any], what: str) -> bool:
    """True for ``["*"]``; Watcher refuses ``*`` mixed with names."""
    if "*" not in values:
        return False
    if len(values) > 1:
        from watcher.common import exception

        raise exception.WildcardCharacterIsUsed(resource=what)
    return True


class SnapshotScope:
    """Mixed in before one of Watcher's scope classes: no API client (nothing to call),
    and ``self._model`` is the snapshot the scoped model is a view over (else the
    collector's latest), for the rules that read zones, aggregates or types from it."""

    def __init__(self, scope: list[dict[str, Any]], config: Any, collector: Any) -> None:
        scope_base.BaseScope.__init__(self, scope, config)  # type: ignore[arg-type]
        self._collector = collector
        self._model: ClusterModel | None = None

    def get_scoped_model(self, cluster_model: Any) -> Any:
        model = getattr(cluster_model, "model", None)
        self._model = model if isinstance(model, ClusterModel) else self._collector.engine.latest()
        return super().get_scoped_model(cluster_model)  # type: ignore[misc]


class ProjectionScope(SnapshotScope, compute_scope.ComputeScope):
    """Watcher's compute audit scope, reading zones and aggregates from the snapshot the
    view is over (Watcher's asks Nova's API for both)."""

    def remove_nodes_from_model(self, nodes_to_remove: Iterable[str], cluster_model: Any) -> None:
        """Watcher's loop (each node's instances deleted one by one, then the node) as one
        call on a view: O(nodes removed), no instance listed (``WatcherView.remove_nodes_named``)."""
        if isinstance(cluster_model, WatcherView):
            cluster_model.remove_nodes_named(nodes_to_remove)
        else:
            super().remove_nodes_from_model(nodes_to_remove, cluster_model)

    def _snapshot(self) -> ClusterModel:
        return self._model if self._model is not None else self._collector.engine.latest()

    def _collect_aggregates(self, host_aggregates: list[dict[str, Any]], compute_nodes: list[str]) -> None:
        ids = [a["id"] for a in host_aggregates if "id" in a]
        names = [a["name"] for a in host_aggregates if "name" in a]
        every = wildcard(ids, "host aggregates") or wildcard(names, "host aggregates")
        aggregates: Iterable[Aggregate] = self._snapshot().aggregates().values()
        for agg in sorted(aggregates, key=lambda a: (a.id if a.id is not None else -1, a.uuid)):
            if every or agg.id in ids or agg.name in names:
                compute_nodes.extend(agg.hosts)

    def _collect_zones(self, availability_zones: list[dict[str, Any]], allowed_nodes: list[str]) -> None:
        wanted = [z["name"] for z in availability_zones]
        every = wildcard(wanted, "availability zones")
        snapshot = self._snapshot()
        zones = self._collector.host_zones(snapshot) if self._collector is not None else host_zones(snapshot)
        for host, zone in sorted(zones.items()):
            if every or zone in wanted:
                allowed_nodes.append(host)


class ProjectionCollector(base.BaseClusterDataModelCollector):
    """Watcher's compute model, from the eventmodel projection (see module doc).

    The engine starts on first use (Watcher builds collectors at start-up and for every
    audit; the class is a singleton, so one engine serves them all)."""

    def __init__(self, config: Any, osc: Any = None) -> None:
        super().__init__(config, osc)
        self._engine: ModelEngine | None = None
        #: the layout of the latest model audited: audits at the same model version share it
        self._layout: Layout | None = None
        self._zones: tuple[ClusterModel, dict[str, str | None]] | None = None
        #: (a model's position, the log's end just after this collector recorded an audit
        #: read of it) when that record was the only one between the two
        self._own_read: tuple[Position, Position] | None = None

    def host_zones(self, model: ClusterModel) -> dict[str, str | None]:
        """:func:`host_zones` of ``model``, kept for the latest model asked (zone scopes of
        audits at one model version read it once)."""
        got = self._zones
        if got is None or got[0].state.tables is not model.state.tables:
            got = self._zones = (model, host_zones(model))
        return got[1]

    @classmethod
    def get_config_opts(cls) -> list[cfg.Opt]:
        return [*super().get_config_opts(), *[
            cfg.StrOpt("log_url", help="The event log the model is folded from: sqlite:///path.db or "
                                       "kafka://host:9092/topic."),
            cfg.StrOpt("checkpoint_dir", help="Where the model's checkpoints are kept (start-up restores "
                                              "the newest); unset: replay the log at every start."),
            cfg.IntOpt("checkpoint_every", default=100_000, min=1, help="Records between checkpoints."),
            cfg.FloatOpt("checkpoint_interval", default=600.0, min=0,
                         help="Seconds between checkpoints while records arrive (0: by count only)."),
            cfg.IntOpt("checkpoint_ladder", default=0, min=0,
                       help="Keep one checkpoint per this many records of log position, so that an "
                            "audit replays from near its point (0: keep only the newest)."),
            cfg.IntOpt("checkpoint_ladder_keep", default=64, min=1, help="The most positional checkpoints kept."),
            cfg.FloatOpt("catch_up_timeout", default=5.0, min=0,
                         help="Seconds an audit waits for the model to reach the log's end as of its "
                              "start; then it runs on the latest model (0: never wait)."),
            cfg.BoolOpt("record_audits", default=True,
                        help="Record on the log the position every audit read (eventmodel audits, "
                             "eventmodel replay --audit)."),
            cfg.BoolOpt("check_optimize_metadata", default=True,
                        help="Apply an audit scope's exclude/instance_metadata rule (e.g. optimize: false)."),
            cfg.FloatOpt("max_age", default=7200.0, min=0,
                         help="Seconds without any cluster record (a notification's or a full sync's) after "
                              "which the model is stale and strategies refuse it (0: no limit). Audits' "
                              "own records do not count."),
            cfg.IntOpt("max_lag", default=100_000, min=0,
                       help="Records not folded yet above which the model is stale (0: no limit)."),
            cfg.StrOpt("order", default="collector", choices=[o for o in ORDERS if o != "given"],
                       help="Order of nodes and their instances in the model (see projections.watcher.view)."),
        ]]

    # -- the engine ------------------------------------------------------------
    @property
    def engine(self) -> ModelEngine:
        """The in-process model engine, started on first use."""
        with self.lock:
            if self._engine is None:
                url = self.config.get("log_url")
                if not url:
                    raise LogError("the eventmodel collector needs log_url in "
                                   "[watcher_cluster_data_model_collectors.<its name>] of watcher.conf")
                interval = self.config.get("checkpoint_interval") or None
                self._engine = ModelEngine(
                    url, self.config.get("checkpoint_dir") or None,
                    checkpoint_every=self.config.get("checkpoint_every", 100_000), checkpoint_interval=interval,
                    ladder=self.config.get("checkpoint_ladder", 0),
                    ladder_keep=self.config.get("checkpoint_ladder_keep", 64),
                    reader="watcher-decision-engine",
                    max_age=self.config.get("max_age", 7200.0) or None,
                    max_lag=self.config.get("max_lag", 100_000) or None)
                for why in self._engine.skipped_checkpoints:
                    LOG.warning("eventmodel: skipped checkpoint: %s", why)
                LOG.info("eventmodel: model of %s at %s", self._engine.log.url, self._engine.latest().describe())
            return self._engine

    def stop(self) -> None:
        """Stop the engine (a last checkpoint is written)."""
        with self.lock:
            if self._engine is not None:
                self._engine.stop()
                self._engine = None

    # -- Watcher's collector interface ------------------------------------------
    @property
    def notification_endpoints(self) -> list[Any]:
        """None: the model follows the event log, not Nova's notifications here."""
        return []

    def get_audit_scope_handler(self, audit_scope: list[dict[str, Any]]) -> ProjectionScope:
        self._audit_scope_handler = ProjectionScope(audit_scope, self.config, self)
        self._data_model_scope = audit_scope
        return self._audit_scope_handler

    def _view(self, model: ClusterModel, log_end: Position | None = None) -> WatcherView:
        """A view of ``model``, stale (with the reason) whenever the engine's health says
        so: the log cannot be read, no cluster record for ``max_age``, more than
        ``max_lag`` records behind, or the last full sync failed. A stale view is false,
        so Watcher's strategies refuse it (``ClusterStateNotDefined``), as they refuse
        Watcher's own collector's ``STALE_MODEL``."""
        order = self.config.get("order", "collector")
        layout = self._layout
        if layout is None or not layout.fits(model) or layout.order != order:
            layout = self._layout = Layout(model, order, model.given_order is not None)
        view = WatcherView(model, layout=layout)
        reason = view.stale_reason or self.engine.health(log_end).stale
        if reason:
            view.stale, view.stale_reason = True, reason
            LOG.warning("eventmodel: the model is stale: %s", reason)
        return view

    def execute(self) -> WatcherView:
        """The latest model as a view (nothing to build)."""
        return self._view(self.engine.latest())

    def latest_model(self) -> ClusterModel:
        """The latest snapshot, after waiting (up to ``catch_up_timeout``) for the model to
        reach the log's end as it is now. When all the log has past the model's position
        is this collector's own last audit record (it changes no entity), the model
        before it is as current and nothing is waited for: audits run back to back do
        not each wait for the follower's next poll."""
        return self._caught_up()[0]

    def _caught_up(self) -> tuple[ClusterModel, Position | None]:
        """:meth:`latest_model`, and the log's end it read (None when it read none)."""
        engine = self.engine
        timeout = float(self.config.get("catch_up_timeout", 5.0) or 0)
        end = None
        if timeout > 0:
            try:
                end = engine.log.end()
                own = self._own_read
                return engine.wait_for(own[0] if own is not None and own[1] == end else end, timeout), end
            except (TimeoutError, LogError) as exc:
                LOG.warning("eventmodel: audit runs on %s: %s", engine.latest().describe(), exc)
        return engine.latest(), end

    def get_latest_cluster_data_model(self) -> WatcherView:
        """A fresh view of the latest snapshot for one audit: O(1), no copy; what the
        audit changes stays in its view. With ``record_audits``, the position it read is
        appended to the log (``view.audit_id`` names the record)."""
        model, end = self._caught_up()
        view = self._view(model, end)
        view.audit_id = None  # type: ignore[attr-defined]
        if self.config.get("record_audits", True):
            audit_id = f"watcher-{uuid.uuid4()}"
            try:
                self.engine.record_audit(audit_id, model)
            except (LogError, ValueError) as exc:
                LOG.warning("eventmodel: could not record the audit's read: %s", exc)
            else:
                view.audit_id = audit_id  # type: ignore[attr-defined]
                LOG.info("eventmodel: audit read %s recorded at position %s", audit_id, model.position)
                self._note_own_read(model.position)
        return view

    def _note_own_read(self, position: Position) -> None:
        """Remember ``position`` and the log's end when this collector's audit record just
        appended is the only record past ``position`` (see :meth:`latest_model`)."""
        try:
            after = self.engine.log.end()
        except LogError:  # the next audit reads the end again and says why if it cannot
            return
        if after.total == position.total + 1:
            self._own_read = (position, after)

    def synchronize(self) -> None:
        """Watcher's periodic sync: the engine follows the log, so only the cached model
        is refreshed."""
        with self.sync_lock:
            self.cluster_data_model = self.execute()
