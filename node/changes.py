"""The change feed of a storing node, read by the caches of recursive nodes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from node.responses import json_response
from node.state import NodeState, node_state
from registry.change_feed import StreamId

router = APIRouter(tags=["Operations"])
State = Annotated[NodeState, Depends(node_state)]


@router.get("/api/changes", summary="Handles changed here since a cursor")
async def changes(
    state: State,
    after: Annotated[str | None, Query(description="cursor from a previous answer")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    """``{"responseCode":1,"epoch":E,"handles":[keys...],"next":C,"more":b,"gap":b}``.

    Without ``after`` only ``epoch`` and ``next`` (the cursor for "from now on").
    ``handles`` are the lower-cased keys of handles written since ``after``; read again
    from ``next``, at once when ``more`` is true. ``gap`` means changes since ``after``
    may be missing (older than the feed's retention); a different ``epoch`` than before
    means the node's store was replaced. Either way, drop everything cached from here.
    """
    page = await state.store.changes(StreamId.parse(after) if after else None, limit)
    return json_response(
        {
            "responseCode": 1,
            "epoch": page.epoch,
            "handles": page.handle_keys,
            "next": str(page.next),
            "more": page.more,
            "gap": page.gap,
        }
    )
