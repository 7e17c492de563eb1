"""Checkpoint -> integer model (to_integer) -> model blob (blob)."""
