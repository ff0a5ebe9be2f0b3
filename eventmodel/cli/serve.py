"""``eventmodel serve``: follow the log and serve the model over HTTP (API, metrics,
probes, page) until SIGTERM/SIGINT. SIGUSR2 holds/releases the follower."""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
from pathlib import Path
from typing import Optional

import typer

from eventmodel.cli.common import console, err, fail, log_option, open_or_fail

DEFAULT_LISTEN = "127.0.0.1:8080"


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) → (host, port); ValueError with the reason."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted sockets only when
    # the protocol says TCP; without it, a keep-alive answer waits ~40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        log: str = log_option(),
        checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir", envvar="EVENTMODEL_CHECKPOINT_DIR",
                                                      help="Restore from and write checkpoints here."),
        listen: str = typer.Option(DEFAULT_LISTEN, "--listen", envvar="EVENTMODEL_SERVE_LISTEN",
                                   help="HOST:PORT to bind (loopback by default; port 0: any free port)."),
        token_file: Optional[Path] = typer.Option(None, "--token-file",
                                                  help="File holding the bearer token (else $EVENTMODEL_SERVE_TOKEN; "
                                                       "none: no token needed)."),
        ready_lag: float = typer.Option(30.0, "--ready-lag", min=0.0,
                                        help="/readyz fails when the oldest unread record is older (seconds)."),
        every: int = typer.Option(100_000, "--checkpoint-every", min=1, help="Records between checkpoints."),
        interval: float = typer.Option(600.0, "--checkpoint-interval", min=1.0,
                                       help="Seconds between checkpoints while records arrive."),
        ladder: int = typer.Option(0, "--checkpoint-ladder", min=0,
                                   help="Keep one checkpoint per N records of position, for fast "
                                        "/api/diff and /api/export at past points (0: none)."),
        sample_every: float = typer.Option(1.0, "--sample-every", min=0.05, help="Seconds between lag samples."),
        dead_letters_every: float = typer.Option(30.0, "--dead-letters-every", min=0.1,
                                                 help="Seconds between reads of the dead letters."),
        insecure_no_token: bool = typer.Option(False, "--insecure-no-token",
                                               help="Serve a non-loopback address without a token (anyone who "
                                                    "reaches the port reads the model)."),
        session_hours: float = typer.Option(12.0, "--session-hours", min=0.01,
                                            help="How long the page's sign-in lasts (POST /logout ends it sooner)."),
        guesses_per_minute: float = typer.Option(12.0, "--guesses-per-minute", min=0.1,
                                                 help="Wrong tokens allowed per client address and minute "
                                                      "(after a burst of 10); past it: 429."),
        max_connections: int = typer.Option(500, "--max-connections", min=1,
                                            help="Open connections and requests at once; past it: 503 "
                                                 "(uvicorn's limit_concurrency)."),
        keep_alive: int = typer.Option(5, "--keep-alive", min=1,
                                       help="Seconds an idle keep-alive connection stays open."),
        header_timeout: float = typer.Option(10.0, "--header-timeout", min=0.5,
                                             help="Seconds a client has to send a request's headers; past it the "
                                                  "connection is closed."),
        max_header_bytes: int = typer.Option(16384, "--max-header-bytes", min=1024,
                                             help="Largest request head (line and headers); past it: 400."),
        max_replays: int = typer.Option(2, "--max-replays", min=1,
                                        help="Past-point models (export/diff at a position) built at once."),
        replay_queue: int = typer.Option(4, "--replay-queue", min=0,
                                         help="Requests for past-point models allowed to wait; past it: 503 "
                                              "with Retry-After."),
        threads: int = typer.Option(2, "--threads", min=1,
                                    help="Threads answering slow requests (lists, history, diff, export); fewer "
                                         "keep /healthz and the event loop responsive under load."),
        per_client: int = typer.Option(8, "--per-client", min=1,
                                       help="Slow requests (lists, history, export, diff) one client address "
                                            "may have running at once; past it: 429."),
        forwarded_allow_ips: str = typer.Option("127.0.0.1", "--forwarded-allow-ips",
                                                envvar="FORWARDED_ALLOW_IPS",
                                                help="Proxies (comma-separated addresses, * for any) whose "
                                                     "X-Forwarded-Proto/-For are believed: behind a TLS proxy the "
                                                     "session cookie is then marked Secure."),
    ) -> None:
        """Follow the log and serve the model: JSON API, /metrics, /healthz, /readyz and a page.

        The bearer token (if any) protects everything but the probes. SIGUSR2 holds the
        follower (the model stops moving, the lag grows) and releases it again."""
        try:
            import uvicorn
        except ModuleNotFoundError:
            raise fail("eventmodel serve needs the serve extra: pip install 'eventmodel[serve]'") from None

        from eventmodel.serve.access import TokenError, load_token
        from eventmodel.serve.app import create_app
        from eventmodel.serve.limits import Limits, header_timeout_protocol
        from eventmodel.serve.service import ModelService
        from eventmodel.serve.workers import ReplayWorkers

        try:
            host, port = parse_listen(listen)
            token = load_token(token_file)
        except (ValueError, TokenError) as exc:
            raise fail(str(exc)) from None
        lg = open_or_fail(log)
        try:
            sock = _bind(host, port)
        except OSError as exc:
            raise fail(f"cannot listen on {host}:{port}: {exc}") from None
        if token is None and not _loopback(host):
            if not insecure_no_token:
                sock.close()
                lg.close()
                raise fail(f"refusing to serve {host} without a token: anyone who reaches the port would read the "
                           "model. Give --token-file or set EVENTMODEL_SERVE_TOKEN (or, knowingly, "
                           "--insecure-no-token)")
            err.print(f"[yellow]warning:[/] serving {host} without a token (--insecure-no-token): anyone who "
                      "reaches the port reads the model")
        service = ModelService(lg, checkpoint_dir=checkpoint_dir, checkpoint_every=every,
                               checkpoint_interval=interval, ladder=ladder, ready_lag=ready_lag,
                               sample_every=sample_every, dead_letters_every=dead_letters_every,
                               freeze_gc=True)
        sys.setswitchinterval(0.001)  # the event loop gets the GIL back sooner from busy threads
        limits = Limits(replays=max_replays, replay_queue=replay_queue, per_client=per_client, threads=threads,
                        session_seconds=session_hours * 3600, guesses_per_second=guesses_per_minute / 60)
        workers = ReplayWorkers.for_log(lg, checkpoint_dir, ladder, processes=max_replays)
        asgi = create_app(service, token=token, limits=limits, workers=workers)
        service.start()
        signal.signal(signal.SIGUSR2, lambda *_: err.print(
            f"follower {'held' if service.hold() else 'released'} (SIGUSR2)"))
        bound = sock.getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        console.print(f"serving http://{shown}:{bound[1]}/ for {lg.url}"
                      f" ({'bearer token required' if token else 'no token'})", highlight=False)
        sys.stdout.flush()
        server = uvicorn.Server(uvicorn.Config(
            asgi, log_level="warning", access_log=False, lifespan="off", limit_concurrency=max_connections,
            timeout_keep_alive=keep_alive, h11_max_incomplete_event_size=max_header_bytes,
            proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips,
            http=header_timeout_protocol(header_timeout)))
        # uvicorn handles SIGTERM/SIGINT while it runs, then raises the signal again to the
        # handler it found: ours only asks it to stop, so that the last checkpoint is written
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
        try:
            server.run(sockets=[sock])
        finally:
            if workers is not None:
                workers.close()
            service.stop()
            lg.close()
        console.print(f"stopped{'; checkpoint written' if checkpoint_dir else ''}")
