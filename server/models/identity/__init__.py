"""No-op model used as the serving floor in benchmarks."""
