"""``loadtest.catalog.seed_jobs``: a catalog turned into batch registrations (pure)."""

from __future__ import annotations

from typing import Any

from loadtest.catalog import seed_jobs


def enterprise(prefix: str, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "prefix": prefix,
        "node": "http://127.0.0.1:8001",
        "secondary": prefix.rsplit(".", 1)[0],
        "identity": f"300:0.NA/{prefix}",
        "secret": f"demo-{prefix}",
        "count": 3,
        "manufacturer": "Jianghan Motor Works",
        "url_prefix": "https://id.jianghan-motor.example.cn/products/",
    }
    entry.update(overrides)
    return entry


def test_one_job_per_enterprise_with_its_own_credentials_and_node() -> None:
    catalog = {"enterprises": [enterprise("88.100.1"), enterprise("88.101.1", count=2)]}
    first, second = seed_jobs(catalog)
    assert (first.prefix, first.node_url) == ("88.100.1", "http://127.0.0.1:8001")
    assert first.credentials.identity == "300:0.NA/88.100.1"
    assert first.credentials.secret == "demo-88.100.1"
    assert [i["handle"] for i in first.items] == [
        "88.100.1/demo-0001",
        "88.100.1/demo-0002",
        "88.100.1/demo-0003",
    ]
    assert len(second.items) == 2


def test_seeded_values_carry_the_catalogs_url_and_manufacturer() -> None:
    (job,) = seed_jobs({"enterprises": [enterprise("88.100.1", count=1)]})
    values = {v["type"]: v["data"]["value"] for v in job.items[0]["values"]}
    assert values["URL"] == "https://id.jianghan-motor.example.cn/products/demo-0001"
    assert values["MANUFACTURER"] == "Jianghan Motor Works"


def test_a_url_prefix_of_another_shape_is_normalised_so_lookups_match() -> None:
    entry = enterprise("88.100.2", url_prefix="https://shop.example.cn/p?id=")
    (job,) = seed_jobs({"enterprises": [entry]})
    assert entry["url_prefix"] == "https://shop.example.cn/products/"
    url = {v["type"]: v["data"]["value"] for v in job.items[0]["values"]}["URL"]
    assert url == entry["url_prefix"] + "demo-0001"


def test_without_a_url_prefix_or_manufacturer_the_prefix_names_them() -> None:
    entry = enterprise("88.102.1", url_prefix="")
    del entry["manufacturer"]
    (job,) = seed_jobs({"enterprises": [entry]})
    values = {v["type"]: v["data"]["value"] for v in job.items[0]["values"]}
    assert values["URL"] == "https://id.88.102.1.example.cn/products/demo-0001"
    assert values["MANUFACTURER"] == "88.102.1"
