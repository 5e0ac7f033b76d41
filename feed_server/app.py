"""The feed server: websocket push, Atom, the OCDS API, search and the pages, as one ASGI app."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.extensions import ExtensionResolver
from core.pauses import PlannedCollections
from core.profiles import Profiles
from core.publishers import load_publishers
from core.schema import load_schema
from core.settings import Settings
from core.store.connection import database_url
from feed_server import alerts, api, atom, ingest, pages, projects, search, status, ws
from feed_server.hub import ChangeHub, Database
from feed_server.metrics import METRICS
from feed_server.ratelimit import ClientLimiter
from feed_server.responses import problem

logger = logging.getLogger("ocds_live.feed")


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
        schema = await asyncio.to_thread(load_schema, settings.schema_dir, settings.cache_dir)
        # records store a checkpoint of the compiled release that readers bring up to date (core.store.reader),
        # each with the profile (core schema + extensions) its releases declare
        resolver = ExtensionResolver(settings.extensions_dir, settings.cache_dir,
                                     download=settings.extensions_download)
        app.state.profiles = app.state.compiler = Profiles(schema, resolver, max_bytes=settings.max_release_bytes,
                                                           max_depth=settings.max_depth)
        hub = ChangeHub(db, app.state.compiler, url, min_step=settings.feed_step)
        await hub.start()
        app.state.settings, app.state.db, app.state.hub = settings, db, hub
        app.state.ingest = ingest.Ingest(settings, load_publishers(settings.publishers_file))
        app.state.ws_clients = {}
        app.state.connections = set()
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
        "Retry-After above it). The websocket protocol is described in docs/websocket.md.",
        version="0.1.0",
        lifespan=lifespan,
    )

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
        lags = [hub.head - c.sub.position for c in request.app.state.connections]
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
    return app


def serve(settings: Settings) -> None:
    """Run the feed server until interrupted."""
    import uvicorn

    print(f"ocds-live feed server on {settings.base_url}/  (websocket "
          f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes, API docs {settings.base_url}/docs)", flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, ws="websockets-sansio",
                log_level="warning", ws_per_message_deflate=False, ws_ping_interval=20, ws_ping_timeout=20,
                backlog=4096, timeout_graceful_shutdown=5)
