"""Fixtures of the real-process tests: a Redis Cluster of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from node.embedded_cluster import EmbeddedCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    """A fresh local Redis Cluster, 3 masters with a replica each, stopped after the
    test (the session's cluster is shared; a test that kills or moves a member needs
    one of its own)."""
    running = EmbeddedCluster(tmp_path / "cluster", masters=3, replicas=1)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def records_on(port: int, prefix: str = "88.100") -> int:
    """How many record buckets of ``prefix`` the cluster member on ``port`` holds."""
    with redis.Redis(port=port) as member:
        return sum(1 for _ in member.scan_iter(match=f"r:{{{prefix}/*", count=1000))
