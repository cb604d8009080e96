"""Driftline benchmarks: speed and memory figures, never run as tests (``make bench``)."""
