"""Feature code: how events become profile state. Pure functions of (state, event)."""
