"""Messages queued before an operator held the incident, or before a silence, are withheld at send time."""

from __future__ import annotations

from datetime import timedelta

from forewarn.decisions import Silence
from forewarn.outreach.withhold import Withholding
from tests.unit.test_decision_gate import REGION, parts
from tests.unit.test_dispatch import ScriptedProvider, dispatcher
from tests.unit.test_outreach import _opened


def test_a_hold_after_the_warnings_were_queued_withholds_them() -> None:
    p = parts()
    incident = _opened()
    assert p.outreach.handle(incident).outcomes["enqueued"] == 13
    p.outreach.hold(incident.id, "ana", "false alarm?")
    provider = ScriptedProvider(p.clock)
    dispatch = dispatcher(p.outbox, provider, p.clock, channels=("sms", "email"),  # type: ignore[arg-type]
                          withholding=Withholding(p.decisions, p.silences, clock=p.clock))
    outcomes = [dispatch.handle(lease) for c in ("sms", "email") for lease in p.outbox.take(c, "w", 50, 0)]
    assert outcomes == ["withheld"] * 13 and provider.sends() == 0
    assert p.outbox.funnel(incident.id)["withheld"] == 13
    lease_state = p.outbox.state(f"{incident.id}|CU-006|warning|sms")
    assert lease_state["state"] == "withheld" and "held by an operator" in lease_state["reason"]


def test_a_silence_after_the_warnings_were_queued_withholds_them_but_never_an_all_clear() -> None:
    p = parts()
    incident = _opened()
    p.outreach.handle(incident)
    now = p.clock()
    p.silences.add(Silence("S-9", (("region", REGION),), now, now + timedelta(hours=1), "maintenance", "ana", now))
    withholding = Withholding(p.decisions, p.silences, clock=p.clock)
    assert withholding.reason(incident.id, "warning") == "silenced by S-9"
    assert withholding.reason(incident.id, "resolved") is None
    assert withholding.reason("INC-without-a-decision", "warning") is None
