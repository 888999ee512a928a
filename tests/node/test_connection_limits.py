"""The pure parts of connection hygiene: which connection to evict, what fits."""

from __future__ import annotations

from dataclasses import dataclass

from node.connection_limits import RESERVED_FILES, connections_that_fit, eviction_victim


@dataclass
class Conn:
    busy: bool
    idle_since: float


def test_the_longest_idle_connection_is_evicted() -> None:
    conns = [Conn(False, 5.0), Conn(False, 2.0), Conn(True, 1.0), Conn(False, 3.0)]
    assert eviction_victim(conns) is conns[1]


def test_busy_connections_are_never_evicted() -> None:
    assert eviction_victim([Conn(True, 1.0), Conn(True, 2.0)]) is None
    assert eviction_victim([]) is None


def test_connections_fit_under_the_file_limit() -> None:
    assert connections_that_fit(4096, 1_048_576) == 4096
    assert connections_that_fit(4096, 2048) == 2048 - RESERVED_FILES
    assert connections_that_fit(4096, 100) == 1
