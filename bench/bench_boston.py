"""Alarms on real complaint streams: Boston's 311 requests of 2015, beside the known events.

    python -m bench.bench_boston [--data ../shared/data/complaints/boston311_2015] [-c CONFIG]

Each file is one topic (`TYPE`), regions are neighbourhoods (City of Boston open data, via
github.com/johnsliao/bostonservicemap at f19ec62, MIT). The whole year goes through
`forewarn detect` with the configured detector; the alarms are listed per topic by day
and region so a person can check them against the storms and cold snaps the data's
README names (printed first, with whether an alarm fell on that day or the next). An alarm
falls on the days from the one it was raised on (its first window's end) to the one it ended
on: a day-long window raised at noon did not alarm on the day its window began.

The city's staff open some requests themselves (`Source`: Employee Generated, City Worker App,
Maximo Integration); a config naming them as `detection.internal_channels` leaves them uncounted
(README, "Cases the company opened itself").
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from forewarn.connectors.csv_cases import BOSTON_311, read_csv_cases
from forewarn.flows.offline import run_detect
from forewarn.records import NATIONAL
from forewarn.reports.backtest_report import Alarm, fold_alarms
from forewarn.settings import BUNDLED_CONFIG, DetectionSettings, load_settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "complaints" / "boston311_2015"
KNOWN = {  # from the data README: real events visible as spikes
    "Heat - Excessive  Insufficient": [(date(2015, 1, 8), "arctic cold snap"), (date(2015, 2, 16), "record cold")],
    "Misc. Snow Complaint": [(date(2015, 1, 28), "after the Jan 26-27 blizzard"), (date(2015, 2, 3), "Feb 2 storm"),
                             (date(2015, 2, 10), "Feb 9 storm")],
    "No Utilities Residential - Water": [(date(2015, 1, 8), "frozen pipes"), (date(2015, 2, 16), "frozen pipes"),
                                         (date(2015, 5, 12), "small peak")],
    "Street Light Outages": [],
}
MEMORY_DAYS = 28


def _tail_setting(detection: DetectionSettings) -> str:
    if detection.false_alarm_target is None:
        return f"alpha {detection.alpha}"
    return f"alpha calibrated to {detection.false_alarm_target:g} false alarms per 1,000 key-days"


def _days_alarmed(alarm: Alarm) -> list[date]:
    """The days from the one it was raised on to the one it ended on: a day-long window raised at noon
    did not alarm on the day before, where its window began."""
    first, last = alarm.raised.date().toordinal(), alarm.end.date().toordinal()
    return [date.fromordinal(day) for day in range(first, last + 1)]


def _daily_counts(records: list[dict[str, Any]], internal: frozenset[str]) -> Counter[tuple[str, str, date]]:
    """Requests per (topic, region, UTC day), and per (topic, "*", day) for all regions; internal channels' left
    out (the year's one dead letter is in)."""
    counts: Counter[tuple[str, str, date]] = Counter()
    for r in records:
        if r.get("channel") not in internal:
            day = datetime.fromisoformat(r["ts"]).date()
            counts[(r["topic"], r["region"], day)] += 1
            counts[(r["topic"], NATIONAL, day)] += 1
    return counts


def _before(counts: Counter[tuple[str, str, date]], topic: str, region: str, day: date, first: date) -> int | None:
    """The most requests the key had on any of the `MEMORY_DAYS` days before `day`; None when the data, which
    starts on `first`, does not hold them all."""
    if day.toordinal() - MEMORY_DAYS < first.toordinal():
        return None
    return max(counts[(topic, region, date.fromordinal(day.toordinal() - back))] for back in range(1, MEMORY_DAYS + 1))


def _history(days: dict[str, dict[date, set[str]]], counts: Counter[tuple[str, str, date]], first: date
             ) -> dict[tuple[str, str, date], tuple[int, int | None]]:
    """Each alarmed key and day: its requests that day, and its most on a day of the `MEMORY_DAYS` before."""
    return {(topic, region, day): (counts[(topic, region, day)], _before(counts, topic, region, day, first))
            for topic in days for day in days[topic] for region in days[topic][day]}


def _record(that_day: int, most: int | None) -> bool:
    """More requests than on any of the days before (all of them in the data)."""
    return most is not None and that_day > most


def _print_alarm_days(days: dict[str, dict[date, set[str]]],
                      history: dict[tuple[str, str, date], tuple[int, int | None]]) -> None:
    print(f"\nalarms per topic and day (regions, with their requests that day and the most on a day of the "
          f"{MEMORY_DAYS} before, n/a before the data holds them; * = all regions):")
    for topic in sorted(days):
        print(f"  {topic} ({sum(len(r) for r in days[topic].values())} day-regions on {len(days[topic])} days)")
        for day in sorted(days[topic]):
            keys = []
            for region in sorted(days[topic][day]):
                that_day, most = history[(topic, region, day)]
                keys.append(f"{region} ({that_day}; {'n/a' if most is None else most})")
            print(f"    {day}  {', '.join(keys)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("-c", "--config", type=Path, default=BUNDLED_CONFIG / "default.yaml")
    args = parser.parse_args()
    settings = load_settings(args.config)
    records = sorted((r for f in sorted(args.data.glob("*.csv")) for r in read_csv_cases(f, BOSTON_311)),
                     key=lambda r: r["ts"])
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "boston.jsonl"
        events.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        spikes_path = Path(tmp) / "spikes.jsonl"
        result = run_detect(settings, [events], spikes_path)
        spikes = [orjson.loads(line) for line in spikes_path.read_bytes().splitlines()]
    alarms = fold_alarms(spikes, settings.detection.slide.total_seconds())
    internal = sum(1 for r in records if r.get("channel") in settings.detection.internal_channels)
    print(f"Boston 311, 2015: {len(records)} requests in {len(KNOWN)} topics, {result['dead_letters']} of them dead "
          f"letters and {internal} from internal channels (neither counted); {len(alarms)} alarms (window "
          f"{settings.detection.window}, slide {settings.detection.slide}, {_tail_setting(settings.detection)})")
    days: dict[str, dict[date, set[str]]] = defaultdict(lambda: defaultdict(set))
    for alarm in alarms:
        for day in _days_alarmed(alarm):
            days[alarm.topic][day].add(alarm.region)
    print("\nknown events (data README) and whether an alarm fell on that day or the next:")
    event_days = set()
    found = 0
    for topic, events_ in KNOWN.items():
        for day, what in events_:
            both = (day, date.fromordinal(day.toordinal() + 1))
            event_days |= {(topic, d) for d in both}
            hit = [r for d in both for r in sorted(days[topic].get(d, ()))]
            found += bool(hit)
            print(f"  {topic:<34} {day}  {what:<30} {'ALARM ' + ', '.join(hit) if hit else 'no alarm'}")
    history = _history(days, _daily_counts(records, settings.detection.internal_channels),
                       datetime.fromisoformat(records[0]["ts"]).date())
    other = [(topic, d) for topic in days for d in days[topic] if (topic, d) not in event_days]
    rises = sum(1 for topic, d in other if any(_record(*history[(topic, r, d)]) for r in days[topic][d]))
    print(f"\nnamed events found: {found} of {sum(len(e) for e in KNOWN.values())}; other alarm topic-days: "
          f"{len(other)}, {rises} of them on a day when an alarmed key had more requests than on any of the "
          f"{MEMORY_DAYS} days before (rises the data shows, unnamed)")
    _print_alarm_days(days, history)

if __name__ == "__main__":
    main()
