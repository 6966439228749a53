"""Customer files: CSV and JSONL parsing; bad rows become dead letters with a reason, good rows load."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
import pytest

from forewarn.connectors.customer_files import read_customers
from forewarn.records import Customer, DeadLetter

HEADER = (
    "id,phone,email,preferred_channel,region,lat,lon,timezone,language,opt_out_sms,opt_out_email,"
    "model,firmware,lot,installed,tier\n"
)
GOOD_1 = "CU-1,+1 512-555-0100,ana@example.com,sms,TX-453,30.27,-97.74,America/Chicago,en,false,,R7000,2.1.7,L-2211,2025-03-01,gold\n"  # noqa: E501
BAD_PHONE = "CU-2,5125550100,bob@example.com,email,TX-453,,,UTC,,,,,,,,\n"
BAD_EMAIL = "CU-3,,bob@@example.com,email,TX-453,,,UTC,,,,,,,,\n"
NO_ID = ",+15125550101,,sms,TX-453,,,UTC,,,,,,,,\n"
BAD_TZ = "CU-5,,,sms,TX-453,,,Mars/Olympus,,,,,,,,\n"
GOOD_2 = "CU-6,,carol@example.com,email,OK-1,,,,,yes,true,,,,,\n"


def split(results: list[Customer | DeadLetter]) -> tuple[list[Customer], list[DeadLetter]]:
    good = [r for r in results if isinstance(r, Customer)]
    return good, [r for r in results if isinstance(r, DeadLetter)]


def test_csv_good_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(HEADER + GOOD_1 + BAD_PHONE + BAD_EMAIL + NO_ID + "\n" + BAD_TZ + GOOD_2)
    good, dead = split(list(read_customers(path)))

    assert [c.id for c in good] == ["CU-1", "CU-6"]
    ana, carol = good
    assert ana.phone == "+15125550100" and ana.timezone == "America/Chicago" and ana.lat == 30.27
    assert ana.products[0].model == "R7000" and ana.products[0].installed == date(2025, 3, 1)
    assert ana.attributes()["lot"] == {"L-2211"} and ana.model_extra == {"tier": "gold"}
    assert not ana.opt_out.sms
    # empty cells are missing: defaults apply, no product, no phone
    assert carol.phone is None and carol.timezone == "UTC" and carol.language == "en" and carol.products == ()
    assert carol.opt_out.sms and carol.opt_out.email and carol.contact("email") is None

    reasons = {d.origin.line: d.reason for d in dead}
    assert set(reasons) == {3, 4, 5, 7}  # line 6 is blank and skipped
    assert reasons[3].startswith("phone: ") and "international" in reasons[3]
    assert reasons[4].startswith("email: ")
    assert reasons[5] == "id: Field required"
    assert reasons[7].startswith("timezone: ") and "Mars/Olympus" in reasons[7]
    for d in dead:
        assert d.step == "customers.load" and d.origin.source == str(path)
    assert next(d for d in dead if d.origin.line == 3).raw == BAD_PHONE.rstrip("\n").encode()


def test_reasons_carry_no_personal_values(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "CU-1,+1 512 5,dave smith@example.com,sms,R,,,,,,,,,,,\n")
    [dead] = list(read_customers(path))
    assert isinstance(dead, DeadLetter)
    assert "phone: " in dead.reason and "email: " in dead.reason
    for value in ("512", "dave", "smith", "example.com"):
        assert value not in dead.reason


def test_csv_products_json_column(tmp_path: Path) -> None:
    products = orjson.dumps([{"model": "A", "firmware": "1"}, {"model": "B", "firmware": "2", "lot": "L"}])
    quoted = '"' + products.decode().replace('"', '""') + '"'
    path = tmp_path / "c.csv"
    path.write_text(f"id,region,products\nCU-1,R,{quoted}\nCU-2,R,[not json\nCU-3,R,\n")
    results = list(read_customers(path))
    first, bad, bare = results
    assert isinstance(first, Customer) and first.attributes()["model"] == {"A", "B"}
    assert isinstance(bad, DeadLetter) and bad.reason.startswith("products: not valid JSON")
    assert isinstance(bare, Customer) and bare.products == ()


def test_csv_flat_product_missing_firmware(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,region,model\nCU-1,R,R7000\n")
    [dead] = list(read_customers(path))
    assert isinstance(dead, DeadLetter) and dead.reason == "products.0.firmware: Field required"


def test_csv_quoted_newline_keeps_raw_record_and_first_line(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b'\xef\xbb\xbfid,region,note\nCU-1,R,"two\nlines"\nCU-2,,x\n')
    good, dead = split(list(read_customers(path)))
    assert [c.id for c in good] == ["CU-1"] and good[0].model_extra == {"note": "two\nlines"}
    [missing_region] = dead
    assert missing_region.origin.line == 4 and missing_region.raw == b"CU-2,,x"
    assert missing_region.reason == "region: Field required"


def test_csv_extra_cells_and_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b"id,region\nCU-1,R,surplus\nCU-\xff,R\nCU-3,R\n")
    good, dead = split(list(read_customers(path)))
    assert [c.id for c in good] == ["CU-3"]
    assert [(d.origin.line, d.reason) for d in dead] == [
        (2, "row has more cells than the header has columns"),
        (3, "row is not valid UTF-8"),
    ]


def test_jsonl(tmp_path: Path) -> None:
    good = {
        "id": "CU-42",
        "phone": "+15125550100",
        "email": "ana@example.com",
        "region": "TX-453",
        "timezone": "America/Chicago",
        "products": [{"model": "R7000", "firmware": "2.1.7", "lot": "L"}],
        "opt_out": {"sms": True},
        "segment_hint": "vip",
    }
    lines = [
        orjson.dumps(good),
        orjson.dumps({**good, "id": "CU-2", "phone": "12"}),
        orjson.dumps({**good, "id": "CU-3", "email": "no-at-sign"}),
        orjson.dumps({k: v for k, v in good.items() if k != "id"}),
        b"",
        orjson.dumps({**good, "id": "CU-5", "timezone": "Nowhere/Else"}),
        b"{not json",
        b"[1, 2]",
        orjson.dumps({**good, "id": "CU-8"}),
    ]
    path = tmp_path / "customers.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    customers, dead = split(list(read_customers(path)))

    assert [c.id for c in customers] == ["CU-42", "CU-8"]
    assert customers[0].opt_out.sms and customers[0].contact("sms") is None
    assert customers[0].model_extra == {"segment_hint": "vip"}
    reasons = {d.origin.line: d.reason for d in dead}
    assert set(reasons) == {2, 3, 4, 6, 7, 8}
    assert reasons[2].startswith("phone: ")
    assert reasons[3].startswith("email: ") and "no-at-sign" not in reasons[3]
    assert reasons[4] == "id: Field required"
    assert reasons[6].startswith("timezone: ")
    assert reasons[7].startswith("line is not valid JSON")
    assert reasons[8] == "line is not a JSON object"
    assert next(d for d in dead if d.origin.line == 7).raw == b"{not json"


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.jsonl, \.csv"):
        read_customers(tmp_path / "customers.xlsx")


def test_jsonl_with_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "CU-1", "region": "R"}\r\n{"id": "CU-2"}\r\n')
    first, second = read_customers(path)
    assert isinstance(first, Customer) and first.id == "CU-1"
    assert isinstance(second, DeadLetter) and second.raw == b'{"id": "CU-2"}'
    assert second.reason == "region: Field required" and second.origin.line == 2
