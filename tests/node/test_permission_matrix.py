"""The permission matrix: every kind of identity x every operation x own/foreign prefix.

Each case runs on a fresh in-process node for 88.100 (the ``client`` fixture, real Redis),
set up through the HTTP API by :func:`set_up`:

* the node administrator ``300:0.NA/88.100``;
* enterprise ``88.100.1`` (the *own* prefix) and enterprise ``88.100.2`` (the *foreign*
  one), each with its administrator ``300:0.NA/88.100.N``;
* users of 88.100.1, ``300:88.100.1/users/<name>``, granted the presets ``registrar``,
  ``write-values`` and ``read-only`` by HS_ADMIN values in ``0.NA/88.100.1``, and one user
  without grants;
* identities that hold a key at another index of a prefix record but no grant:
  ``301:0.NA/88.100.1`` and ``302:0.NA/88.100`` (only index 300 is a prefix's
  administrator; the escalation these rows guard against gave them everything);
* anonymous callers and a caller with a wrong secret;
* ``<P>/existing`` under both enterprise prefixes, with a URL at index 1 and a SERIAL at
  index 2 that is not publicly readable.

:data:`MATRIX` states every expected outcome; the rules are those of
``registry/permission.py``. A refused write must leave the store byte for byte as it was
and be the newest entry of the audit log, with its identity, method, target and status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from node.app import create_app
from tests.conftest import (
    ADMIN,
    ADMIN_AUTH,
    ADMIN_SECRET,
    StoreServer,
    basic,
    node_config,
    snapshot,
)


@pytest.fixture
async def client(redis: Redis, redis_server: StoreServer) -> AsyncIterator[httpx.AsyncClient]:
    """The secondary node 88.100, configured to hash new secrets with a small scrypt cost
    (``secret_hash_cost``) so that 180 fresh nodes, each with six identities, set up in
    seconds. Verification reads the cost from each stored hash, so authentication runs
    exactly as with the default cost."""
    app = create_app(node_config(redis_server.url, secret_hash_cost=4))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            yield http


# -- the identities -------------------------------------------------------------------

OWN, FOREIGN = "88.100.1", "88.100.2"
PREFIXES = {"own": OWN, "foreign": FOREIGN}


@dataclass(frozen=True)
class Who:
    username: str | None  # None: no credentials at all
    secret: str
    audited_as: str  # the identity the audit log records for this caller

    def headers(self) -> dict[str, str]:
        return {} if self.username is None else basic(self.username, self.secret)

    @property
    def handle(self) -> str:
        """The handle holding this identity's secret."""
        assert self.username is not None
        return self.username.partition(":")[2]

    @property
    def index(self) -> int:
        """The index of the value holding this identity's secret."""
        assert self.username is not None
        return int(self.username.partition(":")[0])


def _user(name: str) -> Who:
    identity = f"300:{OWN}/users/{name}"
    return Who(identity, f"{name}-secret", identity)


WHO: dict[str, Who] = {
    "node-admin": Who(ADMIN, ADMIN_SECRET, ADMIN),
    "ent-admin": Who(f"300:0.NA/{OWN}", "own-secret", f"300:0.NA/{OWN}"),
    "foreign-admin": Who(f"300:0.NA/{FOREIGN}", "foreign-secret", f"300:0.NA/{FOREIGN}"),
    "registrar": _user("registrar"),
    "writer": _user("writer"),
    "reader": _user("reader"),
    "no-grants": _user("nogrants"),
    "index-301": Who(f"301:0.NA/{OWN}", "sneaky-secret", f"301:0.NA/{OWN}"),
    "index-302": Who("302:0.NA/88.100", "sneakier-secret", "302:0.NA/88.100"),
    "anonymous": Who(None, "", "anonymous"),
    "wrong-secret": Who(ADMIN, "not-the-secret", f"claimed:{ADMIN}"),
}

# The users of 88.100.1 and the preset each is granted (at this index of 0.NA/88.100.1).
GRANTS = {
    "registrar": (201, "registrar"),
    "writer": (202, "write-values"),
    "reader": (203, "read-only"),
}


# -- the operations -------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # "{p}" is the prefix
    body: object = None
    success: int = 200

    @property
    def is_write(self) -> bool:
        return self.method != "GET"

    def url(self, prefix: str) -> str:
        return self.path.format(p=prefix)


URL_VALUE = {"index": 1, "type": "URL", "data": "https://a.example/1"}
KEY_VALUE = {"index": 305, "type": "HS_SECKEY", "data": "a-new-secret"}
SERIAL_VALUE = {"index": 2, "type": "SERIAL", "data": "S-1", "publicRead": False}

OPERATIONS: dict[str, Operation] = {
    "create": Operation("PUT", "/api/handles/{p}/new", [URL_VALUE], success=201),
    "add-value": Operation(
        "PUT", "/api/handles/{p}/existing?index=3", [{"index": 3, "type": "EMAIL", "data": "a@b"}]
    ),
    "modify-value": Operation(
        "PUT", "/api/handles/{p}/existing?index=1", [{**URL_VALUE, "data": "https://b.example"}]
    ),
    "remove-value": Operation("DELETE", "/api/handles/{p}/existing?index=1"),
    "delete-handle": Operation("DELETE", "/api/handles/{p}/existing"),
    "add-admin": Operation(
        "PUT",
        "/api/handles/{p}/existing?index=101",
        [
            {
                "index": 101,
                "type": "HS_ADMIN",
                "data": {
                    "format": "admin",
                    "value": {
                        "handle": f"{OWN}/users/nogrants",
                        "index": 300,
                        "permissions": "admin",
                    },
                },
            }
        ],
    ),
    "list": Operation("GET", "/api/handles?prefix={p}"),
    "read": Operation("GET", "/api/handles/{p}/existing?auth=true"),
    "create-prefix": Operation(
        "PUT", "/api/handles/0.NA/{p}.9", [{"index": 1, "type": "DESC", "data": "sub"}], success=201
    ),
    "delete-prefix": Operation("DELETE", "/api/handles/0.NA/{p}"),
    # Keys make identities: each of these is an admin operation.
    "add-key": Operation("PUT", "/api/handles/0.NA/{p}?index=305", [KEY_VALUE]),
    "admin-key": Operation(
        "PUT", "/api/handles/0.NA/{p}?index=300&overwrite=true", [{**KEY_VALUE, "index": 300}]
    ),
    "user-key": Operation("PUT", "/api/handles/{p}/existing?index=305", [KEY_VALUE]),
    "create-user": Operation("PUT", "/api/handles/{p}/users/new", [KEY_VALUE], success=201),
}

# -- the matrix -----------------------------------------------------------------------
#
#   ok   allowed: 2xx (201 for a creation), and the store changed
#   pub  a read answered publicly: 200 without the restricted SERIAL value
#   401  no or wrong credentials: 401, responseCode 402
#   403  authenticated but lacking the right: 403, responseCode 400
#
# "own" is 88.100.1, "foreign" is 88.100.2. The foreign enterprise's administrator
# administers 88.100.2, so on "foreign" it acts on its own prefix; on "own" it is the
# outsider. Prefix records: create-prefix is 0.NA/<P>.9, delete-prefix is 0.NA/<P> itself,
# both needing the derived-prefix right held strictly above <P>. Keys: add-key puts a
# secret at index 305 of 0.NA/<P>, admin-key replaces the administrator's at 300,
# user-key adds one to <P>/existing and create-user creates a handle holding one; each
# needs the admin rights (add or modify HS_ADMIN), whatever value rights the caller has.

COLUMNS = (
    "create add-value modify-value remove-value delete-handle add-admin list read "
    "create-prefix delete-prefix add-key admin-key user-key create-user"
).split()

MATRIX = """
identity      prefix  new add mod rm  del adm list read mkpx rmpx key k300 ukey user
node-admin    own     ok  ok  ok  ok  ok  ok  ok   ok   ok   ok   ok  ok   ok   ok
node-admin    foreign ok  ok  ok  ok  ok  ok  ok   ok   ok   ok   ok  ok   ok   ok
ent-admin     own     ok  ok  ok  ok  ok  ok  ok   ok   ok   403  ok  ok   ok   ok
ent-admin     foreign 403 403 403 403 403 403 403  pub  403  403  403 403  403  403
foreign-admin own     403 403 403 403 403 403 403  pub  403  403  403 403  403  403
foreign-admin foreign ok  ok  ok  ok  ok  ok  ok   ok   ok   403  ok  ok   ok   ok
registrar     own     ok  ok  ok  ok  ok  403 ok   ok   403  403  403 403  403  403
registrar     foreign 403 403 403 403 403 403 403  pub  403  403  403 403  403  403
writer        own     403 ok  ok  ok  403 403 ok   ok   403  403  403 403  403  403
writer        foreign 403 403 403 403 403 403 403  pub  403  403  403 403  403  403
reader        own     403 403 403 403 403 403 ok   ok   403  403  403 403  403  403
reader        foreign 403 403 403 403 403 403 403  pub  403  403  403 403  403  403
no-grants     own     403 403 403 403 403 403 403  pub  403  403  403 403  403  403
no-grants     foreign 403 403 403 403 403 403 403  pub  403  403  403 403  403  403
index-301     own     403 403 403 403 403 403 403  pub  403  403  403 403  403  403
index-301     foreign 403 403 403 403 403 403 403  pub  403  403  403 403  403  403
index-302     own     403 403 403 403 403 403 403  pub  403  403  403 403  403  403
index-302     foreign 403 403 403 403 403 403 403  pub  403  403  403 403  403  403
anonymous     own     401 401 401 401 401 401 401  pub  401  401  401 401  401  401
anonymous     foreign 401 401 401 401 401 401 401  pub  401  401  401 401  401  401
wrong-secret  own     401 401 401 401 401 401 401  401  401  401  401 401  401  401
wrong-secret  foreign 401 401 401 401 401 401 401  401  401  401  401 401  401  401
"""

# Cells where the node is known to disagree with the rules: (identity, prefix, operation).
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}


def _cases() -> Iterator[Any]:
    header, *rows = (line.split() for line in MATRIX.strip().splitlines())
    assert len(header) == 2 + len(COLUMNS)
    seen = set()
    for who, where, *cells in rows:
        assert who in WHO and where in PREFIXES and len(cells) == len(COLUMNS), who
        seen.add((who, where))
        for operation, expected in zip(COLUMNS, cells, strict=True):
            assert expected in {"ok", "pub", "401", "403"}, (who, where, operation)
            reason = KNOWN_BUGS.get((who, where, operation))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(
                who, where, operation, expected, id=f"{who}-{where}-{operation}", marks=marks
            )
    assert seen == {(w, p) for w in WHO for p in PREFIXES}  # every row, once


CASES = list(_cases())


# -- set-up ---------------------------------------------------------------------------


async def _put(client: httpx.AsyncClient, url: str, values: object, who: Who) -> None:
    response = await client.put(url, json=values, headers=who.headers())
    assert response.status_code in (200, 201), response.text


def _secret(index: int, secret: str) -> list[dict[str, object]]:
    return [{"index": index, "type": "HS_SECKEY", "data": secret}]


async def set_up(client: httpx.AsyncClient) -> None:
    """Enterprises, users, grants and the seed handles, through the API."""
    node_admin, ent_admin = WHO["node-admin"], WHO["ent-admin"]
    for key in ("ent-admin", "foreign-admin"):
        who = WHO[key]
        await _put(client, f"/api/handles/{who.handle}", _secret(300, who.secret), node_admin)
    for key in ("registrar", "writer", "reader", "no-grants"):
        who = WHO[key]
        await _put(client, f"/api/handles/{who.handle}", _secret(300, who.secret), ent_admin)
    # Keys at other indexes of the prefix records, put there by their administrators.
    for key, by in (("index-301", ent_admin), ("index-302", node_admin)):
        who = WHO[key]
        url = f"/api/handles/{who.handle}?index={who.index}"
        await _put(client, url, _secret(who.index, who.secret), by)
    for key, (index, preset) in GRANTS.items():
        grant = {
            "index": index,
            "type": "HS_ADMIN",
            "data": {
                "format": "admin",
                "value": {"handle": WHO[key].handle, "index": 300, "permissions": preset},
            },
        }
        await _put(client, f"/api/handles/0.NA/{OWN}?index={index}", [grant], ent_admin)
    for prefix in (OWN, FOREIGN):
        await _put(client, f"/api/handles/{prefix}/existing", [URL_VALUE, SERIAL_VALUE], node_admin)


async def newest_audit_entry(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.get("/api/audit?count=1", headers=ADMIN_AUTH)
    assert response.status_code == 200
    (entry,) = response.json()["entries"]
    return dict(entry)


# -- the test -------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "where", "operation", "expected"), CASES)
async def test_permission_matrix(
    client: httpx.AsyncClient, redis: Redis, who: str, where: str, operation: str, expected: str
) -> None:
    await set_up(client)
    caller, prefix, op = WHO[who], PREFIXES[where], OPERATIONS[operation]
    url = op.url(prefix)
    before = await snapshot(redis)
    audited_before = await newest_audit_entry(client)

    response = await client.request(op.method, url, json=op.body, headers=caller.headers())
    body = response.json()

    if expected in ("401", "403"):
        status, code = (401, 402) if expected == "401" else (403, 400)
        assert (response.status_code, body["responseCode"]) == (status, code), body
        assert await snapshot(redis) == before  # nothing written, byte for byte
        entry = await newest_audit_entry(client)
        if op.is_write:
            assert entry["id"] != audited_before["id"]
            assert {k: entry[k] for k in ("identity", "method", "target", "status", "code")} == {
                "identity": caller.audited_as,
                "method": op.method,
                "target": url,
                "status": str(status),
                "code": str(code),
            }
            assert entry["outcome"] == "refused"
        else:
            assert entry == audited_before  # reads are not audited
        return

    assert response.status_code == op.success and body["responseCode"] == 1, body
    if operation == "list":
        assert f"{prefix}/existing" in body["handles"]
    elif operation == "read":
        types = {v["type"] for v in body["values"]}
        assert "URL" in types and "HS_SECKEY" not in types
        assert ("SERIAL" in types) is (expected == "ok")
        if expected == "pub":  # exactly what anybody is answered
            public = await client.get(f"/api/handles/{prefix}/existing")
            assert response.content == public.content
    else:
        assert expected == "ok"
        assert await snapshot(redis) != before
        entry = await newest_audit_entry(client)
        assert (entry["identity"], entry["method"], entry["target"]) == (
            caller.audited_as,
            op.method,
            url,
        )
        assert (entry["status"], entry["outcome"]) == (str(op.success), "ok")
    if not op.is_write:
        assert await snapshot(redis) == before
