"""What a running node holds, typed, created and closed in the app lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from node.answerer import Answerer
from node.collection_pause import CollectionPause
from node.config import NodeConfig
from node.daily_kpis import Kpis
from node.metrics import ANSWERED, NodeMetrics, Outcome
from node.startup import Startup
from registry.admission import DailyQuota, TokenBucket
from registry.audit import AuditLog
from registry.errors import NotFound
from registry.identifier import Identity
from registry.onboarding import Onboarding
from registry.prefix_registry import PrefixRegistry
from registry.registrar import Registrar
from registry.store import HandleStore
from registry.template_store import TemplateStore
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
    metrics: NodeMetrics = field(default_factory=NodeMetrics)
    kpis: Kpis | None = None
    audit: AuditLog | None = None
    rate: TokenBucket | None = None
    quota: DailyQuota | None = None
    templates: TemplateStore | None = None
    collection_pause: CollectionPause = field(default_factory=CollectionPause)

    def resolved(self, outcome: Outcome) -> None:
        """Count an answered resolution in the metrics and, if it was answered, the KPIs."""
        self.metrics.resolved(outcome)
        if self.kpis is not None and outcome in ANSWERED:
            self.kpis.resolution()

    def registered(self, count: int = 1) -> None:
        self.metrics.registrations.inc(count)
        if self.kpis is not None:
            self.kpis.registrations(count)

    async def authenticate(self, request: Request) -> Identity:
        """The caller's identity (401 if none or wrong), remembered for the audit log and
        counted against its own rate and quota."""
        identity = await self.registrar.authenticate(request.headers.get("authorization"))
        request.state.identity = identity
        who = f"identity {identity.text}"
        if self.rate is not None:
            self.rate.check(f"id:{identity.key}", who)
        if self.quota is not None:
            await self.quota.spend(f"id:{identity.key}", who)
        return identity

    def need_registry(self) -> PrefixRegistry:
        if self.registry is None:
            raise NotFound("this node keeps no prefix registry; ask the top node")
        return self.registry

    def need_onboarding(self) -> Onboarding:
        if self.onboarding is None:
            raise NotFound("this node does not onboard enterprises; ask a secondary node")
        return self.onboarding


async def node_state(request: Request) -> NodeState:
    """FastAPI dependency: the state of the node serving this request. A coroutine, so
    FastAPI calls it in the event loop instead of handing it to a worker thread. Until
    the node is built (its store loading): 503, responseCode 2, "the node is starting"."""
    state: NodeState | None = request.app.state._state.get("node")
    if state is None:
        startup: Startup = request.app.state.startup
        raise startup.refusal()
    return state
