"""Benchmarks for abalone_platform (``make bench``); not part of the test suite."""
