"""Metadata templates (元数据模板, SPEC §4.2): drafts, publishing, versions.

A template under prefix P lives at the node holding P; other nodes answer 400/301 with a
referral, as for handles. Anyone may read published versions (nodes checking writes
read them too); the administrator of P or of a prefix above it writes drafts,
publishes them and reads them. The rules are in :mod:`registry.template`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from node.request_body import read_json
from node.responses import NEEDS_CREDENTIALS, json_response
from node.state import NodeState, node_state
from registry.errors import NotAuthorised, NotFound, StoreUnavailable
from registry.identifier import Handle, Prefix
from registry.registrar import Registrar
from registry.template import Template, check_name, may_administer
from registry.template_store import Snapshot, TemplateStore
from registry.value import utc_timestamp
from resolver.template_source import Locate

router = APIRouter(tags=["Metadata templates"])
State = Annotated[NodeState, Depends(node_state)]
_ATTEMPTS = 4
_DOCS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid prefix, name or template (202); prefix not here (301)"},
    401: {"description": "Credentials missing or wrong (402)"},
    403: {"description": "Not an administrator of the prefix (400)"},
    404: {"description": "No such template, version or draft (100)"},
    409: {"description": "The draft drops or changes a published item (202)"},
}
_READ_DOCS: dict[int | str, dict[str, Any]] = {code: _DOCS[code] for code in (400, 404)}


def template_locator(registrar: Registrar, parent_url: str | None) -> Locate:
    """Where a template under a prefix is kept: None for this node's store, else the
    node this node would refer a client to (a delegated node, or its parent)."""

    async def locate(prefix: Prefix) -> str | None:
        if not registrar.authority.holds_prefix(prefix):
            return parent_url
        (away,) = await registrar.check_here([Handle(prefix.text, "-")])
        return away.referral if away is not None else None

    return locate


async def _here(state: NodeState, prefix_text: str, name: str) -> tuple[TemplateStore, Prefix]:
    """This node's template store, if it keeps the templates of ``prefix_text``."""
    prefix = Prefix.parse(prefix_text)
    check_name(name)
    state.registrar.check_held_prefix(prefix)
    (away,) = await state.registrar.check_here([Handle(prefix.text, "-")])
    if away is not None:
        away.handle = None
        raise away
    if state.templates is None:
        raise NotFound("this node keeps no metadata templates")
    return state.templates, prefix


async def _administrator(request: Request, state: NodeState, prefix: Prefix) -> None:
    identity = await state.authenticate(request)
    if not may_administer(identity, prefix):
        raise NotAuthorised(
            f"templates under {prefix.text} are written by 300:0.NA/{prefix.text} or the "
            f"administrator of a prefix above it, not {identity.text}"
        )


def _answer(template: Template, status: int = 200) -> Response:
    return json_response({"responseCode": 1, **template.to_json()}, status)


@router.get("/api/templates", summary="List the templates kept here")
async def list_templates(
    state: State,
    prefix: Annotated[str | None, Query(description="only templates under this prefix")] = None,
) -> Response:
    """``{"responseCode": 1, "templates": [{"template", "latest", "draft", "description",
    "items"}]}``: ``latest`` is the newest published version (null before the first),
    ``draft`` whether a draft is being prepared."""
    within = Prefix.parse(prefix) if prefix else None
    listing = await state.templates.listing(within) if state.templates is not None else []
    return json_response({"responseCode": 1, "templates": listing})


@router.get(
    "/api/templates/{prefix}/{name}",
    summary="A published version of a template (the latest by default), or its draft",
    responses=_READ_DOCS,
)
async def get_template(
    prefix: str,
    name: str,
    request: Request,
    state: State,
    version: Annotated[int | None, Query(ge=1, le=10**9)] = None,
    draft: bool = False,
) -> Response:
    """The template as JSON: ``template`` (``<prefix>/<name>``), ``version``, ``state``
    (draft or published), ``description``, ``updated`` and its ``items``. ``draft=true``
    answers the draft instead, to the prefix's administrators."""
    store, where = await _here(state, prefix, name)
    if draft:
        await _administrator(request, state, where)
        pending = (await store.snapshot(where, name)).draft
        if pending is None:
            raise NotFound(f"template {where.text}/{name} has no draft")
        return _answer(pending)
    found = await store.version(where, name, version)
    if found is None:
        which = f"version {version}" if version else "published version"
        raise NotFound(f"template {where.text}/{name} has no {which}")
    return _answer(found)


@router.get(
    "/api/templates/{prefix}/{name}/versions",
    summary="Every published version of a template",
    responses=_READ_DOCS,
)
async def template_versions(prefix: str, name: str, state: State) -> Response:
    store, where = await _here(state, prefix, name)
    versions = await store.versions(where, name)
    if not versions:
        raise NotFound(f"template {where.text}/{name} has no published version")
    return json_response({"responseCode": 1, "versions": [t.to_json() for t in versions]})


@router.put(
    "/api/templates/{prefix}/{name}",
    summary="Create or replace a template's draft",
    status_code=201,
    responses={200: {"description": "The draft was replaced"}, **_DOCS},
    openapi_extra=NEEDS_CREDENTIALS,
)
async def put_draft(prefix: str, name: str, request: Request, state: State) -> Response:
    """Body ``{"description": ..., "items": [{"name", "index", "type", "required",
    "minLength", "maxLength", "minimum", "maximum", "enabled", "description",
    "queryable"}]}``.

    ``index`` is 2000 or more; ``type`` is string, number, date, url or handle;
    ``minimum``/``maximum`` apply to numbers and dates (YYYY-MM-DD); ``"queryable":
    true`` has nodes index the item for ``/api/query`` and reverse lookup once the
    template is published (other items are checked, not indexed). The draft will be
    published as the next version; it must keep every item of the latest published
    version with its index and type (409 otherwise: disable an item with
    ``"enabled": false`` instead of deleting it). 201 for a new draft, 200 for a
    replaced one.
    """
    store, where = await _here(state, prefix, name)
    await _administrator(request, state, where)
    body = await read_json(request)

    async def attempt(before: Snapshot) -> Response | None:
        latest = await store.version(where, name, before.latest) if before.latest else None
        draft = Template.draft(where, name, body, now=utc_timestamp(), previous=latest)
        if await store.save_draft(before, draft):
            return _answer(draft, 200 if before.draft_raw else 201)
        return None

    return await _until_settled(store, where, name, attempt)


@router.post(
    "/api/templates/{prefix}/{name}/publish",
    summary="Publish a template's draft as its next version",
    responses=_DOCS,
    openapi_extra=NEEDS_CREDENTIALS,
)
async def publish(prefix: str, name: str, request: Request, state: State) -> Response:
    """The draft becomes published version N (immutable); identifiers naming the
    template without a version are checked against it from now on."""
    store, where = await _here(state, prefix, name)
    await _administrator(request, state, where)

    async def attempt(before: Snapshot) -> Response | None:
        draft = before.draft
        if draft is None:
            raise NotFound(f"template {where.text}/{name} has no draft to publish")
        published = draft.published(utc_timestamp())
        if not await store.publish(before, published):
            return None
        state.store.learn(published.queryable_types)  # its queryable items get indexes
        return _answer(published)

    return await _until_settled(store, where, name, attempt)


@router.delete(
    "/api/templates/{prefix}/{name}/draft",
    summary="Discard a template's draft",
    responses=_DOCS,
    openapi_extra=NEEDS_CREDENTIALS,
)
async def drop_draft(prefix: str, name: str, request: Request, state: State) -> Response:
    """Published versions stay; only the draft goes."""
    store, where = await _here(state, prefix, name)
    await _administrator(request, state, where)

    async def attempt(before: Snapshot) -> Response | None:
        if before.draft is None:
            raise NotFound(f"template {where.text}/{name} has no draft")
        if await store.drop_draft(before):
            return json_response({"responseCode": 1, "template": f"{where.text}/{name}"})
        return None

    return await _until_settled(store, where, name, attempt)


async def _until_settled(
    store: TemplateStore,
    where: Prefix,
    name: str,
    attempt: Callable[[Snapshot], Awaitable[Response | None]],
) -> Response:
    """Run a compare-and-set ``attempt`` on the template as it is now, again while
    another writer changed it first (None), a few times at most."""
    for _ in range(_ATTEMPTS):
        answer = await attempt(await store.snapshot(where, name))
        if answer is not None:
            return answer
    raise StoreUnavailable(f"template {where.text}/{name} is being changed; try again")
