"""Incidents: spikes of one key in consecutive windows, from first alarm to resolution."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime

from forewarn.records import NATIONAL, Incident, Spike, WindowVerdict


def incident_id(topic: str, region: str, first_window_start: datetime) -> str:
    """A stable id: the same input always yields the same id, so the ledger can dedup replays.

    >>> from datetime import datetime, timezone
    >>> incident_id("no_internet", "TX-453", datetime(2026, 11, 17, 14, tzinfo=timezone.utc))
    'INC-20261117T1400Z-no_internet-TX-453-3a55'
    """
    digest = hashlib.sha1(f"{topic}\x00{region}".encode()).hexdigest()[:4]
    safe_region = "ALL" if region == NATIONAL else region
    return f"INC-{first_window_start:%Y%m%dT%H%MZ}-{topic}-{safe_region}-{digest}"


@dataclass
class _Open:
    incident: Incident
    quiet_panes: int = 0
    reporters: set[str] = field(default_factory=set)
    early_pane_end: datetime | None = None
    """Set while the incident rests on a spike fired early in the pane ending then."""


class IncidentTracker:
    """Groups the spikes of one topic into incidents and resolves them after quiet.

    A regional spike while a national incident of the topic is open belongs to the
    national incident. Cases of an open incident's key that arrive later are linked
    to it, and their customers join its reporters.

    >>> from datetime import datetime, timedelta, timezone
    >>> t = datetime(2026, 11, 17, 14, tzinfo=timezone.utc)
    >>> step = timedelta(minutes=15)
    >>> spike = Spike("no_internet", "TX-453", t - 3 * step, t + step, 30, 4.0, 1e-12, 12.0, "test")
    >>> tracker = IncidentTracker(resolve_after=2)
    >>> [i.status for i in tracker.observe(WindowVerdict("no_internet", t, t + step, (spike,)))]
    ['opened']
    >>> tracker.observe(WindowVerdict("no_internet", t + step, t + 2 * step))
    []
    >>> [i.status for i in tracker.observe(WindowVerdict("no_internet", t + 2 * step, t + 3 * step))]
    ['resolved']
    """

    def __init__(self, resolve_after: int = 4):
        if resolve_after < 1:
            raise ValueError("resolve_after must be at least 1 quiet pane")
        self.resolve_after = resolve_after
        self._open: dict[str, _Open] = {}
        self._last_tick: datetime | None = None

    def observe(self, verdict: WindowVerdict) -> list[Incident]:
        """Fold one pane's verdict in; return the incidents that opened, changed or resolved.

        Verdicts of several signals (the topic's cases, telemetry mapped to the topic)
        share the pane grid: quiet time advances once per pane, whichever comes first.
        An early verdict (judged while its pane filled) only opens incidents (an open one grows
        with its closing windows); when that pane closes, its key's final count replaces the
        early one.
        """
        changed: dict[str, Incident] = {}
        spiking: set[str] = set()
        settled: set[str] = set()
        for spike in verdict.spikes:
            region = NATIONAL if NATIONAL in self._open else spike.region
            entry = self._open.get(region)
            if entry is None:
                entry = self._open[region] = _Open(self._new(verdict.topic, spike), reporters=set(spike.reporters))
                entry.early_pane_end = verdict.pane_end if verdict.early else None
                changed[region] = entry.incident
            elif verdict.early:
                continue  # an open incident grows with its closing windows: an early spike adds nothing to it
            elif entry.early_pane_end == verdict.pane_end and spike.region == entry.incident.region:
                changed[region] = self._settle(entry, spike)
                settled.add(region)
            else:
                changed[region] = self._extend(entry, spike)
            spiking.add(region)
        if verdict.early:
            return list(changed.values())
        for entry in self._open.values():
            if entry.early_pane_end is not None and verdict.pane_end >= entry.early_pane_end:
                entry.early_pane_end = None  # its pane has closed: the incident rests on closed windows now
        self._link(verdict, spiking, changed, settled)
        tick = self._last_tick is None or verdict.pane_end > self._last_tick
        self._last_tick = verdict.pane_end if tick else self._last_tick
        for region, entry in list(self._open.items()):
            if region in spiking:
                entry.quiet_panes = 0
                continue
            if not tick or (entry.early_pane_end is not None and verdict.pane_end < entry.early_pane_end):
                continue  # panes before the one an incident was fired early in are not quiet time after it
            entry.quiet_panes += 1
            if entry.quiet_panes >= self.resolve_after:
                del self._open[region]
                changed[region] = replace(entry.incident, status="resolved", resolved_at=verdict.pane_end,
                                          reporters=frozenset(entry.reporters))
        return list(changed.values())

    def open_incidents(self) -> list[Incident]:
        return [entry.incident for entry in self._open.values()]

    @staticmethod
    def _new(topic: str, spike: Spike) -> Incident:
        return Incident(
            id=incident_id(topic, spike.region, spike.window_start),
            topic=topic, region=spike.region, status="opened", signals=frozenset({spike.topic}),
            known_segment=spike.segment,
            opened_at=spike.decided_at or spike.window_end, first_window_start=spike.window_start,
            last_spike_end=spike.window_end, observed=spike.observed, expected=spike.expected,
            spikes=1, linked_cases=spike.observed, reporters=frozenset(spike.reporters),
            earlier_reporters=frozenset(spike.earlier_reporters) - frozenset(spike.reporters),
        )

    @staticmethod
    def _extend(entry: _Open, spike: Spike) -> Incident:
        current = entry.incident
        # Peaks compare like with like: cases with cases, faulty devices with faulty devices.
        opened_on_cases = current.topic in current.signals
        same_kind = (spike.topic == current.topic) == opened_on_cases
        peak = same_kind and spike.observed > current.observed
        entry.incident = replace(
            current, status="updated", last_spike_end=spike.window_end, spikes=current.spikes + 1,
            signals=current.signals | {spike.topic}, known_segment=current.known_segment or spike.segment,
            observed=spike.observed if peak else current.observed,
            expected=spike.expected if peak else current.expected,
        )
        return entry.incident

    @staticmethod
    def _settle(entry: _Open, spike: Spike) -> Incident:
        """The closing count of the pane an incident was opened on early: it replaces the early count."""
        entry.reporters.update(spike.reporters)
        entry.incident = replace(
            entry.incident, status="updated", observed=spike.observed, expected=spike.expected,
            linked_cases=spike.observed, last_spike_end=spike.window_end, reporters=frozenset(entry.reporters),
            known_segment=entry.incident.known_segment or spike.segment)
        return entry.incident

    def _link(self, verdict: WindowVerdict, spiking: set[str], changed: dict[str, Incident],
              settled: set[str]) -> None:
        """Attach the pane's cases to open incidents that did not just open (or settle) on them."""
        for region, entry in self._open.items():
            if region in settled or (changed.get(region) is not None and changed[region].status == "opened"):
                continue
            panes = verdict.cases.values() if region == NATIONAL else [verdict.cases.get(region)]
            new_cases, known = 0, len(entry.reporters)
            for pane in panes:
                if pane is None:
                    continue
                new_cases += pane.count
                entry.reporters.update(pane.reporters)
            # A customer's repeat is a reporter in a pane that counted nothing: the incident must know them too.
            if new_cases or len(entry.reporters) > known:
                entry.incident = replace(entry.incident, linked_cases=entry.incident.linked_cases + new_cases,
                                         reporters=frozenset(entry.reporters))
                if new_cases and region in spiking:
                    changed[region] = entry.incident
