"""Benchmarks that print figures, not timed tests: ``make bench`` (``python -m bench``).

What each measures, and the figures of the last run, are in docs/performance.md.
"""
