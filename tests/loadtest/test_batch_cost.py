"""``loadtest.batch_cost``: the in-process batch measurement registers every identifier it
is credited with, on a real Redis, and refuses to measure a batch that was not taken."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from loadtest.batch_cost import PREFIX, _post, measure
from loadtest.capacity_batch import BATCH, batch_body, handle_name
from node.app import create_app
from registry.record_keys import listing_key
from resolver.upstream import Credentials
from tests.conftest import StoreServer, index_count, node_config, stored_record


async def test_the_measured_batches_are_registered_whole(
    redis: Redis, redis_server: StoreServer
) -> None:
    cpu = await measure(redis_server.url, 2)
    assert cpu > 0
    assert await index_count(redis, listing_key(PREFIX)) == 3 * BATCH  # the warm-up and two more
    last = handle_name(PREFIX, 3 * BATCH - 1).lower()
    assert await stored_record(redis, last) is not None


async def test_a_refused_batch_stops_the_measurement(
    redis: Redis, redis_server: StoreServer
) -> None:
    app = create_app(node_config(redis_server.url))
    wrong = Credentials(f"300:0.NA/{PREFIX}", "not-the-secret").header()
    async with app.router.lifespan_context(app):
        with pytest.raises(RuntimeError, match=r"not registered whole \(401\)"):
            await _post(app, batch_body(PREFIX, 0, BATCH), wrong)
    assert await index_count(redis, listing_key(PREFIX)) == 0
