"""Which value types a node indexes for reverse lookup (``/hrls/handles``,
``/api/search``) and structured queries (``/api/query``): chosen, not implied.

Every index entry costs Redis memory per identifier (a sorted-set member each), so a
node indexes only:

- the types its configuration names (``--indexed-types`` / ``IDNODE_INDEXED_TYPES``,
  default :data:`DEFAULT_TYPES`: ``URL``, so reverse lookup by URL works);
- ``TEMPLATE``, always: a query's ``template=`` condition reads it;
- the items metadata templates declare ``"queryable": true``, once the node has seen
  the template (it loads its own published templates at start, and learns every other
  one when a write or a query reads it).

``*`` indexes every string type (the layout of releases before this choice). A search
or query on any other type is refused with :class:`registry.errors.NotIndexed`, which
says how to index it, rather than answered by scanning records.

The store records which types its indexes are complete for (``store:indexed``); at
start a node compares that with its policy and builds or drops indexes to match
(:func:`IndexPolicy.difference`).

Nothing here does I/O.

>>> policy = IndexPolicy.parse("URL,BATCH")
>>> policy.covers("batch"), policy.covers("manufacturer"), policy.covers("template")
(True, False, True)
>>> policy.with_types({"production_date"}).text
'batch,production_date,template,url'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from registry.errors import ConfigError, NotIndexed
from registry.identifier import ascii_lower

EVERY = "*"
DEFAULT_TYPES = "URL"
ALWAYS = frozenset({"template"})  # a query's template= condition reads this index
SETTING = "--indexed-types / IDNODE_INDEXED_TYPES"


@dataclass(frozen=True, slots=True)
class IndexPolicy:
    """The value types (ASCII lower-cased) a node indexes; ``every``: all of them."""

    types: frozenset[str] = ALWAYS | {"url"}
    every: bool = False

    @classmethod
    def parse(cls, text: str | None) -> IndexPolicy:
        """From the setting: comma-separated types, ``*`` for every type; None or empty
        gives the default (``URL``)."""
        raw = DEFAULT_TYPES if text is None or not text.strip() else text
        names = [ascii_lower(part.strip()) for part in raw.split(",") if part.strip()]
        if EVERY in names:
            if len(names) > 1:
                raise ConfigError("setting 'indexed_types': '*' (every type) stands alone")
            return cls(ALWAYS, every=True)
        for name in names:
            if "\x00" in name or ":" in name or len(name) > 128:
                raise ConfigError(f"setting 'indexed_types': {name[:40]!r} is not a value type")
        return cls(ALWAYS | frozenset(names))

    @classmethod
    def from_text(cls, text: str) -> IndexPolicy:
        """What :attr:`text` wrote (the store's record of its complete indexes)."""
        return cls.parse(text)

    @property
    def text(self) -> str:
        """A canonical spelling: ``*``, or the sorted types."""
        return EVERY if self.every else ",".join(sorted(self.types))

    def covers(self, type_key: str) -> bool:
        return self.every or type_key in self.types

    def check(self, type_key: str) -> None:
        """Refuse a search or query on a type this node keeps no index of."""
        if not self.covers(type_key):
            indexed = ", ".join(sorted(t.upper() for t in self.types))
            raise NotIndexed(
                f"value type {type_key.upper()} is not indexed at this node (indexed: "
                f"{indexed}), so it cannot be searched or queried; index it with {SETTING} "
                f"(e.g. {indexed},{type_key.upper()}) or declare it queryable in a "
                "metadata template"
            )

    def with_types(self, types: Iterable[str]) -> IndexPolicy:
        """This policy widened by ``types`` (a template's queryable items)."""
        added = frozenset(ascii_lower(t) for t in types)
        if self.every or added <= self.types:
            return self
        return IndexPolicy(self.types | added)

    def difference(self, recorded: IndexPolicy) -> tuple[IndexPolicy | None, frozenset[str]]:
        """Going from ``recorded`` (complete in the store) to this policy: the types to
        build (as a policy; None: nothing to build) and the types whose indexes to drop
        (empty when this policy indexes every type).

        >>> IndexPolicy.parse("URL,BATCH").difference(IndexPolicy.parse("URL,MANUFACTURER"))
        (IndexPolicy(types=frozenset({'batch'}), every=False), frozenset({'manufacturer'}))
        >>> IndexPolicy.parse("URL").difference(IndexPolicy.parse("*"))
        (None, frozenset({'*'}))
        """
        if self.every:
            return (None if recorded.every else self), frozenset()
        if recorded.every:
            # Every type was indexed: nothing to build; which to drop is not known by
            # name: ``{"*"}`` asks the store to drop each index this policy lacks.
            return None, frozenset({EVERY})
        dropped = recorded.types - self.types
        added = self.types - recorded.types
        return (IndexPolicy(added) if added else None), dropped
