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
from websockets import frames as ws_frames
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


def _values(event: dict[str, Any], name: str) -> Any:
    return event.get("ocid") if name == "ocid" else (
        ((event.get("summary") or {}).get("buyer") or {}).get("id") if name == "buyer"
        else (event.get("summary") or {}).get(name))


def _present(page: list[dict[str, Any]]) -> dict[str, set[Any]]:
    """The values each equality field takes in a page of the log."""
    return {name: {_values(e, name) for e in page} for name in _EQUAL}


def _may_match(change_filter: ChangeFilter, present: dict[str, set[Any]]) -> bool:
    """False when a page cannot hold a change for the filter (say, its buyer is in none of them): most groups
    of a step are skipped without looking at each change (hundreds of buyers, a few in a step)."""
    return all(getattr(change_filter, name) is None or getattr(change_filter, name) in values
               for name, values in present.items())


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
    """``text`` (ASCII JSON, as the hub encodes it) as one unmasked websocket text frame, as a server sends it."""
    return ws_frames.Frame(ws_frames.Opcode.TEXT, text.encode()).serialize(mask=False)


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
        """Write each group's messages for the changes after its position, up to the hub's head."""
        head = self.hub.head
        present: dict[int, dict[str, set[Any]]] = {}  # page's first cursor -> field -> values in it
        for group in list(self.groups.values()):
            change_filter, detail, batch = group.key
            position = group.position
            frames: list[Frame] = []
            while position < head:
                page = self.hub.recent(position, PAGE)
                if not page:  # not in memory any more (cannot happen to a live group): read it from the store
                    self._fall_back(group, list(group.members), group.position)
                    break
                values = present.get(page[0]["cursor"])
                if values is None:
                    values = present[page[0]["cursor"]] = _present(page)
                if _may_match(change_filter, values):
                    frames += self.hub.messages(change_filter, page, batch, detail)
                position = page[-1]["cursor"]
            if frames:
                self._write(group, _runs(frames))
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

