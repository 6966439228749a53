"""`forewarn audience` on screen: an `AudiencePreview` as a table."""

from __future__ import annotations

from rich.table import Table

from forewarn.outreach.preview import AudiencePreview


def audience_table(preview: AudiencePreview) -> Table:
    """Who would be contacted, by channel, who is left out and why, the SMS per language and its cost."""
    where = f"{preview.segment or ''}{' in ' + preview.area if preview.area else ''}"
    table = Table(title=f"Audience for {where} (dry-run: nothing sent)")
    table.add_column("measure")
    table.add_column("value")
    table.add_row("would be contacted", str(preview.size))
    for channel, n in sorted(preview.by_channel.items()):
        table.add_row(f"  by {channel}", str(n))
    for reason, n in sorted(preview.excluded.items()):
        table.add_row(f"excluded: {reason}", str(n))
    for cost in preview.sms:
        table.add_row(f"SMS per message ({cost.language})",
                      f"{cost.segments} segment(s), {cost.encoding} · {cost.recipients} recipients")
    terms = " + ".join(f"{c.recipients} x {c.segments}" for c in preview.sms) or "0"
    table.add_row("estimated SMS cost",
                  f"{preview.sms_cost:.2f} ({terms} = {preview.sms_segments} segments x {preview.price_per_segment})")
    table.add_row("sample customer ids", ", ".join(preview.sample) or "-")
    return table
