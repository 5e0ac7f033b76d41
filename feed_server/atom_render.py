"""Atom (RFC 4287) documents of change events, with RFC 5005 archive links. Pure: events in, bytes out.

Rendered with feedgen (feed, entries, links of any registered relation, including ``hub``,
``prev-archive``, ``next-archive`` and ``current``); ``<fh:archive/>`` comes from a feedgen extension
(:class:`_History`), and entry links from another (:class:`_EntryLinks`, working around a feedgen
bug). The output depends only on the arguments, so an archive rendered twice from the
same changes is the same bytes: nothing reads the clock, feedgen's own defaults (``updated`` = now,
its generator and version) are always overridden.

An entry:

- ``id``: ``urn:ocds-live:change:<cursor>``; ``title``: "<Spanish> / <English>: <process title or
  ocid>" from :data:`core.changes.KINDS` for the event's main ``kind``;
- ``updated``: the release date, as RFC 3339 (a date without an offset is read as UTC; an unreadable one
  falls back to when the change was committed); ``published``: when the change was committed;
- ``link rel=alternate``: the record (``record_url``; no ``type``, so readers open it as the entry's
  page); ``rel=related``: the release in the API;
- ``summary``: buyer, suppliers, amount and currency, status, in both languages, as text; ``content``
  (HTML): the same plus the changed JSON Pointer paths with their operation;
- ``category``: every kind, labelled in both languages.

Text is cleaned of characters XML 1.0 cannot carry (real data has stray control characters).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from core.changes import KINDS
from core.store.feeds import Row

HISTORY_NS = "http://purl.org/syndication/history/1.0"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TITLE = 300
MAX_PATHS = 25
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _History(BaseExtension):  # type: ignore[misc]
    """feedgen extension for RFC 5005's ``<fh:archive/>``."""

    def __init__(self) -> None:
        self.archive = False

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS}

    def extend_atom(self, feed: Any) -> Any:
        if self.archive:
            xml_elem(f"{{{HISTORY_NS}}}archive", feed)
        return feed


class _EntryLinks(BaseEntryExtension):  # type: ignore[misc]
    """Writes an entry's links: feedgen 1.0 drops every attribute but ``href`` of entry links
    (lkiesow/python-feedgen#135, open), which would leave two ``alternate`` links of the same type."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def extend_atom(self, entry: Any) -> Any:
        for attributes in self.links:
            xml_elem("link", entry, **attributes)
        return entry


@dataclass(frozen=True)
class Document:
    """What one Atom document says about itself; ``links`` are (rel, href) pairs."""

    feed_id: str
    title: str
    self_url: str
    base_url: str
    updated: datetime
    links: Sequence[tuple[str, str]] = field(default_factory=tuple)
    archive: bool = False
    subtitle: str | None = None


def clean(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids."""
    return _NOT_XML.sub("", text)


def rfc3339(value: Any, default: datetime) -> datetime:
    """A timezone-aware datetime from an OCDS date string; ``default`` when it cannot be read."""
    if not isinstance(value, str):
        return default
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return default
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def kind_titles(kind: Any) -> tuple[str, str]:
    """(Spanish, English) title of a kind code; an unknown code stands for itself in both."""
    if isinstance(kind, str) and kind in KINDS:
        return KINDS[kind]
    text = clean(str(kind or "record.updated"))
    return text, text


def entry_title(event: Mapping[str, Any]) -> str:
    """'Contrato firmado / Contract signed: <process title or ocid>'."""
    spanish, english = kind_titles(event.get("kind"))
    summary = _obj(event.get("summary"))
    subject = summary.get("title") if isinstance(summary.get("title"), str) else None
    subject = " ".join((subject or str(event.get("ocid") or "")).split())
    if len(subject) > MAX_TITLE:
        subject = subject[: MAX_TITLE - 1].rstrip() + "…"
    return clean(f"{spanish} / {english}: {subject}")


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _name(org: Any) -> str | None:
    org = _obj(org)
    name, ident = org.get("name"), org.get("id")
    if isinstance(name, str) and name.strip():
        return f"{name.strip()} ({ident})" if isinstance(ident, str) and ident else name.strip()
    return ident if isinstance(ident, str) and ident else None


def _amount(summary: Mapping[str, Any]) -> str | None:
    for key in ("contract_amount", "award_amount", "tender_amount"):
        value = summary.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            currency = summary.get("currency")
            return f"{value:,.2f}" + (f" {currency}" if isinstance(currency, str) else "")
    return None


def facts(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(bilingual label, value) pairs of the change summary that are known."""
    summary = _obj(event.get("summary"))
    suppliers = [n for n in (_name(s) for s in summary.get("suppliers") or [] if isinstance(s, dict)) if n]
    kinds = [k for k in event.get("kinds") or [] if isinstance(k, str)]
    pairs: list[tuple[str, str | None]] = [
        ("Proceso / Process", str(event.get("ocid") or "") or None),
        ("Comprador / Buyer", _name(summary.get("buyer"))),
        ("Proveedores / Suppliers", "; ".join(suppliers) or None),
        ("Monto / Amount", _amount(summary)),
        ("Método / Method", summary.get("method") if isinstance(summary.get("method"), str) else None),
        ("Estado / Status", summary.get("status") if isinstance(summary.get("status"), str) else None),
        ("Tipos / Kinds", ", ".join(" / ".join(kind_titles(k)) for k in kinds) or None),
    ]
    return [(label, clean(value)) for label, value in pairs if value]


def _paths(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    changes = [c for c in event.get("changes") or [] if isinstance(c, dict)]
    return [(clean(str(c.get("op") or "")), clean(str(c.get("path") or ""))) for c in changes]


def entry_summary(event: Mapping[str, Any]) -> str:
    """The summary as text: one 'label: value' line per known fact, then how many fields changed."""
    lines = [f"{label}: {value}" for label, value in facts(event)]
    count = len(_paths(event))
    lines.append(f"Campos cambiados / Changed fields: {count}")
    return "\n".join(lines)


def entry_content(event: Mapping[str, Any]) -> str:
    """The summary and the changed paths as an HTML fragment (escaped here, embedded as text)."""
    esc = html.escape
    rows = "".join(f"<dt>{esc(label)}</dt><dd>{esc(value)}</dd>" for label, value in facts(event))
    paths = _paths(event)
    items = "".join(f"<li><code>{esc(op)} {esc(path)}</code></li>" for op, path in paths[:MAX_PATHS])
    if len(paths) > MAX_PATHS:
        items += f"<li>… +{len(paths) - MAX_PATHS}</li>"
    return (f"<dl>{rows}</dl><p>Campos cambiados / Changed fields ({len(paths)}):</p><ul>{items}</ul>")


def _add_entry(fg: Any, row: Row, base_url: str) -> None:
    event = row.event
    committed = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    fe = fg.add_entry(order="append")
    fe.id(f"urn:ocds-live:change:{row.cursor}")
    fe.title(entry_title(event))
    fe.updated(rfc3339(event.get("date"), committed))
    fe.published(committed)
    ocid, release_id = str(event.get("ocid") or ""), str(event.get("release_id") or "")
    record_url = event.get("record_url") or f"{base_url}/api/records/{quote(ocid, safe='')}"
    links = fe.history.links
    links.append({"href": clean(str(record_url)), "rel": "alternate"})
    if ocid and release_id:
        links.append({"href": clean(f"{base_url}/api/releases/{quote(ocid, safe='')}/{quote(release_id, safe='')}"),
                      "rel": "related", "type": "application/json"})
    for url in event.get("extensions") or ():  # the OCDS extensions the release declares (its profile)
        if isinstance(url, str):
            links.append({"href": clean(url), "rel": "describedby", "type": "application/json",
                          "title": "OCDS extension"})
    fe.summary(entry_summary(event))
    fe.content(entry_content(event), type="html")
    kinds = [k for k in event.get("kinds") or [event.get("kind")] if isinstance(k, str)]
    for kind in kinds:
        fe.category(term=clean(kind), scheme=f"{base_url}/kinds", label=" / ".join(kind_titles(kind)))


def render(doc: Document, rows: Iterable[Row]) -> bytes:
    """The Atom document: ``doc``'s head, then one entry per row, in the order given."""
    fg = FeedGenerator()
    fg.register_extension("history", _History, _EntryLinks, atom=True, rss=False)
    fg.history.archive = doc.archive
    fg.id(clean(doc.feed_id))
    fg.title(clean(doc.title))
    if doc.subtitle:
        fg.subtitle(clean(doc.subtitle))
    fg.updated(doc.updated if doc.updated.tzinfo else doc.updated.replace(tzinfo=UTC))
    fg.author({"name": "ocds-live", "uri": doc.base_url})
    fg.generator("ocds-live", uri=doc.base_url)
    fg.link(href=doc.self_url, rel="self", type="application/atom+xml")
    for rel, href in doc.links:
        fg.link(href=href, rel=rel)
    for row in rows:
        _add_entry(fg, row, doc.base_url)
    data: bytes = fg.atom_str(pretty=True)
    return data
