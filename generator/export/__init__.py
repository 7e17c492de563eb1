"""Checkpoint -> integer model (to_integer) -> model blob (blob); the layer codes
(layer_codes), detector settings (detector_config), blob or checkpoint in (loading)."""
