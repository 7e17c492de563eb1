"""Shared fixtures. Keep this file small: fixtures specific to one component live in its test file."""

import sys
from pathlib import Path

# test helper modules (signal generators) live beside the tests
sys.path.insert(0, str(Path(__file__).resolve().parent))
