"""Registration: authenticating writers and applying Handle writes to the store.

The rules live in pure modules (:mod:`registry.record` says what a write does to a record,
:mod:`registry.authority` who may make it); this class runs them against the store and
retries a write whose record changed underneath it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from registry import authorization as authorization_scheme
from registry.authority import Authority, held_by_no_node
from registry.credential import (
    DEFAULT_COST,
    VerifiedSecrets,
    generate_secret,
    hash_secret,
    is_hashed,
    parse_basic,
    verify_secret,
)
from registry.delegation import Delegations
from registry.errors import (
    AuthenticationRequired,
    IdnodeError,
    InvalidHandle,
    InvalidValue,
    NotAuthorised,
    NotFound,
    NotResponsible,
    RequestError,
    StoreUnavailable,
)
from registry.identifier import ADMIN_SECRET_INDEX, Handle, Identity, Prefix, registration_problem
from registry.limits import Limits
from registry.permission import NEEDS, Grants, Operation, missing, operations
from registry.pubkey import PublicKey, challenge
from registry.record import (
    HandleRecord,
    check_named_handle,
    mint_stem,
    plan_remove,
    plan_replace,
    plan_update,
    sent_indexes,
    values_in_body,
)
from registry.session import SessionStore, changed_identities
from registry.store import HandleStore, Stored
from registry.template import Template, TemplateRef, declared
from registry.value import (
    PUBKEY_TYPE,
    SECRET_TYPE,
    BatchValues,
    DataFormat,
    HandleValue,
    admin_value,
    utc_timestamp,
)

_MAX_ATTEMPTS = 8

Plan = Callable[[Stored | None], HandleRecord | None]
# Finds the published template a reference names (raises TemplateViolation if none).
FindTemplate = Callable[[TemplateRef], Awaitable[Template]]


@dataclass(slots=True)  # not frozen: a batch makes thousands, and frozen init costs more
class ItemResult:
    """The outcome of one handle in a batch."""

    handle: str
    http_status: int
    response_code: int
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "handle": self.handle,
            "status": self.http_status,
            "responseCode": self.response_code,
        }
        if self.message:
            out["message"] = self.message
        return out


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: defaultdict[str, int] = defaultdict(int)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


class Registrar:
    """Authenticated writes to the handles a node holds.

    >>> registrar = Registrar(store, Authority.of(["88.100"]), Limits())  # doctest: +SKIP
    >>> who = await registrar.authenticate(basic_header)  # doctest: +SKIP
    >>> await registrar.put("88.100/a", [{"index": 1, "type": "URL", "data": "x"}],
    ...                     identity=who)                                # doctest: +SKIP
    True
    """

    def __init__(
        self,
        store: HandleStore,
        authority: Authority,
        limits: Limits,
        clock: Callable[[], str] = utc_timestamp,
        *,
        delegations: Delegations | None = None,
        parent_url: str | None = None,
        sessions: SessionStore | None = None,
        secret_cost: int = DEFAULT_COST,
        templates: FindTemplate | None = None,
    ) -> None:
        self.store = store
        # Identifiers declaring a metadata template are checked against it on every
        # write; without a finder, declaring one is refused (nothing could check it).
        self.templates = templates
        self.authority = authority
        self.limits = limits
        self.delegations = delegations
        self.parent_url = parent_url
        self.sessions = sessions
        self.secret_cost = secret_cost
        self._clock = clock
        self._verified = VerifiedSecrets()
        self._locks = KeyedLocks()

    # -- identities -------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Identity:
        """The identity whose credentials are in ``authorization`` (HTTP Basic, or a
        Bearer session token), or raise 401."""
        if not authorization:
            raise AuthenticationRequired(
                "This operation needs credentials: HTTP Basic with username "
                "<index>:<handle>, e.g. 300:0.NA/88.100, or a Bearer session token"
            )
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            found = await self.sessions.identity(token.strip()) if self.sessions else None
            if found is None:
                raise AuthenticationRequired("The session token is unknown, expired or revoked")
            return found
        if scheme.lower() == authorization_scheme.SCHEME:
            return await self.in_session(authorization_scheme.parse(authorization))
        return await self.check_basic(authorization)

    async def check_basic(self, authorization: str) -> Identity:
        """The identity of HTTP Basic credentials, or raise 401."""
        identity, secret = parse_basic(authorization)
        stored = await self._stored_secret(identity)
        if stored is None:
            raise AuthenticationRequired(f"Unknown identity {identity.text} at this node")
        if await self._secret_matches(identity, secret, stored):
            return identity
        previous = await self.sessions.previous_secret(identity) if self.sessions else None
        if previous is not None and await self._secret_matches(identity, secret, previous):
            return identity  # the old secret, during its rotation's grace period
        raise AuthenticationRequired(f"Wrong secret for identity {identity.text}")

    async def in_session(self, auth: authorization_scheme.HandleAuthorization) -> Identity:
        """The identity of the Handle session ``auth`` names, on any request.

        A session authenticated already needs its id only; an ``id`` sent along (Handle
        clients resend the whole header that authenticated them) must be its identity.
        A session not yet authenticated is authenticated now if ``auth`` answers its
        nonce, as Handle allows on any request.
        """
        if not auth.session_id:
            raise AuthenticationRequired(
                'Authorization: Handle needs a sessionId="..." (from POST /api/sessions)'
            )
        state = await self.sessions.state(auth.session_id) if self.sessions else None
        if state is None:
            raise AuthenticationRequired("The session is unknown, expired or ended")
        if state.identity is not None:
            if auth.id is not None and not _same_identity(auth.id, state.identity):
                raise AuthenticationRequired(
                    f"The session is authenticated as {state.identity.text}, not {auth.id[:80]}"
                )
            return state.identity
        if not auth.authenticating:
            raise AuthenticationRequired(
                "The session is not authenticated: answer its nonce with "
                "PUT /api/sessions/this first"
            )
        return await self.answer_nonce(auth.session_id, auth)

    async def answer_nonce(
        self, session_id: str, auth: authorization_scheme.HandleAuthorization
    ) -> Identity:
        """Authenticate the session with ``auth``'s answer to its current nonce, which
        is used up whatever the outcome; the identity, or raise 401."""
        answer = authorization_scheme.Answer.of(auth)
        state = await self.sessions.state(session_id) if self.sessions else None
        if state is None or self.sessions is None:
            raise AuthenticationRequired("The session is unknown, expired or ended")
        if not state.nonce or not await self.sessions.take_nonce(session_id, state.nonce):
            raise AuthenticationRequired("The session's nonce was used; GET it again")
        if answer.type == authorization_scheme.SECKEY:
            raise AuthenticationRequired(authorization_scheme.SECRET_KEY_DIGEST_REFUSED)
        key = await self.public_key(answer.identity)
        if key is None:
            raise AuthenticationRequired(f"{answer.identity.text} holds no public key here")
        nonce = authorization_scheme.nonce_bytes(state.nonce)
        if not answer.verifies(key, nonce):
            raise AuthenticationRequired(
                f"The signature does not verify for {answer.identity.text} with alg "
                f"{authorization_scheme.ALG_FOR_KEY[key.algorithm]} over nonce + cnonce"
            )
        return await self.bind_session(session_id, answer.identity)

    async def bind_session(self, session_id: str, identity: Identity) -> Identity:
        """Record that the session is ``identity``'s (after its credentials held)."""
        if self.sessions is None or not await self.sessions.authenticate(session_id, identity):
            raise AuthenticationRequired("The session is unknown, expired or ended")
        return identity

    async def _secret_matches(self, identity: Identity, secret: str, stored: str) -> bool:
        if self._verified.remembered(identity.key, secret, stored):
            return True
        if not await asyncio.to_thread(verify_secret, secret, stored):
            return False
        self._verified.remember(identity.key, secret, stored)
        return True

    async def login_with_signature(
        self, identity_text: str, nonce: str, signature: str
    ) -> Identity:
        """The identity that signed the challenge issued with ``nonce``, or raise 401.

        The nonce is consumed whatever the outcome, so a signature is good only once.
        """
        identity = Identity.parse(identity_text)
        issued_to = await self.sessions.take_challenge(nonce) if self.sessions else None
        if issued_to is None or Identity.parse(issued_to).key != identity.key:
            raise AuthenticationRequired(
                "The login challenge is unknown, used or expired; ask for a new one"
            )
        key = await self.public_key(identity)
        if key is None or not key.verifies(challenge(identity.text, nonce), signature):
            raise AuthenticationRequired(f"The signature does not verify for {identity.text}")
        return identity

    async def public_key(self, identity: Identity) -> PublicKey | None:
        """The HS_PUBKEY value at the identity's index, if it holds one here: text
        (``sm2:``/``ed25519:``) or Handle's ``key`` format (RSA, DSA)."""
        if not self.authority.holds(identity.handle):
            return None
        loaded = await self.store.load(identity.handle)
        value = loaded.record.value_at(identity.index) if loaded else None
        if value is None or value.type.upper() != PUBKEY_TYPE:
            return None
        try:
            if value.format is DataFormat.KEY and isinstance(value.value, dict):
                return PublicKey.from_key_data(value.value)  # Handle's RSA or DSA key
            if isinstance(value.value, str):
                return PublicKey.parse(value.value)
        except InvalidValue:
            return None
        return None

    async def rotate_secret(
        self, caller: Identity, identity: Identity, new_secret: str, grace: int
    ) -> None:
        """Give ``identity`` a new secret; the old one keeps working for ``grace`` seconds,
        and sessions stay open, so clients switch over without downtime.

        An identity may rotate its own secret; anyone else needs the right to modify the
        value that holds it.
        """
        current = await self._stored_secret(identity)
        if current is None:
            raise NotFound(f"{identity.text} is not a secret-key identity at this node")
        hashed = await asyncio.to_thread(hash_secret, new_secret, self.secret_cost)
        old = identity.handle
        now = self._clock()
        value = HandleValue(
            identity.index, SECRET_TYPE, DataFormat.STRING, hashed, self.limits.default_ttl, now
        )
        writer = None if caller.key == identity.key else caller
        await self.update_values(old, [value], identity=caller, writer=writer, keep_sessions=True)
        if self.sessions is not None:
            await self.sessions.keep_previous_secret(identity, current, grace)

    async def _stored_secret(self, identity: Identity) -> str | None:
        if not self.authority.holds(identity.handle):
            return None
        loaded = await self.store.load(identity.handle)
        value = loaded.record.value_at(identity.index) if loaded else None
        if value is None or not value.is_secret or not isinstance(value.value, str):
            return None
        return value.value

    async def ensure_prefix_admin(self, prefix: Prefix, secret: str | None) -> str | None:
        """Make sure ``300:0.NA/<prefix>`` exists with a secret; return it if generated.

        A given secret replaces a different stored one; with none given, a stored secret
        is kept and only a missing one is generated (and returned, to be shown once).
        """
        identity = Identity(ADMIN_SECRET_INDEX, prefix.record_handle)
        current = await self._stored_secret(identity)
        if current is not None and (
            secret is None or await asyncio.to_thread(verify_secret, secret, current)
        ):
            return None
        return await self.grant_prefix(prefix, secret)

    async def grant_prefix(
        self,
        prefix: Prefix,
        secret: str | None,
        extra: Sequence[HandleValue] = (),
        *,
        writer: Identity | None = None,
    ) -> str | None:
        """Write ``0.NA/<prefix>`` with an admin identity at index 300 holding ``secret``
        (hashed; generated and returned when None), plus ``extra`` values.

        ``writer`` is checked for the rights this takes; None means the node itself.
        Only a national prefix gets credentials here (102 otherwise): nothing else is ours.
        """
        Prefix.parse_national(prefix.text)
        identity = Identity(ADMIN_SECRET_INDEX, prefix.record_handle)
        generated = None if secret is not None else generate_secret()
        hashed = await asyncio.to_thread(hash_secret, secret or generated or "", self.secret_cost)
        now = self._clock()
        ttl = self.limits.default_ttl
        values = [
            admin_value(prefix.record_handle.text, ADMIN_SECRET_INDEX, now, ttl),
            HandleValue(ADMIN_SECRET_INDEX, SECRET_TYPE, DataFormat.STRING, hashed, ttl, now),
            *extra,
        ]
        await self.update_values(identity.handle, values, identity=identity, writer=writer)
        return generated

    async def update_values(
        self,
        handle: Handle,
        values: Sequence[HandleValue],
        *,
        identity: Identity,
        writer: Identity | None = None,
        keep_sessions: bool = False,
    ) -> None:
        """Set ``values`` on ``handle`` (created if absent), keeping its other values.

        ``identity`` names the administrator of a new record; ``writer`` is checked for
        the rights the change takes (None: the node's own bookkeeping, not checked).
        """
        now = self._clock()
        indexes = frozenset(v.index for v in values)
        await self._apply(
            handle,
            writer,
            keep_sessions=keep_sessions,
            plan=lambda before: plan_update(
                before.record if before else None,
                handle,
                list(values),
                indexes,
                overwrite=True,
                writer=identity,
                now=now,
                limits=self.limits,
            ),
        )

    # -- writes -----------------------------------------------------------------------

    def check_held(self, handle: Handle) -> None:
        """Raise NotResponsible (301) unless this node holds ``handle``."""
        self.check_held_prefix(handle.home_prefix, handle_text=handle.text)

    def check_held_prefix(self, prefix: Prefix, *, handle_text: str | None = None) -> None:
        """Raise NotResponsible (301) unless ``prefix`` lies under one this node holds."""
        if not self.authority.holds_prefix(prefix):
            if not prefix.national:
                raise held_by_no_node(prefix, handle=handle_text)
            held = ", ".join(p.text for p in self.authority.prefixes) or "no prefix"
            ask = f"; ask {self.parent_url}" if self.parent_url else ""
            raise NotResponsible(
                f"Prefix {prefix.text} doesn't live here; this node holds {held}{ask}",
                handle=handle_text,
                referral=self.parent_url,
            )

    async def check_here(self, handles: Sequence[Handle]) -> list[NotResponsible | None]:
        """For each held handle: None if it lives here, else the 301 referring to the
        node its prefix is delegated to."""
        if self.delegations is None:
            return [None] * len(handles)
        found = await self.delegations.find_many(handles)
        return [
            None
            if referral is None
            else NotResponsible(
                f"Prefix {referral.prefix.text} is delegated to the node at {referral.url}",
                handle=handle.text,
                referral=referral.url,
                referral_prefix=referral.prefix.text,
            )
            for handle, referral in zip(handles, found, strict=True)
        ]

    async def _check_write_here(self, identity: Identity, handle: Handle) -> None:
        self.check_write(identity, handle)
        (away,) = await self.check_here([handle])
        if away is not None:
            raise away

    def check_write(self, identity: Identity, handle: Handle) -> None:
        """Raise unless this node holds ``handle``. Whether ``identity`` may make the
        change is decided once it is planned (:meth:`authorise`)."""
        self.check_held(handle)

    async def grants(
        self, identity: Identity, handle: Handle, existing: HandleRecord | None
    ) -> Grants:
        """The HS_ADMIN values that can give ``identity`` rights on ``handle``.

        An administrator of a prefix above the handle needs none (no I/O); anyone else
        gets the records of the handle's prefix and those above it that this node holds.
        """
        home = handle.home_prefix
        own = identity.administered_prefix
        if own is not None and own.contains(home) and (own != home or not handle.is_prefix_record):
            return Grants()
        chain: list[Prefix] = []
        current: Prefix | None = home
        while current is not None and self.authority.holds_prefix(current):
            chain.append(current)
            current = current.parent
        loaded = await self.store.load_many([p.record_handle for p in chain])
        records = tuple((p, s.record) for p, s in zip(chain, loaded, strict=True) if s)
        return Grants(records, existing)

    def authorise(
        self,
        identity: Identity,
        handle: Handle,
        before: HandleRecord | None,
        after: HandleRecord | None,
        grants: Grants,
    ) -> None:
        """Raise NotAuthorised (403) unless ``identity`` holds every right the change
        from ``before`` to ``after`` takes."""
        lacking = missing(identity, handle, operations(before, after), grants)
        if lacking is not None:
            raise NotAuthorised(
                f"Identity {identity.text} may not {lacking.value} of {handle.text}: "
                f"that needs the {NEEDS[lacking].name} right",
                handle=handle.text,
            )

    async def check_rights(self, identity: Identity, handle: Handle, operation: Operation) -> None:
        """Raise NotAuthorised unless ``identity`` may do ``operation`` on ``handle``
        (for reads and listings, which change nothing)."""
        grants = await self.grants(identity, handle, None)
        lacking = missing(identity, handle, {operation}, grants)
        if lacking is not None:
            raise NotAuthorised(
                f"Identity {identity.text} may not {lacking.value} under "
                f"{handle.home_prefix.text}: that needs the {NEEDS[lacking].name} right",
            )

    async def parse_values(
        self, raw: object, handle_text: str, batch: BatchValues | None = None
    ) -> list[HandleValue]:
        """Values from a request body (``{"values": [...]}`` or a bare list), secrets
        hashed; ``batch`` holds the values already parsed for other records of a batch."""
        values = self._values_sent(raw, handle_text, batch)
        # Only keys need work: most records have none, and skip a coroutine per value.
        return await self._keys_checked(values) if any(v.is_key for v in values) else values

    def _values_sent(
        self, raw: object, handle_text: str, batch: BatchValues | None
    ) -> list[HandleValue]:
        items = values_in_body(raw, handle_text)
        if len(items) > self.limits.max_values_per_handle:
            raise InvalidValue(
                f"a handle holds at most {self.limits.max_values_per_handle} values",
                handle=handle_text,
            )
        parse = (batch or BatchValues(now=self._clock(), limits=self.limits)).parse
        try:
            return [parse(v) for v in items]
        except InvalidValue as exc:  # its class kept: MalformedValue answers 4, not 202
            exc.handle = handle_text
            raise

    async def _keys_checked(self, values: list[HandleValue]) -> list[HandleValue]:
        return [await self._hashed(v) for v in values]

    async def _hashed(self, value: HandleValue) -> HandleValue:
        if value.type.upper() == PUBKEY_TYPE:
            if value.format is DataFormat.KEY:  # Handle's RSA or DSA key: a login key too
                return value
            if not isinstance(value.value, str) or value.format is not DataFormat.STRING:
                raise InvalidValue(f"value at index {value.index}: an HS_PUBKEY is a string")
            try:
                PublicKey.parse(value.value)
            except InvalidValue as exc:
                raise InvalidValue(f"value at index {value.index}: {exc.message}") from None
            return value
        if not value.is_secret or value.format is not DataFormat.STRING:
            return value
        assert isinstance(value.value, str)
        if is_hashed(value.value):
            raise InvalidValue(
                f"value at index {value.index}: send the HS_SECKEY secret itself, not a hash"
            )
        hashed = await asyncio.to_thread(hash_secret, value.value, self.secret_cost)
        return value.with_data(hashed)

    async def put(
        self,
        handle_text: str,
        raw_body: object,
        *,
        identity: Identity,
        overwrite: bool = True,
        indexes: frozenset[int] = frozenset(),
        various: bool = False,
    ) -> tuple[bool, str]:
        """PUT a handle; returns (created, handle text as stored). ``various`` is
        ``index=various``: the indexes are those of the values sent."""
        handle = Handle.parse(handle_text)
        await self._check_write_here(identity, handle)
        values = await self.parse_values(raw_body, handle.text)
        if various:
            indexes = sent_indexes(values, handle.text)
        return await self._put_values(
            handle, values, identity=identity, overwrite=overwrite, indexes=indexes
        )

    async def _put_values(
        self,
        handle: Handle,
        values: list[HandleValue],
        *,
        identity: Identity,
        overwrite: bool,
        indexes: frozenset[int] = frozenset(),
    ) -> tuple[bool, str]:
        now = self._clock()

        def plan(before: Stored | None) -> HandleRecord:
            existing = before.record if before else None
            return self._planned(existing, handle, values, identity, overwrite, now, indexes)

        before, after = await self._apply(handle, identity, plan)
        assert after is not None
        return before is None, after.handle.text

    def _planned(
        self,
        existing: HandleRecord | None,
        handle: Handle,
        values: list[HandleValue],
        identity: Identity,
        overwrite: bool,
        now: str,
        indexes: frozenset[int] = frozenset(),
    ) -> HandleRecord:
        """What a PUT of ``values`` makes of ``existing``: only the values at ``indexes``
        change when there are some, else the record becomes ``values``. A new record's
        name must meet the registration policy (:func:`registration_problem`); an
        existing one, perhaps stored before the policy, is changed whatever its name."""
        if existing is None and (problem := registration_problem(handle)) is not None:
            raise InvalidHandle(problem, handle=handle.text)
        if indexes:
            return plan_update(
                existing,
                handle,
                values,
                indexes,
                overwrite=overwrite,
                writer=identity,
                now=now,
                limits=self.limits,
            )
        return plan_replace(
            existing,
            handle,
            values,
            overwrite=overwrite,
            writer=identity,
            now=now,
            limits=self.limits,
        )

    async def mint(self, spelled: str, raw_body: object, *, identity: Identity) -> str:
        """PUT ``<spelled>?mintNewSuffix=true``: create a handle named after the stem
        (:func:`registry.record.mint_stem`) followed by a fresh UUID. A body ``handle``
        is compared with ``spelled``, the URL's handle, as the reference servlet does
        before the suffix exists; the minted handle then takes the body's values."""
        stem = mint_stem(spelled)
        check_named_handle(raw_body, spelled)
        if isinstance(raw_body, dict) and "handle" in raw_body:
            raw_body = {name: v for name, v in raw_body.items() if name != "handle"}
        for _ in range(_MAX_ATTEMPTS):
            handle_text = f"{stem}{uuid.uuid4()}"
            created, stored = await self.put(
                handle_text, raw_body, identity=identity, overwrite=False
            )
            if created:
                return stored
        raise StoreUnavailable("could not mint a unique suffix")  # pragma: no cover

    async def delete(
        self, handle_text: str, *, identity: Identity, indexes: frozenset[int] = frozenset()
    ) -> str:
        """DELETE a whole handle, or the values at ``indexes``."""
        handle = Handle.parse(handle_text)
        await self._check_write_here(identity, handle)

        def plan(before: Stored | None) -> HandleRecord | None:
            existing = before.record if before else None
            if indexes:
                return plan_remove(existing, handle, indexes)
            if existing is None:
                plan_remove(None, handle, indexes)  # raises HandleNotFound
            return None

        before, _ = await self._apply(handle, identity, plan)
        assert before is not None
        return before.record.handle.text

    async def batch(
        self, items: Sequence[object], *, identity: Identity, overwrite: bool
    ) -> list[ItemResult]:
        """Register many handles: loaded and committed a slice of records at a time, one
        all-or-nothing script call per slice and prefix shard (:meth:`HandleStore.watched`),
        with per-item results. Items that raced with another writer are retried one by one.
        """
        if len(items) > self.limits.max_batch:
            raise InvalidValue(f"a batch holds at most {self.limits.max_batch} handles")
        results: list[ItemResult | None] = [None] * len(items)
        prepared: list[tuple[int, Handle, list[HandleValue]]] = []
        seen: set[str] = set()
        held: set[str] = set()  # prefixes already found held here
        now = self._clock()  # one timestamp for the batch
        sent = BatchValues(now=now, limits=self.limits)
        for position, item in enumerate(items):
            name = item.get("handle") if isinstance(item, dict) else None
            try:
                if not isinstance(name, str):
                    raise InvalidValue('each batch item needs a "handle" string')
                handle = Handle.parse(name)
                if handle.key in seen:
                    raise InvalidValue("the same handle appears twice in this batch")
                seen.add(handle.key)
                if handle.prefix not in held or handle.is_prefix_record:
                    self.check_write(identity, handle)
                    held.add(handle.prefix)
                assert isinstance(item, dict)
                values = self._values_sent(item.get("values"), handle.text, sent)
                if sent.holds_keys and any(v.is_key for v in values):  # else no coroutine
                    values = await self._keys_checked(values)
            except IdnodeError as exc:
                results[position] = _failed(name if isinstance(name, str) else "", exc)
                continue
            prepared.append((position, handle, values))
        away = await self.check_here([handle for _, handle, _ in prepared])
        for (position, handle, _), error in zip(prepared, away, strict=True):
            if error is not None:
                results[position] = _failed(handle.text, error)
        prepared = [item for item, error in zip(prepared, away, strict=True) if error is None]

        async with self.store.watched([handle for _, handle, _ in prepared]) as watched:
            changes: list[tuple[Stored | None, HandleRecord | None]] = []
            planned: list[tuple[int, Handle, list[HandleValue], Stored | None]] = []
            prefix_grants: dict[Prefix, Grants] = {}  # one load per prefix, not per handle
            # Whether a record may be created depends only on its home prefix, on whether
            # it is a prefix record and on whether it holds keys (operations, rights_of):
            # checked once each.
            creatable: set[tuple[Prefix, bool, bool]] = set()
            for (position, handle, values), before in zip(prepared, watched.loaded, strict=True):
                existing = before.record if before else None
                try:
                    after = self._planned(existing, handle, values, identity, overwrite, now)
                    home = handle.home_prefix
                    keys = sent.holds_keys and any(v.is_key for v in after.values)
                    kind = (home, handle.is_prefix_record, keys)
                    if existing is not None or kind not in creatable:
                        if home not in prefix_grants:
                            prefix_grants[home] = await self.grants(identity, handle, None)
                        grants = Grants(prefix_grants[home].prefix_records, existing)
                        self.authorise(identity, handle, existing, after, grants)
                        if existing is None:
                            creatable.add(kind)
                    if declared(after.values):  # else no coroutine per item
                        await self.check_templates(after)
                except IdnodeError as exc:
                    results[position] = _failed(handle.text, exc)
                    continue
                changes.append((before, after))
                planned.append((position, handle, values, before))
            committed = await watched.commit(changes)
        for (old, new), done in zip(changes, committed, strict=True):
            if done and old is not None:  # a new record ends no sessions
                await self._end_sessions(old.record, new)
        for (position, handle, values, before), done in zip(planned, committed, strict=True):
            if done:
                results[position] = _succeeded(handle.text, created=before is None)
                continue
            try:  # lost a race: redo this one alone
                created, text = await self._put_values(
                    handle, values, identity=identity, overwrite=overwrite
                )
                results[position] = _succeeded(text, created=created)
            except IdnodeError as exc:
                results[position] = _failed(handle.text, exc)
        return [r for r in results if r is not None]

    async def check_templates(self, record: HandleRecord | None) -> None:
        """Raise TemplateViolation unless ``record`` satisfies every metadata template
        it declares (a TEMPLATE value naming ``<prefix>/<name>[@version]``)."""
        if record is None:
            return
        try:
            for ref in declared(record.values):
                if self.templates is None:
                    raise InvalidValue(
                        f"this node checks no metadata templates; remove the TEMPLATE {ref.text}"
                    )
                template = await self.templates(ref)
                template.check(record.values, record.handle.text)
        except RequestError as exc:
            exc.handle = exc.handle or record.handle.text
            raise

    async def _end_sessions(self, before: HandleRecord | None, after: HandleRecord | None) -> None:
        """An identity whose key a write removed or replaced has no sessions left."""
        if self.sessions is None:
            return
        for identity in changed_identities(before, after):
            await self.sessions.revoke_all(identity)

    async def _apply(
        self, handle: Handle, writer: Identity | None, plan: Plan, *, keep_sessions: bool = False
    ) -> tuple[Stored | None, HandleRecord | None]:
        # Writers to one record in this process take turns (no wasted round trips);
        # the compare-and-set still guards against other processes and nodes, which
        # back off with jitter before planning again. The writer's rights are checked
        # against each plan, so a refused write never reaches the store.
        async with self._locks.hold(handle.key):
            for attempt in range(_MAX_ATTEMPTS):
                before = await self.store.load(handle)
                after = plan(before)
                if writer is not None:
                    existing = before.record if before else None
                    grants = await self.grants(writer, handle, existing)
                    self.authorise(writer, handle, existing, after, grants)
                await self.check_templates(after)
                if await self.store.commit(before, after):
                    if not keep_sessions:
                        await self._end_sessions(before.record if before else None, after)
                    return before, after
                await asyncio.sleep(random.uniform(0, 0.001 * 2**attempt))
        raise StoreUnavailable(
            f"Handle {handle.text} is being changed concurrently; try again", handle=handle.text
        )


def _same_identity(text: str, identity: Identity) -> bool:
    try:
        return Identity.parse(text).key == identity.key
    except InvalidHandle:
        return False


def _succeeded(handle_text: str, *, created: bool) -> ItemResult:
    return ItemResult(handle_text, 201 if created else 200, 1)


def _failed(handle_text: str, exc: IdnodeError) -> ItemResult:
    return ItemResult(handle_text, exc.http_status, exc.response_code, exc.message)
