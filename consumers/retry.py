"""``ocds-live rejected retry``: send dead letters through the pipeline again after a configuration fix.

A release is rejected for a reason that may have gone since: its publisher was not registered, the
policy was strict, an extension was missing. Retry selects rejected releases (by publisher, time and
rule), sends each distinct one **once** to the releases topic again, under its original publisher, and
waits until the stream processor has handled every one of them; then it reports, per release, whether it
was accepted now, was already accepted before, or is still rejected, and why.

Each selected dead letter is sent at most once per retry: rows with the same bytes count once, and a
dead letter whose (ocid, release id) the store already holds is not sent (it is reported as already
accepted). The stream processor must be running, with the fixed configuration (restart it after editing
the publishers file): retry waits for it up to ``timeout`` seconds.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from core.exceptions import ConfigurationError, OcdsLiveError
from core.kafka import OutgoingRelease, ReleaseProducer, ensure_topics
from core.settings import Settings
from core.store.connection import Connection, connect, translated_errors

POLL = 0.5
SOURCE = "retry"


class RetryError(OcdsLiveError):
    """A retry could not be done."""


@dataclass(frozen=True)
class DeadLetter:
    id: int
    publisher: str | None
    ocid: str | None
    release_id: str | None
    raw: bytes
    rules: tuple[str, ...]
    extensions: tuple[str, ...] = ()  # what its package declared: re-sent with it


@dataclass
class Outcome:
    """What became of one re-sent dead letter."""

    letter: DeadLetter
    verdict: str = "pending"  # accepted | already accepted | rejected | pending
    reasons: list[str] = field(default_factory=list)


@dataclass
class RetryReport:
    selected: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: int = 0  # the same bytes again within this retry
    already: int = 0  # the store already holds their (ocid, release id): not sent

    def counts(self) -> Counter[str]:
        return Counter(o.verdict for o in self.outcomes)

    def render(self, limit: int = 50) -> str:
        counts = self.counts()
        lines = [f"retried {len(self.outcomes)} of {self.selected} dead letters selected: "
                 f"{counts['accepted']} accepted now, {counts['rejected']} still rejected, "
                 f"{counts['already accepted']} already accepted, {counts['pending']} not processed yet; "
                 f"not sent: {self.skipped} repeated, {self.already} already in the store"]
        shown = [o for o in self.outcomes if o.verdict != "accepted"][:limit]
        for o in shown:
            what = f"#{o.letter.id} {o.letter.ocid or '?'} {o.letter.release_id or '?'} ({o.letter.publisher})"
            lines.append(f"  {o.verdict}: {what}" + (f": {'; '.join(o.reasons)}" if o.reasons else ""))
        if counts["pending"]:
            lines.append("  pending releases were sent but not processed in time: is `ocds-live process` running? "
                         "Run the same retry again later to see their verdicts (nothing is sent twice into the store)")
        return "\n".join(lines)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO 8601 time, or an age such as ``30m``, ``2h``, ``7d``."""
    now = now or datetime.now(UTC)
    age = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())
    if age:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[age.group(2)]
        return now - timedelta(**{unit: float(age.group(1))})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigurationError(f"--since {value!r}: give an ISO 8601 time (2026-01-31T12:00Z) "
                                 "or an age (30m, 2h, 7d)") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def select(conn: Connection, *, publisher: str | None = None, since: datetime | None = None,
           rule: str | None = None) -> list[DeadLetter]:
    """The dead letters matching the filters, oldest first."""
    query = "SELECT id, publisher, ocid, release_id, raw, findings::text, extensions FROM rejected WHERE true"
    args: list[Any] = []
    if publisher:
        query += " AND publisher = %s"
        args.append(publisher)
    if since:
        query += " AND received_at >= %s"
        args.append(since)
    if rule:
        query += " AND findings @> %s::jsonb"
        args.append(orjson.dumps([{"rule": rule}]).decode())
    with conn.cursor() as cur:
        cur.execute(query + " ORDER BY id", args)
        rows = cur.fetchall()
    return [DeadLetter(int(i), p, *_identity(o, r, bytes(raw)), bytes(raw),
                       tuple(f["rule"] for f in orjson.loads(findings)), tuple(extensions))
            for i, p, o, r, raw, findings, extensions in rows]


def _identity(ocid: str | None, release_id: str | None, raw: bytes) -> tuple[str | None, str | None]:
    """The dead letter's ocid and release id: stored, else read from its bytes (a release rejected before
    parsing, e.g. for its publisher, has none stored); its ocid is its key, so its partition is right."""
    if ocid and release_id:
        return ocid, release_id
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ocid, release_id
    if not isinstance(parsed, dict):
        return ocid, release_id
    found = (parsed.get("ocid"), parsed.get("id"))
    return tuple(v if isinstance(v, str) and v else None for v in found)  # type: ignore[return-value]


def _stored(conn: Connection, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    if not keys:
        return set()
    with conn.cursor() as cur:
        cur.execute("SELECT r.ocid, r.release_id FROM releases r JOIN unnest(%s::text[], %s::text[]) AS k(o, i) "
                    "ON r.ocid = k.o AND r.release_id = k.i", ([k[0] for k in keys], [k[1] for k in keys]))
        return {(o, i) for o, i in cur.fetchall()}


def retry(settings: Settings, *, publisher: str | None = None, since: datetime | None = None,
          rule: str | None = None, timeout: float = 120.0) -> RetryReport:
    """Re-send the selected dead letters once each and report what the processor made of them."""
    report = RetryReport()
    conn = connect(settings, autocommit=True)
    try:
        with translated_errors():
            letters = select(conn, publisher=publisher, since=since, rule=rule)
            report.selected = len(letters)
            stored = _stored(conn, [(d.ocid, d.release_id) for d in letters if d.ocid and d.release_id])
        seen: set[str] = set()
        todo: list[DeadLetter] = []
        for letter in letters:
            digest = hashlib.sha256(letter.raw).hexdigest()
            if digest in seen:
                report.skipped += 1
            elif letter.ocid and letter.release_id and (letter.ocid, letter.release_id) in stored:
                report.already += 1
            else:
                todo.append(letter)
            seen.add(digest)
        if not todo:
            return report
        sent = _send(settings, todo)
        report.outcomes = [Outcome(letter) for letter in todo]
        _await_verdicts(conn, settings, dict(zip(sent, report.outcomes, strict=True)), timeout)
    finally:
        conn.close()
    return report


def _send(settings: Settings, letters: list[DeadLetter]) -> list[tuple[str, int, int]]:
    """Send ``letters`` to the releases topic; their (topic, partition, offset), in order."""
    ensure_topics(settings)
    producer = ReleaseProducer(settings, client_id="ocds-live-retry")
    try:
        out = [OutgoingRelease(d.ocid or "", d.release_id or "", d.raw, d.publisher or "", f"{SOURCE}:{d.id}",
                               d.extensions) for d in letters]
        return [(m.topic, m.partition, m.offset) for m in producer.send_all(out, timeout=60)]
    finally:
        producer.close()


def _await_verdicts(conn: Connection, settings: Settings, sent: dict[tuple[str, int, int], Outcome],
                    timeout: float) -> None:
    """Wait until the processor has recorded every offset in ``sent``; then classify each."""
    deadline = time.monotonic() + timeout
    group = settings.app_id
    ends: dict[tuple[str, int], int] = {}
    for topic, partition, offset in sent:
        ends[(topic, partition)] = max(ends.get((topic, partition), -1), offset)
    with translated_errors():
        while True:
            with conn.cursor() as cur:
                cur.execute("SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer_group = %s",
                            (group,))
                done = {(t, int(p)): int(o) for t, p, o in cur.fetchall()}
            if all(done.get(tp, 0) > end for tp, end in ends.items()) or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        for (topic, partition, offset), outcome in sent.items():
            if done.get((topic, partition), 0) <= offset:
                continue  # pending
            _classify(conn, topic, partition, offset, outcome)


def _classify(conn: Connection, topic: str, partition: int, offset: int, outcome: Outcome) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT findings::text FROM rejected WHERE source_topic = %s AND source_partition = %s "
                    "AND source_offset = %s", (topic, partition, offset))
        row = cur.fetchone()
        if row is not None:
            outcome.verdict = "rejected"
            outcome.reasons = [f"{f['rule']} at {f['pointer'] or '/'}: {f['message']}" for f in orjson.loads(row[0])
                               if f.get("severity", "error") == "error"] or ["rejected (see GET /api/rejected)"]
            return
        letter = outcome.letter
        cur.execute("SELECT source_topic, source_partition, source_offset FROM releases WHERE ocid = %s "
                    "AND release_id = %s", (letter.ocid, letter.release_id))
        found = cur.fetchone()
    if found is not None and tuple(found) == (topic, partition, offset):
        outcome.verdict = "accepted"
    else:
        outcome.verdict = "already accepted"
