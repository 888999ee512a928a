"""The top node's prefix registry: registrations and filings (备案) of prefixes.

Each entry is the prefix record ``0.NA/<prefix>`` at the top node (fields in
:mod:`registry.prefix_entry`). Who may write which entry::

    identity                 may register or file            example
    300:0.NA/88 (top admin)  any prefix under 88, and may    provision 88.100 with the
                             set its credentials ("secret")  secret its node will use
    300:0.NA/88.100 (node)   88.100 itself (registration)    a secondary node at start-up
                             and prefixes under it (filing)  88.100.7 after an approval
    300:0.NA/88.100 (node)   88.101.3: refused, 403          outside its own prefix
    anyone                   88.100.T1: refused, 400/102     not a national prefix

A node cannot set its own credentials through the registry: the top node's operator
provisions them, and the node proves it holds them on every call.
"""

from __future__ import annotations

from registry.authority import administered_prefix
from registry.errors import InvalidValue, NotAuthorised, NotFound
from registry.identifier import ADMIN_SECRET_INDEX, PREFIX_HANDLE_PREFIX, Identity, Prefix
from registry.prefix_entry import PrefixEntry
from registry.record import HandleRecord
from registry.registrar import Registrar
from registry.value import utc_timestamp


class PrefixRegistry:
    """Registrations and filings at a top node.

    >>> registry = PrefixRegistry(registrar)                           # doctest: +SKIP
    >>> await registry.file(node_identity, Prefix("88.100.7"), {"owner": "..."})  # doctest: +SKIP
    (True, PrefixEntry(prefix=Prefix(text='88.100.7'), ...))
    """

    def __init__(self, registrar: Registrar) -> None:
        self.registrar = registrar

    async def file(
        self, identity: Identity, prefix: Prefix, body: object
    ) -> tuple[bool, PrefixEntry]:
        """Register or file ``prefix``; returns (created, the entry as stored). Fields
        left out of ``body`` keep their registered values.

        Only national prefixes (digit segments) are registered or filed: ``88.T1`` is a
        valid Handle prefix under ``88``, but not one this hierarchy allocates (102)."""
        Prefix.parse_national(prefix.text)
        self.registrar.check_held_prefix(prefix)
        own = administered_prefix(identity)
        if own is None or not own.contains(prefix):
            raise NotAuthorised(
                f"{identity.text} may only register or file prefixes under "
                f"{own.text if own else 'the prefix it administers'}, not {prefix.text}"
            )
        loaded = await self.registrar.store.load(prefix.record_handle)
        current = PrefixEntry.from_values(prefix, loaded.record.values) if loaded else None
        entry = PrefixEntry.from_input(prefix, body, current).signed(identity.text)
        secret = body.get("secret") if isinstance(body, dict) else None
        existed = loaded is not None
        values = entry.values(utc_timestamp(), self.registrar.limits.default_ttl)
        if secret is None:
            await self.registrar.update_values(
                prefix.record_handle, values, identity=identity, writer=identity
            )
            return not existed, entry
        if own == prefix:
            raise NotAuthorised(
                f"{identity.text} cannot set its own credentials; "
                "the top node's administrator provisions them"
            )
        if not isinstance(secret, str) or not 8 <= len(secret) <= 256:
            raise InvalidValue("'secret' must be a string of 8 to 256 characters")
        await self.registrar.grant_prefix(prefix, secret, values, writer=identity)
        return not existed, entry

    async def describe_self(self, entry: PrefixEntry) -> None:
        """Keep the top node's own entry current (its URL, owner) at start-up."""
        identity = Identity(ADMIN_SECRET_INDEX, entry.prefix.record_handle)
        values = entry.signed(identity.text).values(
            utc_timestamp(), self.registrar.limits.default_ttl
        )
        await self.registrar.update_values(entry.prefix.record_handle, values, identity=identity)

    async def get(self, prefix: Prefix) -> PrefixEntry:
        loaded = await self.registrar.store.load(prefix.record_handle)
        if loaded is None:
            raise NotFound(f"prefix {prefix.text} is not registered here")
        return PrefixEntry.from_values(prefix, loaded.record.values)

    async def list(self, page: int, page_size: int) -> tuple[int, list[PrefixEntry]]:
        """Every registered prefix, in byte order of the prefix, one page at a time."""
        store = self.registrar.store
        # Byte order across shards too: prefix records are few (merged reads them all
        # up to the page's end).
        total, names = await store.list_handles(
            Prefix(PREFIX_HANDLE_PREFIX), page, page_size, merged=True
        )
        prefixes = [Prefix(name.partition("/")[2]) for name in names]
        bodies = await store.public_bodies([p.record_handle for p in prefixes])
        return total, [
            PrefixEntry.from_values(p, HandleRecord.decode(body).values)
            for p, body in zip(prefixes, bodies, strict=True)
            if body is not None
        ]
