"""``idnode check``: measure a running hierarchy through its top node and judge it
against a seed plan's targets (:mod:`loadtest.plan`).

What is measured, and how::

    per secondary node   enterprises          enterprises approved at the node
                         registrations        identifiers created at the node since its
                                              store began (the plans count new ones)
                         resolutions_per_day  resolutions the node answered on the day
                                              (UTC; today so far unless --day is given)
    hierarchy            secondary_nodes      secondary nodes registered at the top node
                         registrations        identifiers created at every node
                         enterprises          enterprise prefixes filed at the top node
                         total_resolutions    resolutions answered by the top node
                         public_services      of registration, resolution, query, search,
                                              filing and authentication, those the top
                                              node's API offers
                         commercial_cryptography  1 if the top node offers SM2 login
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from loadtest.plan import Measure, Measurement, Observed
from registry.errors import ConfigError

# (method, OpenAPI path) of each public service the Guangzhou plan names.
PUBLIC_SERVICES = {
    "registration": ("put", "/api/handles/{handle}"),
    "resolution": ("get", "/api/handles/{handle}"),
    "query": ("get", "/api/handles"),
    "search": ("get", "/hrls/handles"),
    "filing": ("put", "/api/prefixes/{prefix}"),
    "authentication": ("post", "/api/sessions"),
}


def fetch(url: str, timeout: float = 10.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ConfigError(f"{url} answered HTTP {exc.code}: {exc.read()[:200]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


def observe(top_url: str, day: str | None = None) -> Observed:
    """Everything the check needs, asked of the top node (which asks its secondaries)."""
    top_url = top_url.rstrip("/")
    query = f"?day={day}" if day else ""
    national = fetch(f"{top_url}/api/kpis/national{query}")
    schema = fetch(f"{top_url}/openapi.json")
    return observed_from(national, schema)


def observe_node(node_url: str, day: str | None = None) -> Observed:
    """The per-node figures of one secondary node, asked of the node itself (no top
    node: the hierarchy's targets are left unmeasured)."""
    query = f"?day={day}" if day else ""
    return node_observed(fetch(f"{node_url.rstrip('/')}/api/kpis{query}"))


def node_observed(kpis: dict[str, Any]) -> Observed:
    """One secondary node's ``/api/kpis`` answer as measurements (pure)."""
    if kpis.get("role") != "secondary":
        raise ConfigError(
            f"--node must be a secondary node; {kpis.get('node')} is a {kpis.get('role')} node"
        )
    observed = Observed(hierarchy_unmeasured="not measured: one secondary node checked (--node)")
    observed.secondaries[kpis["prefix"]] = _node_figures(kpis, kpis["day"])
    return observed


def _node_figures(node: dict[str, Any], day: str) -> dict[Measure, Measurement]:
    """A secondary node's KPIs (as ``/api/kpis`` answers them) as its measurements."""
    return {
        Measure.ENTERPRISES: Measurement(node["enterprises"], "approved at the node"),
        Measure.REGISTRATIONS: Measurement(
            node["totalRegistrations"], "identifiers created at the node"
        ),
        Measure.RESOLUTIONS_PER_DAY: Measurement(
            node["resolutions"], f"resolutions answered on {day} (UTC)"
        ),
    }


def observed_from(national: dict[str, Any], schema: dict[str, Any]) -> Observed:
    """Turn the top node's answers into measurements (pure)."""
    day = national["day"]
    observed = Observed()
    for node in national["secondaries"]:
        observed.secondaries[node["prefix"]] = _node_figures(node, day)
    for node in national["unreachable"]:
        why = f"unreachable: {node['message']}"
        observed.secondaries[node["prefix"]] = {
            measure: Measurement(None, why)
            for measure in (
                Measure.ENTERPRISES,
                Measure.REGISTRATIONS,
                Measure.RESOLUTIONS_PER_DAY,
            )
        }
    top = national["top"]
    totals = national["totals"]
    paths = schema.get("paths", {})
    offered = [
        name for name, (method, path) in PUBLIC_SERVICES.items() if method in paths.get(path, {})
    ]
    observed.hierarchy = {
        Measure.SECONDARY_NODES: Measurement(
            national["secondaryNodes"], "secondary nodes registered at the top node"
        ),
        Measure.REGISTRATIONS: Measurement(
            totals["totalRegistrations"] + top["totalRegistrations"],
            "identifiers created at every node",
        ),
        Measure.ENTERPRISES: Measurement(
            national["enterprisePrefixes"], "enterprise prefixes filed at the top node"
        ),
        Measure.TOTAL_RESOLUTIONS: Measurement(
            top["totalResolutions"], "resolutions answered by the top node"
        ),
        Measure.PUBLIC_SERVICES: Measurement(
            len(offered), "offered by the top node: " + (", ".join(offered) or "none")
        ),
        Measure.COMMERCIAL_CRYPTOGRAPHY: Measurement(
            1 if "/api/sessions/challenge" in paths else 0,
            "SM2/SM3 challenge login offered by the top node",
        ),
    }
    return observed
