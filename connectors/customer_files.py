"""Read customers from a JSONL or CSV file; invalid rows become dead letters, never stop the load.

JSONL: one customer JSON object per line (blank lines are skipped).
CSV: a header row, then the columns id, phone, email, preferred_channel, region, lat, lon,
timezone, language, opt_out_sms, opt_out_email, and the products either as a JSON column
`products` or flat `model`, `firmware`, `lot`, `installed` for one product. Empty cells
count as missing; other columns are kept as extra fields.

Dead-letter reasons name the field and the problem; a personal value (a phone number, an
email) is never quoted in them, only plain ones such as an unknown time zone.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from forewarn.parsing import explain
from forewarn.records import Customer, DeadLetter, Origin

STEP = "customers.load"
SUPPORTED = (".jsonl", ".csv")
_PRODUCT_COLUMNS = ("model", "firmware", "lot", "installed")
_OPT_OUT_COLUMNS = {"opt_out_sms": "sms", "opt_out_email": "email"}


class _BadRow(ValueError):
    """A row that cannot even be turned into a customer document."""


def read_customers(path: str | Path) -> Iterator[Customer | DeadLetter]:
    """Each customer of a `.jsonl` or `.csv` file, or a DeadLetter for each invalid row."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise ValueError(
        f"unsupported customer file {path.name!r}: supported extensions are {', '.join(SUPPORTED)}"
    )


def _validate(doc: dict[str, Any], origin: Origin, raw: bytes) -> Customer | DeadLetter:
    try:
        return Customer.model_validate(doc)
    except ValidationError as exc:
        return DeadLetter(step=STEP, reason=explain(exc), origin=origin, raw=raw)


def _read_jsonl(path: Path) -> Iterator[Customer | DeadLetter]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            raw = line.rstrip(b"\r\n")
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            origin = Origin(source=str(path), line=number)
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield DeadLetter(step=STEP, reason=f"line is not valid JSON: {exc}", origin=origin, raw=raw)
                continue
            if not isinstance(doc, dict):
                yield DeadLetter(step=STEP, reason="line is not a JSON object", origin=origin, raw=raw)
                continue
            yield _validate(doc, origin, raw)


class _Lines:
    """Decoded lines for csv.reader, remembering the raw bytes of the current record."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.raw: list[bytes] = []
        self.first_line = 0
        self.line = 0
        self.bad_utf8 = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line: bytes = next(self._handle)
        self.line += 1
        self.raw.append(line)
        if self.line == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            self.bad_utf8 = True
            return line.decode("utf-8", errors="replace")

    def start_record(self) -> None:
        self.raw = []
        self.first_line = self.line + 1
        self.bad_utf8 = False


def _csv_doc(row: dict[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    product: dict[str, str] = {}
    opt_out: dict[str, str] = {}
    for column, cell in row.items():
        value = cell.strip()
        if not value:
            continue
        if column in _PRODUCT_COLUMNS:
            product[column] = value
        elif column in _OPT_OUT_COLUMNS:
            opt_out[_OPT_OUT_COLUMNS[column]] = value
        elif column == "products":
            try:
                doc["products"] = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise _BadRow(f"products: not valid JSON: {exc}") from None
        else:
            doc[column] = value
    if product and "products" not in doc:
        doc["products"] = [product]
    if opt_out:
        doc["opt_out"] = opt_out
    return doc


def _read_csv(path: Path) -> Iterator[Customer | DeadLetter]:
    with path.open("rb") as handle:
        lines = _Lines(handle)
        reader = csv.reader(lines)
        header = next(reader, None)
        if header is None:
            return
        columns = [c.strip() for c in header]
        while True:
            lines.start_record()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                origin = Origin(source=str(path), line=lines.first_line)
                yield DeadLetter(step=STEP, reason=f"row is not valid CSV: {exc}", origin=origin,
                                 raw=b"".join(lines.raw).rstrip(b"\r\n"))
                continue
            raw = b"".join(lines.raw).rstrip(b"\r\n")
            origin = Origin(source=str(path), line=lines.first_line)
            if not any(c.strip() for c in cells):
                continue
            if lines.bad_utf8:
                yield DeadLetter(step=STEP, reason="row is not valid UTF-8", origin=origin, raw=raw)
                continue
            row: dict[str, str] = dict(zip(columns, cells, strict=False))
            if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns):]):
                yield DeadLetter(step=STEP, reason="row has more cells than the header has columns",
                                 origin=origin, raw=raw)
                continue
            try:
                doc = _csv_doc(row)
            except _BadRow as exc:
                yield DeadLetter(step=STEP, reason=str(exc), origin=origin, raw=raw)
                continue
            yield _validate(doc, origin, raw)
