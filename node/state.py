"""What a running node holds, typed, created and closed in the app lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from node.answerer import Answerer
from node.config import NodeConfig
from registry.errors import NotFound
from registry.onboarding import Onboarding
from registry.prefix_registry import PrefixRegistry
from registry.registrar import Registrar
from registry.store import HandleStore
from resolver.invalidation import Follower
from resolver.upstream import Upstream


@dataclass(slots=True)
class Registration:
    """Whether a node has registered with its parent (for ``/readyz`` and the logs)."""

    needed: bool
    done: bool = False
    last_error: str | None = None


@dataclass(slots=True)
class NodeState:
    config: NodeConfig
    store: HandleStore
    registrar: Registrar
    answerer: Answerer
    upstream: Upstream
    follower: Follower | None = None
    registry: PrefixRegistry | None = None
    onboarding: Onboarding | None = None
    registration: Registration = field(default_factory=lambda: Registration(needed=False))

    def need_registry(self) -> PrefixRegistry:
        if self.registry is None:
            raise NotFound("this node keeps no prefix registry; ask the top node")
        return self.registry

    def need_onboarding(self) -> Onboarding:
        if self.onboarding is None:
            raise NotFound("this node does not onboard enterprises; ask a secondary node")
        return self.onboarding


def node_state(request: Request) -> NodeState:
    """FastAPI dependency: the state of the node serving this request."""
    state: NodeState = request.app.state.node
    return state
