"""The feed server: websocket push, Atom, the OCDS API, search and the pages, as one ASGI app."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.exceptions import StoreUnavailableError
from core.pauses import PlannedCollections
from core.profiles import Profiles
from core.publishers import load_publishers
from core.schema import load_schema
from core.settings import Settings
from core.store.connection import database_url, redacted
from feed_server import alerts, api, atom, ingest, pages, projects, search, status, ws, ws_alerts
from feed_server.fanout import FanOut
from feed_server.hub import ChangeHub, Database
from feed_server.metrics import METRICS
from feed_server.ratelimit import ClientLimiter
from feed_server.responses import problem

logger = logging.getLogger("ocds_live.feed")
STORE_RETRY_AFTER = 5  # seconds a client waits before asking again while PostgreSQL is away


async def _watch_senders(app: FastAPI) -> None:
    """Close subscribers whose send has been blocked too long (one check for all, not a timer per send)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(0.5)
        now = loop.time()
        for conn in list(app.state.connections):
            conn.stuck(now)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = database_url(settings)
        db = Database(url)
        await db.wait_until_reachable(redacted(url))
        schema = await asyncio.to_thread(load_schema, settings.schema_dir, settings.cache_dir)
        # records store a checkpoint of the compiled release that readers bring up to date (core.store.reader),
        # each with the profile (core schema + extensions) its releases declare
        app.state.profiles = app.state.compiler = Profiles.from_settings(settings, schema)
        hub = ChangeHub(db, app.state.compiler, min_step=settings.feed_step)
        await hub.start()
        app.state.settings, app.state.db, app.state.hub = settings, db, hub
        app.state.ingest = ingest.Ingest(settings, load_publishers(settings.publishers_file))
        app.state.ws_clients = {}
        app.state.connections = set()
        hub.switch_listeners.append(lambda generation: ws.store_switched(app.state, generation))
        app.state.fanout = FanOut(hub)  # the live subscribers of `ocds-live serve` (feed_server.wsserver)
        app.state.limiter = ClientLimiter(settings.read_rate_limit)
        watchdog = asyncio.create_task(_watch_senders(app))
        collections = PlannedCollections(settings.full_gc_interval).start()
        try:
            yield
        finally:
            await asyncio.to_thread(collections.stop)
            watchdog.cancel()
            await hub.stop()
            app.state.ingest.close()
            db.close()

    app = FastAPI(
        title="ocds-live",
        summary="Live OCDS 1.1 contracting data: change feeds, records, releases and search",
        description="Public, read-only and anonymous, except `POST /api/releases` (publisher token). "
        f"Reads are limited to {settings.read_rate_limit:g} requests/s per client address (429 with "
        f"Retry-After above it), and an address to {settings.http_max_per_client} open HTTP connections (429, "
        "then the connection is closed). The websocket protocol is described in docs/websocket.md.",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, exc: StoreUnavailableError) -> Response:
        """PostgreSQL is away (restarting, unreachable): a temporary failure, not a server error."""
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
        return problem(503, f"the store is unavailable for now ({exc}); retry after {STORE_RETRY_AFTER}s",
                       **{"Retry-After": str(STORE_RETRY_AFTER)})

    @app.middleware("http")
    async def measure_and_limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if request.method == "GET" and path.startswith(("/api/", "/feeds/")):
            wait = request.app.state.limiter.wait_for(request.client.host if request.client else "?")
            if wait > 0:
                METRICS.rate_limited.inc()
                retry = str(max(1, int(wait + 0.999)))
                return problem(429, f"over {settings.read_rate_limit:g} requests/s; retry after {retry}s",
                               **{"Retry-After": retry})
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        METRICS.requests.labels(getattr(route, "path", "other"), str(response.status_code)).observe(
            time.perf_counter() - start
        )
        return response

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics: connections, messages, subscriber lag, request latencies."""
        hub = request.app.state.hub
        lags = [hub.head - c.position for c in request.app.state.connections]
        METRICS.head.set(hub.head)
        METRICS.ws_lag_max.set(max(lags, default=0))
        METRICS.ws_lag_sum.set(sum(lags))
        body = generate_latest(METRICS.registry) + await status.exposition(request.app)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.include_router(projects.router)  # first: /api/bulk/projects.jsonl.gz before api's /api/bulk/{kind}
    app.include_router(api.router)
    app.include_router(ws.router)
    app.include_router(ingest.router)
    app.include_router(atom.router)
    app.include_router(search.router)
    app.include_router(pages.router)
    app.include_router(status.router)
    app.include_router(alerts.router)
    app.include_router(ws_alerts.router)
    return app


WEBSOCKET_SERVERS = ("fanout", "asgi")


def serve(settings: Settings, workers: int = 1, websocket: str = "fanout") -> None:
    """Run the feed server until interrupted: ``workers`` processes sharing the port (``SO_REUSEPORT``),
    each with its own change hub; websockets on the fan-out (``feed_server.wsserver``), or with
    ``websocket="asgi"`` through the ASGI app like any other request (one send per subscriber)."""
    if websocket not in WEBSOCKET_SERVERS:
        raise ValueError(f"websocket must be one of {', '.join(WEBSOCKET_SERVERS)}, not {websocket!r}")
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, not {workers}")
    many = f", {workers} processes" if workers > 1 else ""
    print(f"ocds-live feed server on {settings.base_url}/  (websocket "
          f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes, API docs {settings.base_url}/docs{many})",
          flush=True)
    if workers == 1:
        _serve_one(settings, websocket, reuse_port=False)
        return
    import multiprocessing
    import signal

    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_serve_one, args=(settings, websocket, True), name=f"feed-server-{n}")
                for n in range(workers)]
    for child in children:
        child.start()

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, stop)
    # Ctrl-C reaches every process of the terminal's group already; a second signal would make uvicorn
    # skip its graceful shutdown
    signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    for child in children:
        child.join()


def _serve_one(settings: Settings, websocket: str, reuse_port: bool) -> None:
    """One feed server process on the port (one of several when ``reuse_port``)."""
    import uvicorn

    from feed_server.connlimit import ConnectionLimit
    from feed_server.wsserver import WebsocketFront

    app = create_app(settings)
    front = WebsocketFront(app) if websocket == "fanout" else None
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            http=ConnectionLimit(settings.http_max_per_client).protocol(),
                            ws=cast(Any, front.protocol) if front else "websockets-sansio",
                            ws_per_message_deflate=False, ws_ping_interval=20, ws_ping_timeout=20,
                            backlog=4096, timeout_graceful_shutdown=5)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if front is not None:
                await front.close()
            await super().shutdown(sockets)

    sockets = None
    if reuse_port:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # the kernel spreads connections over processes
        sock.bind((settings.host, settings.port))
        sock.set_inheritable(True)
        sockets = [sock]
    Server(config).run(sockets=sockets)
