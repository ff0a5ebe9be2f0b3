"""``eventmodel sim serve``: the simulated cloud over HTTP, for ``eventmodel sync`` and
openstacksdk (``openstack.connect(cloud="sim")``)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from eventmodel.cli.common import console, err, fail, require_extra

sim_app = typer.Typer(name="sim", help="The simulated cloud.", no_args_is_help=True)


@sim_app.command("serve")
def serve(
    hosts: int = typer.Option(10, "--hosts", min=0, help="Compute hosts."),
    instances: int = typer.Option(100, "--instances", min=0, help="Servers placed at start."),
    seed: int = typer.Option(0, "--seed", help="Everything is deterministic for a seed."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port (0: a free one)."),
    clouds_yaml: Path = typer.Option(Path("clouds.yaml"), "--clouds-yaml",
                                     help="Write the cloud's entry to this clouds.yaml (other clouds are kept)."),
    cloud: str = typer.Option("sim", "--cloud", help="The cloud's name in clouds.yaml."),
    token_ttl: float = typer.Option(3600.0, "--token-ttl", min=1.0, help="Seconds a Keystone token lives."),
    api_timeout: float | None = typer.Option(None, "--api-timeout", min=0.1,
                                                help="api_timeout written to clouds.yaml (client side)."),
    faults: list[str] = typer.Option([], "--fault", "--faults",
                                     help="Arm an HTTP fault: KIND[:service=S,path=P,after=N,times=N,status=N,"
                                          "stall_s=S]; KIND is error, timeout, reset or expired_token. Repeatable."),
    nova_like: bool = typer.Option(False, "--nova-like", help="Listings as unkind as Nova's (down cell, omissions)."),
    ops_per_second: float = typer.Option(0.0, "--ops-per-second", min=0.0,
                                         help="Random operations per second on the cloud while it serves."),
    volumes: int = typer.Option(0, "--volumes", min=0,
                                help="Cinder volumes at the start (0: no block storage in the catalog)."),
    storage_backends: int | None = typer.Option(None, "--storage-backends", min=1,
                                                help="cinder-volume backends (default: 2 + one per 400 "
                                                     "volumes, at most 25; the last reports infinite capacity)."),
    baremetal: int = typer.Option(0, "--baremetal", min=0,
                                  help="Ironic bare-metal nodes (0: no baremetal service in the catalog)."),
) -> None:
    """Serve Keystone, Nova and Placement (and Cinder with --volumes, Ironic with --baremetal) from a simulated
    cloud until interrupted."""
    require_extra("sim", "starlette", "uvicorn", "yaml", what="eventmodel sim serve")
    from eventmodel.sim import Faults, SimCloud
    from eventmodel.sim.http_faults import HttpFault
    from eventmodel.sim.server import SimServer

    try:
        armed = [HttpFault.parse(f) for f in faults]
    except ValueError as exc:
        raise fail(f"bad --fault: {exc}") from None
    try:
        sim = SimCloud(hosts, instances, seed=seed, faults=Faults.nova_like() if nova_like else Faults(),
                       volumes=volumes, storage_backends=storage_backends, baremetal=baremetal)
    except ValueError as exc:
        raise fail(str(exc)) from None
    # the truth lives as long as the process: keep the cyclic GC off its objects
    srv = SimServer(sim, host=host, port=port, token_ttl_s=token_ttl, freeze_gc=True)
    srv.api.arm(*armed)
    try:
        srv.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        raise fail(str(exc)) from None
    try:
        path = srv.write_clouds_yaml(clouds_yaml, cloud=cloud, api_timeout=api_timeout)
    except (OSError, ValueError) as exc:
        srv.stop()
        raise fail(f"cannot write {clouds_yaml}: {exc}") from None
    storage = (f", {volumes} volumes" if volumes else "") + (f", {baremetal} bare-metal nodes" if baremetal else "")
    console.print(f"serving {hosts} hosts, {sim.instance_count} servers{storage} at {srv.url}")
    console.print(f"auth_url {srv.auth_url}")
    console.print(f"clouds.yaml: {path.resolve()} (cloud {cloud!r})", soft_wrap=True)
    console.print(f"try: eventmodel sync --cloud {cloud} --once --log sqlite:///sim.db   (Ctrl-C stops)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    period = 1.0 / ops_per_second if ops_per_second else None
    try:
        while not stop.wait(period if period else 3600.0):
            if period and srv.running:
                with srv.lock:
                    sim.step(1)
            if not srv.running:
                err.print("[red]the HTTP server stopped[/]")
                raise typer.Exit(1)
    finally:
        srv.stop()
    s = srv.api.stats()
    console.print(f"served {s['total']} requests: identity {s['identity']}, compute {s['compute']}, "
                  f"placement {s['placement']}, block-storage {s['block-storage']}")


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")
