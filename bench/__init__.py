"""Benchmarks (not tests): run them as modules, results go to docs/performance.md."""
