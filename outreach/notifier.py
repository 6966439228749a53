"""Responders are told first and at every stage: PagerDuty and Slack notifications into the responder outbox.

The flow (and the operator's commands) only decide: each stage of an incident becomes one `ResponderEvent`
per configured target, decided once by its id, and `forewarn deliver` sends them with retries
(`forewarn.flows.responder_worker`). The payloads carry no secret: the PagerDuty sender adds the routing
key, the Slack webhook URL is the sender's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from forewarn.decisions import Decision, ResponderEvent, ResponderStage, ResponderTarget
from forewarn.interfaces import ResponderOutbox
from forewarn.outreach.responders import pagerduty_event
from forewarn.outreach.slack_blocks import slack_message
from forewarn.records import Incident


@dataclass
class ResponderNotifier:
    """Queues a notification of an incident's stage for each target.

    Parameters
    ----------
    outbox
        The responder outbox `forewarn deliver` drains.
    targets
        The configured responders ("pagerduty", "slack").
    deadline
        How long after the decision a notification is worth retrying.
    config_hint
        How the approve command in a notification names the config (`responders.config_hint`).
    """

    outbox: ResponderOutbox
    targets: Sequence[ResponderTarget]
    deadline: timedelta = timedelta(hours=1)
    config_hint: str = "-c CONFIG"
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def notify(self, decision: Decision, incident: Incident | None, stage: ResponderStage) -> list[str]:
        """The ids of the events that were new (a replayed stage queues nothing twice)."""
        if not self.targets:
            return []
        now = self.clock()
        approve = f"forewarn approve {decision.incident_id} {self.config_hint}"
        events = [ResponderEvent(decision.incident_id, stage, target, self._payload(target, decision, incident,
                                                                                    stage, approve),
                                 now, now + self.deadline, seq=decision.updates if stage == "update" else 0)
                  for target in self.targets]
        return self.outbox.enqueue(events, now)

    @staticmethod
    def _payload(target: ResponderTarget, decision: Decision, incident: Incident | None, stage: ResponderStage,
                 approve: str) -> dict[str, object]:
        if target == "pagerduty":
            # the sender adds the routing key: the outbox keeps no secret
            return pagerduty_event(decision, incident, stage, "", approve_command=approve)
        return slack_message(decision, incident, stage, approve_command=approve)
