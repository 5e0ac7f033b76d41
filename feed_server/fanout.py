"""Frame once, write to many: the live subscribers of a feed server, grouped by what they receive.

A subscriber that has caught up with the log joins the group of its (filter, detail, batch): every
member of a group sits at the same position (the head of the log when the group last stepped), so at
each step of the change hub a group's messages are selected, encoded and framed **once**, as one run of
websocket frames, and that same ``bytes`` object is written to each member's transport. Nothing is
queued per subscriber and no task runs per subscriber while it keeps up.

A member whose transport is above its high-water mark (it does not read fast enough: the kernel's
socket buffer and the transport's ``write_limit`` are full) is not written to: it leaves its group at
the position before this step and streams from there in a task of its own (feed_server.ws), with
the usual send timeout; when it catches up it joins its group again. So a slow subscriber delays
nobody else, and holds at most one step's frames beyond the transport's limit.

Frames are written straight to the transport, as ``websockets.broadcast`` does through the protocol
object, which is only possible because no extension (per-message compression) is negotiated: see
docs/websocket.md for why compression is off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from websockets.protocol import State

from core.filters import ChangeFilter
from feed_server.hub import ChangeHub, Frame
from feed_server.metrics import METRICS

if TYPE_CHECKING:
    from feed_server.wsserver import WebsocketSubscriber

logger = logging.getLogger("ocds_live.feed")

GroupKey = tuple[ChangeFilter, str, int]  # filter, detail, batch
PAGE = 500  # changes read from the hub at once (as feed_server.ws reads them)
RUN = 2**15  # bytes of frames written at once (a subscriber is checked for keeping up between two runs)
Run = tuple[bytes, int, int]  # frames, the cursor of the last change in them, how many messages


_EQUAL = ("ocid", "buyer", "method", "category")  # filter fields that match one value of the event's


def _value(event: dict[str, Any], name: str) -> Any:
    """The value of ``event`` that a filter's field ``name`` is compared with (as ChangeFilter.matches does)."""
    if name == "ocid":
        return str(event.get("ocid") or "")
    summary = event.get("summary") or {}
    return (summary.get("buyer") or {}).get("id") if name == "buyer" else summary.get(name)


class PageIndex:
    """Where in a page of the log each value of the equality fields and each kind occurs.

    A step's groups hold ~100 distinct filters (hundreds of buyers, a few methods, kinds and amounts),
    and a step's page a few dozen changes: asking every filter about every change cost half the server's
    CPU. The index gives each filter the few changes that may match (those with its buyer, say), and
    :meth:`ChangeFilter.matches` decides on those alone, so the answer is the filter's own.
    """

    def __init__(self, page: list[dict[str, Any]]) -> None:
        self.page = page
        self.by: dict[str, dict[Any, list[int]] | None] = {}  # field -> value -> positions (None: unindexable)
        for name in _EQUAL:
            where: dict[Any, list[int]] | None = {}
            for n, event in enumerate(page):
                try:
                    where.setdefault(_value(event, name), []).append(n)  # type: ignore[union-attr]
                except TypeError:  # an unhashable value (not from this pipeline): no shortcut on this field
                    where = None
                    break
            self.by[name] = where
        self.kinds: dict[str, list[int]] = {}  # kind -> positions of the changes of that kind
        for n, event in enumerate(page):
            for kind in {event.get("kind"), *(k for k in event.get("kinds") or [] if isinstance(k, str))}:
                if isinstance(kind, str):
                    self.kinds.setdefault(kind, []).append(n)
        self._prefixes: dict[str, list[int]] = {}

    def _kind(self, kind: str) -> list[int]:
        """Positions of the changes that have ``kind`` (or, ending in ``.``, a kind with that prefix)."""
        if not kind.endswith("."):
            return self.kinds.get(kind, [])
        found = self._prefixes.get(kind)
        if found is None:
            found = self._prefixes[kind] = sorted({n for k, where in self.kinds.items() if k.startswith(kind)
                                                   for n in where})
        return found

    def among(self, change_filter: ChangeFilter) -> list[dict[str, Any]] | None:
        """The changes of the page that may match ``change_filter``, in order (None: any of them may)."""
        narrowest: list[int] | None = None
        for name in _EQUAL:
            value, where = getattr(change_filter, name), self.by[name]
            if value is not None and where is not None:
                found = where.get(value, [])
                if narrowest is None or len(found) < len(narrowest):
                    narrowest = found
        if change_filter.kind is not None:
            found = self._kind(change_filter.kind)
            if narrowest is None or len(found) < len(narrowest):
                narrowest = found
        return None if narrowest is None else [self.page[n] for n in narrowest]


def _runs(frames: list[Frame]) -> list[Run]:
    """Consecutive frames joined into runs of about RUN bytes: one write per run and subscriber."""
    runs: list[Run] = []
    parts: list[bytes] = []
    size = count = 0
    for text, last in frames:
        frame = text_frame(text)
        parts.append(frame)
        size += len(frame)
        count += 1
        if size >= RUN:
            runs.append((b"".join(parts), last, count))
            parts, size, count = [], 0, 0
    if parts:
        runs.append((b"".join(parts), frames[-1][1], count))
    return runs


def text_frame(text: str) -> bytes:
    """``text`` (ASCII JSON, as the hub encodes it) as one unmasked websocket text frame, as a server sends it
    (RFC 6455 section 5.2: FIN and opcode 1, then the payload's length in 7, 7+16 or 7+64 bits)."""
    data = text.encode()
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 2**16:
        return b"\x81\x7e" + size.to_bytes(2, "big") + data
    return b"\x81\x7f" + size.to_bytes(8, "big") + data


@dataclass(eq=False)
class Group:
    """Live subscribers with the same filter, detail and batch, all at ``position``."""

    key: GroupKey
    position: int
    members: dict[WebsocketSubscriber, None] = field(default_factory=dict)  # insertion-ordered set


class FanOut:
    """The groups of live subscribers of one change hub, written to at each of its steps and heartbeats."""

    def __init__(self, hub: ChangeHub) -> None:
        self.hub = hub
        self.groups: dict[GroupKey, Group] = {}
        hub.step_listeners.append(self.step)
        hub.beat_listeners.append(self.beat)

    def __len__(self) -> int:
        return sum(len(group.members) for group in self.groups.values())

    def join(self, member: WebsocketSubscriber) -> None:
        """Add a subscriber whose subscription is at the hub's head (detail ``summary`` or ``brief``)."""
        sub = member.sub
        if sub.position != self.hub.head or sub.detail == "full":
            raise ValueError(f"only a caught-up summary or brief subscription can join (at {sub.position}, "
                             f"head {self.hub.head}, detail {sub.detail})")
        key = (sub.filter, sub.detail, sub.batch)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, self.hub.head)
        group.members[member] = None
        member.group = group

    def leave(self, member: WebsocketSubscriber, position: int | None = None) -> None:
        """Take a member out of its group; its subscription resumes at ``position`` (default: the group's)."""
        group = member.group
        if group is None:
            return
        member.group = None
        member.sub.position = group.position if position is None else position
        group.members.pop(member, None)
        if not group.members and self.groups.get(group.key) is group:
            del self.groups[group.key]

    def step(self, before: int) -> None:
        """Write each group's messages for the changes after its position, up to the hub's head.

        Groups whose messages cost the fewest bytes per change are written first (``brief`` ones: about a
        quarter of ``summary``'s): a large step's writes take tens of milliseconds, and in that order more of
        its deliveries are made early, without delaying the last byte of the step."""
        head = self.hub.head
        indexes: dict[int, PageIndex] = {}  # page's first cursor -> its index
        ready: list[tuple[float, Group, list[Run], int]] = []  # bytes per change, group, its runs, its new position
        for group in list(self.groups.values()):
            change_filter, detail, batch = group.key
            position = group.position
            frames: list[Frame] = []
            changes = 0
            while position < head:
                page = self.hub.recent(position, PAGE)
                if not page:  # not in memory any more (cannot happen to a live group): read it from the store
                    self._fall_back(group, list(group.members), group.position)
                    break
                index = indexes.get(page[0]["cursor"])
                if index is None:
                    index = indexes[page[0]["cursor"]] = PageIndex(page)
                among = index.among(change_filter)
                if among is None or among:  # most groups of a step have nothing in it
                    frames += self.hub.messages(change_filter, page, batch, detail, among)
                    changes += len(self.hub.selection(change_filter, page, among).events)
                position = page[-1]["cursor"]
            if frames:
                runs = _runs(frames)
                ready.append((sum(len(data) for data, _, _ in runs) / max(changes, 1), group, runs, position))
            else:
                group.position = position
        ready.sort(key=lambda item: item[0])
        for _, group, runs, position in ready:
            self._write(group, runs)
            group.position = position

    def beat(self) -> None:
        """A heartbeat to every live subscriber (all of them are at the head)."""
        head = self.hub.head
        data = text_frame(orjson.dumps({"type": "heartbeat", "cursor": head}).decode())
        for group in list(self.groups.values()):
            self._write(group, [(data, head, 1)])

    def _write(self, group: Group, runs: list[Run]) -> None:
        """Write the runs of frames to every member that keeps up; a member whose transport goes above its
        high-water mark gets nothing more and streams on by itself from the last run it was written."""
        behind: list[tuple[WebsocketSubscriber, int]] = []
        messages = 0
        open_ = State.OPEN
        if len(runs) == 1:  # the usual step: one write per member
            data, _, count = runs[0]
            for member in group.members:
                conn = member.conn
                if conn.paused or conn.protocol.state is not open_:
                    behind.append((member, group.position))  # above its high-water mark, or closing
                else:
                    conn.transport.write(data)
                    messages += count
        else:
            for member in group.members:
                conn = member.conn
                for n, (data, _, count) in enumerate(runs):
                    if conn.paused or conn.protocol.state is not open_:
                        behind.append((member, runs[n - 1][1] if n else group.position))
                        break
                    conn.transport.write(data)
                    messages += count
        for member, position in behind:
            self._fall_back(group, [member], position)
        METRICS.ws_messages.inc(messages)

    def _fall_back(self, group: Group, members: list[WebsocketSubscriber], position: int) -> None:
        for member in members:
            self.leave(member, position)
            if member.conn.protocol.state is State.OPEN:
                member.start(caught_up=True, announce=False)

