"""The compact stored form: the answer built from it is byte for byte the Handle JSON
body a record answered with when it was stored as JSON, and the record reads back."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from registry.identifier import Handle
from registry.record import HandleRecord
from registry.stored_form import from_stored, is_compact, public_json, to_stored
from registry.value import DEFAULT_ADMIN_PERMISSIONS, AdminRef, DataFormat, HandleValue
from registry.value_formats import ValueRef
from tests.registry.strategies import fast

NOW = "2026-01-05T08:30:00Z"
HANDLE = Handle.parse("88.100.1/demo-0001")


def value(index: int, type_: str, data: object, fmt: DataFormat = DataFormat.STRING, **kw: object):
    fields = {"ttl": 86400, "timestamp": NOW, **kw}
    return HandleValue(index, type_, fmt, data, **fields)  # type: ignore[arg-type]


def demo() -> HandleRecord:
    admin = AdminRef("0.NA/88.100.1", 300, DEFAULT_ADMIN_PERMISSIONS)
    return HandleRecord(
        HANDLE,
        (
            value(1, "URL", "https://id.a.cn/products/demo-0001"),
            value(2, "PRODUCT_NAME", "Pump"),
            value(3, "BATCH", "B20260105-01"),
            value(4, "PRODUCTION_DATE", "2026-01-05"),
            value(5, "MANUFACTURER", "ACME"),
            value(100, "HS_ADMIN", admin, DataFormat.ADMIN),
        ),
    )


def test_a_demo_record_keeps_only_what_differs_from_the_defaults() -> None:
    stored = to_stored(demo())
    assert stored == (
        b'[1767601800,[1,"URL","https://id.a.cn/products/demo-0001"],[2,"PRODUCT_NAME","Pump"],'
        b'[3,"BATCH","B20260105-01"],[4,"PRODUCTION_DATE","2026-01-05"],'
        b'[5,"MANUFACTURER","ACME"],[100,"HS_ADMIN",0]]'
    )
    assert len(stored) * 4 < len(demo().public_body())
    assert public_json(stored, HANDLE) == demo().public_body()
    assert from_stored(stored, HANDLE) == demo()


def test_a_value_shared_by_records_is_coded_for_each_record_s_prefix_and_stamp() -> None:
    # One admin value object (as a batch shares it): its own prefix's admin in one
    # record, another prefix's in the next; one URL value, at the record's stamp in one
    # record and not in the next. Coded in turn, each record still reads back.
    admin = value(100, "HS_ADMIN", AdminRef("0.NA/88.100.1", 300, DEFAULT_ADMIN_PERMISSIONS))
    admin = value(100, "HS_ADMIN", admin.value, DataFormat.ADMIN)
    url = value(1, "URL", "https://x")
    later = [value(n, "NOTE", "n", timestamp="2027-01-01T00:00:00Z") for n in (2, 3, 4)]
    records = [
        HandleRecord(Handle.parse("88.100.1/a"), (url, admin)),
        HandleRecord(Handle.parse("88.100.2/a"), (url, admin)),
        HandleRecord(Handle.parse("88.100.1/b"), (url, *later, admin)),
        HandleRecord(Handle.parse("88.100.1/c"), (url, admin)),
    ]
    for _ in range(2):
        for rec in records:
            assert from_stored(to_stored(rec), rec.handle) == rec
    assert to_stored(records[0]).endswith(b',[100,"HS_ADMIN",0]]')
    assert b'"0.NA/88.100.1",300' in to_stored(records[1])
    assert b'[1,"URL","https://x",{"t":' in to_stored(records[2])


def test_everything_that_differs_is_kept() -> None:
    rec = HandleRecord(
        Handle.parse("88.100.1/MiXed"),
        (
            value(1, "URL", "u", ttl=60, timestamp="2025-12-31T23:59:59Z"),
            value(2, "NOTE", "hidden", permissions="1100"),
            value(3, "HS_SECKEY", "hash-of-secret", permissions="1100"),
            value(4, "HS_SECKEY", "hash-of-secret-too"),
            value(5, "EXPIRES", "x", ttl="2027-01-01T00:00:00Z", timestamp="not a date"),
            value(6, "REF", "r", references=(ValueRef("88.100/x", 1),)),
            value(7, "HS_VLIST", (ValueRef("88.100/a", 300),), DataFormat.VLIST),
            value(8, "BLOB", "AAEC", DataFormat.BASE64),
            value(9, "HS_SITE", {"version": 1, "servers": []}, DataFormat.SITE),
            value(10, "HS_PUBKEY", {"kty": "RSA", "n": "AQAB", "e": "AQAB"}, DataFormat.KEY),
            value(11, "hs_admin", AdminRef("0.NA/88.100", 300, "111111111111"), DataFormat.ADMIN),
            value(
                12,
                "HS_ADMIN",
                AdminRef("88.100.1/me", 1, DEFAULT_ADMIN_PERMISSIONS),
                DataFormat.ADMIN,
            ),  # fmt: skip
            value(13, "ADMIN_AS_TEXT", "0", DataFormat.STRING),
            value(14, "READONLY", "ro", permissions="1010"),
        ),
    )
    stored = to_stored(rec)
    assert from_stored(stored, Handle.parse("88.100.1/mixed")) == rec
    body = public_json(stored, Handle.parse("88.100.1/MIXED"))
    assert body == rec.public_body()
    shown = [v["index"] for v in orjson.loads(body)["values"]]
    assert 2 not in shown and 3 not in shown and 4 not in shown and 14 in shown


def test_bodies_stored_as_json_read_as_they_are() -> None:
    rec = HandleRecord(HANDLE, (value(1, "URL", "u"), value(2, "NOTE", "n", permissions="1100")))
    public, full = rec.bodies()
    assert not is_compact(public) and is_compact(to_stored(rec))
    assert public_json(public, HANDLE) == public
    assert from_stored(public, HANDLE, full) == rec


_types = st.sampled_from(["URL", "EMAIL", "HS_SECKEY", "hs_seckey", "NOTE", "HS_ADMIN", "x"])
_stamps = st.sampled_from([NOW, "2026-01-05T08:30:01Z", "1999-12-31T23:59:59Z", "a stamp"])
_refs = st.lists(
    st.builds(ValueRef, st.sampled_from(["88.100/a", "0.NA/88.100"]), st.integers(1, 400)),
    max_size=2,
).map(tuple)
_admins = st.builds(
    AdminRef,
    st.sampled_from(["0.NA/88.100.1", "0.NA/88.100", "88.100.1/me"]),
    st.sampled_from([300, 200, 1]),
    st.sampled_from([DEFAULT_ADMIN_PERMISSIONS, "111111111111"]),
)


@st.composite
def values(draw: st.DrawFn, index: int) -> HandleValue:
    fmt = draw(st.sampled_from(list(DataFormat)))
    type_ = "HS_ADMIN" if fmt is DataFormat.ADMIN else draw(_types)
    data = {
        DataFormat.ADMIN: _admins,
        DataFormat.VLIST: _refs,
        DataFormat.SITE: st.just({"version": 1, "servers": [{"address": "1.2.3.4"}]}),
        DataFormat.KEY: st.just({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AB"}),
    }.get(fmt, st.text(max_size=20))
    return HandleValue(
        index,
        type_,
        fmt,
        draw(data),  # type: ignore[arg-type]
        draw(st.one_of(st.just(86400), st.integers(0, 2**31 - 1), st.just("2030-01-01T00:00:00Z"))),
        draw(_stamps),
        draw(st.sampled_from(["1110", "1100", "1010", "0110", "0010"])),
        draw(_refs),
    )


@st.composite
def records(draw: st.DrawFn) -> HandleRecord:
    indexes = sorted(draw(st.sets(st.integers(1, 500), max_size=8)))
    text = draw(st.sampled_from(["88.100.1/a", "88.100.1/Ab", "0.NA/88.100.1", "88.100.1/中"]))
    return HandleRecord(Handle.parse(text), tuple(draw(values(i)) for i in indexes))


@fast
@given(records())
def test_any_record_answers_as_its_json_body_did_and_reads_back(rec: HandleRecord) -> None:
    stored = to_stored(rec)
    asked = Handle.parse(rec.handle.text.upper().replace("0.NA", "0.NA"))
    assert public_json(stored, asked) == rec.public_body()
    assert from_stored(stored, asked) == rec
    assert from_stored(stored, asked).handle.text == rec.handle.text
