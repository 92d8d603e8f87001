"""The demo storefront: a synthetic shop relevo can be tried on (no real data)."""
