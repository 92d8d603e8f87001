"""Experiments: deterministic assignment, per-arm statistics and bandits.

The submodules are pure (no I/O, no store) and import lazily: `assignment` needs
only the standard library and pydantic, so the hot path of a decision never
imports scipy.
"""
