"""The Handle REST API's request parameters and body shapes (issue 18), in process, on
the session's real Redis: what the HANDLE.NET Technical Manual's REST API chapter and
the reference servlet (``HandleJsonRestApiServlet``) accept, and how the node answers."""

from __future__ import annotations

import httpx

from tests.node.test_handles import URL_VALUE, put


def indexes(response: httpx.Response) -> list[int]:
    return [v["index"] for v in response.json()["values"]]


# --- GET: type families -------------------------------------------------------------


async def test_type_ending_in_a_period_matches_the_family(client: httpx.AsyncClient) -> None:
    await put(
        client,
        "88.100/fam",
        [
            URL_VALUE,
            {"index": 2, "type": "URL.mirror", "data": "https://b.example"},
            {"index": 3, "type": "URLS", "data": "x"},
            {"index": 4, "type": "EMAIL", "data": "x@y"},
        ],
    )
    family = await client.get("/api/handles/88.100/fam", params={"type": "URL."})
    assert family.status_code == 200 and indexes(family) == [1, 2]
    exact = await client.get("/api/handles/88.100/fam", params={"type": "url"})
    assert indexes(exact) == [1]
    both = await client.get("/api/handles/88.100/fam", params=[("type", "url."), ("index", 4)])
    assert indexes(both) == [1, 2, 4]
