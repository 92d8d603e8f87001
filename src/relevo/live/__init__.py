"""Live models: updated by every applied event, read by serving, never retrained.

- `covisitation`: "viewed A, then B" within a session, per item, time-decayed;
- `trending`: decayed interaction counts, overall and per category;
- `attributes`: an inverted index of item attributes, so an item has content
  neighbours from its first upsert;
- the user's recent items are in the profile already (`features.profile`).

They live in the store (decayed sorted sets, `store.base`), so every backend and
every API process sees the same state. `models.LiveModels` is the applier's hook
(`relevo.apply.ApplyHook`) that updates them, and the reader serving uses.
See ``docs/models.md`` ("Live models").
"""
