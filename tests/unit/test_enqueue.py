"""The enqueuer queues only what a worker can send: recipients on a channel without a sender are counted out."""

from __future__ import annotations

from datetime import UTC, datetime

from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.envelopes import reference
from forewarn.interfaces import Rendered
from forewarn.outreach.audience import Recipient
from forewarn.outreach.enqueue import DeliveryTally, Enqueuer
from forewarn.records import Channel, Customer

T = datetime(2026, 11, 20, 15, tzinfo=UTC)


def _render(customer: Customer, channel: Channel) -> tuple[Rendered, str | None]:
    return Rendered("Service notice" if channel == "email" else None, "Outage near you."), None


def test_a_recipient_on_a_channel_without_a_sender_is_counted_out_and_an_sms_gets_no_email_fallback() -> None:
    sms = Customer(id="CU-1", region="R", phone="+15125550100", email="a@example.com")
    mail = Customer(id="CU-2", region="R", email="b@example.com", preferred_channel="email")
    outbox = InMemoryOutbox()
    tally = DeliveryTally()
    Enqueuer(outbox, channels=("sms",), clock=lambda: T).enqueue(
        tally, "INC-1", "warning", [Recipient(sms, "sms", "+15125550100"), Recipient(mail, "email", "b@example.com")],
        _render, T)
    assert dict(tally.outcomes) == {"enqueued": 1} and tally.excluded == {"email not in outreach.channels": 1}
    assert outbox.decided("INC-1", "warning") == {"CU-1"}
    assert outbox.backlog("email") == 0
    lease = outbox.take("sms", "w", 1, 0)[0]
    begun = outbox.begin(lease, T)
    assert begun.envelope is not None and begun.envelope.fallback is None


def test_an_id_holding_the_separator_keeps_its_own_history() -> None:
    outbox = InMemoryOutbox()
    customer = Customer(id="CU|7", region="R", phone="+15125550100")
    Enqueuer(outbox, clock=lambda: T).enqueue(DeliveryTally(), "INC-1", "warning",
                                              [Recipient(customer, "sms", "+15125550100")], _render, T)
    assert list(outbox.history("INC-1", "CU|7")) == ["INC-1|CU%7C7|warning|sms"]
    assert outbox.history("INC-1|CU", "7") == {}


def test_each_sms_ends_with_its_own_reference_so_equal_words_never_look_alike_at_the_provider() -> None:
    outbox = InMemoryOutbox()
    customer = Customer(id="CU-1", region="R", phone="+15125550100", email="a@example.com")
    for incident in ("INC-1", "INC-2"):  # the same words to the same number, twice
        Enqueuer(outbox, clock=lambda: T).enqueue(DeliveryTally(), incident, "warning",
                                                  [Recipient(customer, "sms", "+15125550100")], _render, T)
    bodies = []
    for lease in outbox.take("sms", "w", 10, 0):
        begun = outbox.begin(lease, T)
        assert begun.envelope is not None and begun.envelope.fallback is not None
        assert begun.envelope.fallback.message.body == "Outage near you."  # an email needs no reference
        bodies.append(begun.envelope.message.body)
    assert bodies == [f"Outage near you. Ref {reference(f'{i}|CU-1|warning|sms')}" for i in ("INC-1", "INC-2")]
    assert bodies[0] != bodies[1]
