"""Which record kinds a source may carry: the source decides a record's type, not the record.

A production Kafka topic carries one kind; whatever a record claims about itself, it is read
as that kind or dead-lettered. Only a source configured as mixed (the single JSONL file of a
demo or replay) lets a record's own "type" field, or its shape (an alert document), choose
among the kinds it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RecordKind = Literal["case", "telemetry", "customer", "alert"]
RECORD_KINDS: tuple[RecordKind, ...] = ("case", "telemetry", "customer", "alert")


@dataclass(frozen=True)
class SourceKinds:
    """What one source may carry, and whether a record may say which of those it is.

    >>> SourceKinds.only("case").accepts
    frozenset({'case'})
    >>> SourceKinds.mixed_file().default, SourceKinds.mixed_file().mixed
    ('case', True)
    >>> SourceKinds(frozenset({"case", "customer"}), "case")
    Traceback (most recent call last):
    ...
    ValueError: a source that is not mixed carries exactly one kind, not ['case', 'customer']
    """

    accepts: frozenset[RecordKind]
    default: RecordKind
    """The kind of a record that does not say (on a mixed source), or of every record."""
    mixed: bool = False
    alerts_only: bool = field(init=False, repr=False, compare=False)
    """Every record is an alert document (the alerts topic, the NWS poller)."""
    sniffs_alerts: bool = field(init=False, repr=False, compare=False)
    """A record shaped like an alert document is one (a mixed source that accepts alerts)."""

    def __post_init__(self) -> None:
        if self.default not in self.accepts:
            raise ValueError(f"the default kind {self.default} is not among the accepted {sorted(self.accepts)}")
        if not self.mixed and len(self.accepts) != 1:
            raise ValueError(f"a source that is not mixed carries exactly one kind, not {sorted(self.accepts)}")
        # Decided once here, not per record: parsing asks for every record on the hot path.
        object.__setattr__(self, "alerts_only", not self.mixed and self.default == "alert")
        object.__setattr__(self, "sniffs_alerts", self.mixed and "alert" in self.accepts)

    @classmethod
    def only(cls, kind: RecordKind) -> SourceKinds:
        """A single-kind source, such as a production topic: no content sniffing."""
        return cls(frozenset({kind}), kind)

    @classmethod
    def mixed_file(cls, accepts: tuple[RecordKind, ...] = RECORD_KINDS, default: RecordKind = "case") -> SourceKinds:
        """A source whose records say what they are (a replay or demo file); cases by default."""
        return cls(frozenset(accepts), default, mixed=True)
