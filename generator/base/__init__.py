"""Errors, atomic file writes and the checkout paths: what every stage uses."""
