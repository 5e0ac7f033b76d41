"""The pages: a live dashboard (``/``), search (``/search``) and a record page (``/records/{ocid}``).

Static HTML, CSS and JavaScript modules from ``feed_server/static/`` (no build step, nothing fetched from
elsewhere: the pages work offline). The scripts read the public API and the websocket like any other
client. ``/static/kinds.js`` is made here from :data:`core.changes.KINDS`, so the pages name the kinds of
change exactly as the feeds do.

Every page is sent with a Content Security Policy that allows scripts, styles and connections to this
origin only; the scripts put data into the page as text, never as HTML.
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

import orjson
from fastapi import APIRouter
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from core.changes import KINDS

STATIC = Path(__file__).resolve().parent / "static"
"""The folder of the pages' files."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/")
async def dashboard() -> FileResponse:
    """The live dashboard."""
    return _page("index.html")


@router.get("/search")
async def search_page() -> FileResponse:
    """The search page."""
    return _page("search.html")


@router.get("/records/{ocid:path}")
async def record_page(ocid: str) -> FileResponse:
    """One contracting process; the page fetches it (and says so when there is no such record)."""
    return _page("record.html")


def kinds_module() -> str:
    """A JavaScript module with the kinds of change: code -> [Spanish title, English title], in rank order."""
    table = orjson.dumps({code: list(titles) for code, titles in KINDS.items()}).decode()
    return (
        "// Made by feed_server/pages.py from core.changes.KINDS: code -> [Spanish, English], most important first.\n"
        f"export const KINDS = Object.freeze({table});\n"
    )


@router.get("/static/kinds.js")
async def kinds() -> Response:
    """The kinds of change, as the feeds name them."""
    return Response(kinds_module(), media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"})


class _Static(StaticFiles):
    """Static files, revalidated on each use (ETag / Last-Modified), so a new version shows at once."""

    def file_response(
        self, full_path: PathLike[str] | str, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


router.mount("/static", _Static(directory=STATIC), name="static")
