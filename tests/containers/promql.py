"""The series a PromQL expression reads: metric names, their label matchers, and the
labels it groups by. Enough of PromQL to check a dashboard against real ``/metrics``.

>>> [s.metric for s in selectors('sum by (node) (rate(a_total{x="1"}[5m])) / b')]
['a_total', 'b']
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

# Words that are never metric names where they stand: set operators, modifiers and
# literals; an identifier followed by "(" is a function or an aggregation.
KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end", "atan2"}
)
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"(0x[0-9a-fA-F]+|\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+)")
_MATCHER = re.compile(
    r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)\s*(,|$)"""
)


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # =, !=, =~, !~
    value: str


@dataclass
class Selector:
    metric: str
    matchers: list[Matcher] = field(default_factory=list)


@dataclass
class Query:
    selectors: list[Selector]
    grouping: set[str]  # labels named in by/without/on/ignoring/group_* lists


def selectors(expr: str) -> list[Selector]:
    return parse(expr).selectors


def parse(expr: str) -> Query:
    """The selectors and grouping labels of ``expr``; Grafana variables (``$node``,
    ``$__rate_interval``, ``${x}``) may appear where PromQL has a value or a duration."""
    found: list[Selector] = []
    grouping: set[str] = set()
    i, n = 0, len(expr)
    last_was_metric = False
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
            continue
        if c in "\"'`":
            i = _string_end(expr, i)
            last_was_metric = False
        elif c == "[":  # a range or subquery: durations and variables only
            i = expr.index("]", i) + 1
            last_was_metric = False
        elif c == "{":
            end = _brace_end(expr, i)
            matchers = _matchers(expr[i + 1 : end])
            if last_was_metric:
                found[-1].matchers.extend(matchers)
            else:  # {__name__="x", ...}
                names = [m.value for m in matchers if m.label == "__name__" and m.op == "="]
                if len(names) != 1:
                    raise ValueError(f"a selector without one metric name in {expr!r}")
                rest = [m for m in matchers if m.label != "__name__"]
                found.append(Selector(names[0], rest))
            i = end + 1
            last_was_metric = False
        elif c == "$":
            match = re.compile(r"\$(\{[^}]*\}|\w+)").match(expr, i)
            if match is None:
                raise ValueError(f"a lone $ at {i} in {expr!r}")
            i = match.end()
            last_was_metric = False
        elif (number := _NUMBER.match(expr, i)) and not _IDENT.match(expr, i):
            i = number.end()
            # a duration after "offset" (5m) is digits then letters
            while i < n and expr[i].isalpha():
                i += 1
            last_was_metric = False
        elif ident := _IDENT.match(expr, i):
            word = ident.group()
            i = ident.end()
            j = i
            while j < n and expr[j].isspace():
                j += 1
            follows_paren = j < n and expr[j] == "("
            # "sum by (x) (...)": an aggregation whose grouping comes first
            next_word = _IDENT.match(expr, j)
            grouped = next_word is not None and next_word.group() in ("by", "without")
            if word in GROUPING:
                if follows_paren:
                    close = expr.index(")", j)
                    grouping.update(
                        label.strip() for label in expr[j + 1 : close].split(",") if label.strip()
                    )
                    i = close + 1
                last_was_metric = False
            elif follows_paren or grouped or word.lower() in KEYWORDS:
                last_was_metric = False
            else:
                found.append(Selector(word))
                last_was_metric = True
        else:
            i += 1
            last_was_metric = False
    return Query(found, grouping)


def _string_end(expr: str, start: int) -> int:
    quote = expr[start]
    i = start + 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    raise ValueError(f"an unterminated string in {expr!r}")


def _brace_end(expr: str, start: int) -> int:
    i = start + 1
    while i < len(expr):
        if expr[i] in "\"'`":
            i = _string_end(expr, i)
            continue
        if expr[i] == "}":
            return i
        i += 1
    raise ValueError(f"an unclosed {{ in {expr!r}")


def _matchers(text: str) -> list[Matcher]:
    matchers: list[Matcher] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _MATCHER.match(text, position)
        if match is None:
            raise ValueError(f"cannot read the label matchers {text!r} at {position}")
        raw = match.group(3)
        value = raw[1:-1] if raw.startswith("`") else ast.literal_eval(raw)
        matchers.append(Matcher(match.group(1), match.group(2), value))
        position = match.end()
    return matchers
