"""The feed server: websocket push, the OCDS API and the pages, as one ASGI app (FastAPI on uvicorn)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.publishers import load_publishers
from core.settings import Settings
from core.store.connection import database_url
from feed_server import api, ingest, ws
from feed_server.hub import ChangeHub, Database

logger = logging.getLogger("ocds_live.feed")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(database_url(settings))
        hub = ChangeHub(db)
        await hub.start()
        app.state.settings, app.state.db, app.state.hub = settings, db, hub
        app.state.ingest = ingest.Ingest(settings, load_publishers(settings.publishers_file))
        try:
            yield
        finally:
            await hub.stop()
            app.state.ingest.close()
            db.close()

    app = FastAPI(
        title="ocds-live",
        summary="Live OCDS 1.1 contracting data: change feeds, records and releases",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(api.router)
    app.include_router(ws.router)
    app.include_router(ingest.router)
    return app


def serve(settings: Settings) -> None:
    """Run the feed server until interrupted."""
    import uvicorn

    print(f"ocds-live feed server on {settings.base_url}  (websocket: "
          f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes)", flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, ws="websockets",
                log_level="warning", ws_per_message_deflate=False)
