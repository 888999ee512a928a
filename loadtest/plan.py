"""The seed plans' targets as data, and how measured figures are judged against them.

Each plan is a TOML file in ``loadtest/plans/`` (one per seed document): its targets
with what they measure, the scope they apply to, the required figure, the unit and the
sentence of the seed document they come from, quoted in Chinese. Evaluation is pure:
:func:`evaluate` turns a plan and what was observed into table rows.

Scopes::

    per_secondary_node   one row per secondary node; each must meet the target
    per_top_node         one row for the hierarchy's top node
    per_city             one row for the whole hierarchy (the city's nodes)

A target the simulator cannot measure (e.g. "national rank", "integrated applications")
is shown as not measured and does not fail the check; a node that could not be asked
fails its rows, since nothing proves them.

A live view (the top node's status page) judges a row by :func:`standing`, which reads
a figure still below its target by how the measure grows (:data:`GROWTH`)::

    growth      what it is                           below the target
    cumulative  a count that only grows over the     pending: progress, judged when the
                plan's period (enterprises,          plan's period ends (a simulated
                identifiers, secondary nodes)        hierarchy is always inside it)
    daily       a count per UTC day                  pending while the day is not over,
                                                     breached once it is
    state       what the hierarchy offers now        breached

A figure at or past its target is met whatever its growth (counts never go down); a
figure nobody could obtain stays breached, as in the check.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Any

from registry.errors import ConfigError


class Scope(StrEnum):
    PER_SECONDARY_NODE = "per_secondary_node"
    PER_TOP_NODE = "per_top_node"
    PER_CITY = "per_city"


class Measure(StrEnum):
    ENTERPRISES = "enterprises"
    REGISTRATIONS = "registrations"
    RESOLUTIONS_PER_DAY = "resolutions_per_day"
    TOTAL_RESOLUTIONS = "total_resolutions"
    SECONDARY_NODES = "secondary_nodes"
    PUBLIC_SERVICES = "public_services"
    COMMERCIAL_CRYPTOGRAPHY = "commercial_cryptography"
    INTEGRATED_APPLICATIONS = "integrated_applications"
    NATIONAL_RANK = "national_rank"


LOWER_IS_BETTER = frozenset({Measure.NATIONAL_RANK})


class Growth(StrEnum):
    CUMULATIVE = "cumulative"
    DAILY = "daily"
    STATE = "state"


# How each measure's figure grows over time; see the module docstring.
GROWTH: dict[Measure, Growth] = {
    Measure.ENTERPRISES: Growth.CUMULATIVE,
    Measure.REGISTRATIONS: Growth.CUMULATIVE,
    Measure.TOTAL_RESOLUTIONS: Growth.CUMULATIVE,
    Measure.SECONDARY_NODES: Growth.CUMULATIVE,
    Measure.RESOLUTIONS_PER_DAY: Growth.DAILY,
    Measure.PUBLIC_SERVICES: Growth.STATE,
    Measure.COMMERCIAL_CRYPTOGRAPHY: Growth.STATE,
    Measure.INTEGRATED_APPLICATIONS: Growth.STATE,
    Measure.NATIONAL_RANK: Growth.STATE,
}


@dataclass(frozen=True, slots=True)
class Target:
    id: str
    measure: Measure
    scope: Scope
    required: float
    unit: str
    quote: str


@dataclass(frozen=True, slots=True)
class Plan:
    """A seed plan's targets.

    >>> Plan.load("wuhan-5g-2021").targets[2].required
    600000
    """

    name: str
    title: str
    english: str
    source: str
    targets: tuple[Target, ...]

    @classmethod
    def names(cls) -> list[str]:
        folder = resources.files("loadtest").joinpath("plans")
        return sorted(
            p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
        )

    @classmethod
    def load(cls, name: str) -> Plan:
        if name not in cls.names():
            raise ConfigError(f"no plan {name!r}; plans: {', '.join(cls.names())}")
        text = resources.files("loadtest").joinpath(f"plans/{name}.toml").read_text("utf-8")
        return cls.parse(tomllib.loads(text))

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Plan:
        try:
            return cls(
                name=raw["name"],
                title=raw["title"],
                english=raw["english"],
                source=raw["source"],
                targets=tuple(
                    Target(
                        id=t["id"],
                        measure=Measure(t["measure"]),
                        scope=Scope(t["scope"]),
                        required=_number(t["required"]),
                        unit=t["unit"],
                        quote=t["quote"],
                    )
                    for t in raw["target"]
                ),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"malformed plan: {exc!r}") from None


def _number(raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"'required' must be a number, got {raw!r}")
    return raw


@dataclass(frozen=True, slots=True)
class Measurement:
    """A figure and how it was obtained; ``value`` None: could not be measured."""

    value: float | None
    how: str


@dataclass
class Observed:
    """What was measured: per secondary node (by prefix) and for the hierarchy."""

    secondaries: dict[str, dict[Measure, Measurement]] = field(default_factory=dict)
    hierarchy: dict[Measure, Measurement] = field(default_factory=dict)
    # Why the hierarchy was not measured at all (one node checked), else None.
    hierarchy_unmeasured: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    target: Target
    subject: str  # which node or "hierarchy"
    required: float
    measured: float | None
    passed: bool | None  # None: not measured
    how: str

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target.id,
            "subject": self.subject,
            "measure": self.target.measure.value,
            "scope": self.target.scope.value,
            "required": self.required,
            "unit": self.target.unit,
            "measured": self.measured,
            "result": "not measured" if self.passed is None else "pass" if self.passed else "FAIL",
            "how": self.how,
            "quote": self.target.quote,
        }


NOT_MEASURABLE = "the simulator cannot measure this"


def evaluate(plan: Plan, observed: Observed, scale: float = 1.0) -> list[Row]:
    """One row per target (per secondary node for per-secondary targets).

    ``scale`` multiplies every required figure except ranks (for demos and tests of a
    small hierarchy); the rows show the scaled figure.
    """
    rows: list[Row] = []
    for target in plan.targets:
        # Rounded so that a scaled 600,000 x 0.00001 asks for 6, not 6.000000000000001.
        scaled = float(f"{target.required * scale:.12g}")
        required = target.required if target.measure in LOWER_IS_BETTER else scaled
        if target.scope is Scope.PER_SECONDARY_NODE:
            if not observed.secondaries:
                rows.append(Row(target, "no secondary node", required, None, False, "none found"))
            for prefix, figures in sorted(observed.secondaries.items()):
                rows.append(_row(target, f"secondary {prefix}", required, figures))
        elif observed.hierarchy_unmeasured:
            rows.append(
                Row(target, "hierarchy", required, None, None, observed.hierarchy_unmeasured)
            )
        else:
            rows.append(_row(target, "hierarchy", required, observed.hierarchy))
    return rows


def _row(target: Target, subject: str, required: float, figures: dict[Measure, Measurement]) -> Row:
    found = figures.get(target.measure)
    if found is None:
        return Row(target, subject, required, None, None, NOT_MEASURABLE)
    if found.value is None:
        return Row(target, subject, required, None, False, found.how)
    if target.measure in LOWER_IS_BETTER:
        passed = found.value <= required
    else:
        passed = found.value >= required
    return Row(target, subject, required, found.value, passed, found.how)


def failed(rows: list[Row]) -> bool:
    return any(row.passed is False for row in rows)


class Standing(StrEnum):
    """A row as a live view shows it (:func:`standing`)."""

    MET = "pass"
    BREACHED = "FAIL"
    PENDING = "pending"
    NOT_MEASURED = "not measured"


def standing(row: Row, *, day_over: bool) -> tuple[Standing, str]:
    """How a live view judges ``row``, and why (the module docstring has the table);
    ``day_over``: the day the daily figures count is over.

    >>> row = Row(Plan.load("wuhan-5g-2021").targets[2], "secondary 88.100", 600_000, 42,
    ...           False, "resolutions answered on 20260101 (UTC)")
    >>> standing(row, day_over=False)[0], standing(row, day_over=True)[0]
    (<Standing.PENDING: 'pending'>, <Standing.BREACHED: 'FAIL'>)
    """
    if row.passed is None:
        return Standing.NOT_MEASURED, row.how
    if row.passed:
        return Standing.MET, row.how
    if row.measured is None:  # nobody could obtain the figure: nothing proves the row
        return Standing.BREACHED, row.how
    so_far = f"{_figure(row.measured)} of {_figure(row.required)} {row.target.unit} so far"
    growth = GROWTH[row.target.measure]
    if growth is Growth.CUMULATIVE:
        return Standing.PENDING, f"{so_far}; a cumulative target, judged at the plan's end"
    if growth is Growth.DAILY and not day_over:
        return Standing.PENDING, f"{so_far}; the day (UTC) is not over"
    return Standing.BREACHED, row.how


def overall(standings: list[Standing]) -> Standing:
    """One verdict for a table: breached if any row is, else pending if any row is, else
    met (rows not measured do not count)."""
    for verdict in (Standing.BREACHED, Standing.PENDING):
        if verdict in standings:
            return verdict
    return Standing.MET


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10 or value == int(value):
        return f"{value:,.0f}"
    if value >= 0.01:
        return f"{value:,.2f}"
    # Small scaled targets keep two significant digits: 0.000071, not 0.00.
    positional = f"{float(f'{value:.2g}'):.12f}".rstrip("0")
    return positional if positional != "0." else f"{value:.2g}"


def render_text(plan: Plan, rows: list[Row], scale: float) -> str:
    """A plain-text table for the terminal."""
    header = ("target", "subject", "required", "measured", "result", "how measured")
    lines = [header] + [
        (
            row.target.id,
            row.subject,
            f"{_figure(row.required)} {row.target.unit}",
            _figure(row.measured),
            "n/a" if row.passed is None else "pass" if row.passed else "FAIL",
            row.how,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    title = f"{plan.name}: {plan.english} ({plan.title})"
    if scale != 1.0:
        title += f"; targets scaled by {scale:g}"
    out = [title, ""]
    for line in lines:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    verdict = "FAIL" if failed(rows) else "PASS"
    out += [
        "",
        f"{verdict}: {sum(r.passed is True for r in rows)} passed, "
        f"{sum(r.passed is False for r in rows)} failed, "
        f"{sum(r.passed is None for r in rows)} not measured",
    ]
    return "\n".join(out)


def render_markdown(plan: Plan, rows: list[Row], scale: float) -> str:
    out = [
        f"# {plan.english}",
        "",
        f"{plan.title} (seed `{plan.source}`)"
        + (f"; targets scaled by {scale:g}" if scale != 1.0 else ""),
        "",
        "| target | subject | required | measured | result | how measured | source |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        result = "n/a" if row.passed is None else "pass" if row.passed else "**FAIL**"
        out.append(
            f"| {row.target.id} | {row.subject} | {_figure(row.required)} {row.target.unit} | "
            f"{_figure(row.measured)} | {result} | {row.how} | {row.target.quote} |"
        )
    return "\n".join(out) + "\n"
