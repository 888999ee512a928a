"""Structured queries (SPEC §4.2; the Guangzhou plan's 查询): the identifiers of one
prefix whose values meet conditions, from the indexes the store keeps on every write.
The rules are in :mod:`registry.query`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from node.responses import json_response
from node.state import NodeState, node_state
from registry.errors import InvalidValue
from registry.identifier import Handle, Prefix
from registry.limits import MAX_PAGE_NUMBER
from registry.query import Query as StructuredQuery
from registry.template import TemplateRef

router = APIRouter(tags=["Query and search"])
State = Annotated[NodeState, Depends(node_state)]


@router.get(
    "/api/query",
    summary="Find the identifiers of a prefix by their values",
    responses={
        400: {"description": "A malformed condition, or the prefix is not here (202, 301)"},
        502: {"description": "The node keeping the named template is unreachable (2)"},
    },
)
async def structured_query(
    request: Request,
    state: State,
    prefix: Annotated[str, Query(description="the prefix searched, e.g. 88.100.2")],
    template: Annotated[
        str | None, Query(description="only identifiers declaring this template")
    ] = None,
    page: Annotated[int, Query(ge=0, le=MAX_PAGE_NUMBER)] = 0,
    pageSize: Annotated[int, Query(ge=1, le=1000)] = 100,  # noqa: N803 - as in /api/handles
) -> Response:
    """Conditions are the other query parameters: ``FIELD=value`` (a value of type
    FIELD equals value, ASCII case-insensitively), ``FIELD.min=x`` and ``FIELD.max=x``
    (FIELD is a number or a date YYYY-MM-DD within the bounds), e.g.
    ``?prefix=88.100.2&template=88.100/battery-pack&BATCH=B20260105-01&capacity_kwh.min=70``.

    With ``template`` every FIELD must be an item of it and number and date items
    compare as numbers and dates. Answers
    ``{"responseCode":1,"prefix":P,"totalCount":N,"page":i,"pageSize":n,"handles":[...]}``
    in byte order. Only public values are searched; the query reads indexes, never
    every identifier, and is refused (400) when even its narrowest condition matches
    more than 100,000.
    """
    where = Prefix.parse(prefix)
    state.registrar.check_held_prefix(where)
    (away,) = await state.registrar.check_here([Handle(where.text, "-")])
    if away is not None:
        away.handle = None
        raise away
    declared = None
    if template is not None:
        finder = state.registrar.templates
        if finder is None:
            raise InvalidValue("this node keeps no metadata templates")
        declared = await finder(TemplateRef.parse(template))
    query = StructuredQuery.parse(
        where,
        request.query_params.multi_items(),
        template=declared,
        page=page,
        page_size=pageSize,
        policy=state.store.indexes,
    )
    total, handles = await state.store.query(query)
    return json_response(
        {
            "responseCode": 1,
            "prefix": where.text,
            "template": declared.ref.text if declared is not None else None,
            "totalCount": total,
            "page": page,
            "pageSize": pageSize,
            "handles": handles,
        }
    )
