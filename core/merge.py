"""Merge a process's releases into compiled and versioned releases, by ocdsmerge's rules, incrementally.

Pure: dicts in, dicts out. The schema is always passed in, so ocdsmerge downloads nothing.

**Order.** :func:`order_key` is ``(date, id)`` with ``date`` the *raw* string. ocdsmerge sorts by the raw
``date`` string (``sorted(releases, key=itemgetter('date'))``, a stable sort), so normalising UTC offsets
here would order some releases differently from the reference and break "same answer as ocdsmerge". The
result of :meth:`RecordMerger.merge` therefore equals ocdsmerge given the releases in ``order_key`` order,
for any delivery order. Releases with the same date are ordered by id, so a release that ties on date
with the record's latest but has a greater id is still *after* it in the total order and is extended
incrementally (exactly what a full merge would do); one with a smaller id needs a full recompute.
Releases with an equal ``order_key`` are one release: ``merge`` keeps the first (re-delivery is a no-op).

**Incremental.** A record keeps, beside its ``compiled`` and ``versioned`` dicts, the flattened state
ocdsmerge keeps (one leaf per JSON path) and where each leaf sits in the dicts. :meth:`RecordMerger.extend`
flattens the new release once and applies only its paths: cost O(size of the release), not of the record
or of its history. It continues ocdsmerge's ``unflatten`` loop where the last release left it, which gives
the same dicts as ocdsmerge's full ``unflatten``. ``extend`` mutates ``record`` in place and returns it:
``record.compiled`` and ``record.versioned`` are the same dict objects before and after, so copy them first
if you need the old values (they also share leaf values, such as lists of strings, with the releases:
treat all of it as read-only). Dict key order may differ from ocdsmerge's (JSON objects are unordered);
serialise with ``orjson.OPT_SORT_KEYS`` for bytes that are identical however a record was built.

**Conflicts.** Where ocdsmerge raises ``InconsistentTypeError`` (a path that is a value in one release and
an object or array in a later one), :class:`~core.exceptions.MergeConflictError` is raised, in ``merge`` and
``extend`` alike, and ``extend`` leaves the record as it was. One deliberate difference: where ocdsmerge
would append objects *into* an earlier release's array of values (an array of strings, say, then an array of
objects at the same path), silently mixing them and mutating its input, this raises too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from ocdsmerge.flatten import IdValue, flatten, is_versioned_value
from ocdsmerge.rules import MergeRules, get_merge_rules

from core.compiled import Arrays, CompiledMerge, Unsupported, is_leaf
from core.exceptions import MergeConflictError, Where
from core.schema import OcdsSchema
from core.types import Release

Key = tuple[Any, ...]
"""A flattened JSON path, as ocdsmerge builds it (array items are ``IdValue`` parts)."""

NO_RELEASE: tuple[str, str] = ("", "")
"""The ``latest`` of a record with no releases: before every order key."""


def order_key(release: Release) -> tuple[str, str]:
    """``(date, id)``: the total order of a process's releases, used everywhere (raw date string)."""
    date = release.get("date")
    if not isinstance(date, str):
        raise MergeConflictError(
            "release has no date string, and ocdsmerge orders releases by date; reject it", _where(release)
        )
    release_id = release.get("id")
    return date, "" if release_id is None else str(release_id)


def _where(release: Release) -> Where:
    ocid, release_id = release.get("ocid"), release.get("id")
    return Where(ocid=None if ocid is None else str(ocid), release_id=None if release_id is None else str(release_id))


class _Conflict(Exception):
    """Internal: a path changes type between releases (turned into MergeConflictError with its where)."""


class _Leaf:
    """One flattened path: its current value, and the dict slot it owns in the merged release (if any)."""

    __slots__ = ("owned", "parent", "part", "value")

    def __init__(self, parent: dict[str, Any], part: Any, owned: bool, value: Any) -> None:
        self.parent, self.part, self.owned, self.value = parent, part, owned, value


# Undo operations, so that a failed extend leaves the record as it was.
_DEL, _SET, _POP, _LEAF, _ARRAY = range(5)
Undo = list[tuple[Any, ...]]


def _rollback(undo: Undo) -> None:
    for op in reversed(undo):
        kind = op[0]
        if kind == _DEL:
            del op[1][op[2]]
        elif kind == _SET:
            op[1][op[2]] = op[3]
        elif kind == _POP:
            op[1].pop()
        elif kind == _LEAF:
            op[1].value = op[2]
        else:
            op[1].discard(op[2])


def _pointer(key: Key) -> str:
    return "/" + "/".join(str(part) for part in key)


class _Tree:
    """A merged release (compiled or versioned) and the index that lets one release update it in place.

    ``leaves`` is ocdsmerge's flattened ``data`` (values in ``_Leaf.value``, same insertion order);
    ``ids`` and ``arrays`` are the state of ocdsmerge's ``unflatten`` loop after the last key.
    """

    __slots__ = ("arrays", "ids", "leaves", "root")

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.ids: dict[Key, dict[str, Any]] = {}
        self.arrays: set[int] = set()  # id() of the arrays of objects built here (not leaf values)
        self.leaves: dict[Key, _Leaf] = {}

    def set(self, key: Key, value: Any, undo: Undo) -> None:
        """ocdsmerge's ``data[key] = value``, applied to the merged release too."""
        leaf = self.leaves.get(key)
        if leaf is None:
            self.place(key, value, undo)
        else:
            self.update(leaf, value, undo)

    def place(self, key: Key, value: Any, undo: Undo) -> None:
        """A new path: one more step of ocdsmerge's ``unflatten`` loop."""
        node: Any = self.root
        last = len(key) - 1
        owned = False
        for end, part in enumerate(key):
            if type(part) is IdValue:
                id_path = (*key[:end], part.identifier)
                child = self.ids.get(id_path)
                if child is None:
                    if type(node) is not list or id(node) not in self.arrays:
                        kind = "an array of values" if type(node) is list else f"the value {node!r}"
                        raise _Conflict(
                            f"an earlier release had {kind} at {_pointer(key[:end])}, "
                            f"but this release has an array of objects there"
                        )
                    child = {} if part.original_value is None else {"id": part.original_value}
                    self.ids[id_path] = child
                    undo.append((_DEL, self.ids, id_path))
                    node.append(child)
                    undo.append((_POP, node))
                node = child
            elif type(node) is not dict:
                kind = "an array" if type(node) is list else f"the value {node!r}"
                raise _Conflict(
                    f"an earlier release had {kind} at {_pointer(key[:end])}, "
                    f"but this release has an object with a {part!r} key there"
                )
            elif part in node:
                if end < last:
                    node = node[part]
                # else: the path is already an object or array; ocdsmerge ignores this value (shadowed)
            elif end < last:
                container: list[Any] | dict[str, Any]
                if type(key[end + 1]) is IdValue:
                    container = []
                    self.arrays.add(id(container))
                    undo.append((_ARRAY, self.arrays, id(container)))
                else:
                    container = {}
                node[part] = container
                undo.append((_DEL, node, part))
                node = container
            else:
                owned = True
                if value is not None:
                    node[part] = value
                    undo.append((_DEL, node, part))
        self.leaves[key] = _Leaf(node, key[-1], owned, value)
        undo.append((_DEL, self.leaves, key))

    @staticmethod
    def update(leaf: _Leaf, value: Any, undo: Undo) -> None:
        """A new value for a known path (a leaf that owns its slot holds it whenever it is not null)."""
        old = leaf.value
        if leaf.owned:
            parent, part = leaf.parent, leaf.part
            if old is not None:
                if value is None:
                    del parent[part]
                else:
                    parent[part] = value
                undo.append((_SET, parent, part, old))
            elif value is not None:
                if part in parent:
                    raise _Conflict(
                        f"an earlier release had null at {part!r}, later ones an object or array there, "
                        f"and this release has a value there"
                    )
                parent[part] = value
                undo.append((_DEL, parent, part))
        leaf.value = value
        undo.append((_LEAF, leaf, old))

    def index(self, obj: Any, rules: MergeRules, path: Key, rule_path: Key, versioned: bool) -> None:
        """Rebuild the index of a stored merged release: ocdsmerge's ``flatten``, keeping the nodes."""
        if type(obj) is list:
            self.arrays.add(id(obj))
            for item in obj:
                has_id = "id" in item
                part = IdValue(item["id"] if has_id else str(uuid.uuid1(1)))
                part.original_value = item["id"] if has_id else None
                self.ids.setdefault((*path, part.identifier), item)
                if item:
                    self.index(item, rules, (*path, part), rule_path, versioned)
            return
        in_item = bool(path) and type(path[-1]) is IdValue and path[-1].original_value is not None
        for name, value in obj.items():
            new_rule_path = (*rule_path, name)
            rule = rules.get(new_rule_path)
            if rule == "omitWhenMerged":
                continue
            if is_leaf(rule, value) or (versioned and value and all(is_versioned_value(item) for item in value)):
                # An item's "id" was set when the item was created: its own path never owns the slot.
                self.leaves[(*path, name)] = _Leaf(obj, name, not (in_item and name == "id"), value)
            elif value:
                self.index(value, rules, (*path, name), new_rule_path, versioned)


class _State:
    __slots__ = ("compiled", "versioned")

    def __init__(self, compiled: _Tree, versioned: _Tree | None) -> None:
        self.compiled, self.versioned = compiled, versioned


@dataclass
class MergedRecord:
    """A process's compiled and versioned releases, and what :meth:`RecordMerger.extend` needs next.

    ``compiled`` and ``versioned`` are plain dicts, updated in place by ``extend``. ``versioned`` is
    None when the merger was built with ``versioned=False``.
    """

    compiled: Release
    versioned: Release | None
    latest: tuple[str, str]  # order_key of the newest release merged
    count: int  # releases merged
    _state: _State | None = field(default=None, repr=False, compare=False)
    _arrays: Arrays | None = field(default=None, repr=False, compare=False)
    extensions: tuple[str, ...] = ()  # the union of its releases' extension sets: the profile it is merged with


@dataclass
class Step:
    """One release merged by :meth:`RecordMerger.step`: the record, and what the release changed in it.

    ``before`` is the compiled release as it was (None for a new record); it may share unchanged parts
    with ``record.compiled``, so read it before the record is extended again. ``changes`` is
    ``core.changes.diff(before, record.compiled)`` when the merge found it on the way, else None.
    """

    record: MergedRecord
    before: Release | None
    changes: list[dict[str, Any]] | None


class RecordMerger:
    """Builds and extends the compiled and versioned releases of one ocid, as ocdsmerge would.

    With ``versioned=False`` only the compiled release is built: the stream processor's hot path,
    which derives versioned releases on demand (they cost 4x the compiled release to keep and write).
    """

    def __init__(self, schema: OcdsSchema, *, versioned: bool = True) -> None:
        self._rules: MergeRules = get_merge_rules(schema.release)
        self._versioned = versioned
        self._fast = None if versioned else CompiledMerge(self._rules)

    def merge(self, releases: Iterable[Release]) -> MergedRecord:
        """Merge from scratch: sorted by :func:`order_key`, so any delivery order gives the same record."""
        record = self._empty()
        previous: tuple[str, str] | None = None
        for release in sorted(releases, key=order_key):
            key = order_key(release)
            if key != previous:  # an equal key is the same release, delivered again
                self._append(record, release, key)
                previous = key
        return record

    def can_extend(self, record: MergedRecord | None, release: Release) -> bool:
        """Whether ``release`` comes after every release in ``record``, so ``extend`` gives merge's result."""
        return record is None or order_key(release) > record.latest

    def extend(self, record: MergedRecord | None, release: Release) -> MergedRecord:
        """Merge one more release into ``record``, in place (O(size of the release)), and return it.

        Equals ``merge(previous releases + [release])``. A release equal to ``record.latest`` is a
        re-delivery and changes nothing; an older one raises ValueError (call ``merge`` with all releases).
        On MergeConflictError the record is left as it was.
        """
        return self._extend(record, release, track=False).record

    def step(self, record: MergedRecord | None, release: Release) -> Step:
        """:meth:`extend`, and what the release changed (see :class:`Step`)."""
        return self._extend(record, release, track=True)

    def _extend(self, record: MergedRecord | None, release: Release, *, track: bool) -> Step:
        key = order_key(release)
        if record is not None and record.count and key == record.latest:
            return Step(record, record.compiled, [])
        if record is not None and key < record.latest:
            raise ValueError(
                f"release {key} is older than the record's latest {record.latest}: "
                f"merge() all of the process's releases instead"
            )
        if self._fast is not None:  # compiled only: merge on the compiled release itself
            new = record is None or not record.count
            target = MergedRecord({"tag": ["compiled"]}, None, NO_RELEASE, 0) if record is None else record
            if target._arrays is None:
                target._arrays = Arrays()
            try:
                before, changes = self._fast.apply(target.compiled, release, target._arrays, track=track and not new)
            except Unsupported:
                pass
            else:
                target._state = None  # the general merge's index no longer matches the dicts
                target.latest = key
                target.count += 1
                return Step(target, None if new else before, None if new or not track else changes)
        old = orjson.loads(orjson.dumps(record.compiled)) if track and record is not None and record.count else None
        if record is None:
            record = self._empty()
        self._append(record, release, key)
        return Step(record, old, None)

    def resume(
        self, compiled: Release, versioned: Release | None, latest: tuple[str, str], count: int
    ) -> MergedRecord:
        """A record from its stored form (e.g. JSON from the database), ready to ``extend``; takes ownership.

        The flattened state that ocdsmerge's ``CompiledRelease(data)``/``VersionedRelease(data)`` rebuild, plus
        the index into the stored dicts (O(record size)), is built when the general merge first needs it: the
        compiled-only merge works on the dicts themselves and never does.
        """
        if not self._versioned:
            versioned = None
        elif versioned is None:
            raise ValueError("this merger keeps versioned releases: resume needs the stored versioned release")
        return MergedRecord(compiled, versioned, (str(latest[0]), str(latest[1])), count)

    def catch_up(self, compiled: Release, releases: Iterable[Release]) -> Release:
        """``compiled`` (takes ownership) extended with ``releases``, which all come after it in
        :func:`order_key` order, in that order: a stored checkpoint brought up to date (a merger built with
        ``versioned=False``)."""
        record: MergedRecord | None = None
        for release in releases:
            if record is None:
                record = self.resume(compiled, None, NO_RELEASE, 1)
            record = self.extend(record, release)
        return compiled if record is None else record.compiled

    # internals

    def _empty(self) -> MergedRecord:
        compiled = _Tree({})
        compiled.set(("tag",), ["compiled"], [])
        versioned = _Tree({}) if self._versioned else None
        return MergedRecord(compiled.root, versioned.root if versioned else None, NO_RELEASE, 0,
                            _State(compiled, versioned))

    def _index(self, compiled: Release, versioned: Release | None) -> _State:
        state = _State(_Tree(compiled), _Tree(versioned) if versioned is not None else None)
        state.compiled.index(compiled, self._rules, (), (), False)
        if state.versioned is not None and versioned is not None:
            state.versioned.index(versioned, self._rules, (), (), True)
        for name in ("tag", "id", "date"):  # set by CompiledRelease itself, whatever the rules say
            if (name,) not in state.compiled.leaves and name in compiled:
                state.compiled.leaves[(name,)] = _Leaf(compiled, name, True, compiled[name])
        return state

    def _append(self, record: MergedRecord, release: Release, key: tuple[str, str]) -> None:
        """ocdsmerge's ``CompiledRelease.append`` and ``VersionedRelease.append``, on the record in place."""
        if record._state is None:
            record._state = self._index(record.compiled, record.versioned)
        record._arrays = None  # the compiled merge's index no longer matches the dicts
        compiled, versioned = record._state.compiled, record._state.versioned
        ocid, release_id, date = release.get("ocid"), release.get("id"), release.get("date")
        tag = release.get("tag")
        flat = flatten({k: v for k, v in release.items() if k != "tag"}, self._rules, {}, flattened={})
        undo: Undo = []
        try:
            compiled.set(("id",), f"{ocid}-{date}", undo)
            compiled.set(("date",), date, undo)
            compiled.set(("ocid",), ocid, undo)
            for path, value in flat.items():
                compiled.set(path, value, undo)
            if versioned is not None:
                _append_versioned(versioned, flat, ocid, release_id, date, tag, undo)
        except _Conflict as exc:
            _rollback(undo)
            raise MergeConflictError(f"cannot merge: {exc}", _where(release)) from None
        record.latest = key
        record.count += 1


def _append_versioned(
    versioned: _Tree, flat: dict[Key, Any], ocid: Any, release_id: Any, date: Any, tag: Any, undo: Undo
) -> None:
    """ocdsmerge's ``VersionedRelease.append`` on the indexed tree: a new version where a value changed."""
    versioned.set(("ocid",), ocid, undo)
    for path, value in flat.items():
        if path == ("ocid",):
            continue
        entry = {"releaseID": release_id, "releaseDate": date, "releaseTag": tag, "value": value}
        leaf = versioned.leaves.get(path)
        if leaf is None:
            versioned.place(path, [entry], undo)
        elif type(leaf.value) is list and value != leaf.value[-1]["value"]:
            leaf.value.append(entry)
            undo.append((_POP, leaf.value))
