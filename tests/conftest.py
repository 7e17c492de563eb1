"""Shared fixtures. Keep this file small: fixtures specific to one component live in its test file."""

import sys
from pathlib import Path

# test helper modules (signal generators) live beside the tests
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hypothesis import settings  # noqa: E402

# Property tests check values, not speed: no per-example deadline (a loaded 2-core machine
# or CI runner otherwise fails them as "flaky" on timing alone).
settings.register_profile("bnnkws", deadline=None)
settings.load_profile("bnnkws")
