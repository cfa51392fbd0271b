"""Client SDK (see issue: client SDK and load tests)."""
