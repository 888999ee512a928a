"""The OpenAPI contract: offline documentation pages and each role's schema."""

from __future__ import annotations

import re

import httpx
import pytest

# src="...", href="...", url: '...' and openapi_url in the pages' scripts
_REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


def _references(html: str) -> set[str]:
    return {a or b for a, b in _REFERENCES.findall(html)}


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            "/docs",
            {
                "/docs/assets/swagger-ui-bundle.js",
                "/docs/assets/swagger-ui.css",
                "/docs/assets/favicon.png",
                "/openapi.json",
            },
        ),
        ("/redoc", {"/docs/assets/redoc.standalone.js", "/docs/assets/favicon.png"}),
    ],
)
async def test_docs_pages_load_only_the_nodes_own_assets(
    client: httpx.AsyncClient, page: str, expected: set[str]
) -> None:
    answer = await client.get(page)
    assert answer.status_code == 200
    html = answer.text
    assert "http://" not in html and "https://" not in html, html  # no CDN, no fonts
    references = _references(html)
    assert expected <= references, references
    for url in references:
        assert url.startswith("/"), url
        loaded = await client.get(url)
        assert loaded.status_code == 200, url
        assert loaded.content, url
    assert "redoc" in (await client.get("/redoc")).text.lower()


async def test_redoc_names_the_schema(client: httpx.AsyncClient) -> None:
    html = (await client.get("/redoc")).text
    assert 'spec-url="/openapi.json"' in html


async def test_swagger_ui_asks_no_online_validator(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert '"validatorUrl": null' in html


async def test_docs_pages_are_not_operations(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]
