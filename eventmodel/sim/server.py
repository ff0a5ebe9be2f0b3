"""Running the simulated cloud's HTTP API (:mod:`eventmodel.sim.api`) with uvicorn.

``SimServer`` binds 127.0.0.1 on a free port (or the one given), runs uvicorn in a
background thread and stops it cleanly. Use it as a context manager in tests and the
demo::

    from eventmodel.sim import SimCloud
    from eventmodel.sim.server import SimServer

    sim = SimCloud(hosts=4, instances=20, seed=1)
    with SimServer(sim, token_ttl_s=3600) as srv:
        srv.url                          # http://127.0.0.1:PORT
        srv.auth_url                     # http://127.0.0.1:PORT/identity/v3
        conn = openstack.connect(**srv.auth_args())
        srv.write_clouds_yaml("clouds.yaml", cloud="sim")   # then openstack.connect(cloud="sim")
        with srv.lock:                   # change the sim only under its lock
            sim.step(5)
        srv.api.stats()                  # {"identity": 1, "compute": 3, "placement": 5, ...}
        srv.api.arm(HttpFault("error", service="compute", path="servers/detail", after=1))

A connection reset (fault kind ``reset``) closes the client's TCP connection with an
RST and no answer: the server's HTTP protocol (uvicorn's h11 protocol, subclassed)
keeps the transport of each open connection, keyed by the client's address, which
the app finds in the request scope.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn
import yaml
from uvicorn.protocols.http.h11_impl import H11Protocol

from eventmodel.sim.api import Credentials, Scope, SimApi
from eventmodel.sim.http_faults import HttpFault


class _Connections:
    """The open connections' transports by client address (host, port)."""

    def __init__(self) -> None:
        self.by_client: dict[tuple[str, int], asyncio.Transport] = {}

    def protocol_class(self) -> type[H11Protocol]:
        registry = self.by_client

        class Protocol(H11Protocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                sock = transport.get_extra_info("socket")
                if sock is not None:  # headers and body go out as two writes: no Nagle delay
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.client:
                    registry[tuple(self.client)] = transport  # type: ignore[index]

            def connection_lost(self, exc: Exception | None) -> None:
                if self.client:
                    registry.pop(tuple(self.client), None)  # type: ignore[arg-type]
                super().connection_lost(exc)

        return Protocol

    def reset(self, scope: Scope) -> bool:
        """Close the request's connection with a TCP reset; False if it is unknown."""
        client = scope.get("client")
        transport = self.by_client.get(tuple(client)) if client else None  # type: ignore[arg-type]
        if transport is None:
            return False
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:  # linger 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()
        return True


class SimServer:
    """The simulated cloud over HTTP on 127.0.0.1, in a background thread.

    ``api_options`` go to :class:`~eventmodel.sim.api.SimApi` (``credentials``,
    ``token_ttl_s``, ``clock``, ``faults``) unless an ``api`` is given. ``freeze_gc``
    calls ``gc.freeze()`` on start, for a process that serves a large sim for its whole
    life (a full collection over 500,000 servers takes seconds); leave it off in tests.
    """

    def __init__(self, sim: Any, *, host: str = "127.0.0.1", port: int = 0, api: SimApi | None = None,
                 freeze_gc: bool = False, **api_options: Any) -> None:
        self.api = api if api is not None else SimApi(sim, **api_options)
        self.sim = sim
        self.host = host
        self._port = port
        self._connections = _Connections()
        self.api.reset_connection = self._connections.reset
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self._freeze_gc = freeze_gc

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 10.0) -> Self:
        """Bind, start serving, and return once requests are accepted."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        if self._freeze_gc:
            gc.freeze()
        # proto IPPROTO_TCP, else asyncio does not set TCP_NODELAY on accepted connections
        # and every keep-alive answer waits ~40 ms for a delayed ACK
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot bind {self.host}:{self._port}: {exc.strerror}") from exc
        sock.listen(128)
        self._sock = sock
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.api, http=self._connections.protocol_class(), loop="asyncio", lifespan="off",
            log_level="warning", access_log=False, timeout_graceful_shutdown=1, server_header=False,
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"sim-api:{self._port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the simulated cloud's API did not start: {self._error}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the simulated cloud's API did not start within {timeout_s}s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # noqa: BLE001 - reported by start()/stop()
            self._error = exc

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving (stalled requests are cut after a second) and close the socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ where and how

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    @property
    def lock(self) -> Any:
        """The sim's lock: hold it to change the sim while the server runs."""
        return self.api.lock

    def auth_args(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for ``openstack.connect(**...)`` against this server."""
        c: Credentials = self.api.credentials
        return {
            "auth_url": self.auth_url, "username": c.username, "password": c.password,
            "project_name": c.project_name, "user_domain_name": c.user_domain,
            "project_domain_name": c.project_domain, "region_name": c.region,
            "interface": "public", "identity_api_version": "3", **extra,
        }  # fmt: skip

    def clouds_entry(self, api_timeout: float | None = None) -> dict[str, Any]:
        """This server as a ``clouds.yaml`` cloud entry."""
        c: Credentials = self.api.credentials
        entry: dict[str, Any] = {
            "auth": {
                "auth_url": self.auth_url, "username": c.username, "password": c.password,
                "project_name": c.project_name, "user_domain_name": c.user_domain,
                "project_domain_name": c.project_domain,
            },
            "region_name": c.region, "interface": "public", "identity_api_version": 3,
        }  # fmt: skip
        if api_timeout is not None:
            entry["api_timeout"] = api_timeout
        return entry

    def write_clouds_yaml(self, path: str | os.PathLike[str] = "clouds.yaml", cloud: str = "sim",
                          api_timeout: float | None = None) -> Path:
        """Add (or replace) the ``cloud`` entry in a clouds.yaml, keeping its other clouds."""
        return write_clouds_yaml(path, cloud, self.clouds_entry(api_timeout))


def write_clouds_yaml(path: str | os.PathLike[str], cloud: str, entry: dict[str, Any]) -> Path:
    """Set ``clouds.<cloud>`` in the YAML file at ``path`` (created if missing); ValueError
    if the file exists and is not a clouds.yaml."""
    p = Path(path)
    data: Any = {}
    if p.exists():
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{p} is not valid YAML: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("clouds", {}), dict):
            raise ValueError(f"{p} is not a clouds.yaml (no 'clouds' mapping)")
    data.setdefault("clouds", {})[cloud] = entry
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(p)
    return p


class SimControl:
    """The control endpoints (``/_sim``) of a simulated cloud served elsewhere (another
    process): request counts, faults, token expiry."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + "/_sim" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def stats(self) -> dict[str, Any]:
        """As :meth:`SimApi.stats`: requests by service, by route, by status, faults fired."""
        return self._call("GET", "/stats")

    def reset_stats(self) -> None:
        self._call("POST", "/stats/reset")

    def arm(self, *faults: HttpFault) -> None:
        self._call("POST", "/faults", [f.to_dict() for f in faults])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_tokens(self) -> int:
        return int(self._call("POST", "/tokens/expire")["expired"])


class SimProcess:
    """``eventmodel sim serve`` in a child process, for benchmarks (the server then has a
    GIL of its own, as a real cloud would). ``args`` are more command-line options
    (``--nova-like``, ``--fault ...``, ``--ops-per-second ...``)::

        with SimProcess(10_000, 500_000, seed=1) as sim:
            conn = openstack.connect(**sim.auth_args())
            sim.control.stats()
    """

    def __init__(self, hosts: int, instances: int, *, seed: int = 0, args: tuple[str, ...] = (),
                 workdir: str | os.PathLike[str] | None = None, start_timeout_s: float = 600.0) -> None:
        self.hosts, self.instances, self.seed, self.args = hosts, instances, seed, args
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="eventmodel-sim-")
        self.workdir = Path(workdir if workdir is not None else self._tmp.name)  # type: ignore[union-attr]
        self.clouds_yaml = self.workdir / "clouds.yaml"
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._entry: dict[str, Any] | None = None

    def start(self) -> Self:
        self.clouds_yaml.unlink(missing_ok=True)
        out = (self.workdir / "sim-serve.out").open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "eventmodel", "sim", "serve", "--hosts", str(self.hosts),
             "--instances", str(self.instances), "--seed", str(self.seed),
             "--clouds-yaml", str(self.clouds_yaml), "--cloud", "sim", *self.args],
            stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.clouds_yaml.exists():
            if self._proc.poll() is not None:
                raise RuntimeError(f"sim serve exited with {self._proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"sim serve did not start within {self.start_timeout_s}s")
            time.sleep(0.05)
        self._entry = yaml.safe_load(self.clouds_yaml.read_text())["clouds"]["sim"]
        return self

    def output(self) -> str:
        """What the command printed so far."""
        p = self.workdir / "sim-serve.out"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def auth_url(self) -> str:
        if self._entry is None:
            raise RuntimeError("not started")
        return str(self._entry["auth"]["auth_url"])

    @property
    def url(self) -> str:
        return self.auth_url.rsplit("/identity", 1)[0]

    @property
    def control(self) -> SimControl:
        return SimControl(self.url)

    def auth_args(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for ``openstack.connect(**...)``."""
        if self._entry is None:
            raise RuntimeError("not started")
        a = self._entry["auth"]
        return {**a, "region_name": self._entry["region_name"], "interface": "public",
                "identity_api_version": "3", **extra}
