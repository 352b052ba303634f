"""Where data comes from (URIs) and where artifacts go (an immutable, per-run store)."""
