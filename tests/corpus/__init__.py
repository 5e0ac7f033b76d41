"""Shared corpora of test inputs (bad releases), used by the core tests and later by the stream tests."""
