"""The OpenAPI description of request and response bodies, and which role serves what.

Handlers read their bodies themselves (:func:`node.request_body.read_json`) and answer
pre-encoded bytes, so FastAPI sees no body models; the schema learns the bodies from
here instead, as JSON-schema dicts merged into the generated document by
:func:`describe`. Nothing here runs per request: the resolver's fast path and the
handlers are untouched.

The schemas say what a client may rely on (required members, their types) and leave
the rest open (``additionalProperties`` allowed): nodes of one hierarchy may add members.
Request bodies whose unknown members the node refuses say so.

:data:`CONTRACTS` is the table of every operation: its ``operationId`` (what generated
clients name the call), body and answers. HEAD is documented from its GET
(:func:`_head_of`), and :class:`Names` gives identifier parameters the patterns of what
the node answers for. ``tests/node/test_openapi.py`` fails for an operation of any role
left undescribed; ``tests/server/test_schemathesis_cli.py`` for a schema that promises
what the node refuses.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from registry.hierarchy import Traits

Schema = dict[str, Any]
# registry.template.check_name
TEMPLATE_NAME = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# registry.template.TemplateRef: <prefix>/<name>[@version]
TEMPLATE_REF = "^[0-9]+(\\.[0-9]+)*/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(@[1-9][0-9]{0,8})?$"

ERROR: Schema = {
    "type": "object",
    "required": ["responseCode"],
    "properties": {
        "responseCode": {"type": "integer", "description": "Handle response code"},
        "handle": {"type": "string"},
        "message": {"type": "string"},
    },
    "example": {"responseCode": 100, "handle": "88.100/x", "message": "Handle not found"},
}
VALUE: Schema = {
    "type": "object",
    "required": ["index", "type", "data"],
    "properties": {
        "index": {"type": "integer", "minimum": 1},
        "type": {"type": "string", "minLength": 1},
        "data": {
            "description": '{"format", "value"}, or a bare string (format "string")',
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "required": ["value"],
                    "properties": {"format": {"type": "string"}, "value": {}},
                },
            ],
        },
        "ttl": {"type": ["integer", "null"], "description": "seconds; null: the default"},
        "timestamp": {"description": "ignored: the node stamps what it stores"},
    },
    "example": {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://x"}},
}
HANDLE_VALUES: Schema = {
    "type": "object",
    "required": ["values"],
    "properties": {
        "handle": {
            "type": ["string", "null"],
            "description": "the URL's handle, if given; null: not given",
        },
        "values": {"type": "array", "items": {"$ref": "#/components/schemas/Value"}},
    },
    "example": {
        "values": [{"index": 1, "type": "URL", "data": {"format": "string", "value": "https://x"}}]
    },
}
VALUES_BODY: Schema = {
    "description": '{"values": [...]}, a bare list of values, or one value object',
    "anyOf": [
        {"$ref": "#/components/schemas/HandleValues"},
        {"type": "array", "items": {"$ref": "#/components/schemas/Value"}},
        {"$ref": "#/components/schemas/Value"},
    ],
    "example": HANDLE_VALUES["example"],
}
RESOLUTION: Schema = {
    "type": "object",
    "required": ["responseCode", "handle", "values"],
    "properties": {
        "responseCode": {"type": "integer", "enum": [1]},
        "handle": {"type": "string"},
        "values": {"type": "array", "items": {"type": "object"}},
    },
    "example": {
        "responseCode": 1,
        "handle": "88.100/x",
        "values": [
            {
                "index": 1,
                "type": "URL",
                "data": {"format": "string", "value": "https://x"},
                "ttl": 86400,
                "timestamp": "2025-01-01T00:00:00Z",
            }
        ],
    },
}
WRITTEN: Schema = {
    "type": "object",
    "required": ["responseCode", "handle"],
    "properties": {"responseCode": {"type": "integer"}, "handle": {"type": "string"}},
    "example": {"responseCode": 1, "handle": "88.100/x"},
}
BATCH_ITEM: Schema = {
    "type": "object",
    "required": ["handle", "values"],
    "properties": {
        "handle": {"type": "string"},
        "values": {"type": "array", "items": {"$ref": "#/components/schemas/Value"}},
    },
}
# An item that is not a BatchItem fails alone, reported in its result (the batch is 200),
# so the items are described, not constrained.
_BATCH_ITEMS: Schema = {"type": "array", "items": {"description": "a BatchItem"}}
BATCH_HANDLES: Schema = {
    "type": "object",
    "required": ["handles"],
    "properties": {"handles": _BATCH_ITEMS},
    "example": {
        "handles": [
            {"handle": "88.100/a", "values": [{"index": 1, "type": "URL", "data": "https://a"}]}
        ]
    },
}
BATCH_BODY: Schema = {
    "description": '{"handles": [BatchItem, ...]}, or the bare list',
    "anyOf": [{"$ref": "#/components/schemas/BatchHandles"}, _BATCH_ITEMS],
    "example": BATCH_HANDLES["example"],
}
BATCH_ANSWER: Schema = {
    "type": "object",
    "required": ["responseCode", "created", "updated", "failed", "results"],
    "properties": {
        "responseCode": {"type": "integer"},
        "created": {"type": "integer"},
        "updated": {"type": "integer"},
        "failed": {"type": "integer"},
        "results": {"type": "array", "items": {"type": "object"}},
    },
    "example": {
        "responseCode": 1,
        "created": 1,
        "updated": 0,
        "failed": 0,
        "results": [{"handle": "88.100/a", "status": 201, "responseCode": 1}],
    },
}
SESSION: Schema = {
    "type": "object",
    "required": ["sessionId", "nonce", "authenticated"],
    "properties": {
        "sessionId": {"type": "string"},
        "nonce": {"type": "string"},
        "authenticated": {"type": "boolean"},
        "expiresIn": {"type": "integer"},
        "token": {"type": "string"},
        "identity": {"type": "string"},
    },
    "example": {"sessionId": "s1", "nonce": "bm9uY2U=", "authenticated": False, "expiresIn": 60},
}
APPLICATION_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,  # unknown members are refused (400/202)
    "required": ["name", "creditCode", "industry", "contact"],
    "properties": {
        "name": {"type": "string"},
        "creditCode": {"type": "string", "description": "统一社会信用代码 (GB 32100-2015)"},
        "industry": {"type": "string"},
        "contact": {"type": "string"},
        "nodeUrl": {"type": "string", "description": "where the enterprise runs its node"},
    },
    "example": {
        "name": "Example Co",
        "creditCode": "91350100M000100Y43",
        "industry": "manufacturing",
        "contact": "ops@example.com",
    },
}
APPLICATION: Schema = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "responseCode": {"type": "integer"},
        "id": {"type": "string"},
        "name": {"type": "string"},
        "creditCode": {"type": "string"},
        "industry": {"type": "string"},
        "contact": {"type": "string"},
        "nodeUrl": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["pending", "approved", "rejected", "expired"]},
        "submitted": {"type": ["string", "null"]},
        "prefix": {"type": ["string", "null"]},
        "decided": {"type": ["string", "null"]},
        "reason": {"type": ["string", "null"]},
    },
    "example": {
        "responseCode": 1,
        "id": "a1b2c3",
        "name": "Example Co",
        "creditCode": "91350100M000100Y43",
        "status": "pending",
        "prefix": None,
    },
}
_STRING: Schema = {"type": "string"}
_INTEGER: Schema = {"type": "integer"}
_BOOLEAN: Schema = {"type": "boolean"}
_NUMBER: Schema = {"type": ["number", "null"]}
_NULL: Schema = {"type": "null"}
_TEXT_OR_NULL: Schema = {"type": ["string", "null"]}
# A text member of a login (node.sessions._text_field), and an identity in one.
_FIELD: Schema = {"type": "string", "minLength": 1, "maxLength": 1024}
_IDENTITY: Schema = {**_FIELD, "pattern": r"^[1-9][0-9]{0,8}:[^/]+/.+$"}
_OBJECTS: Schema = {"type": "array", "items": {"type": "object"}}
_STRINGS: Schema = {"type": "array", "items": _STRING}


def _answer(required: list[str], example: dict[str, Any], **properties: Schema) -> Schema:
    """A successful answer: ``responseCode`` 1 and ``properties`` (others allowed)."""
    return {
        "type": "object",
        "required": ["responseCode", *required],
        "properties": {"responseCode": {"type": "integer"}, **properties},
        "example": {"responseCode": 1, **example},
    }


def _body(required: list[str], example: dict[str, Any], **properties: Schema) -> Schema:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "example": example,
    }


def _page(items: str, schema: Schema, example: list[Any]) -> Schema:
    """A page of a listing: ``totalCount``, ``page``, ``pageSize`` and the items."""
    return _answer(
        ["totalCount", items],
        {"totalCount": len(example), "page": 0, "pageSize": 1000, items: example},
        totalCount=_INTEGER,
        page=_INTEGER,
        pageSize=_INTEGER,
        **{items: {"type": "array", "items": schema}},
    )


# null: not given (registry.template reads a null member as a missing one)
_COUNT: Schema = {"type": ["integer", "null"], "minimum": 0, "maximum": 2**31 - 1}
# A real calendar date YYYY-MM-DD (registry.template.parse_date), days 29-31 left out.
_DATE: Schema = {
    "type": ["string", "null"],
    "pattern": "^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$",
}
_TEMPLATE_ITEM: Schema = {
    "type": "object",
    "required": ["name", "index", "type"],
    "properties": {
        "name": {"type": "string", "pattern": TEMPLATE_NAME},
        "index": {"type": "integer", "minimum": 2000, "maximum": 2**31 - 1},
        "type": {"type": "string", "enum": ["string", "number", "date", "url", "handle"]},
        "required": _BOOLEAN,
        "enabled": _BOOLEAN,
        "minLength": _COUNT,
        "maxLength": _COUNT,
        "minimum": {"type": ["number", "string", "null"]},
        "maximum": {"type": ["number", "string", "null"]},
        "description": {"type": "string", "maxLength": 1000},
    },
    # minimum and maximum: numbers for a number item, dates for a date item, and
    # nothing else (registry.template.Item.from_json). Not stated: minimum <= maximum.
    "anyOf": [
        {"properties": {"type": {"const": "number"}, "minimum": _NUMBER, "maximum": _NUMBER}},
        {"properties": {"type": {"const": "date"}, "minimum": _DATE, "maximum": _DATE}},
        {
            "properties": {
                "type": {"enum": ["string", "url", "handle"]},
                "minimum": _NULL,
                "maximum": _NULL,
            }
        },
    ],
    "example": {"name": "batch", "index": 2001, "type": "string", "required": True},
}
_TEMPLATE_EXAMPLE = {
    "template": "88.100/battery-pack",
    "prefix": "88.100",
    "name": "battery-pack",
    "version": 1,
    "state": "published",
    "description": "A battery pack",
    "updated": "2026-01-05T00:00:00Z",
    "items": [{"name": "batch", "index": 2001, "type": "string", "required": True}],
}
TEMPLATE: Schema = _answer(
    ["template", "version", "state", "items"],
    _TEMPLATE_EXAMPLE,
    template=_STRING,
    prefix=_STRING,
    name=_STRING,
    version=_INTEGER,
    state={"type": "string", "enum": ["draft", "published"]},
    description=_STRING,
    updated=_STRING,
    items={"type": "array", "items": {"$ref": "#/components/schemas/TemplateItem"}},
)
PREFIX_ENTRY: Schema = {
    "type": "object",
    "required": ["prefix", "nodeUrl", "kind", "status"],
    "properties": {
        "responseCode": _INTEGER,
        "prefix": _STRING,
        "nodeUrl": _STRING,
        "kind": _STRING,
        "industry": _STRING,
        "owner": _STRING,
        "status": _STRING,
        "creditCode": _STRING,
        "contact": _STRING,
        "filedBy": _STRING,
    },
    "example": {
        "responseCode": 1,
        "prefix": "88.100",
        "nodeUrl": "https://snms.example.com",
        "kind": "secondary",
        "industry": "manufacturing",
        "owner": "Example Co",
        "status": "active",
        "creditCode": "",
        "contact": "",
        "filedBy": "300:0.NA/88.100",
    },
}
_STRING_FIELD: Schema = {"type": "string", "maxLength": 512}
PREFIX_FILING: Schema = {
    **_body(
        [],
        {"nodeUrl": "https://snms.example.com", "kind": "secondary", "industry": "manufacturing"},
        prefix={"type": "string", "description": "the URL's prefix, if given"},
        nodeUrl=_STRING_FIELD,
        kind={"type": "string", "enum": ["", "top", "secondary", "enterprise"]},
        industry=_STRING_FIELD,
        owner=_STRING_FIELD,
        status={"type": "string", "enum": ["", "active", "suspended"]},
        creditCode=_STRING_FIELD,
        contact=_STRING_FIELD,
        secret={"type": ["string", "null"], "minLength": 8, "maxLength": 256},
    ),
    "additionalProperties": False,  # unknown members are refused (400/202)
}
_SEARCH_NODE: Schema = {
    "type": "object",
    "required": ["node", "status"],
    "properties": {
        "node": _STRING,
        "prefixes": _STRINGS,
        "status": _STRING,
        "found": _INTEGER,
        "message": _STRING,
    },
}
# Bodies and answers the handlers read and write by hand, by name.
COMPONENTS: dict[str, Schema] = {
    "Error": ERROR,
    "Value": VALUE,
    "HandleValues": HANDLE_VALUES,
    "Values": VALUES_BODY,
    "Resolution": RESOLUTION,
    "Written": WRITTEN,
    "HandleList": _answer(
        ["prefix", "totalCount", "handles"],
        {"prefix": "88.100", "totalCount": 1, "page": 0, "pageSize": 10, "handles": ["88.100/x"]},
        prefix=_STRING,
        totalCount=_INTEGER,
        page=_INTEGER,
        pageSize=_INTEGER,
        handles=_STRINGS,
    ),
    "HandleNames": {**_STRINGS, "example": ["88.100/x"]},
    "BatchItem": BATCH_ITEM,
    "BatchHandles": BATCH_HANDLES,
    "Batch": BATCH_BODY,
    "BatchAnswer": BATCH_ANSWER,
    "Trace": _answer(
        ["handle", "depth", "complete", "tree"],
        {
            "handle": "88.100.1/car",
            "depth": 5,
            "relations": ["COMPONENT"],
            "complete": True,
            "resolved": 1,
            "unreachable": [],
            "notFollowed": [],
            "tree": {"handle": "88.100.1/car", "status": "found", "values": [], "links": []},
        },
        handle=_STRING,
        depth=_INTEGER,
        relations=_STRINGS,
        complete=_BOOLEAN,
        resolved=_INTEGER,
        unreachable=_STRINGS,
        notFollowed=_STRINGS,
        tree={"type": "object", "required": ["handle", "status"]},
    ),
    "Changes": _answer(
        ["epoch", "next"],
        {"epoch": "e1", "handles": ["88.100/x"], "next": "1-0", "more": False, "gap": False},
        epoch=_STRING,
        handles=_STRINGS,
        next=_STRING,
        more=_BOOLEAN,
        gap=_BOOLEAN,
    ),
    "Session": SESSION,
    "SessionLogin": _body(
        ["identity", "nonce", "signature"],
        {"identity": "300:88.100.1/key", "nonce": "bm9uY2U=", "signature": "c2lnbmF0dXJl"},
        identity=_IDENTITY,
        nonce=_FIELD,
        signature=_FIELD,
    ),
    "SessionAnswer": _body(
        [],
        {
            "sessionId": "s1",
            "id": "300%3A88.100.1/key",
            "type": "HS_PUBKEY",
            "alg": "SM3",
            "cnonce": "Y25vbmNl",
            "signature": "c2lnbmF0dXJl",
        },
        sessionId=_STRING,
        id=_STRING,
        type=_STRING,
        alg=_STRING,
        cnonce=_STRING,
        signature=_STRING,
    ),
    "ChallengeRequest": _body(["identity"], {"identity": "300:88.100.1/key"}, identity=_IDENTITY),
    "Challenge": _answer(
        ["nonce", "expiresIn", "sign"],
        {"nonce": "bm9uY2U=", "expiresIn": 60, "sign": "idnode-login\n300:88.100.1/key\nbm9uY2U="},
        nonce=_STRING,
        expiresIn=_INTEGER,
        sign=_STRING,
    ),
    "Revoked": _answer(["revoked"], {"revoked": 1}, revoked=_INTEGER),
    "SecretRotation": _body(
        ["secret"],
        {"secret": "a new secret", "graceSeconds": 3600},
        secret={"type": "string", "minLength": 8, "maxLength": 256},
        graceSeconds={
            "type": "integer",
            "minimum": 0,
            "maximum": 7 * 86400,
            "description": "written without a fraction: 60, not 60.0 (refused)",
        },
    ),
    "SecretRotated": _answer(
        ["identity", "graceSeconds"],
        {"identity": "300:0.NA/88.100", "graceSeconds": 3600},
        identity=_STRING,
        graceSeconds=_INTEGER,
    ),
    "AuditLog": _answer(
        ["entries"],
        {
            "entries": [
                {
                    "id": "1-0",
                    "time": "2026-01-05T00:00:00Z",
                    "method": "PUT",
                    "target": "/api/handles/88.100/x",
                    "status": 201,
                }
            ]
        },
        entries=_OBJECTS,
    ),
    "TemplateItem": _TEMPLATE_ITEM,
    "TemplateDraft": _body(
        ["items"],
        {"description": "A battery pack", "items": [_TEMPLATE_ITEM["example"]]},
        description=_STRING,
        items={"type": "array", "items": {"$ref": "#/components/schemas/TemplateItem"}},
    ),
    "Template": TEMPLATE,
    "TemplateList": _answer(
        ["templates"],
        {
            "templates": [
                {
                    "template": "88.100/battery-pack",
                    "latest": 1,
                    "draft": False,
                    "description": "A battery pack",
                    "items": 1,
                }
            ]
        },
        templates=_OBJECTS,
    ),
    "TemplateVersions": _answer(
        ["versions"],
        {"versions": [_TEMPLATE_EXAMPLE]},
        versions={
            "type": "array",
            "items": {**TEMPLATE, "required": TEMPLATE["required"][1:]},  # no responseCode
        },
    ),
    "TemplateDropped": _answer(["template"], {"template": "88.100/battery-pack"}, template=_STRING),
    "QueryAnswer": _answer(
        ["prefix", "totalCount", "handles"],
        {
            "prefix": "88.100",
            "template": None,
            "totalCount": 1,
            "page": 0,
            "pageSize": 100,
            "handles": ["88.100/x"],
        },
        prefix=_STRING,
        template=_TEXT_OR_NULL,
        totalCount=_INTEGER,
        page=_INTEGER,
        pageSize=_INTEGER,
        handles=_STRINGS,
    ),
    "SearchAnswer": _answer(
        ["complete", "handles", "nodes"],
        {
            "complete": True,
            "truncated": False,
            "handles": ["88.100/x"],
            "nodes": [
                {
                    "node": "http://127.0.0.1:8001",
                    "prefixes": ["88.100"],
                    "status": "ok",
                    "found": 1,
                }
            ],
            "unanswered": [],
        },
        complete=_BOOLEAN,
        truncated=_BOOLEAN,
        handles=_STRINGS,
        nodes={"type": "array", "items": _SEARCH_NODE},
        unanswered=_STRINGS,
    ),
    "PrefixEntry": PREFIX_ENTRY,
    "PrefixFiling": PREFIX_FILING,
    "PrefixList": _page(
        "prefixes", {"$ref": "#/components/schemas/PrefixEntry"}, [PREFIX_ENTRY["example"]]
    ),
    "Kpis": _answer(
        ["day"],
        {"node": "secondary-88.100", "role": "secondary", "day": "2026-01-05", "resolutions": 0},
        node=_STRING,
        role=_STRING,
        prefix=_TEXT_OR_NULL,
        url=_STRING,
        day=_STRING,
    ),
    "NationalKpis": _answer(
        ["day", "top", "secondaries", "unreachable", "totals"],
        {"day": "2026-01-05", "top": {}, "secondaries": [], "unreachable": [], "totals": {}},
        day=_STRING,
        top={"type": "object"},
        secondaries=_OBJECTS,
        unreachable=_OBJECTS,
        totals={"type": "object"},
        secondaryNodes=_INTEGER,
        enterprisePrefixes=_INTEGER,
    ),
    "HierarchyStatus": _answer(
        ["day", "deadline", "top", "nodes"],
        {
            "day": "2026-01-05",
            "deadline": 1.0,
            "top": {"prefix": "88", "owner": "CAICT"},
            "nodes": [
                {
                    "prefix": "88.100",
                    "kind": "secondary",
                    "parent": "88",
                    "depth": 1,
                    "nodeUrl": "http://127.0.0.1:8001",
                    "ownNode": True,
                    "health": "up",
                    "detail": "ready in 3 ms",
                    "kpis": {"day": "2026-01-05", "resolutions": 0},
                }
            ],
            "plan": None,
        },
        day=_STRING,
        deadline={"type": "number"},
        top={"type": "object"},
        nodes=_OBJECTS,
        plan={"type": ["object", "null"]},
    ),
    "Plans": _answer(
        ["plans"],
        {"plans": [{"name": "wuhan", "title": "武汉", "english": "Wuhan"}]},
        plans=_OBJECTS,
    ),
    "PlanCheck": _answer(
        ["plan", "passed", "rows"],
        {"plan": "wuhan", "title": "武汉", "scale": 1.0, "passed": True, "rows": []},
        plan=_STRING,
        title=_STRING,
        english=_STRING,
        scale={"type": "number"},
        passed=_BOOLEAN,
        rows=_OBJECTS,
    ),
    "Health": _body(
        ["status"],
        {"status": "ok", "role": "secondary", "prefix": "88.100"},
        status=_STRING,
        role=_STRING,
        prefix=_TEXT_OR_NULL,
    ),
    "ApplicationForm": APPLICATION_BODY,
    "Application": APPLICATION,
    "ApplicationList": _page(
        "applications", {"$ref": "#/components/schemas/Application"}, [APPLICATION["example"]]
    ),
    "Approval": {
        "allOf": [
            {"$ref": "#/components/schemas/Application"},
            {
                "type": "object",
                "required": ["identity", "secret", "filed"],
                "properties": {"identity": _STRING, "secret": _STRING, "filed": _BOOLEAN},
            },
        ],
        "example": {
            **APPLICATION["example"],
            "status": "approved",
            "prefix": "88.100.1",
            "identity": "300:0.NA/88.100.1",
            "secret": "a generated secret",
            "filed": True,
        },
    },
    "ApprovalForm": _body(
        [],
        {"secret": "the enterprise secret"},
        secret={"type": "string", "minLength": 8, "maxLength": 256},
    ),
    "Rejection": _body(
        ["reason"], {"reason": "the credit code is not this company's"}, reason=_STRING
    ),
}
JAVASCRIPT = "application/javascript"
HTML = "text/html"
PROMETHEUS = "text/plain"


@dataclass(frozen=True, slots=True)
class Contract:
    """What one operation takes and answers, as the schema states it.

    ``body``: the request body's component (None: the operation takes none);
    ``answers``: each success status's component, or a media type (``text/html``) for
    an answer that is not JSON; ``operation_id``: the name generated clients give the
    call, unique per role.
    """

    operation_id: str
    body: str | None = None
    answers: dict[str, str] = field(default_factory=dict)
    body_required: bool = True


# (method, path) -> the operation's contract. Every operation of every role is here
# (tests/node/test_openapi.py walks each role's schema against it).
CONTRACTS: dict[tuple[str, str], Contract] = {
    ("get", "/api/handles/{handle}"): Contract("resolve_handle", None, {"200": "Resolution"}),
    ("head", "/api/handles/{handle}"): Contract("check_handle"),
    ("put", "/api/handles/{handle}"): Contract(
        "put_handle", "Values", {"200": "Written", "201": "Written"}
    ),
    ("delete", "/api/handles/{handle}"): Contract("delete_handle", None, {"200": "Written"}),
    ("get", "/api/handles"): Contract("list_handles", None, {"200": "HandleList"}),
    ("head", "/api/handles"): Contract("count_handles"),
    ("get", "/hrls/handles"): Contract("reverse_lookup", None, {"200": "HandleNames"}),
    ("post", "/api/batch/handles"): Contract("register_batch", "Batch", {"200": "BatchAnswer"}),
    ("get", "/api/trace/{handle}"): Contract("trace_handle", None, {"200": "Trace"}),
    ("get", "/api/changes"): Contract("list_changes", None, {"200": "Changes"}),
    ("post", "/api/sessions"): Contract(
        "open_session", "SessionLogin", {"201": "Session"}, body_required=False
    ),
    ("delete", "/api/sessions"): Contract("close_sessions", None, {"200": "Revoked"}),
    ("get", "/api/sessions/this"): Contract("show_session", None, {"200": "Session"}),
    ("put", "/api/sessions/this"): Contract(
        "authenticate_session", "SessionAnswer", {"200": "Session"}, body_required=False
    ),
    ("delete", "/api/sessions/this"): Contract("end_session"),
    ("post", "/api/sessions/challenge"): Contract(
        "new_challenge", "ChallengeRequest", {"200": "Challenge"}
    ),
    ("put", "/api/secrets/{identity}"): Contract(
        "rotate_secret", "SecretRotation", {"200": "SecretRotated"}
    ),
    ("get", "/api/audit"): Contract("read_audit", None, {"200": "AuditLog"}),
    ("get", "/api/templates"): Contract("list_templates", None, {"200": "TemplateList"}),
    ("get", "/api/templates/{prefix}/{name}"): Contract("get_template", None, {"200": "Template"}),
    ("put", "/api/templates/{prefix}/{name}"): Contract(
        "put_template_draft", "TemplateDraft", {"200": "Template", "201": "Template"}
    ),
    ("get", "/api/templates/{prefix}/{name}/versions"): Contract(
        "list_template_versions", None, {"200": "TemplateVersions"}
    ),
    ("post", "/api/templates/{prefix}/{name}/publish"): Contract(
        "publish_template", None, {"200": "Template"}
    ),
    ("delete", "/api/templates/{prefix}/{name}/draft"): Contract(
        "drop_template_draft", None, {"200": "TemplateDropped"}
    ),
    ("get", "/api/query"): Contract("query_handles", None, {"200": "QueryAnswer"}),
    ("get", "/api/search"): Contract("search_handles", None, {"200": "SearchAnswer"}),
    ("get", "/api/prefixes"): Contract("list_prefixes", None, {"200": "PrefixList"}),
    ("get", "/api/prefixes/{prefix}"): Contract("get_prefix", None, {"200": "PrefixEntry"}),
    ("put", "/api/prefixes/{prefix}"): Contract(
        "file_prefix", "PrefixFiling", {"200": "PrefixEntry", "201": "PrefixEntry"}
    ),
    ("get", "/status"): Contract("status_page", None, {"200": HTML}),
    ("get", "/api/kpis"): Contract("get_kpis", None, {"200": "Kpis"}),
    ("get", "/api/kpis/national"): Contract("get_national_kpis", None, {"200": "NationalKpis"}),
    ("get", "/api/status"): Contract("hierarchy_status", None, {"200": "HierarchyStatus"}),
    ("get", "/api/plans"): Contract("list_plans", None, {"200": "Plans"}),
    ("get", "/api/plans/{name}"): Contract("check_plan", None, {"200": "PlanCheck"}),
    ("get", "/healthz"): Contract("health", None, {"200": "Health"}),
    ("get", "/readyz"): Contract("readiness", None, {"200": "Health"}),
    ("get", "/metrics"): Contract("metrics", None, {"200": PROMETHEUS}),
    ("post", "/api/enterprises"): Contract(
        "apply_for_prefix", "ApplicationForm", {"201": "Application"}
    ),
    ("get", "/api/enterprises"): Contract("list_applications", None, {"200": "ApplicationList"}),
    ("get", "/api/enterprises/{application_id}"): Contract(
        "get_application", None, {"200": "Application"}
    ),
    ("post", "/api/enterprises/{application_id}/approve"): Contract(
        "approve_application", "ApprovalForm", {"200": "Approval"}, body_required=False
    ),
    ("post", "/api/enterprises/{application_id}/reject"): Contract(
        "reject_application", "Rejection", {"200": "Application"}
    ),
}
# GET operations whose HEAD is served too: the same answer's status and headers.
HEADS = ("/api/handles/{handle}", "/api/handles")
# Where pretty and callback apply (node.output_format): answers, errors included, may
# be a JSONP call instead of JSON.
FORMATTED = ("/api/handles/{handle}", "/api/handles")

# Operations that only a role with a trait (registry.hierarchy.TRAITS) serves: their
# routers are included for every role, elsewhere they answer with an error, and that
# role's schema leaves them out.
SERVED_ONLY_WITH: dict[tuple[str, str], Callable[[Traits], bool]] = {
    ("put", "/api/handles/{handle}"): attrgetter("stores"),
    ("delete", "/api/handles/{handle}"): attrgetter("stores"),
    ("get", "/api/handles"): attrgetter("stores"),
    ("head", "/api/handles"): attrgetter("stores"),
    ("get", "/hrls/handles"): attrgetter("stores"),
    ("post", "/api/batch/handles"): attrgetter("stores"),
    ("get", "/api/kpis/national"): attrgetter("keeps_registry"),
    ("get", "/api/plans/{name}"): attrgetter("keeps_registry"),
}


def describe(schema: Schema, traits: Traits, own: str | None = None) -> Schema:
    """Leave out what the role does not serve, and describe bodies, answers, errors and
    the identifiers the node at prefix ``own`` answers for (:class:`Names`).

    >>> from registry.hierarchy import TRAITS, Role
    >>> doc = {"paths": {"/api/batch/handles": {"post": {"responses": {}}}}}
    >>> describe(doc, TRAITS[Role.RECURSIVE])["paths"]
    {}
    """
    schema = copy.deepcopy(schema)
    names = Names(own)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(COMPONENTS)
    names.constrain_components(components)
    paths = schema.get("paths", {})
    for path in HEADS:
        get = paths.get(path, {}).get("get")
        if get is not None:
            paths[path]["head"] = _head_of(get)
    for path, operations in list(paths.items()):
        for method in list(operations):
            served = SERVED_ONLY_WITH.get((method, path))
            if served is not None and not served(traits):
                del operations[method]
                continue
            if method == "head":  # statuses and headers only (_head_of)
                operations[method]["operationId"] = CONTRACTS[(method, path)].operation_id
            elif (method, path) in CONTRACTS:
                _describe_operation(
                    operations[method], CONTRACTS[(method, path)], formatted=path in FORMATTED
                )
            names.constrain(operations[method], path)
        if not operations:
            del paths[path]
    return schema


@dataclass(frozen=True, slots=True)
class Names:
    r"""The identifiers a node answers for, as parameter patterns.

    A node keeps the handles under its prefix (``own``, and the prefixes below it); the
    top node and recursive nodes resolve the whole national namespace (ASCII digit
    segments). A syntactically valid identifier elsewhere is answered 400 with a
    referral (301), which a client cannot tell from a refusal of its input: the schema
    says which identifiers the node serves, so generated requests aim at them.
    Suffixes are described as the common ASCII ones (letters, digits, ``._-``); the node
    also takes any printable Unicode suffix its registration rules allow
    (:mod:`registry.identifier`), which JSON Schema cannot state.

    >>> Names("88.100").handle
    '^88\\.100(\\.[0-9]{1,6}){0,4}/[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
    """

    own: str | None

    @property
    def prefix(self) -> str:
        """A prefix this node answers for, unanchored: its own and those up to four
        levels below (a prefix has at most 64 characters)."""
        below = r"(\.[0-9]{1,6}){0,4}"
        if self.own is None:
            return r"[0-9]{1,6}" + below
        return re.escape(self.own) + below

    @property
    def handle(self) -> str:
        return f"^{self.prefix}/{_SUFFIX}$"

    @property
    def identity(self) -> str:
        return f"^[1-9][0-9]{{0,8}}:{self.prefix}/{_SUFFIX}$"

    @property
    def example_prefix(self) -> str:
        return self.own or "88"

    def constrain(self, operation: Schema, path: str) -> None:
        """Patterns and examples for the operation's identifier parameters."""
        own = self.example_prefix
        handle = (self.handle, f"{own}/example")
        prefix = (f"^{self.prefix}$", own)
        identity = (self.identity, f"300:{own}/example")
        for parameter in operation.get("parameters", []):
            key = (parameter["in"], parameter["name"])
            if key == ("query", "prefix") and path == "/api/handles":
                parameter["required"] = True  # answered 400 (102) without it
            if key == ("query", "prefix") and path == "/api/templates":
                continue  # a filter: any prefix, and what is under it (maybe nothing)
            rule = {
                ("path", "handle"): handle,
                ("path", "identity"): identity,
                ("query", "identity"): identity,
                ("path", "prefix"): prefix,
                ("query", "prefix"): prefix,
                ("path", "name"): (TEMPLATE_NAME, "battery-pack"),
                ("query", "template"): (TEMPLATE_REF, f"{own}/battery-pack"),
            }.get(key)
            if rule is not None:
                _set_pattern(parameter, rule[0])
                parameter.setdefault("example", rule[1])
            if key == ("query", "relations"):  # registry.relation.parse_relations
                parameter["schema"]["items"]["pattern"] = RELATIONS

    def constrain_components(self, components: dict[str, Schema]) -> None:
        """Identities in login bodies: ones this node may know."""
        for name in ("SessionLogin", "ChallengeRequest"):
            if name in components:
                component = copy.deepcopy(components[name])
                component["properties"]["identity"]["pattern"] = self.identity
                components[name] = component


def _set_pattern(parameter: Schema, pattern: str) -> None:
    schema = parameter.setdefault("schema", {})
    for variant in schema.get("anyOf", [schema]):  # str | None: the string variant
        if variant.get("type") == "string":
            variant["pattern"] = pattern


_SUFFIX = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_RELATION = "(COMPONENT|MADE_FROM|COMPONENT_OF|SHIPPED_IN)"
# Relation names, comma-separated (registry.relation.parse_relations; any case there)
RELATIONS = f"^({_RELATION}(,{_RELATION})*)?$"


def _head_of(get: Schema) -> Schema:
    """The HEAD operation of a GET one: its parameters and statuses, no bodies."""
    head = copy.deepcopy(get)
    head["summary"] = f"{get.get('summary', '')}: status and headers only"
    head["description"] = (
        "What GET answers, status and headers (Content-Length included), without the "
        "body, as the Handle servlet does."
    )
    head["responses"] = {
        status: {"description": response.get("description", "")}
        for status, response in get.get("responses", {}).items()
    }
    return head


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(name: str, *, formatted: bool) -> Schema:
    if "/" in name:  # a media type: an answer that is not JSON
        return {name: {"schema": {"type": "string"}}}
    content = {"application/json": {"schema": _ref(name)}}
    if formatted:  # ?callback=NAME: NAME(<json>);
        content[JAVASCRIPT] = {"schema": {"type": "string"}}
    return content


def _describe_operation(operation: Schema, contract: Contract, *, formatted: bool) -> None:
    operation["operationId"] = contract.operation_id
    if contract.body is not None:
        operation["requestBody"] = {
            "required": contract.body_required,
            "content": {"application/json": {"schema": _ref(contract.body)}},
        }
    for status, response in operation.get("responses", {}).items():
        response.setdefault("description", "")
        response.pop("content", None)  # FastAPI's: an empty schema
        name = contract.answers.get(status) or ("Error" if status[:1] in "45" else None)
        if name is not None:
            response["content"] = _content(name, formatted=formatted)
