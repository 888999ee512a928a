"""Locust scenarios against an idnode hierarchy. Run by ``idnode bench`` in its own
process (Locust patches the standard library with gevent; nodes never import this).

The hierarchy and its seeded identifiers come from the catalog file named by
``IDNODE_BENCH_CATALOG`` (written by ``idnode bench``)::

    {"top": URL, "secondaries": {"88.100": URL, ...},
     "enterprises": [{"prefix", "node", "secondary", "identity", "secret", "count"}],
     "scenario": "resolve" | "mixed", "unknown_share": 0.02,
     "run_seconds": S, "peak_users": U, "shape": "day" | "flat"}

Users (every task checks its answer; a 200 with a wrong body is a failure):

* ``TopResolver``: Zipf-popular identifiers of every enterprise, plus a share of
  unknown ones (which must be 404, responseCode 100), through the top node.
* ``SecondaryResolver``: the same, asked directly of the secondary nodes holding them,
  each node in turn; requests are named per node ("resolve at 88.100") so each node
  gets its own figures.
* ``Registrar``: enterprises registering identifiers one at a time and in batches.
* ``Searcher``: listing an enterprise's identifiers and reverse lookup by URL.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import uuid
from typing import Any
from urllib.parse import quote

from locust import LoadTestShape, between, task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.traffic import DiurnalCurve, ZipfSampler

CATALOG: dict[str, Any] = json.loads(open(os.environ["IDNODE_BENCH_CATALOG"]).read())
UNKNOWN_SHARE = float(CATALOG.get("unknown_share", 0.02))
ENTERPRISES: list[dict[str, Any]] = CATALOG["enterprises"]
HOSTED = [e for e in ENTERPRISES if e["node"] == CATALOG["secondaries"].get(e["secondary"])]
# Every seeded identifier, most popular first (Zipf ranks across all enterprises).
IDENTIFIERS = [
    (e, f"{e['prefix']}/demo-{n:04d}")
    for n in range(1, max(e["count"] for e in ENTERPRISES) + 1)
    for e in ENTERPRISES
    if n <= e["count"]
]
# Per secondary node, the identifiers it holds itself: each node gets its own clients.
BY_SECONDARY: dict[str, list[tuple[dict[str, Any], str]]] = {}
for _enterprise, _handle in IDENTIFIERS:
    if _enterprise in HOSTED:
        BY_SECONDARY.setdefault(_enterprise["secondary"], []).append((_enterprise, _handle))
_popular = ZipfSampler(len(IDENTIFIERS), s=1.1)
_popular_at = {prefix: ZipfSampler(len(ids), s=1.1) for prefix, ids in BY_SECONDARY.items()}


def _auth(enterprise: dict[str, Any]) -> dict[str, str]:
    user = quote(enterprise["identity"], safe="")
    token = base64.b64encode(f"{user}:{enterprise['secret']}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _check_record(response: Any, handle: str) -> None:
    """A found record must be a record of the handle asked for."""
    try:
        body = response.json()
    except ValueError:
        response.failure("the body is not JSON")
        return
    if body.get("responseCode") != 1 or body.get("handle", "").lower() != handle.lower():
        response.failure(f"wrong record: {str(body)[:120]}")
    elif not body.get("values"):
        response.failure("a record without values")


def _resolve(
    user: FastHttpUser, base: str, enterprise: dict[str, Any], handle: str, name: str
) -> None:
    unknown = random.random() < UNKNOWN_SHARE
    if unknown:
        handle = f"{enterprise['prefix']}/unknown-{uuid.uuid4().hex[:10]}"
    with user.client.get(
        f"{base}/api/handles/{handle}", name=name, catch_response=True
    ) as response:
        if unknown:
            if response.status_code == 404 and response.json().get("responseCode") == 100:
                response.success()
            else:
                response.failure(f"unknown identifier answered {response.status_code}")
        elif response.status_code != 200:
            response.failure(f"HTTP {response.status_code}: {response.text[:120]}")
        else:
            _check_record(response, handle)


class TopResolver(FastHttpUser):
    """Resolves through the top node (the public entry)."""

    weight = 3
    wait_time = between(0.05, 0.15)
    host = CATALOG["top"]

    @task
    def resolve(self) -> None:
        enterprise, handle = IDENTIFIERS[_popular.draw()]
        _resolve(self, CATALOG["top"], enterprise, handle, "resolve via top")


class SecondaryResolver(FastHttpUser):
    """A client of the secondary nodes, asking each node in turn for identifiers it
    holds, the popular ones most often: every node gets an equal share of requests
    however many users the day's shape runs at a moment."""

    weight = 3
    wait_time = between(0.05, 0.15)
    host = CATALOG["top"]

    def on_start(self) -> None:
        prefixes = sorted(BY_SECONDARY)
        start = random.randrange(len(prefixes)) if prefixes else 0
        self.turns = itertools.cycle(prefixes[start:] + prefixes[:start])

    @task
    def resolve(self) -> None:
        secondary = next(self.turns, None)
        if secondary is None:
            return
        identifiers = BY_SECONDARY[secondary]
        enterprise, handle = identifiers[_popular_at[secondary].draw()]
        base = CATALOG["secondaries"][secondary]
        _resolve(self, base, enterprise, handle, f"resolve at {secondary}")


class Registrar(FastHttpUser):
    """An enterprise registering identifiers, singly and in batches of 50."""

    weight = 1
    wait_time = between(0.5, 1.5)
    host = CATALOG["top"]

    def on_start(self) -> None:
        self.enterprise = random.choice(ENTERPRISES)
        self.counter = itertools.count()

    def _new_handle(self) -> str:
        return f"{self.enterprise['prefix']}/bench-{uuid.uuid4().hex[:8]}-{next(self.counter)}"

    @staticmethod
    def _values(handle: str) -> list[dict[str, Any]]:
        return [
            {"index": 1, "type": "URL", "data": f"https://bench.example.cn/{handle}"},
            {"index": 2, "type": "BATCH", "data": "BENCH"},
        ]

    @task(3)
    def register_one(self) -> None:
        handle = self._new_handle()
        with self.client.put(
            f"{self.enterprise['node']}/api/handles/{handle}",
            json={"values": self._values(handle)},
            headers=_auth(self.enterprise),
            name="register one",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"HTTP {response.status_code}: {response.text[:120]}")

    @task(1)
    def register_batch(self) -> None:
        items = [
            {"handle": h, "values": self._values(h)}
            for h in (self._new_handle() for _ in range(50))
        ]
        with self.client.post(
            f"{self.enterprise['node']}/api/batch/handles",
            json={"handles": items},
            headers=_auth(self.enterprise),
            name="register batch of 50",
            catch_response=True,
        ) as response:
            body = response.json() if response.status_code == 200 else {}
            if body.get("created") != 50:
                response.failure(f"batch: HTTP {response.status_code} {str(body)[:120]}")


class Searcher(FastHttpUser):
    """Lists an enterprise's identifiers and looks identifiers up by URL."""

    weight = 1
    wait_time = between(0.5, 1.5)
    host = CATALOG["top"]

    @task
    def list_page(self) -> None:
        enterprise = random.choice(ENTERPRISES)
        with self.client.get(
            f"{enterprise['node']}/api/handles?prefix={enterprise['prefix']}&page=0&pageSize=20",
            headers=_auth(enterprise),
            name="list a page",
            catch_response=True,
        ) as response:
            body = response.json() if response.status_code == 200 else {}
            if body.get("responseCode") != 1 or not body.get("handles"):
                response.failure(f"listing: HTTP {response.status_code} {str(body)[:120]}")

    @task
    def reverse_lookup(self) -> None:
        enterprise = random.choice(HOSTED or ENTERPRISES)
        n = random.randint(1, enterprise["count"])
        handle = f"{enterprise['prefix']}/demo-{n:04d}"
        url = enterprise["url_prefix"] + f"demo-{n:04d}"
        with self.client.get(
            f"{enterprise['node']}/hrls/handles?URL={quote(url, safe='')}",
            name="reverse lookup",
            catch_response=True,
        ) as response:
            found = response.json() if response.status_code == 200 else []
            if handle not in found:
                response.failure(f"{handle} not found by its URL: {str(found)[:120]}")


SCENARIOS: dict[str, list[type[FastHttpUser]]] = {
    "resolve": [TopResolver, SecondaryResolver],
    "mixed": [TopResolver, SecondaryResolver, Registrar, Searcher],
}
for _user in {TopResolver, SecondaryResolver, Registrar, Searcher} - set(
    SCENARIOS[CATALOG.get("scenario", "resolve")]
):
    _user.abstract = True  # Locust runs only the scenario's user classes


class DayShape(LoadTestShape):
    """A day compressed into the run: users follow :class:`DiurnalCurve`."""

    curve = DiurnalCurve(float(CATALOG["run_seconds"]))
    peak = int(CATALOG["peak_users"])
    flat = CATALOG.get("shape", "day") == "flat"

    def tick(self) -> tuple[int, float] | None:
        elapsed = float(self.get_run_time())  # type: ignore[no-untyped-call]
        if elapsed >= self.curve.run_seconds:
            return None
        users = self.peak if self.flat else self.curve.users(elapsed, self.peak)
        return users, max(1.0, self.peak / 2)
