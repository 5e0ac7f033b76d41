"""The OCDS API: records and releases as packages, per OCDS publication guidance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from core.store import reader
from feed_server.responses import JSON

router = APIRouter()

OCDS_VERSION = "1.1"


def _publisher(request: Request) -> dict[str, str]:
    return {"name": "ocds-live", "uri": request.app.state.settings.base_url}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    """Liveness: the server answers and sees the change log."""
    return {"status": "ok", "head": request.app.state.hub.head}


@router.get("/api/records/{ocid}", response_class=JSON)
async def get_record(ocid: str, request: Request) -> JSON:
    """One contracting process as an OCDS record package (compiled and versioned release)."""
    row = await request.app.state.db.run(reader.record, ocid)
    if row is None:
        raise HTTPException(404, f"no record for ocid {ocid!r}")
    base = request.app.state.settings.base_url
    record = {
        "ocid": ocid,
        "releases": [
            {"url": f"{base}/api/releases/{ocid}/{r['id']}", "date": r["date"], "tag": r["tag"]}
            for r in row["releases"]
        ],
        "compiledRelease": row["compiled"],
        "versionedRelease": row["versioned"],
    }
    package = {
        "uri": f"{base}/api/records/{ocid}",
        "version": OCDS_VERSION,
        "publishedDate": row["updated_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "publisher": _publisher(request),
        "records": [record],
    }
    return JSON(package)


@router.get("/api/releases/{ocid}/{release_id}", response_class=JSON)
async def get_release(ocid: str, release_id: str, request: Request) -> JSON:
    """One release, in a release package."""
    data = await request.app.state.db.run(reader.release, ocid, release_id)
    if data is None:
        raise HTTPException(404, f"no release {release_id!r} for ocid {ocid!r}")
    base = request.app.state.settings.base_url
    return JSON({
        "uri": f"{base}/api/releases/{ocid}/{release_id}",
        "version": OCDS_VERSION,
        "publishedDate": _now(),
        "publisher": _publisher(request),
        "releases": [data],
    })
