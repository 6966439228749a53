"""Validation of the input records in forewarn/records.py."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from forewarn.records import Case, Customer, utc


def test_naive_timestamp_is_rejected_with_a_zone_message() -> None:
    with pytest.raises(ValidationError) as info:
        Case.model_validate({"ts": "2026-11-20T14:03:11", "topic": "no_internet", "region": "TX-453"})
    assert "zone" in str(info.value)
    with pytest.raises(ValueError, match="zone"):
        utc(datetime(2026, 11, 20, 14, 3, 11))


def test_timestamp_with_offset_is_converted_to_utc() -> None:
    case = Case.model_validate({"ts": "2026-11-20T08:03:11-06:00", "region": "TX-453"})
    assert case.ts.isoformat() == "2026-11-20T14:03:11+00:00"


@pytest.mark.parametrize("phone", ["12345", "+1 512", "not a phone"])
def test_bad_phone_is_rejected(phone: str) -> None:
    with pytest.raises(ValidationError, match="phone"):
        Customer.model_validate({"id": "CU-1", "region": "TX-453", "phone": phone})


def test_phone_is_normalized_to_e164() -> None:
    customer = Customer.model_validate({"id": "CU-1", "region": "TX-453", "phone": "+1 (512) 555-0100"})
    assert customer.phone == "+15125550100"


@pytest.mark.parametrize("email", ["nope@", "no-at-sign.example.com", "a@b@example.com"])
def test_bad_email_is_rejected(email: str) -> None:
    with pytest.raises(ValidationError, match="email"):
        Customer.model_validate({"id": "CU-1", "region": "TX-453", "email": email})


def test_unknown_extra_fields_are_kept() -> None:
    case = Case.model_validate(
        {"ts": "2026-11-20T14:03:11Z", "region": "TX-453", "attachments": 2, "severity": "high"}
    )
    assert case.model_extra == {"attachments": 2, "severity": "high"}
    assert case.model_dump()["severity"] == "high"
    customer = Customer.model_validate({"id": "CU-1", "region": "TX-453", "tier": "gold"})
    assert customer.model_dump(mode="json")["tier"] == "gold"


def test_missing_region_is_rejected() -> None:
    with pytest.raises(ValidationError, match="region"):
        Case.model_validate({"ts": "2026-11-20T14:03:11Z"})


def test_contact_honours_opt_out() -> None:
    base = {"id": "CU-1", "region": "TX-453", "phone": "+15125550100", "email": "ana@example.com"}
    both = Customer.model_validate(base)
    assert both.contact("sms") == "+15125550100"
    assert both.contact("email") == "ana@example.com"
    no_sms = Customer.model_validate({**base, "opt_out": {"sms": True}})
    assert no_sms.contact("sms") is None
    assert no_sms.contact("email") == "ana@example.com"
    no_email = Customer.model_validate({**base, "opt_out": {"email": True}})
    assert no_email.contact("email") is None
    assert no_email.contact("sms") == "+15125550100"


def test_contact_is_none_without_an_address() -> None:
    customer = Customer.model_validate({"id": "CU-1", "region": "TX-453", "phone": ""})
    assert customer.phone is None
    assert customer.contact("sms") is None
