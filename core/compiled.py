"""Merge one release into a compiled release in place, and say what changed: the stream processor's hot path.

Pure: dicts in, dicts out. :class:`CompiledMerge` walks the release once, against the compiled release
itself (no flattened copy of either), and gives the same compiled release as :class:`core.merge.RecordMerger`
resumed from that compiled release (``resume``) and then extended, i.e. ocdsmerge's
``CompiledRelease(data).append(release)``. In the same walk it collects what :func:`core.changes.diff` of
the compiled release before and after would say, and a *before* value that equals the old compiled release
while sharing every untouched part with the new one. So the cost of a release is the size of the release
and of the containers on its paths, not the size of the record.

It covers what real releases do: objects, arrays of values (replaced whole), arrays of objects merged by
string ``id`` (or appended when an item has no ``id``), nulls that remove a field, ``omitWhenMerged`` and
``wholeListMerge`` rules. Anything else raises :class:`Unsupported` and leaves the record as it was, and the
caller uses the general merge, which decides exactly (conflicting types, a value where an object was, ids
that are not strings, arrays that are empty or mix values and objects in the stored record).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.changes import MAX_DEPTH, MISSING, diff_into, escape
from core.types import Release

if TYPE_CHECKING:  # ocdsmerge.rules imports requests (to download schemas): only its type is needed here
    from ocdsmerge.rules import MergeRules

Path = tuple[Any, ...]
Entries = list[dict[str, Any]]


_HEAD = frozenset({"id", "date", "tag"})
"""Top-level fields the compiled release sets itself (id and date) or never takes from a release (tag)."""


def is_leaf(rule: str | None, value: Any) -> bool:
    """Whether ocdsmerge's ``flatten`` keeps ``value`` whole (under the merge ``rule`` of its path): a value that
    is not an object or an array, an array holding anything but objects, or a ``wholeListMerge`` array."""
    return (
        rule == "wholeListMerge"
        or not isinstance(value, (dict, list))
        or (type(value) is list and any(not isinstance(item, dict) for item in value))
    )


class Unsupported(Exception):
    """This release needs the general merge (the record was left as it was)."""


class _Indexed:
    """One array of objects: its items by ``id`` with their positions, and whether every item has a
    distinct string ``id`` (else ``diff`` compares the array as one value)."""

    __slots__ = ("array", "clean", "items")

    def __init__(self, array: list[Any], items: dict[str, tuple[int, dict[str, Any]]], clean: bool) -> None:
        self.array, self.items, self.clean = array, items, clean


class Arrays:
    """The arrays of objects of one compiled release, indexed by item ``id``: built once per array, kept.

    Keyed by the array's ``id()``: valid only while the arrays stay in the compiled release they index, so
    whoever changes the compiled release another way must :meth:`clear` it.
    """

    __slots__ = ("index",)

    def __init__(self) -> None:
        self.index: dict[int, _Indexed] = {}  # id(array) -> its index

    def clear(self) -> None:
        self.index.clear()

    def get(self, array: list[Any]) -> _Indexed:
        entry = self.index.get(id(array))
        if entry is not None and entry.array is array:
            return entry
        items: dict[str, tuple[int, dict[str, Any]]] = {}
        clean = True
        for position, item in enumerate(array):
            ident = item.get("id", MISSING)
            if ident is MISSING:
                clean = False
            elif type(ident) is not str:
                raise Unsupported("an array item has an id that is not a string")
            elif ident in items:
                clean = False
            else:
                items[ident] = (position, item)
        entry = _Indexed(array, items, clean)
        self.index[id(array)] = entry
        return entry


class _Walk:
    """One release merged into one compiled release: the undo journal, the changes found, the before value."""

    __slots__ = ("arrays", "groups", "journal", "placed", "rules", "track")

    def __init__(self, rules: MergeRules, arrays: Arrays, track: bool) -> None:
        self.rules = rules
        self.arrays = arrays
        self.track = track  # collect changes (not needed for a new record: diff against {} is as cheap)
        self.journal: list[tuple[Any, ...]] = []
        self.groups: list[tuple[Path, Entries]] = []  # (path, its diff entries), sorted at the end
        self.placed = 0  # leaves visited, null ones included: a new container exists once one is under it

    def undo(self) -> None:
        for op in reversed(self.journal):
            if len(op) == 1:
                op[0].pop()
            elif op[2] is MISSING:
                del op[0][op[1]]
            else:
                op[0][op[1]] = op[2]
        self.arrays.clear()

    def changed(self, path: Path, pointer: str, old: Any, new: Any) -> None:
        if self.track:
            out: Entries = []
            diff_into(old, new, pointer, out, len(path))
            if out:
                self.groups.append((path, out))

    def added(self, path: Path, pointer: str, value: Any, mark: int) -> None:
        """A new container at ``path``: one ``add`` entry for it, instead of the entries found inside it."""
        if self.track:
            del self.groups[mark:]
            self.groups.append((path, [{"path": pointer, "op": "add", "old": None, "new": value}]))

    def obj(self, node: dict[str, Any], src: dict[str, Any], rule_path: Path, path: Path, pointer: str,
            in_item: bool) -> dict[str, Any] | None:
        """Merge the release object ``src`` into ``node``; node's old value if anything in it changed, else None."""
        if len(path) >= MAX_DEPTH - 2:
            raise Unsupported("nesting too deep")
        before: dict[str, Any] | None = None
        rules = self.rules
        value: Any
        for name, value in src.items():
            if in_item and name == "id":  # set when the item was made; ocdsmerge never changes it
                continue
            rp = (*rule_path, name)
            rule = None if not path and name in _HEAD else rules.get(rp)
            if rule == "omitWhenMerged":
                continue
            current = node.get(name, MISSING)
            here = (*path, name)
            at = f"{pointer}/{escape(name)}"
            if is_leaf(rule, value):
                self.placed += 1
                if current is not MISSING and (
                    isinstance(current, dict)
                    or (isinstance(current, list) and rule != "wholeListMerge"
                        and all(isinstance(item, dict) for item in current))
                ):
                    raise Unsupported("a value where the record has an object or an array of objects")
                if value is None:
                    if current is MISSING:
                        continue
                elif current is value or (type(current) is type(value) and current == value):
                    continue
                if before is None:
                    before = node.copy()
                self.journal.append((node, name, current))
                if value is None:
                    del node[name]
                else:
                    node[name] = value
                self.changed(here, at, current, MISSING if value is None else value)
            elif not value:
                continue  # an empty object or array of objects: ocdsmerge keeps nothing of it
            elif current is MISSING:
                container: Any = {} if type(value) is dict else []
                placed, mark = self.placed, len(self.groups)
                if type(value) is dict:
                    self.build(container, value, rp, here, at, False)
                else:
                    self.build_items(container, value, rp, here, at)
                if self.placed == placed:
                    continue
                if before is None:
                    before = node.copy()
                self.journal.append((node, name, MISSING))
                node[name] = container
                self.added(here, at, container, mark)
            elif type(value) is dict:
                if type(current) is not dict:
                    raise Unsupported("an object where the record has a value or an array")
                old = self.obj(current, value, rp, here, at, False)
                if old is not None:
                    if before is None:
                        before = node.copy()
                    before[name] = old
            else:
                if type(current) is not list or not current or not all(type(item) is dict for item in current):
                    raise Unsupported("an array of objects where the record has something else")
                old_items = self.items(current, value, rp, here, at)
                if old_items is not None:
                    if before is None:
                        before = node.copy()
                    before[name] = old_items
        return before

    def build(self, node: dict[str, Any], src: dict[str, Any], rule_path: Path, path: Path, pointer: str,
              in_item: bool) -> None:
        """:meth:`obj` for a new, empty ``node``: nothing to compare, undo or report inside it."""
        if len(path) >= MAX_DEPTH - 2:
            raise Unsupported("nesting too deep")
        rules = self.rules
        value: Any
        for name, value in src.items():
            if in_item and name == "id":
                continue
            rp = (*rule_path, name)
            rule = rules.get(rp)
            if rule == "omitWhenMerged":
                continue
            if is_leaf(rule, value):
                self.placed += 1
                if value is not None:
                    node[name] = value
            elif value:
                container: Any = {} if type(value) is dict else []
                placed = self.placed
                if type(value) is dict:
                    self.build(container, value, rp, (*path, name), "", False)
                else:
                    self.build_items(container, value, rp, (*path, name), "")
                if self.placed != placed:
                    node[name] = container

    def build_items(self, array: list[Any], src: Any, rule_path: Path, path: Path, pointer: str) -> None:
        """:meth:`items` for a new, empty ``array``."""
        entry = self.arrays.get(array)
        index = entry.items
        for item in src:
            if not item:
                continue
            ident = item.get("id", MISSING)
            if ident is MISSING:
                child: dict[str, Any] = {}
                placed = self.placed
                self.build(child, item, rule_path, path, "", False)
                if self.placed != placed:
                    entry.clean = False
                    array.append(child)
                continue
            if type(ident) is not str:
                raise Unsupported("an array item has an id that is not a string")
            found = index.get(ident)
            if found is not None:  # the same id twice in this release: merge into the first
                self.obj(found[1], item, rule_path, (*path, found[0]), f"{pointer}/{found[0]}", True)
                continue
            child = {"id": ident}
            self.placed += 1
            index[ident] = (len(array), child)
            array.append(child)
            self.build(child, item, rule_path, path, "", True)

    def items(self, array: list[Any], src: Any, rule_path: Path, path: Path, pointer: str) -> list[Any] | None:
        """Merge the release's array of objects into ``array`` by ``id``; its old value if it changed, else None."""
        entry = self.arrays.get(array)
        index = entry.items
        length, mark = len(array), len(self.groups)
        olds: dict[int, dict[str, Any]] = {}
        for item in src:
            if not item:
                continue  # {}: ocdsmerge keeps nothing of it
            ident = item.get("id", MISSING)
            if ident is not MISSING and type(ident) is not str:
                raise Unsupported("an array item has an id that is not a string")
            found = None if ident is MISSING else index.get(ident)
            if found is not None:
                position, child = found
                old = self.obj(child, item, rule_path, (*path, position), f"{pointer}/{position}", True)
                if old is not None and position < length and position not in olds:
                    olds[position] = old
                continue
            position = len(array)
            here, at = (*path, position), f"{pointer}/{position}"
            placed, inner = self.placed, len(self.groups)
            child = {} if ident is MISSING else {"id": ident}
            self.build(child, item, rule_path, here, at, ident is not MISSING)
            if ident is MISSING:
                if self.placed == placed:
                    continue
                entry.clean = False
            else:
                self.placed += 1  # the item's id
                index[ident] = (position, child)
            self.journal.append((array,))
            array.append(child)
            self.added(here, at, child, inner)
        if not olds and len(array) == length:
            return None
        before = array[:length]
        for position, old in olds.items():
            before[position] = old
        if self.track and not entry.clean:  # diff compares such an array as one value
            del self.groups[mark:]
            self.changed(path, pointer, before, array)
        return before


class CompiledMerge:
    """Merges releases into compiled releases in place (see the module's docstring)."""

    def __init__(self, rules: MergeRules) -> None:
        self.rules = rules
        self.supported = all(rules.get((name,)) == "omitWhenMerged" for name in ("id", "date"))

    def apply(self, compiled: Release, release: Release, arrays: Arrays, *, track: bool = True
              ) -> tuple[Release, Entries]:
        """Merge ``release`` into ``compiled`` in place; the old compiled release and ``diff(old, new)``.

        The old value shares what did not change with ``compiled``: read it before the next merge. With
        ``track=False`` the changes are not collected. Raises :class:`Unsupported` with ``compiled`` as it was.
        """
        if not self.supported:
            raise Unsupported("these merge rules keep the release's id or date")
        walk = _Walk(self.rules, arrays, track)
        # What ocdsmerge's CompiledRelease.flat_append sets, then the release's own fields (not its tag).
        src = {"id": f"{release.get('ocid')}-{release.get('date')}", "date": release.get("date")}
        src.update((k, v) for k, v in release.items() if k not in _HEAD)
        try:
            before = walk.obj(compiled, src, (), (), "", False)
        except Unsupported:
            walk.undo()
            raise
        walk.groups.sort(key=lambda group: group[0])
        return compiled if before is None else before, [change for _, entries in walk.groups for change in entries]
