"""Case records from CSV exports of other systems (for example a city's 311 requests).

A column mapping says which columns hold the id, time, topic and region, and how the
time is written; the output is case records as DESIGN.md defines them, ready to be
written as JSONL for `forewarn detect` or `forewarn replay`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from forewarn.records import rfc3339


@dataclass(frozen=True)
class CaseColumns:
    """Where a CSV keeps the fields of a case, and the format and zone of its times."""

    ts: str
    ts_format: str
    timezone: str
    region: str
    topic: str | None = None
    fixed_topic: str | None = None
    id: str | None = None
    text: str | None = None
    channel: str | None = None


BOSTON_311 = CaseColumns(
    ts="OPEN_DT", ts_format="%m/%d/%Y %I:%M:%S %p", timezone="America/New_York",
    region="neighborhood", topic="TYPE", id="CASE_ENQUIRY_ID", text="CASE_TITLE", channel="Source",
)
"""The City of Boston's 311 service requests (one file per TYPE)."""


def read_csv_cases(path: Path, columns: CaseColumns) -> Iterator[dict[str, Any]]:
    """Yield one case record per row; rows without a time or region are skipped."""
    zone = ZoneInfo(columns.timezone)
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            stamp, region = (row.get(columns.ts) or "").strip(), (row.get(columns.region) or "").strip()
            if not stamp or not region:
                continue
            ts = datetime.strptime(stamp, columns.ts_format).replace(tzinfo=zone)
            record: dict[str, Any] = {"type": "case", "ts": rfc3339(ts), "region": region,
                                      "topic": columns.fixed_topic or (row.get(columns.topic or "") or "").strip()}
            for field in ("id", "text", "channel"):
                column = getattr(columns, field)
                if column and row.get(column):
                    record[field] = row[column].strip()
            yield record
