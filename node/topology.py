"""Topology files: which nodes ``idnode up`` starts, with which enterprises and samples.

A topology is TOML (the demo ships as ``node/demo_topology.toml``)::

    [top]
    prefix = "88"
    port = 8000

    [[secondary]]
    prefix = "88.100"
    port = 8001
    industry = "automotive"
    owner = "..."

      [[secondary.enterprise]]           # approved in this order: 88.100.1, 88.100.2, ...
      name = "..."
      credit_code = "91420100MA4K2B7C1Y"  # checked (GB 32100-2015)
      contact = "..."
      domain = "id.example.cn"            # sample identifiers' URLs point here
      products = ["...", "..."]           # sample product names, used in turn
      identifiers = 100                   # demo-0001 ... demo-0100
      port = 8010                         # optional: runs its own enterprise node

    [[recursive]]                         # optional public recursive nodes
    port = 8020

    [[product]]                           # optional traced products (see registry.relation)
    name = "..."
    root = "88.100.1/..."                 # what `idnode up` suggests tracing

      [[product.identifier]]              # registered by the enterprise holding its prefix
      handle = "88.100.1/..."
      values = [{ index = 1, type = "PRODUCT_NAME", data = "..." },
                { index = 10, type = "COMPONENT", data = "88.100.2/..." }]

Everything here is pure: parsing, validation (a :class:`ConfigError` naming the entry at
fault), the demo credentials and the sample identifiers' values.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from registry.credit_code import credit_code_problem
from registry.errors import ConfigError, InvalidHandle, InvalidValue
from registry.identifier import Handle, Prefix, ascii_lower, national_prefix_problem
from registry.limits import Limits
from registry.relation import links_in
from registry.value import HandleValue

DEMO_SAMPLE_START = date(2026, 1, 5)
_NO_TIME = "1970-01-01T00:00:00Z"
# The keys each table may hold: any other is a mistake (a misspelt ``identifiers`` would
# otherwise leave the default of 100 in force without a word).
_KEYS = {
    "file": ("top", "secondary", "recursive", "product"),
    "top": ("prefix", "port", "owner"),
    "secondary": ("prefix", "port", "industry", "owner", "enterprise"),
    "enterprise": (
        "name",
        "credit_code",
        "contact",
        "domain",
        "products",
        "identifiers",
        "port",
    ),
    "recursive": ("port",),
    "product": ("name", "root", "identifier"),
    "identifier": ("handle", "values"),
}


@dataclass(frozen=True, slots=True)
class EnterpriseSpec:
    name: str
    credit_code: str
    contact: str
    domain: str
    products: tuple[str, ...]
    identifiers: int
    port: int | None  # its own node, if any

    def sample_batch(self, prefix: str) -> list[dict[str, Any]]:
        """The batch-API items registering this enterprise's sample identifiers.

        >>> spec = EnterpriseSpec("A", "x", "c", "id.a.cn", ("Pump",), 2, None)
        >>> [item["handle"] for item in spec.sample_batch("88.100.1")]
        ['88.100.1/demo-0001', '88.100.1/demo-0002']
        """
        items = []
        for n in range(1, self.identifiers + 1):
            suffix = f"demo-{n:04d}"
            made = DEMO_SAMPLE_START + timedelta(days=(n - 1) // 10)
            values = [
                ("URL", f"https://{self.domain}/products/{suffix}"),
                ("PRODUCT_NAME", self.products[(n - 1) % len(self.products)]),
                ("BATCH", f"B{made:%Y%m%d}-{(n - 1) // 10 + 1:02d}"),
                ("PRODUCTION_DATE", made.isoformat()),
                ("MANUFACTURER", self.name),
            ]
            items.append(
                {
                    "handle": f"{prefix}/{suffix}",
                    "values": [
                        {"index": i, "type": t, "data": {"format": "string", "value": v}}
                        for i, (t, v) in enumerate(values, start=1)
                    ],
                }
            )
        return items


@dataclass(frozen=True, slots=True)
class TracedIdentifier:
    """One identifier of a traced product, with its values (links among them)."""

    handle: str
    values: tuple[dict[str, Any], ...]

    def item(self) -> dict[str, Any]:
        """The batch-API item registering it."""
        return {"handle": self.handle, "values": [dict(v) for v in self.values]}


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """A product whose identifiers link to each other across enterprises, to trace."""

    name: str
    root: str
    identifiers: tuple[TracedIdentifier, ...]


@dataclass(frozen=True, slots=True)
class SecondarySpec:
    prefix: str
    port: int
    industry: str
    owner: str
    enterprises: tuple[EnterpriseSpec, ...]


@dataclass(frozen=True, slots=True)
class Topology:
    """A whole hierarchy to start.

    >>> demo = Topology.demo()
    >>> demo.top_prefix, [s.prefix for s in demo.secondaries]
    ('88', ['88.100', '88.101', '88.102'])
    """

    top_prefix: str
    top_port: int
    top_owner: str
    secondaries: tuple[SecondarySpec, ...]
    recursive_ports: tuple[int, ...]
    products: tuple[ProductSpec, ...] = ()

    @classmethod
    def demo(cls) -> Topology:
        text = resources.files("node").joinpath("demo_topology.toml").read_text("utf-8")
        return cls.parse(text, "the demo topology")

    @classmethod
    def load(cls, path: Path) -> Topology:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read topology {path}: {exc.strerror}") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, where: str) -> Topology:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where} is not valid TOML: {exc}") from None
        _known_keys(raw, _KEYS["file"], "", where)
        top = _table(raw, "top", where)
        _known_keys(top, _KEYS["top"], "[top]", where)
        top_prefix = _prefix(top, "[top]", where)
        secondaries = tuple(
            _secondary(s, top_prefix, f"[[secondary]] #{i + 1}", where)
            for i, s in enumerate(_tables(raw, "secondary", where))
        )
        recursive = tuple(
            _port(_known_keys(r, _KEYS["recursive"], label, where), label, where)
            for i, r in enumerate(_tables(raw, "recursive", where))
            for label in [f"[[recursive]] #{i + 1}"]
        )
        topology = cls(
            top_prefix,
            _port(top, "[top]", where),
            _text(top, "owner", "[top]", where, default="National top-level node (simulated)"),
            secondaries,
            recursive,
        )
        topology._check_unique(where)
        enterprises = topology.enterprise_prefixes()
        products = tuple(
            _product(p, enterprises, f"[[product]] #{i + 1}", where)
            for i, p in enumerate(_tables(raw, "product", where))
        )
        handles = [Handle.parse(t.handle).key for p in products for t in p.identifiers]
        if len(set(handles)) != len(handles):
            raise ConfigError(f"{where}: a product identifier appears twice")
        return replace(topology, products=products)

    def on_ports(self, next_port: Callable[[], int]) -> Topology:
        """The same hierarchy with every node moved to a port from ``next_port``."""
        return replace(
            self,
            top_port=next_port(),
            secondaries=tuple(
                replace(
                    s,
                    port=next_port(),
                    enterprises=tuple(
                        replace(e, port=next_port() if e.port is not None else None)
                        for e in s.enterprises
                    ),
                )
                for s in self.secondaries
            ),
            recursive_ports=tuple(next_port() for _ in self.recursive_ports),
        )

    def moved_to(self, base: int) -> Topology:
        """The same hierarchy with the top node on port ``base`` and every other node at
        the same offset from it as before (``idnode up --port-base``).

        >>> moved = Topology.demo().moved_to(9000)
        >>> moved.top_port, [s.port for s in moved.secondaries], max(moved.ports())
        (9000, [9001, 9002, 9003], 9010)
        """
        shift = base - self.top_port
        ports = self.ports()
        if min(ports) + shift < 1 or max(ports) + shift > 65535:
            span = max(ports) - min(ports)
            raise ConfigError(
                f"--port-base {base}: the hierarchy spans {span + 1} ports from its top "
                f"node's, so the base must be 1 to {65535 - (max(ports) - self.top_port)}"
            )
        # In the order on_ports hands them out: top, each secondary and its enterprises'
        # nodes, then the recursive nodes.
        order = [self.top_port]
        order += [p for s in self.secondaries for p in (s.port, *_own_ports(s))]
        order += self.recursive_ports
        return self.on_ports(iter([port + shift for port in order]).__next__)

    def with_identifiers(self, count: int) -> Topology:
        """The same hierarchy with ``count`` sample identifiers per enterprise."""
        return replace(
            self,
            secondaries=tuple(
                replace(s, enterprises=tuple(replace(e, identifiers=count) for e in s.enterprises))
                for s in self.secondaries
            ),
        )

    def enterprise_prefixes(self) -> list[str]:
        """The prefixes the enterprises get, as approval allocates them: in topology order,
        ``<secondary>.1``, ``<secondary>.2``, ..."""
        return [
            f"{s.prefix}.{n}" for s in self.secondaries for n in range(1, len(s.enterprises) + 1)
        ]

    def traced_items(self, prefixes: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The products' batch-API items, by the enterprise prefix (among ``prefixes``, as
        allocated) that holds each; an identifier no enterprise holds is a ConfigError.

        >>> demo = Topology.demo()
        >>> items = demo.traced_items(demo.enterprise_prefixes())
        >>> [item["handle"] for item in items["88.100.2"]]
        ['88.100.2/HB75-2026-000123']
        """
        items: dict[str, list[dict[str, Any]]] = {}
        for product in self.products:
            for traced in product.identifiers:
                owner = holder(traced.handle, prefixes)
                if owner is None:
                    raise ConfigError(f"no enterprise holds the prefix of {traced.handle}")
                items.setdefault(owner, []).append(traced.item())
        return items

    def ports(self) -> list[int]:
        ports = [self.top_port, *self.recursive_ports]
        for s in self.secondaries:
            ports.append(s.port)
            ports.extend(e.port for e in s.enterprises if e.port is not None)
        return ports

    def _check_unique(self, where: str) -> None:
        ports = self.ports()
        clash = sorted({p for p in ports if ports.count(p) > 1})
        if clash:
            raise ConfigError(f"{where}: port {clash[0]} is used by more than one node")
        prefixes = [s.prefix for s in self.secondaries]
        if len(set(prefixes)) != len(prefixes):
            raise ConfigError(f"{where}: a secondary prefix appears twice")
        codes = [e.credit_code for s in self.secondaries for e in s.enterprises]
        if len(set(codes)) != len(codes):
            raise ConfigError(f"{where}: a credit code appears twice")


def _own_ports(spec: SecondarySpec) -> list[int]:
    return [e.port for e in spec.enterprises if e.port is not None]


def demo_secret(prefix: str) -> str:
    """The fixed, documented demo secret of identity ``300:0.NA/<prefix>`` (local use only)."""
    return f"demo-{prefix}"


def _secondary(raw: dict[str, Any], top: str, label: str, where: str) -> SecondarySpec:
    _known_keys(raw, _KEYS["secondary"], label, where)
    prefix = _prefix(raw, label, where)
    if not Prefix(top).contains(Prefix(prefix)) or prefix == top:
        raise ConfigError(f"{where} {label}: prefix {prefix} is not below the top prefix {top}")
    return SecondarySpec(
        prefix=prefix,
        port=_port(raw, label, where),
        industry=_text(raw, "industry", label, where),
        owner=_text(raw, "owner", label, where, default=f"Secondary node {prefix}"),
        enterprises=tuple(
            _enterprise(e, f"{label} enterprise #{i + 1}", where)
            for i, e in enumerate(_tables(raw, "enterprise", where))
        ),
    )


def _enterprise(raw: dict[str, Any], label: str, where: str) -> EnterpriseSpec:
    _known_keys(raw, _KEYS["enterprise"], label, where)
    code = _text(raw, "credit_code", label, where)
    if problem := credit_code_problem(code):
        raise ConfigError(f"{where} {label}: credit_code: {problem}")
    products = raw.get("products", ["Product"])
    if (
        not isinstance(products, list)
        or not products
        or not all(isinstance(p, str) and p for p in products)
    ):
        raise ConfigError(f"{where} {label}: products must be a list of names")
    count = raw.get("identifiers", 100)
    if not isinstance(count, int) or not 0 <= count <= 100_000:
        raise ConfigError(f"{where} {label}: identifiers must be 0 to 100000")
    return EnterpriseSpec(
        name=_text(raw, "name", label, where),
        credit_code=code.upper(),
        contact=_text(raw, "contact", label, where, default="contact@example.cn"),
        domain=_text(raw, "domain", label, where, default="id.example.cn"),
        products=tuple(products),
        identifiers=count,
        port=_port(raw, label, where) if "port" in raw else None,
    )


def holder(handle: str, prefixes: list[str]) -> str | None:
    """The longest of ``prefixes`` that holds ``handle``, if any.

    >>> holder("88.100.2/pack", ["88.100.1", "88.100.2"])
    '88.100.2'
    """
    home = Handle.parse(handle).home_prefix
    holding = [p for p in prefixes if Prefix(p).contains(home)]
    return max(holding, key=len, default=None)


def _product(raw: dict[str, Any], enterprises: list[str], label: str, where: str) -> ProductSpec:
    _known_keys(raw, _KEYS["product"], label, where)
    identifiers = tuple(
        _traced(t, enterprises, f"{label} identifier #{i + 1}", where)
        for i, t in enumerate(_tables(raw, "identifier", where))
    )
    if not identifiers:
        raise ConfigError(f"{where} {label}: a product needs [[product.identifier]] tables")
    root = _text(raw, "root", label, where, default=identifiers[0].handle)
    keys = [Handle.parse(t.handle).key for t in identifiers]
    if ascii_lower(root) not in keys:
        raise ConfigError(f"{where} {label}: root {root} is not one of its identifiers")
    return ProductSpec(_text(raw, "name", label, where), root, identifiers)


def _traced(
    raw: dict[str, Any], enterprises: list[str], label: str, where: str
) -> TracedIdentifier:
    _known_keys(raw, _KEYS["identifier"], label, where)
    text = _text(raw, "handle", label, where)
    try:
        handle = Handle.parse(text)
    except InvalidHandle as exc:
        raise ConfigError(f"{where} {label}: {exc.message}") from None
    if holder(handle.text, enterprises) is None:
        known = ", ".join(enterprises)
        raise ConfigError(
            f"{where} {label}: {text} is under no enterprise of this topology ({known})"
        )
    values = raw.get("values")
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where} {label}: values must be a list of {{index, type, data}}")
    label = f"{label} ({text})"
    indexes = set()
    for value in values:
        try:  # checked as a node will check them (the node sets the timestamp)
            checked = HandleValue.from_input(value, now=_NO_TIME, limits=Limits())
        except InvalidValue as exc:
            raise ConfigError(f"{where} {label}: {exc.message}") from None
        if checked.index in indexes:
            raise ConfigError(f"{where} {label}: index {checked.index} appears twice")
        indexes.add(checked.index)
    for link in links_in(values):
        if link.target is None:
            raise ConfigError(f"{where} {label}: {link.relation} link: {link.problem}")
    return TracedIdentifier(handle.text, tuple(values))


def _known_keys(
    raw: dict[str, Any], known: Collection[str], label: str, where: str
) -> dict[str, Any]:
    """``raw``, if it holds no key but ``known`` ones; else a ConfigError naming the key.

    >>> try:
    ...     _known_keys({"identifers": 5}, ["identifiers", "port"], "#1", "t.toml")
    ... except ConfigError as exc:
    ...     print(exc.message)
    t.toml #1: unknown key 'identifers' (did you mean 'identifiers'?); known keys: identifiers, port
    """
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            at = f"{where} {label}" if label else where
            raise ConfigError(
                f"{at}: unknown key {key!r}{guess}; known keys: {', '.join(sorted(known))}"
            )
    return raw


def _table(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: a [{key}] table is required")
    return value


def _tables(raw: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: {key} must be an array of tables ([[{key}]])")
    return value


def _text(raw: dict[str, Any], key: str, label: str, where: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} {label}: {key} is required (a non-empty string)")
    return value.strip()


def _prefix(raw: dict[str, Any], label: str, where: str) -> str:
    text = _text(raw, "prefix", label, where)
    if problem := national_prefix_problem(text):
        raise ConfigError(f"{where} {label}: prefix {text!r}: {problem}")
    return text


def _port(raw: dict[str, Any], label: str, where: str) -> int:
    port = raw.get("port")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{where} {label}: port must be an integer from 1 to 65535")
    return port
