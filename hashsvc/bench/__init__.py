"""Benchmark support: sample sets and the baselines we measure against (used by scripts/ and tests)."""
