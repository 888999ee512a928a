"""A node's start-up while its store loads: progress, and what the node answers meanwhile.

Redis reads its whole data set into memory before it serves anything: a restart reads
the AOF back (an RDB preamble, then the commands written since), minutes for a store of
a hundred million identifiers. Until then it answers every data command with
``-LOADING``, and ``INFO persistence`` with the progress. A node does not wait for that
before it listens: it answers at once, and builds its state once the store is loaded.

::

    phase      /healthz   /readyz                          any other route
    STARTING   200        503 {"status": "starting"}       503, responseCode 2
    LOADING    200        503 {"status": "loading", ...%}  503, responseCode 2, with the %
    UPGRADING  200        503 {"status": "upgrading", ...} 503, responseCode 2, naming the step
    READY      200        200 {"status": "ready"}          served
    FAILED     200        503 {"status": "failed"}         503 (the process is exiting)

STARTING is the time before the first look at the store and between the end of the
load and the node's state being built (the admin identity...); UPGRADING the time a
store written by an older version is brought to the current layout
(:meth:`registry.store.HandleStore.upgrade`, a page of records at a time). No phase has
a time limit: a load or an upgrade that progresses is waited for however long it takes.

>>> startup = Startup()
>>> startup.loading(LoadingProgress.from_info({"loading": 1, "loading_loaded_perc": 42.0,
...     "loading_eta_seconds": 17, "loading_total_bytes": 3_100_000_000}))
>>> startup.refusal().message
'the node is starting: its store is loading (42%)'
>>> startup.readyz()["message"]
'store loading: 42% of 3.1 GB, eta 17 s'
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registry.errors import StoreLoading


@dataclass(frozen=True, slots=True)
class LoadingProgress:
    """Where a Redis load is, from ``INFO persistence`` (Redis 6.2 and later)."""

    loading: bool
    percent: float = 0.0
    eta_seconds: int | None = None  # Redis says -1 (or nothing) before it can tell
    loaded_bytes: int = 0
    total_bytes: int = 0

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> LoadingProgress:
        """From the fields of ``INFO persistence``, as redis-py parses them or as
        :func:`parse_info` does; fields Redis leaves out (not loading) count as 0.

        >>> LoadingProgress.from_info({"loading": 0})
        LoadingProgress(loading=False, percent=0.0, eta_seconds=None, loaded_bytes=0, total_bytes=0)
        """

        def number(name: str) -> float | None:
            try:
                return float(info[name])
            except (KeyError, TypeError, ValueError):
                return None

        eta = number("loading_eta_seconds")
        return cls(
            loading=number("loading") == 1,
            percent=number("loading_loaded_perc") or 0.0,
            eta_seconds=int(eta) if eta is not None and eta >= 0 else None,
            loaded_bytes=int(number("loading_loaded_bytes") or 0),
            total_bytes=int(number("loading_total_bytes") or 0),
        )

    @classmethod
    def of_all(cls, loads: Sequence[LoadingProgress]) -> LoadingProgress:
        """The load of a store spread over several servers (a cluster's masters): under
        way while any is loading, its bytes summed, its eta the longest.

        >>> a = LoadingProgress(True, 40.0, 10, 40, 100)
        >>> b = LoadingProgress(True, 60.0, 3, 180, 300)
        >>> both = LoadingProgress.of_all([a, b, LoadingProgress(False)])
        >>> both.loading, both.percent, both.eta_seconds, both.total_bytes
        (True, 55.0, 10, 400)
        >>> LoadingProgress.of_all([LoadingProgress(False)]).loading
        False
        """
        busy = [load for load in loads if load.loading]
        if not busy:
            return cls(loading=False)
        loaded = sum(load.loaded_bytes for load in busy)
        total = sum(load.total_bytes for load in busy)
        etas = [load.eta_seconds for load in busy if load.eta_seconds is not None]
        return cls(
            loading=True,
            percent=100.0 * loaded / total if total else min(load.percent for load in busy),
            eta_seconds=max(etas) if etas else None,
            loaded_bytes=loaded,
            total_bytes=total,
        )

    @property
    def message(self) -> str:
        """E.g. ``store loading: 42% of 3.1 GB, eta 17 s`` (the size and the eta when
        Redis knows them)."""
        if not self.loading:
            return "store loaded"
        text = f"store loading: {self.percent:.0f}%"
        if self.total_bytes:
            text += f" of {size(self.total_bytes)}"
        if self.eta_seconds is not None:
            text += f", eta {self.eta_seconds} s"
        return text

    def fields(self) -> dict[str, Any]:
        """The progress as ``/readyz`` shows it (camelCase, as the rest of the API)."""
        return {
            "loadedPercent": round(self.percent, 2),
            "etaSeconds": self.eta_seconds,
            "loadedBytes": self.loaded_bytes,
            "totalBytes": self.total_bytes,
        }


def parse_info(text: str) -> dict[str, str]:
    """The ``field:value`` lines of an ``INFO`` reply (``# Section`` headers skipped).

    >>> parse_info("# Persistence\\r\\nloading:1\\r\\nloading_loaded_perc:4.42\\r\\n")
    {'loading': '1', 'loading_loaded_perc': '4.42'}
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition(":")
        if sep and not name.startswith("#"):
            fields[name] = value
    return fields


def size(count: int) -> str:
    """A byte count for people, in powers of 1000 as disks are sold.

    >>> size(950), size(3_100_000_000), size(94_888_991)
    ('950 B', '3.1 GB', '94.9 MB')
    """
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


class Phase(enum.Enum):
    STARTING = "starting"
    LOADING = "loading"
    UPGRADING = "upgrading"
    READY = "ready"
    FAILED = "failed"


class Startup:
    """One node's start-up phase (see the module docstring's table), told by the task
    that waits for the store and builds the node; asked by ``/readyz`` and by every
    route while the node is not ready."""

    def __init__(self) -> None:
        self.phase = Phase.STARTING
        self.progress: LoadingProgress | None = None
        self.upgrade: tuple[str, int] | None = None  # the upgrade's step, records done
        self.error: BaseException | None = None

    def loading(self, progress: LoadingProgress) -> None:
        """The store said how its load goes: LOADING while it loads, STARTING after."""
        self.progress = progress
        self.phase = Phase.LOADING if progress.loading else Phase.STARTING

    def upgrading(self, step: str, records: int) -> None:
        """The store's upgrade is at ``step``, ``records`` gone through in it."""
        self.phase, self.upgrade = Phase.UPGRADING, (step, records)

    def building(self) -> None:
        """The store is loaded and at the current layout; the node is being built."""
        self.phase, self.progress, self.upgrade = Phase.STARTING, None, None

    def ready(self) -> None:
        self.phase, self.progress = Phase.READY, None

    def failed(self, error: BaseException) -> None:
        self.phase, self.error = Phase.FAILED, error

    def refusal(self) -> StoreLoading:
        """The error every route answers with until the node is ready."""
        if self.phase is Phase.LOADING and self.progress is not None:
            percent = f"{self.progress.percent:.0f}%"
            return StoreLoading(f"the node is starting: its store is loading ({percent})")
        if self.phase is Phase.UPGRADING and self.upgrade is not None:
            return StoreLoading(f"the node is starting: its store is upgraded ({self.upgrade[0]})")
        if self.phase is Phase.FAILED:
            return StoreLoading(f"the node failed to start: {_text(self.error)}")
        return StoreLoading("the node is starting")

    def readyz(self) -> dict[str, Any]:
        """The ``/readyz`` body while the node is not ready (answered with 503)."""
        body: dict[str, Any] = {"status": self.phase.value, "responseCode": 2}
        if self.phase is Phase.LOADING and self.progress is not None:
            body["message"] = self.progress.message
            body.update(self.progress.fields())
        elif self.phase is Phase.UPGRADING and self.upgrade is not None:
            step, records = self.upgrade
            body["message"] = f"store upgrade: {step}, {records:,} records done"
            body.update(upgradeStep=step, recordsDone=records)
        elif self.phase is Phase.FAILED:
            body["message"] = f"the node failed to start: {_text(self.error)}"
        else:
            body["message"] = "the node is starting"
        return body


def _text(error: BaseException | None) -> str:
    return str(getattr(error, "message", None) or error)


def still_loading(body: object) -> str | None:
    """The progress message of a ``/readyz`` body from a node whose store is loading or
    being upgraded (alive and progressing: no start-up timeout should count it), else
    None; for whoever waits for a node to be ready (``idnode up``, the worker supervisor).

    >>> still_loading({"status": "loading", "message": "store loading: 42%"})
    'store loading: 42%'
    >>> still_loading({"status": "upgrading", "message": "store upgrade: ..."})
    'store upgrade: ...'
    >>> still_loading({"status": "ready"}) is None
    True
    """
    progressing = (Phase.LOADING.value, Phase.UPGRADING.value)
    if isinstance(body, Mapping) and body.get("status") in progressing:
        return str(body.get("message") or "store loading")
    return None


def built(body: object) -> bool:
    """Whether a ``/readyz`` body comes from a node that is built: ready, or serving
    with its store unavailable for now (a node that is starting is neither).

    >>> built({"status": "ready"}), built({"status": "loading"}), built(None)
    (True, False, False)
    """
    return isinstance(body, Mapping) and body.get("status") in ("ready", "unavailable")
