"""The demo's summary shows each incident's stages (from its audit trail) and its measured effect."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rich.console import Console

from forewarn.decisions import AuditAction, AuditEntry, Decision
from forewarn.flows.demo import stages_text
from forewarn.reports.summary import IncidentRow, incidents_table

T = datetime(2026, 11, 17, 14, tzinfo=UTC)
DECISION = Decision("INC-1", "no_internet", "TX-453", "high", (), "local", (), "notify", "not_needed", T)


def test_stages_follow_the_audit_trail_and_name_a_quiet_resolution() -> None:
    actions: tuple[AuditAction, ...] = ("approve", "ack", "update", "resolve")
    audit = [AuditEntry("INC-1", action, "ana", T + timedelta(minutes=i)) for i, action in enumerate(actions)]
    assert stages_text(replace(DECISION, open=False), audit) == \
        "investigating → approve → ack → update → resolved"
    assert stages_text(replace(DECISION, open=False), []) == "investigating → resolved (quiet windows)"
    assert stages_text(DECISION, audit[:2]) == "investigating → approve → ack"


def test_the_table_shows_stages_and_effect_columns_only_when_known() -> None:
    row = IncidentRow("INC-1", "no_internet", "TX-453", "resolved", T, T, T, 36, 0.4, [])
    console = Console(width=400, record=True)
    console.print(incidents_table([row]))
    assert "stages" not in console.export_text()
    row.stages, row.effect = "investigating → resolved (quiet windows)", "58% fewer calls (95% CI 40% to 76%)"
    console.print(incidents_table([row]))
    text = console.export_text()
    assert "stages" in text and "resolved (quiet windows)" in text and "58% fewer calls" in text
