"""Infrastructure projects (OC4IDS 0.9.4) from contracting processes: membership and project records.

Pure: compiled releases and supplied fields in, OC4IDS projects out; no Kafka, no database.

- **Membership.** A contracting process belongs to the project its compiled release names in the Projects
  extension's ``planning.project.id``, else in core OCDS 1.1's ``planning.budget.projectID`` (a string or a
  number; surrounding whitespace is dropped, an empty value names none). Project ids are scoped by
  publisher: the OC4IDS project ``id`` is ``{project_prefix}-{local id}``, with the publisher's
  ``project_prefix`` from the publishers file (:func:`project_prefix`), so two publishers' ``46101`` never
  meet.
- **Project record** = :func:`build`: ``{**defaults, **oc4idskit, **supplied}``. ``oc4idskit`` is OCP's
  reference conversion (``oc4idskit.transforms.run_transforms``) of the members' records (compiled release +
  linked releases), run here and never re-implemented; ``supplied`` are the project-level fields OCDS
  cannot give (title, sector, type, public authority, locations, budget, ...), supplied by operators (the
  projects file) or publishers (``POST /api/projects/{id}``) and winning over the conversion; ``defaults``
  holds only a title, the members' ``planning.budget.project`` name (the most frequent), used when neither
  the conversion nor the supplied fields give one.

What oc4idskit leaves to chance is made canonical afterwards (:func:`canonical`): lists it builds from
Python sets (``parties[].roles``, ``sector``) are sorted, and its ``Decimal`` sums become JSON numbers, so
the same members always give byte-identical projects (in any process, whatever ``PYTHONHASHSEED``).
oc4idskit's ``cost_estimate`` reads a process's individual releases (the latest planning-stage tender
value); projects are built from compiled releases, as the standard's mapping does, so it has nothing to
read; and ``contract_status`` compares periods with the current time (as oc4idskit does).
"""

from __future__ import annotations

import decimal
import hashlib
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from core.exceptions import ConfigurationError
from core.oc4ids import Oc4idsSchema
from core.publishers import load_publishers

OPTIONAL_TRANSFORMS = {"buyer_role": True}
"""oc4idskit's optional transforms that run: the buyer becomes the project's public authority. The others
join every member's tender title or description into one text (NAICM: 292 of them), or copy every item."""

SUPPLIED_FIELDS = frozenset({
    "title", "description", "status", "type", "sector", "purpose", "additionalClassifications", "publicAuthority",
    "locations", "budget", "period", "identificationPeriod", "preparationPeriod", "implementationPeriod",
    "completionPeriod", "maintenancePeriod", "decommissioningPeriod", "assetLifetime", "identifiers", "language",
    "updated", "documents", "relatedProjects", "milestones", "completion", "benefits", "social", "environment",
    "policyAlignment", "forecasts", "metrics", "costMeasurements", "transactions", "lobbyingMeetings",
})
"""Project-level fields operators and publishers may supply. Not ``id`` (from the URL), nor
``contractingProcesses`` and ``parties`` (the conversion's, from the members)."""


class ProjectFieldsError(ConfigurationError):
    """Supplied project fields that cannot be used (unknown field, schema violation)."""


@dataclass(frozen=True)
class Member:
    """One contracting process of a project: its compiled release and its linked releases."""

    ocid: str
    compiled: dict[str, Any]
    releases: list[dict[str, Any]] = field(default_factory=list)  # {"id", "url", "date", "tag"}
    owned: bool = False  # compiled and releases are this member's own: the conversion may write into them


def local_project_id(compiled: Any) -> str | None:
    """The project a compiled release names (``planning.project.id``, else ``planning.budget.projectID``)."""
    planning = compiled.get("planning") if isinstance(compiled, dict) else None
    if not isinstance(planning, dict):
        return None
    project = planning.get("project")
    budget = planning.get("budget")
    for value in (project.get("id") if isinstance(project, dict) else None,
                  budget.get("projectID") if isinstance(budget, dict) else None):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            continue
        text = str(value).strip()
        if text and "\x00" not in text:
            return text
    return None


def project_prefix(publisher: str, prefixes: Mapping[str, str]) -> str:
    """The publisher's project id prefix; without one in the publishers file, ``oc4ids-live-{publisher}``."""
    return prefixes.get(publisher) or f"oc4ids-live-{publisher}"


def project_id(prefix: str, local: str) -> str:
    return f"{prefix}-{local}"


def read_project_prefixes(path: Path) -> dict[str, str]:
    """Each publisher's ``project_prefix`` from the publishers file (publishers without one are left out)."""
    publishers = load_publishers(path).by_name.values()
    return {p.name: p.project_prefix for p in publishers if p.project_prefix}


@dataclass(frozen=True)
class Supplied:
    """One entry of the operators' projects file: the project (publisher + the id its releases give) and fields."""

    publisher: str
    local_id: str
    fields: dict[str, Any]


def read_projects_file(path: Path) -> list[Supplied]:
    """The operators' projects file (TOML: ``[[project]]`` with ``publisher``, ``project_id`` and a ``fields``
    table of OC4IDS project fields). A missing file is no projects; a wrong entry fails with its place."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read the projects file: {exc}") from exc
    entries = []
    for i, entry in enumerate(data.get("project", [])):
        where = f"{path}: project #{i + 1}"
        publisher, local = entry.get("publisher"), entry.get("project_id")
        if not (isinstance(publisher, str) and publisher and isinstance(local, str | int) and str(local).strip()):
            raise ConfigurationError(f"{where}: 'publisher' and 'project_id' (as the releases give it) are required")
        try:
            fields = check_supplied(entry.get("fields", {}))
        except ProjectFieldsError as exc:
            raise ProjectFieldsError(f"{where}: {exc}") from exc
        entries.append(Supplied(publisher, str(local).strip(), fields))
    return entries


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")


def _quoted(text: str) -> str:
    return text if _PLAIN.fullmatch(text) else quote(text, safe="")


def linked_releases(base_url: str, ocid: str, releases: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Linked releases (id, url, date, tag) of a process from its releases' (id, date, tags), in (date, id)
    order, as the API serves them."""
    path = f"{base_url}/api/releases/{_quoted(ocid)}/"
    return [{"id": rid, "url": path + _quoted(rid), "date": date, "tag": list(tags)}
            for rid, date, tags in sorted(releases, key=lambda r: (r[1], r[0]))]


def _json_number(value: decimal.Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def canonical(value: Any, key: str | None = None) -> Any:
    """oc4idskit's output made deterministic JSON: Decimals as numbers, lists made from sets sorted."""
    if isinstance(value, dict):
        return {k: canonical(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [canonical(v) for v in value]
        if key in ("roles", "sector") and all(isinstance(v, str) for v in items):
            return sorted(items)
        return items
    if isinstance(value, decimal.Decimal):
        return _json_number(value)
    return value


def _copies(items: Any) -> Any:
    return [dict(item) if isinstance(item, dict) else item for item in items] if isinstance(items, list) else items


def _with_documents(container: Any) -> Any:
    if isinstance(container, dict) and "documents" in container:
        return {**container, "documents": _copies(container["documents"])}
    return container


def _writable(compiled: dict[str, Any]) -> dict[str, Any]:
    """A copy of what oc4idskit 0.0.4 writes into (the top level, each party, each planning and implementation
    document), sharing the rest: a deep copy of every member of every project in a batch cost a quarter of
    the conversion. ``test_conversion_leaves_the_compiled_releases_alone`` holds it to that."""
    out = dict(compiled)
    if "parties" in out:
        out["parties"] = _copies(out["parties"])
    if "planning" in out:
        out["planning"] = _with_documents(out["planning"])
    if isinstance(out.get("contracts"), list):
        out["contracts"] = [{**c, "implementation": _with_documents(c["implementation"])}
                            if isinstance(c, dict) and "implementation" in c else c for c in out["contracts"]]
    return out


def convert(pid: str, members: Sequence[Member]) -> dict[str, Any]:
    """oc4idskit's conversion of the members (in ocid order) into the project ``pid``, made canonical."""
    from oc4idskit.transforms import run_transforms

    records = [
        # oc4idskit writes into the compiled releases it reads (linked releases, party ids, document ids): give
        # it copies, unless they are the member's own (read from the store for this conversion). It only reads
        # the linked releases.
        {"ocid": m.ocid, "releases": list(m.releases),
         "compiledRelease": m.compiled if m.owned else _writable(m.compiled)}
        for m in sorted(members, key=lambda m: m.ocid)
    ]
    quiet = logging.getLogger("oc4idskit")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns about odd data (a string budget) on every rebuild
    try:
        project = run_transforms(dict(OPTIONAL_TRANSFORMS), [], project_id=pid, records=records) if records else {
            "id": pid}
    finally:
        quiet.setLevel(level)
    result: dict[str, Any] = canonical(project)
    return result


def default_title(members: Sequence[Member]) -> str | None:
    """The most frequent ``planning.budget.project`` name of the members (ties: the first in text order)."""
    names: Counter[str] = Counter()
    for m in members:
        budget = (m.compiled.get("planning") or {}).get("budget") if isinstance(m.compiled.get("planning"), dict) \
            else None
        name = budget.get("project") if isinstance(budget, dict) else None
        if isinstance(name, str) and name.strip():
            names[name.strip()] += 1
    if not names:
        return None
    top = max(names.values())
    return min(n for n, c in names.items() if c == top)


def build(pid: str, members: Sequence[Member], supplied: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The project record: ``{**defaults, **convert(pid, members), **supplied, "id": pid}``."""
    title = default_title(members)
    project = {**({"title": title} if title else {}), **convert(pid, members), **(supplied or {})}
    project["id"] = pid
    return project


def _deepest_last_index_first(error: tuple[tuple[str | int, ...], str]) -> tuple[int, list[str]]:
    return len(error[0]), [f"{p:012d}" if isinstance(p, int) else p for p in error[0]]


def conform(project: dict[str, Any], schema: Oc4idsSchema, rounds: int = 10) -> tuple[dict[str, Any], list[str]]:
    """The project without the values that violate the OC4IDS project schema, and what was removed.

    Published data has typos oc4idskit passes on (NAICM: a contract value in currency ``MNX``), and stored
    projects must meet the schema: each offending value is dropped (for a missing required field, the object
    that lacks it), deepest first, until the project is valid. Never drops ``id``.
    """
    removed: list[str] = []
    for _ in range(rounds):
        errors = [(path, message) for path, message in schema.project_error_paths(project) if path and path != ("id",)]
        if not errors:
            break
        for path, message in sorted(errors, key=_deepest_last_index_first, reverse=True):
            parent: Any = project
            try:
                for step in path[:-1]:
                    parent = parent[step]
                del parent[path[-1]]
            except (KeyError, IndexError, TypeError):
                continue  # already gone with an enclosing value
            removed.append(f"/{'/'.join(str(p) for p in path)}: {message}")
    return project, removed


def check_supplied(fields: Any) -> dict[str, Any]:
    """The supplied fields as a dict; ProjectFieldsError names the fields that may not be supplied."""
    if not isinstance(fields, dict):
        raise ProjectFieldsError("project fields must be a JSON object, like {\"title\": \"...\", \"sector\": [...]}")
    unknown = sorted(set(fields) - SUPPLIED_FIELDS)
    if unknown:
        raise ProjectFieldsError(
            f"these fields cannot be supplied: {', '.join(unknown)}; supply project-level fields only "
            f"({', '.join(sorted(SUPPLIED_FIELDS))}); id, contractingProcesses and parties come from the data")
    return dict(fields)


def digest(project: Mapping[str, Any]) -> str:
    """SHA-256 of the project's canonical JSON (sorted keys)."""
    return hashlib.sha256(orjson.dumps(project, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _amount(value: Any) -> tuple[float, str | None] | None:
    if isinstance(value, dict) and isinstance(value.get("amount"), int | float) and not isinstance(
            value.get("amount"), bool):
        currency = value.get("currency")
        return float(value["amount"]), currency if isinstance(currency, str) else None
    return None


def figures(project: Mapping[str, Any], members: Sequence[Member]) -> dict[str, Any]:
    """What the project pages and the list show: budget, contracted and paid (sums per currency), status,
    public authority and counts."""
    contracted: dict[str, float] = defaultdict(float)
    paid: dict[str, float] = defaultdict(float)
    amendments = 0
    buyers: Counter[str] = Counter()
    for m in members:
        buyer = m.compiled.get("buyer")
        if isinstance(buyer, dict) and isinstance(buyer.get("name"), str) and buyer["name"].strip():
            buyers[buyer["name"].strip()] += 1
        for contract in m.compiled.get("contracts") or []:
            if not isinstance(contract, dict):
                continue
            found = _amount(contract.get("value"))
            if found:
                contracted[found[1] or ""] += found[0]
            amendments += len(contract.get("amendments") or []) if isinstance(contract.get("amendments"), list) else 0
            implementation = contract.get("implementation")
            for tx in (implementation.get("transactions") or []) if isinstance(implementation, dict) else []:
                got = _amount(tx.get("value") or tx.get("amount")) if isinstance(tx, dict) else None
                if got:
                    paid[got[1] or ""] += got[0]
    budget = _amount((project.get("budget") or {}).get("amount") if isinstance(project.get("budget"), dict) else None)
    authority = project.get("publicAuthority")
    if not isinstance(authority, dict):
        authority = next((p for p in project.get("parties") or [] if "publicAuthority" in (p.get("roles") or [])), {})
    return {
        "title": project.get("title") if isinstance(project.get("title"), str) else None,
        "status": project.get("status") if isinstance(project.get("status"), str) else None,
        "public_authority": {"id": authority.get("id"), "name": authority.get("name")} if authority else None,
        "processes": len(members),
        "budget": {"amount": budget[0], "currency": budget[1]} if budget else None,
        "contracted": [{"amount": round(v, 2), "currency": c or None} for c, v in sorted(contracted.items())],
        "paid": [{"amount": round(v, 2), "currency": c or None} for c, v in sorted(paid.items())],
        "amendments": amendments,
        "buyers": [name for name, _ in sorted(buyers.items(), key=lambda b: (-b[1], b[0]))[:10]],
    }
