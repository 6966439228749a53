"""Presentation of runs: the demo's summary and HTML report, the backtest report, their plots."""
