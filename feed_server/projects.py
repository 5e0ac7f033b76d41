"""Infrastructure projects (OC4IDS 0.9.4): the API, the bulk file, the Atom feed and the pages.

- ``GET /api/projects``: an OC4IDS project package with ``links.next`` seek paging (by the number each
  project takes when written, in commit order, like ``/api/records``: a project written again while you
  page appears again later, never skipped); ``q=`` (title, public authority, id), ``status=``, ``ocid=``
  (the project of that process) narrow it.
- ``GET /api/projects/{id}``: one project in a package; ``GET /api/projects/{id}/overview``: what the project
  page shows (figures, each process's summary).
- ``POST /api/projects/{id}``: a publisher (bearer token) supplies the project-level fields of one of its
  projects (the id starts with its ``project_prefix``); validated against the OC4IDS project schema.
- ``GET /api/bulk/projects.jsonl.gz``, ``GET /feeds/project/{id}.atom`` (the project's own changes and its
  processes'), and the pages ``/projects`` and ``/projects/{id}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from core.exceptions import AuthenticationError, OcdsLiveError
from core.oc4ids import PACKAGE_VERSION, Oc4idsSchema, load_oc4ids_schema
from core.projects import ProjectFieldsError, check_supplied, project_prefix
from core.store import project_reader, projects
from feed_server import atom, pages
from feed_server.api import _ERROR, MAX_CURSOR, _base, _Gzip, _links, _self, _stamp, _storable
from feed_server.responses import JSON, problem

router = APIRouter(responses={400: _ERROR})
Cursor = Annotated[int, Query(ge=0, le=MAX_CURSOR, description="the cursor of the last project you have")]


def _package(request: Request, published: str, projects_: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """An OC4IDS project package."""
    return {"uri": _self(request), "publishedDate": published, "version": PACKAGE_VERSION,
            "publisher": {"name": "ocds-live", "uri": _base(request)}, "projects": projects_, **extra}


async def oc4ids_schema(request: Request) -> Oc4idsSchema:
    """The OC4IDS schema, loaded on first use (a download when OCDS_LIVE_OC4IDS_DIR is unset)."""
    state = request.app.state
    if getattr(state, "oc4ids", None) is None:
        settings = state.settings
        state.oc4ids = await asyncio.to_thread(load_oc4ids_schema, settings.oc4ids_dir, settings.cache_dir)
    schema: Oc4idsSchema = state.oc4ids
    return schema


@router.get("/api/projects", response_class=JSON)
async def list_projects(
    request: Request, cursor: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="projects per page")] = 20,
    q: Annotated[str | None, Query(max_length=200, description="words of the title, public authority or id")] = None,
    status: Annotated[str | None, Query(max_length=100)] = None,
    ocid: Annotated[str | None, Query(max_length=200, description="the project this process belongs to")] = None,
    view: Annotated[str | None, Query(pattern="^overview$", description=(
        "overview: instead of a package, `{projects: [{id, title, status, public_authority, processes, budget, "
        "contracted, paid, amendments, buyers}], links}`, what the projects page lists"))] = None,
) -> JSON:
    """Infrastructure projects in the order of their last write, as an OC4IDS project package (``links.next``)."""
    if not _storable(q, status, ocid):
        return problem(400, "a parameter contains a NUL character")
    rows = await request.app.state.db.run(project_reader.page, cursor, limit + 1, q, status, ocid, bool(view))
    items = [(seq, data) for seq, data, _ in rows]
    links = _links(request, items, limit, cursor)
    if view:
        return JSON({"projects": [data for _, data in items[:limit]], "links": links})
    return JSON(_package(request, _stamp(), [data for _, data in items[:limit]], links=links))


async def _read(request: Request, read: Any, pid: str) -> Any:
    """``read(conn, pid)``, or a 404 answer when there is no such project."""
    found = await request.app.state.db.run(read, pid) if _storable(pid) else None
    return problem(404, f"no project {pid!r}") if found is None else found


@router.get("/api/projects/{pid:path}/overview", response_class=JSON, responses={404: _ERROR})
async def project_overview(pid: str, request: Request) -> JSON:
    """What the project page shows: budget, contracted and paid, and each contracting process's summary."""
    found = await _read(request, project_reader.overview, pid)
    return found if isinstance(found, JSON) else JSON(found)


@router.get("/api/projects/{pid:path}", response_class=JSON, responses={404: _ERROR})
async def get_project(pid: str, request: Request) -> JSON:
    """One infrastructure project, as an OC4IDS project package."""
    found = await _read(request, project_reader.project, pid)
    return found if isinstance(found, JSON) else JSON(_package(request, _stamp(found[1]), [found[0]]))


@router.post("/api/projects/{pid:path}", response_class=JSON, responses={401: _ERROR, 403: _ERROR, 422: _ERROR})
async def post_project(pid: str, request: Request) -> JSON:
    """Supply the project-level fields of one of your projects (publisher token), replacing earlier ones.

    The body is a JSON object of OC4IDS project fields (title, description, sector, type, publicAuthority,
    locations, budget, periods, ...), validated against the OC4IDS 0.9.4 project schema with the project's
    id. The project is rebuilt at once: 200 with the project when it changed (a ``project.updated`` event),
    or unchanged.
    """
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    try:
        publisher = request.app.state.ingest.publishers.authenticate(token)
    except AuthenticationError as exc:
        return problem(401, str(exc), **{"WWW-Authenticate": "Bearer"})
    prefix = project_prefix(publisher.name, projects.prefixes(request.app.state.settings.publishers_file))
    if not pid.startswith(prefix + "-") or len(pid) == len(prefix) + 1 or not _storable(pid):
        return problem(403, f"{pid!r} is not one of {publisher.name}'s projects: their ids start with {prefix!r}-")
    body = await request.body()
    if len(body) > 1_000_000:
        return problem(413, "project fields are limited to 1 MB")
    try:
        fields = check_supplied(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        return problem(400, f"the body is not JSON: {exc}")
    except ProjectFieldsError as exc:
        return problem(422, str(exc))
    try:
        schema = await oc4ids_schema(request)
    except OcdsLiveError as exc:
        return problem(503, str(exc))
    errors = schema.project_errors({**fields, "id": pid})
    if errors:
        return JSON({"error": "the fields do not meet the OC4IDS 0.9.4 project schema", "status": 422,
                     "findings": errors[:50]}, status_code=422)
    state = request.app.state
    changed = await state.db.run(projects.supply, pid, publisher.name, pid[len(prefix) + 1:], fields,
                                 publisher.name, state.settings, state.compiler)
    found = await state.db.run(project_reader.project, pid)
    return JSON({"changed": changed, "project": found[0] if found else None})


@router.get("/api/bulk/projects.jsonl.gz", response_class=StreamingResponse, response_model=None, responses={
    200: {"content": {"application/gzip": {}}, "description": "gzipped JSON Lines"}})
async def bulk_projects(request: Request) -> StreamingResponse:
    """Every project (OC4IDS), one per line, streamed as gzipped JSON Lines (keep the last line per id)."""
    db = request.app.state.db

    async def chunks() -> AsyncIterator[bytes]:
        gzip = _Gzip()
        position = 0
        while rows := await db.run(project_reader.page, position, 50, None, None, None, False):
            position = rows[-1][0]
            yield await gzip.lines([data for _, data, _ in rows])
        yield gzip.end()

    return StreamingResponse(chunks(), media_type="application/gzip",
                             headers={"Content-Disposition": 'attachment; filename="projects.jsonl.gz"'})


@router.get("/feeds/project/{pid:path}.atom", response_class=Response)
async def project_feed(pid: str, request: Request) -> Response:
    """The changes of one project and of its contracting processes, as Atom."""
    from urllib.parse import quote

    return await atom._serve(request, f"/feeds/project/{quote(pid, safe='')}.atom", "project", pid)


@router.get("/projects", include_in_schema=False)
async def projects_page() -> FileResponse:
    """The list of infrastructure projects, with search."""
    return pages._page("projects.html")


@router.get("/projects/{pid:path}", include_in_schema=False)
async def project_page(pid: str) -> FileResponse:
    """One infrastructure project; the page fetches it."""
    return pages._page("project.html")
