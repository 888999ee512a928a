"""The OpenAPI description of request and response bodies, and which role serves what.

Handlers read their bodies themselves (:func:`node.request_body.read_json`) and answer
pre-encoded bytes, so FastAPI sees no body models; the schema learns the bodies from
here instead, as JSON-schema dicts merged into the generated document by
:func:`describe`. Nothing here runs per request: the resolver's fast path and the
handlers are untouched.

The schemas say what a client may rely on (required members, their types) and leave
the rest open (``additionalProperties`` allowed): nodes of one hierarchy may add members.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from registry.hierarchy import Traits

Schema = dict[str, Any]

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
VALUES_BODY: Schema = {
    "description": '{"values": [...]}, a bare list of values, or one value object',
    "anyOf": [
        {
            "type": "object",
            "required": ["values"],
            "properties": {
                "handle": {"type": "string"},
                "values": {"type": "array", "items": {"$ref": "#/components/schemas/Value"}},
            },
        },
        {"type": "array", "items": {"$ref": "#/components/schemas/Value"}},
        {"$ref": "#/components/schemas/Value"},
    ],
    "example": {
        "values": [{"index": 1, "type": "URL", "data": {"format": "string", "value": "https://x"}}]
    },
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
BATCH_BODY: Schema = {
    "description": '{"handles": [BatchItem, ...]}, or the bare list',
    "anyOf": [
        {"type": "object", "required": ["handles"], "properties": {"handles": _BATCH_ITEMS}},
        _BATCH_ITEMS,
    ],
    "example": {
        "handles": [
            {"handle": "88.100/a", "values": [{"index": 1, "type": "URL", "data": "https://a"}]}
        ]
    },
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
        "status": {"type": "string"},
        "prefix": {"type": ["string", "null"]},
    },
}
COMPONENTS: dict[str, Schema] = {
    "Error": ERROR,
    "Value": VALUE,
    "Values": VALUES_BODY,
    "Resolution": RESOLUTION,
    "Written": WRITTEN,
    "BatchItem": BATCH_ITEM,
    "Batch": BATCH_BODY,
    "BatchAnswer": BATCH_ANSWER,
    "Session": SESSION,
    "ApplicationForm": APPLICATION_BODY,
    "Application": APPLICATION,
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


# (method, path) -> the request body's schema and the responses' by status
BODIES: dict[tuple[str, str], tuple[str | None, dict[str, str]]] = {
    ("get", "/api/handles/{handle}"): (None, {"200": "Resolution"}),
    ("put", "/api/handles/{handle}"): ("Values", {"200": "Written", "201": "Written"}),
    ("delete", "/api/handles/{handle}"): (None, {"200": "Written"}),
    ("post", "/api/batch/handles"): ("Batch", {"200": "BatchAnswer"}),
    ("post", "/api/sessions"): (None, {"201": "Session"}),
    ("post", "/api/enterprises"): ("ApplicationForm", {"201": "Application"}),
    ("get", "/api/enterprises/{application_id}"): (None, {"200": "Application"}),
}

# Operations that only a role with a trait (registry.hierarchy.TRAITS) serves: their
# routers are included for every role, elsewhere they answer with an error, and that
# role's schema leaves them out.
SERVED_ONLY_WITH: dict[tuple[str, str], Callable[[Traits], bool]] = {
    ("put", "/api/handles/{handle}"): attrgetter("stores"),
    ("delete", "/api/handles/{handle}"): attrgetter("stores"),
    ("get", "/api/handles"): attrgetter("stores"),
    ("get", "/hrls/handles"): attrgetter("stores"),
    ("post", "/api/batch/handles"): attrgetter("stores"),
    ("get", "/api/kpis/national"): attrgetter("keeps_registry"),
    ("get", "/api/plans/{name}"): attrgetter("keeps_registry"),
}


def describe(schema: Schema, traits: Traits) -> Schema:
    """Leave out what the role does not serve, and describe bodies and errors.

    >>> from registry.hierarchy import TRAITS, Role
    >>> doc = {"paths": {"/api/batch/handles": {"post": {"responses": {}}}}}
    >>> describe(doc, TRAITS[Role.RECURSIVE])["paths"]
    {}
    """
    schema = copy.deepcopy(schema)
    schema.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    paths = schema.get("paths", {})
    for path, operations in list(paths.items()):
        for method in list(operations):
            served = SERVED_ONLY_WITH.get((method, path))
            if served is not None and not served(traits):
                del operations[method]
                continue
            _describe_operation(operations[method], *BODIES.get((method, path), (None, {})))
        if not operations:
            del paths[path]
    return schema


def _describe_operation(operation: Schema, body: str | None, answers: dict[str, str]) -> None:
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    for status, response in operation.get("responses", {}).items():
        name = answers.get(status) or ("Error" if status[:1] in "45" else None)
        if name is not None:
            response.setdefault("description", "")
            response["content"] = {"application/json": {"schema": _ref(name)}}
