"""Detect what a release changed in its record, in the language of procurement.

Pure: the record's compiled release before and after merging a release, in; a :class:`Change` out, or
None when the release changed nothing (the compiled release's ``id``, ``date`` and ``tag`` always change
and are ignored).

The kind is decided from what changed between the two compiled releases (a new award id, a tender
status that became ``cancelled``, a new transaction, ...); the release's ``tag`` is only a hint, used
when the difference does not say (a ``contractAmendment`` whose only change is a contract's end date is
``contract.amended``; a release whose only changes are to fields outside the standard is named after its
tag). ``kinds`` lists every kind that applies, most important first (the order of :data:`KINDS`);
``kind`` is the first of them. Statuses are compared lower-cased. The rules:

- tender: status became cancelled or withdrawn -> ``tender.cancelled``; unsuccessful ->
  ``tender.unsuccessful``; complete -> ``tender.completed``; a tender first seen, or leaving
  planned/planning, -> ``tender.published``; a first tender still planned, or a new planning section,
  -> ``planning.published``; other tender changes -> ``tender.updated`` (``planning.updated`` while planned).
- awards (by id): a new one -> ``award.made`` (``award.cancelled`` if born cancelled, ``award.changed`` if
  unsuccessful); status became cancelled -> ``award.cancelled``; other changes -> ``award.changed``.
- contracts (by id): status became terminated or cancelled -> ``contract.terminated``; a new contract
  that is signed (active, terminated, or with ``dateSigned``), or one that became signed, ->
  ``contract.signed``; more amendments or a changed value -> ``contract.amended``; other changes ->
  ``contract.updated``.
- anywhere: a new transaction -> ``payment.recorded``; a new document -> ``documents.added``; a milestone
  added, changed or removed -> ``milestone.updated``; parties or buyer changed -> ``parties.updated``.
- otherwise the release's tags name the kind, else ``record.updated``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.summary import status_code, summarize
from core.types import JSON, Release

KINDS: dict[str, tuple[str, str]] = {
    # most important first: this order ranks the kinds of one change
    "tender.cancelled": ("Licitación cancelada", "Tender cancelled"),
    "tender.unsuccessful": ("Licitación desierta", "Tender unsuccessful"),
    "award.cancelled": ("Adjudicación cancelada", "Award cancelled"),
    "contract.terminated": ("Contrato terminado", "Contract terminated"),
    "contract.signed": ("Contrato firmado", "Contract signed"),
    "contract.amended": ("Contrato modificado", "Contract amended"),
    "award.made": ("Adjudicación realizada", "Award made"),
    "payment.recorded": ("Pago registrado", "Payment recorded"),
    "tender.published": ("Licitación publicada", "Tender published"),
    "tender.completed": ("Licitación concluida", "Tender completed"),
    "award.changed": ("Adjudicación modificada", "Award changed"),
    "contract.updated": ("Contrato actualizado", "Contract updated"),
    "tender.updated": ("Licitación actualizada", "Tender updated"),
    "planning.published": ("Planeación publicada", "Planning published"),
    "milestone.updated": ("Hito actualizado", "Milestone updated"),
    "documents.added": ("Documentos agregados", "Documents added"),
    "planning.updated": ("Planeación actualizada", "Planning updated"),
    "parties.updated": ("Partes actualizadas", "Parties updated"),
    "record.updated": ("Registro actualizado", "Record updated"),
}
"""Kind code -> (Spanish title, English title), most important first."""

_RANK = {kind: rank for rank, kind in enumerate(KINDS)}
IGNORED = frozenset({"/id", "/date", "/tag"})
"""Paths of the compiled release that change on every merge and mean nothing by themselves."""

MAX_DEPTH = 64
_PLANNED = frozenset({"planned", "planning"})
_CANCELLED = frozenset({"cancelled", "withdrawn"})
_ENDED = frozenset({"terminated", "cancelled"})
# Unexplained changes under a top-level field, and the kind they make.
_SECTIONS = {
    "tender": "tender.updated",
    "planning": "planning.updated",
    "awards": "award.changed",
    "contracts": "contract.updated",
    "parties": "parties.updated",
    "buyer": "parties.updated",
}
# Tags that name unexplained changes under their section more precisely than the section does.
_STRONG_TAGS = {
    "tenderCancellation": ("tender", "tender.cancelled"),
    "awardCancellation": ("awards", "award.cancelled"),
    "contractTermination": ("contracts", "contract.terminated"),
    "contractAmendment": ("contracts", "contract.amended"),
}
# What a release's tag says happened, when the difference says nothing the standard knows.
_TAG_KINDS = {
    "planning": "planning.updated",
    "planningUpdate": "planning.updated",
    "tender": "tender.updated",
    "tenderAmendment": "tender.updated",
    "tenderUpdate": "tender.updated",
    "tenderCancellation": "tender.cancelled",
    "award": "award.changed",
    "awardUpdate": "award.changed",
    "awardCancellation": "award.cancelled",
    "contract": "contract.updated",
    "contractUpdate": "contract.updated",
    "contractAmendment": "contract.amended",
    "implementation": "contract.updated",
    "implementationUpdate": "contract.updated",
    "contractTermination": "contract.terminated",
}
_PART_KINDS = (
    ("documents", "documents.added"),
    ("milestones", "milestone.updated"),
    ("transactions", "payment.recorded"),
)
MISSING: Any = object()
"""Stands for an absent value in :func:`diff_into` (a key that is not there)."""


@dataclass(frozen=True)
class Change:
    """What one release changed in its record: the kinds, a summary and the changed fields."""

    kind: str
    kinds: tuple[str, ...]
    summary: dict[str, Any]
    changes: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """The JSON-serialisable form that goes into the change event."""
        return {
            "kind": self.kind,
            "kinds": list(self.kinds),
            "summary": self.summary,
            "changes": self.changes,
        }


# -- diff ------------------------------------------------------------------------------------------------


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1") if "~" in token or "/" in token else token


def _ids(items: list[Any]) -> dict[Any, int] | None:
    """Each item's index by its ``id``, or None unless every item is an object with a distinct id."""
    index: dict[Any, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return None
        key = item.get("id")
        if not isinstance(key, str | int | float) or key in index:
            return None
        index[key] = i
    return index


def _entry(path: str, old: Any, new: Any) -> dict[str, Any]:
    op = "add" if old is MISSING else "remove" if new is MISSING else "replace"
    return {
        "path": path,
        "op": op,
        "old": None if old is MISSING else old,
        "new": None if new is MISSING else new,
    }


def diff_into(old: Any, new: Any, path: str, out: list[dict[str, Any]], depth: int) -> None:
    """:func:`diff` of two values at ``path`` (``depth`` tokens deep), appended to ``out``; :data:`MISSING`
    stands for an absent value."""
    if old is new:
        return
    if isinstance(old, dict) and isinstance(new, dict) and depth < MAX_DEPTH:
        keys = old.keys() | new.keys()
        try:
            ordered = sorted(keys)
        except TypeError:  # not JSON: keys of several types
            ordered = sorted(keys, key=repr)
        for key in ordered:
            o, n = old.get(key, MISSING), new.get(key, MISSING)
            if o is not n and (o is MISSING or n is MISSING or o != n):
                diff_into(o, n, f"{path}/{escape(str(key))}", out, depth + 1)
        return
    if isinstance(old, list) and isinstance(new, list) and depth < MAX_DEPTH:
        old_ids, new_ids = _ids(old), _ids(new)
        if old_ids is not None and new_ids is not None:
            for j, item in enumerate(new):
                i = old_ids.get(item["id"])
                if i is None:
                    out.append(_entry(f"{path}/{j}", MISSING, item))
                elif old[i] != item:
                    diff_into(old[i], item, f"{path}/{j}", out, depth + 1)
            for i, item in enumerate(old):
                if item["id"] not in new_ids:
                    out.append(_entry(f"{path}/{i}", item, MISSING))
            return
    if old is MISSING or new is MISSING or old != new:
        out.append(_entry(path, old, new))


def diff(old: JSON, new: JSON, path: str = "") -> list[dict[str, Any]]:
    """The differences between two JSON values: ``{"path", "op", "old", "new"}`` for each changed leaf.

    ``path`` is a JSON Pointer (RFC 6901: ``~`` and ``/`` in keys escaped as ``~0`` and ``~1``) under the
    given prefix; ``op`` is ``add`` (``old`` is None), ``remove`` (``new`` is None) or ``replace``, so a
    null value and a missing one stay distinct. Objects are compared key by key, in sorted key order.
    Arrays whose items are all objects with distinct ``id`` values (OCDS's identifier merge) are compared
    item by item by ``id``: changes inside an item, and added items, use the item's index in the NEW
    array (``/awards/0/value/amount``); removed items come after them and use their index in the OLD
    array. Reordering such an array alone is no change. Other arrays, and values of different types, are
    one entry for the whole value. Values are compared with Python's ``==`` (so ``1 == 1.0``) and are the
    caller's objects, not copies. Nesting deeper than 64 levels is compared as a whole.
    """
    out: list[dict[str, Any]] = []
    diff_into(old, new, path, out, 0)
    return out


# -- kinds -----------------------------------------------------------------------------------------------


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _keyed(value: Any) -> dict[Any, tuple[int, dict[str, Any]]]:
    """The objects of an array by their ``id`` (by ``#index`` when missing or repeated), with indexes."""
    items: dict[Any, tuple[int, dict[str, Any]]] = {}
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                key = item.get("id")
                if not isinstance(key, str | int | float) or key in items:
                    key = ("#", i)
                items[key] = (i, item)
    return items


def _signed(contract: dict[str, Any]) -> bool:
    status = status_code(contract)
    return status in ("active", "terminated") or (bool(contract.get("dateSigned")) and status != "cancelled")


def _parts(release: dict[str, Any], field: str) -> dict[Any, Any]:
    """The items of ``field`` (documents, milestones, transactions) anywhere in a release, by identity."""
    found: dict[Any, Any] = {}
    containers: list[tuple[Any, dict[str, Any]]] = [
        ("planning", _obj(release.get("planning"))),
        ("tender", _obj(release.get("tender"))),
    ]
    containers += [(("awards", k), award) for k, (_, award) in _keyed(release.get("awards")).items()]
    for key, (_, contract) in _keyed(release.get("contracts")).items():
        containers.append((("contracts", key), contract))
        containers.append((("implementation", key), _obj(contract.get("implementation"))))
    for container, obj in containers:
        for key, (_, item) in _keyed(obj.get(field)).items():
            found[(container, key)] = item
    return found


class _Kinds:
    """Collects the kinds of one change and the paths that they explain."""

    def __init__(self) -> None:
        self.found: set[str] = set()
        self.claims: list[str] = []

    def add(self, kind: str, *claims: str) -> None:
        self.found.add(kind)
        self.claims += claims

    def explains(self, path: str, tokens: list[str]) -> bool:
        for field, kind in _PART_KINDS:
            if field in tokens and kind in self.found:
                return True
        return any(
            path == claim or path.startswith(claim + "/") or claim.startswith(path + "/") for claim in self.claims
        )


def _tender(before: dict[str, Any], after: dict[str, Any], kinds: _Kinds) -> None:
    old, new = _obj(before.get("tender")), _obj(after.get("tender"))
    if _obj(after.get("planning")) and not _obj(before.get("planning")):
        kinds.add("planning.published", "/planning")
    if not new:
        return
    was, now = status_code(old), status_code(new)
    published_before = bool(old) and was not in _PLANNED
    if now in _PLANNED:
        if not old:
            kinds.add("planning.published", "/tender")
        return
    if now in _CANCELLED and was != now:
        kinds.add("tender.cancelled", "/tender")
    elif now == "unsuccessful" and was != now:
        kinds.add("tender.unsuccessful", "/tender")
    else:
        if not published_before:
            kinds.add("tender.published", "/tender")
        if now == "complete" and was != now:
            kinds.add("tender.completed", "/tender/status")


def _awards(before: dict[str, Any], after: dict[str, Any], kinds: _Kinds) -> None:
    old = _keyed(before.get("awards"))
    for key, (i, award) in _keyed(after.get("awards")).items():
        status = status_code(award)
        previous = old.get(key)
        if previous is None:
            if status == "cancelled":
                kinds.add("award.cancelled", f"/awards/{i}")
            elif status != "unsuccessful":
                kinds.add("award.made", f"/awards/{i}")
        elif status == "cancelled" and status_code(previous[1]) != "cancelled":
            kinds.add("award.cancelled", f"/awards/{i}")


def _grew(new: Any, old: Any) -> bool:
    """Whether a list of amendments gained items (or a non-list value appeared or changed)."""
    if isinstance(new, list) and (old is None or isinstance(old, list)):
        return len(new) > len(old or ())
    return bool(new) and new != old


def _contracts(before: dict[str, Any], after: dict[str, Any], kinds: _Kinds) -> None:
    old = _keyed(before.get("contracts"))
    for key, (i, contract) in _keyed(after.get("contracts")).items():
        status = status_code(contract)
        previous = old.get(key)
        prefix = f"/contracts/{i}"
        if previous is None:
            if status in _ENDED:
                kinds.add("contract.terminated", prefix)
            if _signed(contract):
                kinds.add("contract.signed", prefix)
            continue
        was = previous[1]
        if status in _ENDED:
            if status_code(was) != status:
                kinds.add("contract.terminated", prefix)
        elif _signed(contract) and not _signed(was):
            kinds.add("contract.signed", prefix)
        if _grew(contract.get("amendments"), was.get("amendments")):
            kinds.add("contract.amended", f"{prefix}/amendments")
        if contract.get("amendment") and contract.get("amendment") != was.get("amendment"):
            kinds.add("contract.amended", f"{prefix}/amendment")
        value, old_value = _obj(contract.get("value")), _obj(was.get("value"))
        if value and old_value and value != old_value:
            kinds.add("contract.amended", f"{prefix}/value")


def _items_whole(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """The kinds that new transactions and documents and changed milestones make, comparing everything."""
    found = set()
    if _parts(after, "transactions").keys() - _parts(before, "transactions").keys():
        found.add("payment.recorded")
    if _parts(after, "documents").keys() - _parts(before, "documents").keys():
        found.add("documents.added")
    if _parts(after, "milestones") != _parts(before, "milestones"):
        found.add("milestone.updated")
    return found


_PART_FIELD_KINDS = dict(_PART_KINDS)


def _part_field(tokens: list[str]) -> int | None:
    """Where ``tokens`` (a change's path) reaches a documents, milestones or transactions array of a
    container :func:`_parts` reads (planning, tender, awards/k, contracts/k, contracts/k/implementation)."""
    for i in (1, 2, 3):
        if len(tokens) > i and tokens[i] in _PART_FIELD_KINDS and _is_container(tokens[:i]):
            return i
    return None


def _is_container(tokens: list[str]) -> bool:
    if len(tokens) == 1:
        return tokens[0] in ("planning", "tender")
    if len(tokens) == 2:
        return tokens[0] in ("awards", "contracts") and tokens[1].isdigit()
    return len(tokens) == 3 and tokens[0] == "contracts" and tokens[1].isdigit() and tokens[2] == "implementation"


def _holds_parts(tokens: list[str]) -> bool:
    """Whether the value at ``tokens`` may hold containers :func:`_parts` reads (so part arrays)."""
    return _is_container(tokens) or (len(tokens) == 1 and tokens[0] in ("awards", "contracts"))


def _items(before: dict[str, Any], after: dict[str, Any], changes: list[dict[str, Any]], kinds: _Kinds) -> None:
    """:func:`_items_whole`, reading only what the changes touched: a release that adds one payment to a
    process with hundreds costs the same as the first payment.

    A change at or inside an item of a part array says it all (an item added at the end of an array of
    objects with distinct ids, or an item changed); a change to a whole part array, or to something holding
    part arrays, has its top-level section compared whole.
    """
    whole: set[str] = set()
    for change in changes:
        tokens = change["path"].split("/")[1:]
        at = _part_field(tokens)
        if at is None:
            if tokens and _holds_parts(tokens):
                whole.add(tokens[0])
        elif len(tokens) == at + 1:
            whole.add(tokens[0])
        elif tokens[at] == "milestones":
            kinds.add("milestone.updated")
        elif len(tokens) == at + 2 and change["op"] == "add" and isinstance(change["new"], dict):
            kinds.add(_PART_FIELD_KINDS[tokens[at]])
    if whole:
        for kind in _items_whole({k: before[k] for k in whole if k in before},
                                 {k: after[k] for k in whole if k in after}):
            kinds.add(kind)


def _tags(release: Release) -> list[str]:
    tags = release.get("tag") if isinstance(release, dict) else None
    return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []


def _unexplained(changes: list[dict[str, Any]], kinds: _Kinds) -> Iterator[str]:
    """The top-level field of each change that no kind found so far explains."""
    for change in changes:
        path = change["path"]
        tokens = path.split("/")
        if len(tokens) > 1 and not kinds.explains(path, tokens):
            yield tokens[1]


def classify(
    before: dict[str, Any], after: dict[str, Any], changes: list[dict[str, Any]], tags: list[str]
) -> list[str]:
    """The kinds of a change, most important first (never empty when ``changes`` is not)."""
    kinds = _Kinds()
    _tender(before, after, kinds)
    _awards(before, after, kinds)
    _contracts(before, after, kinds)
    _items(before, after, changes, kinds)
    strong = {section: kind for tag, (section, kind) in _STRONG_TAGS.items() if tag in tags}
    planned = status_code(after.get("tender")) in _PLANNED
    for section in set(_unexplained(changes, kinds)):
        kind = strong.get(section) or _SECTIONS.get(section)
        if kind == "tender.updated" and planned:
            kind = "planning.updated"
        if kind is not None:
            kinds.found.add(kind)
    if not kinds.found:
        kinds.found.update(_TAG_KINDS[tag] for tag in tags if tag in _TAG_KINDS)
    return sorted(kinds.found, key=_RANK.__getitem__) or ["record.updated"]


def detect(
    before: Release | None, after: Release, release: Release, changes: list[dict[str, Any]] | None = None
) -> Change | None:
    """The change ``release`` made to its record, or None when it changed nothing.

    ``before`` and ``after`` are the record's compiled release before and after merging ``release``
    (``before`` is None for a new record). ``changes``, when given, must be ``diff(before, after)``
    (the merge may know it without comparing the whole records: ``core.merge.RecordMerger.step``).
    Never raises on odd JSON.
    """
    old = before if isinstance(before, dict) else {}
    new = after if isinstance(after, dict) else {}
    found = diff(old, new) if changes is None else changes
    changes = [change for change in found if change["path"] not in IGNORED]
    if not changes:
        return None
    kinds = classify(old, new, changes, _tags(release))
    return Change(kinds[0], tuple(kinds), summarize(new, with_search_text=False), changes)
