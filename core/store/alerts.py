"""The watchdog's writes and the alerts feed's reads (migration 0008). Every function takes an open cursor or
connection; writers run inside the watchdog's transaction, which holds :data:`WATCHDOG_LOCK`.

:func:`sync` is where alerts become idempotent: it compares the flags a rule finds over some scopes with the
alerts active in those scopes, raises what is new, withdraws what went away, and leaves the rest alone, so
evaluating the same data again (a re-delivered batch, a replay, a second instance) writes no event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from core.redflags import Flag
from core.redflags.mexico import DirectAward
from core.redflags.rules import title

Cursor = Any
WATCHDOG_LOCK = 0x0CD5_0012  # held by a watchdog batch from its first read of alerts to its commit


def _event(kind: str, alert_id: int, flag: dict[str, Any], base_url: str) -> dict[str, Any]:
    ocids = flag.get("ocids") or []
    project = (flag.get("detail") or {}).get("project")
    page = f"{base_url}/projects/{quote(project, safe='')}" if isinstance(project, str) else \
        f"{base_url}/records/{quote(ocids[0], safe='')}" if ocids else None
    return {
        "kind": kind, "alert_id": alert_id, "rule": flag["rule"], "title": title(flag["rule"]), "key": flag["key"],
        "ocid": ocids[0] if ocids else None, "ocids": ocids, "buyer": flag.get("buyer"),
        "suppliers": flag.get("suppliers") or [], "evidence": flag.get("evidence") or [],
        "detail": flag.get("detail") or {},
        "record_url": page,
    }


def sync(cur: Cursor, rules: Sequence[str], scopes: Sequence[str], flags: Iterable[Flag],
         base_url: str) -> list[dict[str, Any]]:
    """Make the active alerts of ``rules`` in ``scopes`` equal ``flags``; the events this wrote (not numbered yet)."""
    wanted = {(f.rule, f.key): f for f in flags}
    if not scopes and not wanted:
        return []
    cur.execute("SELECT id, rule, key, flag FROM alerts WHERE active AND scope = ANY(%s) AND rule = ANY(%s)",
                (list(scopes), list(rules)))
    active = {(rule, key): (ident, flag) for ident, rule, key, flag in cur.fetchall()}
    events = []
    for (rule, key), (ident, flag) in sorted(active.items()):
        if (rule, key) not in wanted:
            cur.execute("UPDATE alerts SET active = false, updated_at = now() WHERE id = %s", (ident,))
            events.append(_event("alert.withdrawn", ident, orjson.loads(flag), base_url))
    for (rule, key), found in sorted(wanted.items()):
        if (rule, key) in active:
            continue
        data = found.as_dict()
        cur.execute(
            "INSERT INTO alerts (rule, key, scope, active, ocids, buyer_id, supplier_ids, flag) "
            "VALUES (%s, %s, %s, true, %s, %s, %s, %s) ON CONFLICT (rule, key) DO UPDATE SET active = true, "
            "scope = EXCLUDED.scope, ocids = EXCLUDED.ocids, buyer_id = EXCLUDED.buyer_id, "
            "supplier_ids = EXCLUDED.supplier_ids, flag = EXCLUDED.flag, raised_at = now(), updated_at = now() "
            "WHERE NOT alerts.active RETURNING id",
            (rule, key, found.scope, list(found.ocids), found.buyer, list(found.suppliers),
             orjson.dumps(data).decode()))
        row = cur.fetchone()
        if row is not None:
            events.append(_event("alert.raised", int(row[0]), data, base_url))
    return events


def append_events(cur: Cursor, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number ``events`` (gapless, in commit order: the counter row stays locked until commit) and store them."""
    if not events:
        return []
    cur.execute("UPDATE alert_counter SET last = last + %s WHERE id = 1 RETURNING last", (len(events),))
    first = int(cur.fetchone()[0]) - len(events) + 1
    now = datetime.now(UTC).isoformat()
    numbered = []
    for cursor, event in enumerate(events, start=first):
        event = {"cursor": cursor, **event, "created_at": now}
        cur.execute("INSERT INTO alert_events (cursor, alert_id, kind, rule, buyer_id, supplier_ids, ocids, event) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (cursor, event["alert_id"], event["kind"], event["rule"], event["buyer"], event["suppliers"],
                     event["ocids"], orjson.dumps(event).decode()))
        numbered.append(event)
    return numbered


# -- history the rules keep ---------------------------------------------------------------------------

def projects_of(cur: Cursor, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The OC4IDS records, as last built, of those of ``ids`` that are projects."""
    if not ids:
        return {}
    cur.execute("SELECT id, data FROM projects WHERE id = ANY(%s)", (list(ids),))
    return {ident: orjson.loads(data) for ident, data in cur.fetchall()}


def first_published(cur: Cursor, items: dict[str, tuple[list[str], str | None]]) -> dict[str, dict[str, str]]:
    """When each item of each process was first published, for ``{ocid: (items, date)}``: ``date`` for those of
    ``items`` not seen before (none are recorded when the change has no date). Two statements for the whole batch."""
    rows = [(ocid, item, date) for ocid, (keys, date) in items.items() if date is not None
            for item in dict.fromkeys(keys)]
    if rows:
        cur.execute("INSERT INTO redflag_first_published (ocid, item, published) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING",
                    tuple(map(list, zip(*rows, strict=True))))
    out: dict[str, dict[str, str]] = {ocid: {} for ocid in items}
    cur.execute("SELECT ocid, item, published FROM redflag_first_published WHERE ocid = ANY(%s)", (list(items),))
    for ocid, item, published in cur.fetchall():
        out[ocid][item] = published
    return out


def replace_direct_awards(cur: Cursor, awards: dict[str, Sequence[DirectAward]]) -> set[tuple[str, str]]:
    """Store each process's direct awards (``{ocid: awards}``) instead of its previous ones; the (buyer, supplier)
    pairs either named."""
    if not awards:
        return set()
    cur.execute("DELETE FROM redflag_direct_awards WHERE ocid = ANY(%s) RETURNING buyer, supplier", (list(awards),))
    pairs = {(b, s) for b, s in cur.fetchall()}
    rows = [(a.ocid, a.award, a.supplier, a.buyer, a.date, a.pointer, a.amount) for own in awards.values() for a in own]
    if rows:
        cur.execute("INSERT INTO redflag_direct_awards (ocid, award, supplier, buyer, date, pointer, amount) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
                    "%s::float8[]) ON CONFLICT DO NOTHING", tuple(map(list, zip(*rows, strict=True))))
    return pairs | {(row[3], row[2]) for row in rows}


def direct_awards_of(cur: Cursor, pairs: Iterable[tuple[str, str]]) -> list[DirectAward]:
    pairs = sorted(pairs)
    if not pairs:
        return []
    cur.execute("SELECT d.date, d.buyer, d.supplier, d.ocid, d.award, d.pointer, d.amount FROM redflag_direct_awards d "
                "JOIN unnest(%s::text[], %s::text[]) AS p(buyer, supplier) USING (buyer, supplier)",
                ([b for b, _ in pairs], [s for _, s in pairs]))
    return [DirectAward(*row) for row in cur.fetchall()]


def replace_bid_ratios(cur: Cursor, ratios: dict[str, dict[str, Any] | None]) -> set[str]:
    """Store each process's R024/R058 ratio (``{ocid: row or None}``); the currencies whose population changed."""
    if not ratios:
        return set()
    cur.execute("DELETE FROM redflag_bid_ratios WHERE ocid = ANY(%s) RETURNING ocid, currency, ratio", (list(ratios),))
    old = {ocid: (currency, ratio) for ocid, currency, ratio in cur.fetchall()}
    rows = [(ocid, row["currency"], row["ratio"], orjson.dumps(row).decode()) for ocid, row in ratios.items() if row]
    if rows:
        cur.execute("INSERT INTO redflag_bid_ratios (ocid, currency, ratio, detail) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::text[])",
                    tuple(map(list, zip(*rows, strict=True))))
    changed = set()
    for ocid, row in ratios.items():
        before, now = old.get(ocid), (row["currency"], row["ratio"]) if row else None
        if before != now:
            changed |= {pair[0] for pair in (before, now) if pair is not None}
    return changed


def ratio_population(cur: Cursor, currency: str) -> tuple[int, Any]:
    """(n, kth) over the stored ratios of ``currency``: kth(k) is the k-th smallest, read by rank from the index."""
    cur.execute("SELECT count(*) FROM redflag_bid_ratios WHERE currency = %s", (currency,))
    n = int(cur.fetchone()[0])

    def kth(k: int) -> float:
        cur.execute("SELECT ratio FROM redflag_bid_ratios WHERE currency = %s ORDER BY ratio OFFSET %s LIMIT 1",
                    (currency, k))
        return float(cur.fetchone()[0])

    return n, kth


def ratios_outside(cur: Cursor, currency: str, lower: float,
                   upper: float | None) -> list[tuple[str, bool, dict[str, Any]]]:
    """(ocid, below the lower fence?, stored row) of the ratios at or below ``lower`` or at or above ``upper``."""
    cur.execute("SELECT ocid, ratio <= %s, detail FROM redflag_bid_ratios WHERE currency = %s "
                "AND (ratio <= %s OR ratio >= %s)",
                (lower, currency, lower, upper if upper is not None else float("inf")))
    return [(ocid, low, orjson.loads(detail)) for ocid, low, detail in cur.fetchall()]


def replace_bid_counts(cur: Cursor, counts: dict[str, Sequence[tuple[str, str, int, int]]]) -> bool:
    """Store each process's R038 counts (``{ocid: [(kind, party, disqualified, submitted)]}``) instead of its
    previous ones; whether anything changed."""
    if not counts:
        return False
    cur.execute("DELETE FROM redflag_bid_counts WHERE ocid = ANY(%s) RETURNING ocid, kind, party, disqualified, "
                "submitted", (list(counts),))
    old: dict[str, list[tuple[str, str, int, int]]] = {}
    for ocid, *row in cur.fetchall():
        old.setdefault(ocid, []).append(tuple(row))
    rows = [(ocid, *row) for ocid, own in counts.items() for row in dict.fromkeys(own)]
    if rows:
        cur.execute("INSERT INTO redflag_bid_counts SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], "
                    "%s::int[], %s::int[]) ON CONFLICT DO NOTHING", tuple(map(list, zip(*rows, strict=True))))
    return any(sorted(old.get(ocid, [])) != sorted(own) for ocid, own in counts.items())


def disqualifying_processes(cur: Cursor, kind: str, party: str, limit: int = 50) -> list[tuple[str, int, int]]:
    """(ocid, disqualified, submitted) of the processes where ``party`` had bids disqualified (the most first)."""
    cur.execute("SELECT ocid, disqualified, submitted FROM redflag_bid_counts WHERE kind = %s AND party = %s "
                "AND disqualified > 0 ORDER BY disqualified DESC, ocid LIMIT %s", (kind, party, limit))
    return [(o, int(d), int(n)) for o, d, n in cur.fetchall()]


def bid_count_totals(cur: Cursor) -> list[tuple[str, str, int, int]]:
    cur.execute("SELECT kind, party, sum(disqualified)::int, sum(submitted)::int FROM redflag_bid_counts "
                "GROUP BY kind, party")
    return [(k, p, int(d), int(n)) for k, p, d, n in cur.fetchall()]


# -- reads for the alerts feed and the pages ---------------------------------------------------------------

FILTERS = ("rule", "buyer", "supplier", "ocid", "project")
# project=: the project's own alerts (project rules) and those of the processes that belong to it now
PROJECT_FILTER = "(ocids @> ARRAY[%s] OR ocids && ARRAY(SELECT ocid FROM project_members WHERE project_id = %s))"


def events_page(conn: Any, after: int, limit: int, filters: dict[str, str], newest_first: bool = False,
                upto: int | None = None) -> list[Any]:
    """Alert events after cursor ``after`` (and at most ``upto``) matching ``filters`` (rule, buyer, supplier,
    ocid, project), oldest first (or the newest ``limit`` when ``newest_first``)."""
    where, args = ["cursor > %s"], [after]  # type: list[str], list[Any]
    if upto is not None:
        where.append("cursor <= %s")
        args.append(upto)
    for name, column in (("rule", "rule = %s"), ("buyer", "buyer_id = %s"), ("supplier", "supplier_ids @> ARRAY[%s]"),
                         ("ocid", "ocids @> ARRAY[%s]"), ("project", PROJECT_FILTER)):
        if filters.get(name):
            where.append(column)
            args += [filters[name]] * column.count("%s")
    order = "DESC" if newest_first else ""
    with conn.cursor() as cur:
        cur.execute(f"SELECT cursor, created_at, event FROM alert_events WHERE {' AND '.join(where)} "  # noqa: S608
                    f"ORDER BY cursor {order} LIMIT %s", (*args, limit))
        rows = cur.fetchall()
    conn.commit()
    return [(int(c), created, orjson.loads(e)) for c, created, e in rows]


def head(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT last FROM alert_counter WHERE id = 1")
        last = int(cur.fetchone()[0])
    conn.commit()
    return last


def active_for(conn: Any, ocid: str) -> list[dict[str, Any]]:
    """The active alerts naming ``ocid``, with their flag (evidence and detail)."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, rule, key, flag, raised_at FROM alerts WHERE active AND ocids @> ARRAY[%s] "
                    "ORDER BY rule, key", (ocid,))
        rows = cur.fetchall()
    conn.commit()
    return [{"alert_id": i, "rule": r, "title": title(r), "key": k, **orjson.loads(f), "raised_at": t.isoformat()}
            for i, r, k, f, t in rows]


def counts(conn: Any) -> dict[str, list[dict[str, Any]]]:
    """Active alerts counted by rule, by buyer (the 50 most flagged) and by month raised."""
    with conn.cursor() as cur:
        cur.execute("SELECT rule, count(*) FROM alerts WHERE active GROUP BY rule ORDER BY rule")
        by_rule = [{"rule": r, "title": title(r), "count": n} for r, n in cur.fetchall()]
        cur.execute("SELECT buyer_id, count(*) FROM alerts WHERE active AND buyer_id IS NOT NULL GROUP BY buyer_id "
                    "ORDER BY count(*) DESC, buyer_id LIMIT 50")
        by_buyer = [{"buyer": b, "count": n} for b, n in cur.fetchall()]
        cur.execute("SELECT to_char(raised_at, 'YYYY-MM'), rule, count(*) FROM alerts WHERE active "
                    "GROUP BY 1, 2 ORDER BY 1, 2")
        by_month = [{"month": m, "rule": r, "count": n} for m, r, n in cur.fetchall()]
    conn.commit()
    return {"by_rule": by_rule, "by_buyer": by_buyer, "by_month": by_month}
