"""Forewarn: real-time early warning for customer service.

Forewarn watches live streams of support cases, device telemetry and hazard alerts, sees a
topic or a region start to spike, finds the customers who share the traits of those already
hit, and warns the ones who have not called yet.

This module is the public API for those who embed Forewarn; everything else is reached through
its subpackages (`forewarn.detectors`, `forewarn.connectors`, `forewarn.outreach`,
`forewarn.flows`) and may change between minor versions. Names load on first use, so
`import forewarn` stays cheap and does not start Bytewax.

Build a flow from settings and run it with Bytewax:

>>> import forewarn
>>> settings = forewarn.Settings()
>>> settings.detection.window
datetime.timedelta(seconds=3600)
>>> flow = forewarn.build_flow(settings, forewarn.production_io(settings))  # doctest: +SKIP

Write a detector unit by subclassing a base class (constructor arguments are its configuration):

>>> class Flat(forewarn.CountBaseline):
...     def __init__(self, level: float = 1.0) -> None:
...         self.level = level
...     def learn_one(self, t, count): pass
...     def predict_one(self, t): return self.level
...     @property
...     def n_learned(self): return 0
>>> Flat(2.0).clone()
Flat(level=2.0)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.4.0"

_EXPORTS: dict[str, str] = {
    # configuration
    "Settings": "forewarn.settings",
    "Secrets": "forewarn.settings",
    "ConfigError": "forewarn.settings",
    "load_settings": "forewarn.settings",
    # records in and out
    "Case": "forewarn.records",
    "Telemetry": "forewarn.records",
    "Customer": "forewarn.records",
    "Product": "forewarn.records",
    "HazardAlert": "forewarn.hazards",
    "Spike": "forewarn.records",
    "Incident": "forewarn.records",
    "DeadLetter": "forewarn.records",
    "Origin": "forewarn.records",
    "Message": "forewarn.records",
    "MessageKey": "forewarn.records",
    "SendResult": "forewarn.records",
    # the seams a deployment plugs its own parts into
    "CustomerIndex": "forewarn.interfaces",
    "Outbox": "forewarn.interfaces",
    "DeliveryQueue": "forewarn.interfaces",
    "Envelope": "forewarn.envelopes",
    "Sender": "forewarn.interfaces",
    "Renderer": "forewarn.interfaces",
    "IncidentStore": "forewarn.interfaces",
    "ContactLog": "forewarn.interfaces",
    # detector base classes
    "Estimator": "forewarn.detectors.base",
    "CountBaseline": "forewarn.detectors.base",
    "TailScorer": "forewarn.detectors.base",
    # building a flow
    "FlowIO": "forewarn.flows.early_warning",
    "build_flow": "forewarn.flows.early_warning",
    "production_io": "forewarn.flows.wiring",
}

__all__ = [
    "Case",
    "ConfigError",
    "ContactLog",
    "CountBaseline",
    "Customer",
    "CustomerIndex",
    "DeadLetter",
    "DeliveryQueue",
    "Envelope",
    "Estimator",
    "FlowIO",
    "HazardAlert",
    "Incident",
    "IncidentStore",
    "Message",
    "MessageKey",
    "Origin",
    "Outbox",
    "Product",
    "Renderer",
    "Secrets",
    "SendResult",
    "Sender",
    "Settings",
    "Spike",
    "TailScorer",
    "Telemetry",
    "__version__",
    "build_flow",
    "load_settings",
    "production_io",
]



def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'forewarn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from forewarn.detectors.base import CountBaseline, Estimator, TailScorer
    from forewarn.envelopes import Envelope
    from forewarn.flows.early_warning import FlowIO, build_flow
    from forewarn.flows.wiring import production_io
    from forewarn.hazards import HazardAlert
    from forewarn.interfaces import (
        ContactLog,
        CustomerIndex,
        DeliveryQueue,
        IncidentStore,
        Outbox,
        Renderer,
        Sender,
    )
    from forewarn.records import (
        Case,
        Customer,
        DeadLetter,
        Incident,
        Message,
        MessageKey,
        Origin,
        Product,
        SendResult,
        Spike,
        Telemetry,
    )
    from forewarn.settings import ConfigError, Secrets, Settings, load_settings
