"""What a running node holds, typed, created and closed in the app lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from node.config import NodeConfig
from registry.registrar import Registrar
from registry.store import HandleStore


@dataclass(slots=True)
class NodeState:
    config: NodeConfig
    store: HandleStore
    registrar: Registrar


def node_state(request: Request) -> NodeState:
    """FastAPI dependency: the state of the node serving this request."""
    state: NodeState = request.app.state.node
    return state
