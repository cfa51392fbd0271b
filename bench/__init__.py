"""Benchmarks (`make bench-*`): measured, never asserted in timed tests."""
