"""The catalog: what a load test needs to know of a hierarchy, as one JSON document.

::

    {"top": URL, "secondaries": {"88.100": URL, ...},
     "enterprises": [{"prefix", "node", "secondary", "identity", "secret", "count",
                      "manufacturer", "url_prefix"}, ...]}

``node`` is the node holding the enterprise's identifiers (its secondary node, or its
own enterprise node); ``count`` identifiers ``<prefix>/demo-0001`` ... are seeded there,
each with a URL value ``<url_prefix>demo-NNNN``. A catalog comes from a hierarchy
``idnode bench --up`` started (:func:`from_launcher`), from a running hierarchy's top
node (:func:`from_top`, for hierarchies using the demo secrets), or from a file a user
wrote for any other hierarchy. :func:`seed_jobs` turns it into the batch registrations
that load its identifiers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from loadtest.check import fetch
from node.launcher import Launcher
from node.seeder import SeedJob
from node.topology import EnterpriseSpec, demo_secret
from registry.errors import ConfigError
from resolver.upstream import Credentials

SAMPLE = "demo-0001"  # the first sample identifier's suffix


def from_launcher(launcher: Launcher) -> dict[str, Any]:
    """The hierarchy a launcher started, with the secrets it set."""
    topology = launcher.topology
    secondaries = {
        s.prefix: launcher.node(f"secondary-{s.prefix}").url for s in topology.secondaries
    }
    secrets = {i.prefix: i.secret for i in launcher.identities}
    enterprises = []
    for spec in topology.secondaries:
        for n, ent in enumerate(spec.enterprises, start=1):
            prefix = f"{spec.prefix}.{n}"
            node = (
                launcher.node(f"enterprise-{prefix}").url if ent.port else secondaries[spec.prefix]
            )
            enterprises.append(
                {
                    "prefix": prefix,
                    "node": node,
                    "secondary": spec.prefix,
                    "identity": f"300:0.NA/{prefix}",
                    "secret": secrets.get(prefix, demo_secret(prefix)),
                    "count": ent.identifiers,
                    "manufacturer": ent.name,
                    "url_prefix": f"https://{ent.domain}/products/",
                }
            )
    return {
        "top": launcher.node(f"top-{topology.top_prefix}").url,
        "secondaries": secondaries,
        "enterprises": enterprises,
    }


def from_top(top: str, identifiers: int) -> dict[str, Any]:
    """A running hierarchy that uses the demo secrets (``idnode up`` without
    ``--random-secrets``, or the compose file), read from its top node's registry and
    its secondary nodes' delegations; ``identifiers`` sample identifiers per enterprise."""
    top = top.rstrip("/")
    registry = fetch(f"{top}/api/prefixes?pageSize=10000")["prefixes"]
    secondaries = {e["prefix"]: e["nodeUrl"] for e in registry if e["kind"] == "secondary"}
    enterprises = []
    for entry in registry:
        if entry["kind"] != "enterprise":
            continue
        prefix = entry["prefix"]
        secondary = prefix.rsplit(".", 1)[0]
        node = secondaries.get(secondary, entry["nodeUrl"])
        record = fetch(f"{node}/api/handles/0.NA/{prefix}?type=NODE_URL")
        own = [v["data"]["value"] for v in record.get("values", []) if v["data"]["value"]]
        node = own[0] if own else node
        enterprises.append(
            {
                "prefix": prefix,
                "node": node,
                "secondary": secondary,
                "identity": f"300:0.NA/{prefix}",
                "secret": demo_secret(prefix),
                "count": identifiers,
                "manufacturer": entry.get("owner") or prefix,
                "url_prefix": _url_prefix(node, prefix),
            }
        )
    if not enterprises:
        raise ConfigError(f"{top} has no enterprise prefixes filed: nothing to load-test")
    return {"top": top, "secondaries": secondaries, "enterprises": enterprises}


def _url_prefix(node: str, prefix: str) -> str:
    """The URL of the first sample identifier minus its suffix, or a neutral one for an
    enterprise that has none yet (seeding gives it one)."""
    try:
        record = fetch(f"{node}/api/handles/{prefix}/{SAMPLE}?type=URL")
    except ConfigError:  # 404: not seeded yet
        record = {}
    values = record.get("values") or [{"data": {"value": ""}}]
    url = str(values[0]["data"]["value"])
    if not url.endswith(SAMPLE):
        return f"https://id.{prefix}.example.cn/products/"
    return url.removesuffix(SAMPLE)


def seed_jobs(catalog: dict[str, Any]) -> list[SeedJob]:
    """The batch registrations that give every enterprise its ``count`` sample
    identifiers, with the values ``idnode up`` gives them (overwriting earlier ones).

    The catalog's ``url_prefix`` is set to the URLs seeded, so reverse lookups match.
    """
    jobs = []
    for enterprise in catalog["enterprises"]:
        prefix = enterprise["prefix"]
        domain = urlsplit(enterprise["url_prefix"]).netloc or f"id.{prefix}.example.cn"
        enterprise["url_prefix"] = f"https://{domain}/products/"
        spec = EnterpriseSpec(
            name=enterprise.get("manufacturer", prefix),
            credit_code="",
            contact="",
            domain=domain,
            products=("Product",),
            identifiers=int(enterprise["count"]),
            port=None,
        )
        credentials = Credentials(enterprise["identity"], enterprise["secret"])
        jobs.append(SeedJob(prefix, enterprise["node"], credentials, spec.sample_batch(prefix)))
    return jobs
