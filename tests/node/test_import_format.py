"""Import lines (NDJSON, CSV) as batch items: pure."""

from __future__ import annotations

import orjson
import pytest

from node.import_format import CsvFormat, NdjsonFormat, format_of
from registry.errors import ConfigError, InvalidValue


def test_an_ndjson_line_is_sent_as_it_is() -> None:
    line = b'{"handle": "88.100.1/a", "values": [{"index": 1, "type": "URL"}]}\r\n'
    assert NdjsonFormat().item(line) == line.strip()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json\n", "not JSON"),
        (b'["88.100.1/a"]\n', "a line is an object"),
        (b'{"values": []}\n', 'no "handle"'),
        (b'{"handle": 7}\n', 'no "handle"'),
    ],
)
def test_an_ndjson_line_that_is_no_item_is_refused_with_why(line: bytes, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        NdjsonFormat(strict=True).item(line)


def test_a_line_that_looks_like_an_object_is_sent_unparsed_unless_strict() -> None:
    assert NdjsonFormat().item(b'{"handle": 7}\n') == b'{"handle": 7}'
    with pytest.raises(InvalidValue, match="an object"):
        NdjsonFormat().item(b"[1]\n")


def test_a_csv_row_becomes_string_values_at_the_columns_positions() -> None:
    fmt = CsvFormat.from_header(b"handle,URL,PRODUCT_NAME,BATCH\r\n")
    item = orjson.loads(fmt.item(b'88.100.1/a,https://x.cn/a,"Lathe, CNC",\r\n'))
    assert item == {
        "handle": "88.100.1/a",
        "values": [
            {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://x.cn/a"}},
            {
                "index": 2,
                "type": "PRODUCT_NAME",
                "data": {"format": "string", "value": "Lathe, CNC"},
            },
        ],
    }


def test_csv_cells_keep_unicode_and_quotes() -> None:
    fmt = CsvFormat.from_header(b"handle,MANUFACTURER\n")
    item = orjson.loads(fmt.item('88.100.1/b,"武汉 ""重工"""\n'.encode()))
    assert item["values"][0]["data"]["value"] == '武汉 "重工"'


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (b"88.100.1/a,x\n", "the row has 2 cells, the header 3"),
        (b",x,y\n", "no handle"),
        (b'88.100.1/a,"x,y\n', "not a CSV row"),
        (b"88.100.1/a,\xff,y\n", "not UTF-8"),
    ],
)
def test_a_csv_row_that_is_no_record_is_refused_with_why(row: bytes, reason: str) -> None:
    fmt = CsvFormat.from_header(b"handle,URL,BATCH\n")
    with pytest.raises(InvalidValue, match=reason):
        fmt.item(row)


@pytest.mark.parametrize("header", [b"name,URL\n", b"handle\n", b"handle,URL,\n", b"\n"])
def test_a_csv_header_must_name_handle_then_types(header: bytes) -> None:
    with pytest.raises(ConfigError):
        CsvFormat.from_header(header)


def test_the_format_comes_from_the_option_else_the_suffix() -> None:
    assert format_of("a/ids.CSV", None) == "csv"
    assert format_of("ids.jsonl", None) == "ndjson"
    assert format_of("ids.csv", "ndjson") == "ndjson"
    with pytest.raises(ConfigError, match="--format"):
        format_of("ids.txt", None)
    with pytest.raises(ConfigError, match="--format"):
        format_of("ids.txt", "xml")


def test_rows_without_quotes_split_as_csv_splits_them() -> None:
    fmt = CsvFormat.from_header(b"handle,URL,BATCH\n")
    plain = fmt.item(b"88.100.1/a, https://x.cn/a ,B 1\r\n")
    quoted = fmt.item(b'"88.100.1/a"," https://x.cn/a ","B 1"\n')
    assert plain == quoted
    assert orjson.loads(plain)["values"][0]["data"]["value"] == " https://x.cn/a "
