"""The event log: what was acknowledged, durably, in order."""
