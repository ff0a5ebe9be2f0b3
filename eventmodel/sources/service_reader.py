"""What a reader of another OpenStack service (Cinder, Ironic) shares with the compute
reader: the connection, the keystoneauth session and the request counter of an
:class:`~eventmodel.sources.openstack.OpenStackReader`, the service's endpoint from the
catalog, its microversion negotiated once per sync, and paging by marker
(:func:`follow_markers`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from operator import attrgetter
from typing import Any, ClassVar, TypeVar

from eventmodel.sources.openstack import CloudApiError, OpenStackReader, negotiate

T = TypeVar("T")

#: one page after a marker: (items, more pages?), or None when the marker is gone (404)
PageFetch = Callable[[int, "str | None"], "tuple[list[T], bool] | None"]


def follow_markers(fetch: PageFetch[T], limit: int, *, key: Callable[[T], str] = attrgetter("uuid"),
                   ahead: bool = False) -> Iterator[list[T]]:
    """Every item, a page at a time, each yielded once. Cinder and Ironic look the marker
    up among live rows and answer 404 when it was deleted between two pages (``fetch``
    gives None): the listing then goes on after the item listed before it, then the one
    before that, and from the start when none is left. With ``ahead``, the next page is
    fetched on a thread while the caller stores this one."""
    listed: list[str] = []
    seen: set[str] = set()
    back = 0  # how many listed items, from the last, are known to be gone
    pool = ThreadPoolExecutor(1, thread_name_prefix="eventmodel-pages") if ahead else None

    def request() -> Future[tuple[list[T], bool] | None]:
        marker = listed[-1 - back] if back < len(listed) else None
        if pool is not None:
            return pool.submit(fetch, limit, marker)
        done: Future[tuple[list[T], bool] | None] = Future()
        done.set_result(fetch(limit, marker))
        return done

    try:
        pending = request()
        while True:
            got = pending.result()
            if got is None:
                back += 1
                pending = request()
                continue
            page, more = got
            back = 0
            fresh = [item for item in page if key(item) not in seen]
            for item in fresh:
                seen.add(key(item))
                listed.append(key(item))
            if not fresh and page:  # a page of items already listed: go on after its last one
                listed.append(key(page[-1]))
            more = more and bool(page)
            if more and pool is not None:  # fetched while the caller stores this page
                pending = request()
            if fresh:
                yield fresh
            if not more:
                return
            if pool is None:
                pending = request()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class ServiceReader:
    """Base of a service's full-sync reader: subclasses name the service (as counted),
    the catalog types that list it, its openstacksdk proxy, the microversions they use,
    and the path suffix of a versioned endpoint, if the catalog's is unversioned."""

    SERVICE: ClassVar[str]
    CATALOG_TYPES: ClassVar[tuple[str, ...]]
    PROXY: ClassVar[str]
    VERSIONS: ClassVar[tuple[str, str]]
    VERSION_PATH: ClassVar[str] = ""

    def __init__(self, base: OpenStackReader, *, page_size: int = 1000) -> None:
        self.base = base
        self.conn = base.conn
        self.requests = base.requests
        self.page_size = page_size
        self._version: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, cloud: str | None = None, **config: Any) -> Any:
        return cls(OpenStackReader.connect(cloud, **config))

    def endpoint(self) -> str | None:
        """The service's endpoint in the catalog, or None when the cloud has none."""
        for kind in self.CATALOG_TYPES:
            try:
                url = self.conn.endpoint_for(kind)
            except Exception:  # noqa: BLE001 - a catalog without it
                url = None
            if url:
                return str(url).rstrip("/")
        return None

    def start_sync(self) -> None:
        with self._lock:
            self._version = None

    def microversion(self) -> str:
        """The microversion of this sync's requests (negotiated on first use)."""
        with self._lock:
            if self._version is None:
                url = self.endpoint()
                if url is None:
                    raise CloudApiError(f"the catalog has no {self.SERVICE} service")
                if self.VERSION_PATH and not url.endswith(self.VERSION_PATH):
                    url += self.VERSION_PATH
                self.base._endpoints[self.SERVICE] = url
                self.requests.add_endpoint(url, self.SERVICE)
                data = getattr(self.conn, self.PROXY).get_endpoint_data()
                if data is None:
                    raise CloudApiError(f"version discovery found no {self.SERVICE} endpoint")
                self._version = negotiate(self.SERVICE, (data.min_microversion, data.max_microversion),
                                          self.VERSIONS)
            return self._version

    def _get(self, url: str, params: Mapping[str, Any] | None = None, *, missing_ok: bool = False) -> Any:
        version = self.microversion()  # first: a catalog without the service says so
        return self.base._get(self.SERVICE, url, version, params, missing_ok=missing_ok)
