"""MicroPython reference implementation (plain Python, runs under CPython and micropython)."""
